"""What the Salesforce adapter answers with: Lead Status values, matched Leads and Contacts,
and the outcome of each record written (by sObject Collections or Bulk API 2.0 alike)."""

from __future__ import annotations

from dataclasses import dataclass, field

from connector.salesforce.errors import DuplicateMatch, SalesforceRecordRejected

__all__ = [
    "ContactMatch",
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
