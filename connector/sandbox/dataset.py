"""The shape of a seeded synthetic dataset: what the generator makes, what each emulated API
loads, and the ground truth a correct sync must reproduce.

Plain dataclasses (with slots: a 100,000-contact dataset holds millions of them) so the
generator, both servers and the tests share one contract; the HubSpot emulator serves the email
events and page views themselves, not copies. All
datetimes are timezone-aware UTC. HubSpot property values are strings (as the v3 API returns
them); Salesforce field values are JSON-ready Python values (str, int, float, bool, None).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any

__all__ = [
    "NO_EXTRA",
    "EmailEventSeed",
    "FormSeed",
    "FormSubmissionSeed",
    "GroundTruth",
    "HubSpotContactSeed",
    "HubSpotOwnerSeed",
    "MarketingEventSeed",
    "PageViewSeed",
    "ParticipationSeed",
    "SalesforceRecordSeed",
    "SalesforceUserSeed",
    "SandboxDataset",
]

# An email event's `extra` when it has none: one shared, immutable empty mapping
NO_EXTRA: Mapping[str, Any] = MappingProxyType({})


@dataclass(slots=True)
class HubSpotContactSeed:
    id: str  # hs_object_id, numeric string
    properties: dict[str, str | None]  # email, firstname, lastname, jobtitle, company, ...
    created_at: datetime
    updated_at: datetime  # lastmodifieddate
    archived: bool = False
    merged_into: str | None = None  # set when this contact was merged into another
    merged_ids: list[str] = field(default_factory=list)  # on the survivor: ids merged into it


@dataclass(slots=True)
class HubSpotOwnerSeed:
    id: str
    email: str
    first_name: str
    last_name: str
    user_id: int
    teams: list[str] = field(default_factory=list)


@dataclass(slots=True)
class EmailEventSeed:
    """A legacy email event (`/email/public/v1/events`)."""

    id: str
    recipient: str  # email address
    type: str  # SENT, DELIVERED, OPEN, CLICK, BOUNCE, DROPPED, SPAMREPORT, STATUSCHANGE, ...
    created: datetime
    email_campaign_id: int
    subject: str | None = None
    url: str | None = None  # CLICK
    # bounce category, subscription change...: read only (events may share one mapping)
    extra: Mapping[str, Any] = field(default_factory=lambda: NO_EXTRA)


@dataclass(slots=True)
class FormSeed:
    guid: str
    name: str
    fields: list[dict[str, Any]]  # {"name", "label", "fieldType", "options": [...]}
    kind: str  # our label: whitepaper, case_study, webinar, consultation, demo, contact, newsletter


@dataclass(slots=True)
class FormSubmissionSeed:
    form_guid: str
    submitted_at: datetime
    page_url: str
    values: dict[str, str]  # field name -> value, incl. email, budget, timeframe answers
    contact_id: str


@dataclass(slots=True)
class PageViewSeed:
    """A web-analytics `e_visited_page` event."""

    id: str
    contact_id: str
    occurred_at: datetime
    url: str
    title: str
    session_id: str


@dataclass(slots=True)
class MarketingEventSeed:
    id: str  # objectId
    external_event_id: str
    name: str  # eventName
    event_type: str  # "WEBINAR"
    start: datetime
    end: datetime
    organizer: str


@dataclass(slots=True)
class ParticipationSeed:
    event_id: str
    contact_id: str
    state: str  # REGISTERED, ATTENDED, CANCELLED, NO_SHOW
    occurred_at: datetime


@dataclass(slots=True)
class SalesforceUserSeed:
    id: str  # 18-char id starting 005
    username: str
    email: str
    first_name: str
    last_name: str
    territory: str  # e.g. "NA-East", "EMEA", "APAC"
    team: str  # e.g. "SDR-NA", "SDR-EMEA", "SDR-APAC", "Enterprise"
    is_active: bool = True
    manager_id: str | None = None  # User.ManagerId: the user this one reports to


@dataclass(slots=True)
class SalesforceRecordSeed:
    """A record present in Salesforce before Handshake first runs (Account, Contact, Lead)."""

    sobject: str
    fields: dict[str, Any]  # includes "Id"


@dataclass(slots=True)
class GroundTruth:
    """What a correct sync must produce, for tests and benchmarks."""

    contact_ids: list[str]  # live (not archived, not merged away) contact ids
    archived_ids: list[str]
    merged: dict[str, str]  # merged-away id -> survivor id
    activities_by_type: dict[str, int]  # normalised type -> count (see generator docs)
    activities_by_contact: dict[str, int]
    sales_ready: list[str]  # emails that the default scoring model makes MQLs
    existing_sf_contacts: list[str]  # emails already Salesforce Contacts
    existing_sf_leads: list[str]  # emails already open Salesforce Leads
    bad_records: dict[str, str]  # contact id -> what is wrong with it (no email, bad date...)
    simulator: list[dict[str, Any]] = field(default_factory=list)  # sales-team actions taken
    # The sales team's hidden truth (generator.conversion_truth): what drives a sales-ready
    # contact's Lead to convert, each one's propensity by email, and the best threshold.
    conversion: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class SandboxDataset:
    seed: int
    generated_at: datetime  # "now" of the dataset: engagement spans the 12 months before it
    contacts: list[HubSpotContactSeed]
    owners: list[HubSpotOwnerSeed]
    email_events: list[EmailEventSeed]
    forms: list[FormSeed]
    form_submissions: list[FormSubmissionSeed]
    page_views: list[PageViewSeed]
    marketing_events: list[MarketingEventSeed]
    participations: list[ParticipationSeed]
    sf_users: list[SalesforceUserSeed]
    sf_records: list[SalesforceRecordSeed]
    ground_truth: GroundTruth
