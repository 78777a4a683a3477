"""What the Salesforce adapter answers with: Lead Status values, matched Leads and Contacts,
the outcome of each record written (by sObject Collections or Bulk API 2.0 alike), and the
reads the pull-back batches into composite calls (`ChangeQuery`, `DeletedCheck` in; `ChangePage`,
`Deleted` out)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from connector.salesforce.errors import DuplicateMatch, SalesforceRecordRejected

__all__ = [
    "ChangePage",
    "ChangeQuery",
    "ContactMatch",
    "Deleted",
    "DeletedCheck",
    "EmailMatches",
    "ExternalIdMatches",
    "LeadMatch",
    "LeadStatus",
    "SalesVocabulary",
    "WriteResult",
    "email_key",
]


def email_key(email: str) -> str:
    """An email as matches are keyed by: trimmed, lower case (Salesforce compares without
    case)."""
    return email.strip().lower()


@dataclass(frozen=True, slots=True)
class LeadStatus:
    """One value of the Lead Status picklist, as the LeadStatus object defines it."""

    label: str
    api_name: str
    sort_order: int | None
    is_default: bool
    is_converted: bool


@dataclass(frozen=True, slots=True)
class SalesVocabulary:
    """Which picklist values mean converted, closed and won, as the org's value objects
    (LeadStatus, OpportunityStage, TaskStatus) say: several of each can, and orgs rename them."""

    converted_statuses: frozenset[str]
    closed_stages: frozenset[str]
    won_stages: frozenset[str]
    closed_task_statuses: frozenset[str]
    # every value of each, flagged or not: a value outside them is one the org added since
    lead_statuses: frozenset[str] = frozenset()
    stages: frozenset[str] = frozenset()
    task_statuses: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class ChangeQuery:
    """One SOQL read of the pull-back, `tag` naming it for the caller: the records of `sobject`
    changed at or after `since` (None: no such part), or whose `keys` (`Id`, or `WhoId` and
    `WhatId`) name one of `ids` (changed at or after `ids_since`; None: whatever their stamp),
    oldest change first (`ORDER BY SystemModstamp, Id`). `include_deleted` reads through
    `queryAll` (deleted and merged records, archived Tasks and Events)."""

    tag: str
    sobject: str
    fields: tuple[str, ...]
    since: datetime | None = None
    ids: tuple[str, ...] = ()
    ids_since: datetime | None = None
    keys: tuple[str, ...] = ("Id",)
    include_deleted: bool = False


@dataclass(frozen=True, slots=True)
class DeletedCheck:
    """The sObject Get Deleted resource for `sobject` between `start` and `end`."""

    sobject: str
    start: datetime
    end: datetime


@dataclass(frozen=True, slots=True)
class ChangePage:
    """One page of a `ChangeQuery`'s rows (`last`: no page of that query follows)."""

    tag: str
    rows: list[dict[str, Any]]
    last: bool


@dataclass(frozen=True, slots=True)
class Deleted:
    """What the deleted resource answered: the ids deleted in the window and the safe next
    start; or `window_gone` (INVALID_REPLICATION_DATE: the start is past the 15 days kept or
    the delete log was purged after it), when only a full re-read is safe."""

    sobject: str
    ids: tuple[str, ...] = ()
    latest_covered: datetime | None = None
    window_gone: bool = False


@dataclass(frozen=True, slots=True)
class ContactMatch:
    """An existing Contact."""

    id: str
    email: str | None
    owner_id: str | None
    account_id: str | None
    external_id: str | None = None


@dataclass(frozen=True, slots=True)
class LeadMatch:
    """An existing Lead, open or converted (then `converted_contact_id` says where it went)."""

    id: str
    email: str | None
    owner_id: str | None
    status: str | None
    is_converted: bool
    converted_contact_id: str | None = None
    converted_account_id: str | None = None
    external_id: str | None = None


@dataclass
class EmailMatches:
    """Existing records by email (lower-case keys): Contacts, open Leads, converted Leads."""

    contacts: dict[str, list[ContactMatch]] = field(default_factory=dict)
    open_leads: dict[str, list[LeadMatch]] = field(default_factory=dict)
    converted_leads: dict[str, list[LeadMatch]] = field(default_factory=dict)

    def contacts_for(self, email: str) -> list[ContactMatch]:
        """Contacts with this email (any case)."""
        return self.contacts.get(email_key(email), [])

    def open_leads_for(self, email: str) -> list[LeadMatch]:
        """Unconverted Leads with this email."""
        return self.open_leads.get(email_key(email), [])

    def converted_leads_for(self, email: str) -> list[LeadMatch]:
        """Converted Leads with this email."""
        return self.converted_leads.get(email_key(email), [])


@dataclass
class ExternalIdMatches:
    """Existing Leads and Contacts by the external-id field's value."""

    leads: dict[str, LeadMatch] = field(default_factory=dict)
    contacts: dict[str, ContactMatch] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class WriteResult:
    """The outcome of one input record of a collection call, at its input `index`."""

    index: int
    key: str | None  # the external id value or Id sent, to tell records apart in reports
    id: str | None
    success: bool
    created: bool | None = None
    rejection: SalesforceRecordRejected | None = None

    @property
    def duplicates(self) -> tuple[DuplicateMatch, ...]:
        """Records a duplicate rule matched (link to them instead of duplicating)."""
        return self.rejection.duplicates if self.rejection is not None else ()
