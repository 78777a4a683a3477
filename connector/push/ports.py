"""What the push needs of Salesforce and of HubSpot, as Protocols: the push depends on these,
not on the SDK-backed adapters (`connector.salesforce.SalesforceClient` and
`connector.hubspot.HubSpotClient` fit them; a test may pass anything else that does).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from connector.errors import Actor

__all__ = [
    "DuplicateMatch",
    "EmailMatches",
    "HubSpotPort",
    "LeadMatch",
    "LeadStatusValue",
    "RecordMatch",
    "RecordRejection",
    "SalesforcePort",
    "WriteResult",
]


class DuplicateMatch(Protocol):
    """A record Salesforce's duplicate rule matched."""

    @property
    def sobject(self) -> str: ...
    @property
    def id(self) -> str: ...
    @property
    def rule(self) -> str: ...


class RecordRejection(Protocol):
    """Why Salesforce refused one record, classified: who acts, the reason and the fix."""

    @property
    def code(self) -> str: ...
    @property
    def actor(self) -> Actor: ...
    @property
    def message(self) -> str: ...
    @property
    def reason(self) -> str: ...
    @property
    def fix(self) -> str | None: ...
    @property
    def fields(self) -> Sequence[str]: ...

    def reason_with(self, sources: Mapping[str, Sequence[str]]) -> str:
        """The reason naming the HubSpot properties each refused field came from."""
        ...


class WriteResult(Protocol):
    """One record's result of a write call, at its input `index`."""

    @property
    def index(self) -> int: ...
    @property
    def id(self) -> str | None: ...
    @property
    def success(self) -> bool: ...
    @property
    def created(self) -> bool | None: ...
    @property
    def rejection(self) -> RecordRejection | None: ...
    @property
    def duplicates(self) -> Sequence[DuplicateMatch]: ...


class LeadStatusValue(Protocol):
    """One Lead Status value: its API name and whether new Leads get it."""

    @property
    def api_name(self) -> str: ...
    @property
    def is_default(self) -> bool: ...


class RecordMatch(Protocol):
    """An existing Contact or Lead found by email."""

    @property
    def id(self) -> str: ...
    @property
    def owner_id(self) -> str | None: ...


class LeadMatch(RecordMatch, Protocol):
    """An existing Lead; a converted one says which Contact it became."""

    @property
    def converted_contact_id(self) -> str | None: ...


class EmailMatches(Protocol):
    """Existing records by email (any case)."""

    def contacts_for(self, email: str) -> Sequence[RecordMatch]:
        """Contacts with this email."""
        ...

    def open_leads_for(self, email: str) -> Sequence[LeadMatch]:
        """Unconverted Leads with this email."""
        ...

    def converted_leads_for(self, email: str) -> Sequence[LeadMatch]:
        """Converted Leads with this email."""
        ...


class SalesforcePort(Protocol):
    """The Salesforce calls the push, its Tasks and its alerts make."""

    @property
    def calls(self) -> int:
        """API calls made this run."""
        ...

    @property
    def user_id(self) -> str | None:
        """The integration user: CreatedById of what Handshake writes (None when unknown)."""
        ...

    def fields(self, sobject: str) -> dict[str, dict[str, Any]]:
        """The object's fields by API name (a cached describe)."""
        ...

    def query(self, soql: str, *, what: str = ...) -> Iterator[dict[str, Any]]:
        """Every row of a SOQL query."""
        ...

    def match_emails(self, emails: Iterable[str]) -> EmailMatches:
        """Existing Contacts, open Leads and converted Leads for these emails."""
        ...

    def open_leads_by_owner(self, owner_ids: Iterable[str], *,
                            closed_statuses: Sequence[str] = ...) -> dict[str, int]:
        """How many open Leads each of these users owns."""
        ...

    def queue_id(self, name: str) -> str | None:
        """The id of the Lead queue with this name."""
        ...

    def lead_statuses(self) -> Sequence[LeadStatusValue]:
        """The org's Lead Status values (the LeadStatus object), read once a client."""
        ...

    def records_by_id(self, sobject: str, ids: Iterable[str], fields: Sequence[str], *,
                      what: str = ...) -> Iterator[dict[str, Any]]:
        """These records' `fields`, read in batched queries."""
        ...

    def find_tasks(self, who_ids: Iterable[str], *, subject_contains: str,
                   created_by: str | None = ...,
                   fields: Sequence[str] = ...) -> Iterator[dict[str, Any]]:
        """Tasks on these records whose Subject contains `subject_contains`."""
        ...

    def upsert_batches(self, sobject: str, records: Sequence[Mapping[str, Any]],
                       external_id_field: str | None = ..., *,
                       auto_assign: bool = ...) -> Iterator[Sequence[WriteResult]]:
        """Upsert by external id, each call's results before the next call is made."""
        ...

    def bulk_upsert(self, sobject: str, records: Sequence[Mapping[str, Any]],
                    external_id_field: str | None = ..., *,
                    auto_assign: bool = ...) -> Sequence[WriteResult]:
        """Upsert by external id through Bulk API 2.0 (a backfill)."""
        ...

    def update_batches(self, sobject: str, records: Sequence[Mapping[str, Any]], *,
                       auto_assign: bool = ...) -> Iterator[Sequence[WriteResult]]:
        """Update by Id, each call's results before the next call is made."""
        ...

    def create(self, sobject: str, records: Sequence[Mapping[str, Any]]) -> Sequence[WriteResult]:
        """Create (no external id): every result, or the call's error before any."""
        ...

    def create_batches(self, sobject: str,
                       records: Sequence[Mapping[str, Any]]) -> Iterator[Sequence[WriteResult]]:
        """Create, each call's results before the next call is made."""
        ...


class HubSpotPort(Protocol):
    """The HubSpot calls the push's hand-off write-back makes."""

    @property
    def contacts_path(self) -> str:
        """The contacts resource of the API version in use."""
        ...

    def request(self, method: str, path: str, *, json: Any = None,
                describe: str = "") -> tuple[dict[str, Any], datetime | None]:
        """One request; the answer's body and HubSpot's clock."""
        ...
