"""The lead SLA and dead-lead recycling, as `mappings/sla.toml` describes them (pure: no store,
no HTTP; the pull-back stage feeds it what Salesforce says and writes what it decides).

- `calendar`: when SLA hours count (every hour, or business hours in a time zone, DST-safe).
- `engine`: one assignment's due times, first touch, worked time, breaches (each with a stable
  key, so a re-run alerts nobody twice) and the reassignment to the next rep of its team.
- `recycling`: which dead leads go back to marketing, why, or are disqualified.
"""

from __future__ import annotations

from connector.sla.calendar import Calendar
from connector.sla.engine import (
    Activity,
    Assignment,
    BreachKind,
    Reassignment,
    SlaBreach,
    SlaStatus,
    calendar_of,
    evaluate,
    never_accepted,
    next_member,
    reassignment,
)
from connector.sla.recycling import (
    LeadOutcome,
    RecycleDecision,
    RecycleReason,
    interest_after,
    recycle,
)

__all__ = [
    "Activity",
    "Assignment",
    "BreachKind",
    "Calendar",
    "LeadOutcome",
    "Reassignment",
    "RecycleDecision",
    "RecycleReason",
    "SlaBreach",
    "SlaStatus",
    "calendar_of",
    "evaluate",
    "interest_after",
    "never_accepted",
    "next_member",
    "reassignment",
    "recycle",
]
