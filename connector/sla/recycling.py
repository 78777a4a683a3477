"""Dead leads back to marketing: which handed-off Leads are recycled, why, and what happens.

    decision = recycle(sla.spec, LeadOutcome(lead_id, handed_off_at=..., status=..., ...), now)
    decision.action ("recycle" | "disqualify"), decision.reason, decision.detail, decision.key

Reasons, in this order: the Opportunity was lost, the Lead was closed without converting, it
was never accepted (not worked in its window and not reassigned), it was untouched by sales
for N days. Customers (a won Opportunity) are never recycled; a lead already recycled
`max_recycles` times is disqualified instead. Pure: no store, no HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from connector.mapping.sla import SlaFile

__all__ = ["LeadOutcome", "RecycleDecision", "RecycleReason", "interest_after", "recycle"]

RecycleReason = Literal["opportunity_lost", "closed_not_converted", "never_accepted",
                        "untouched"]


def _utc(when: datetime, what: str) -> datetime:
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(f"{what} must be a time-zone-aware datetime")
    return when.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class LeadOutcome:
    """What sales did with one hand-off, as pulled back.

    `status_reason`: the org's reason-not-converted field; `last_touch_at`: the latest rep
    activity; `recycle_count`: recycles so far; `settled`: this hand-off was already recycled
    or disqualified (nothing more to decide until it is handed off again);
    `never_accepted`: from the SLA (`connector.sla.never_accepted`)."""

    lead_id: str
    handed_off_at: datetime
    status: str | None = None
    is_converted: bool = False
    status_reason: str | None = None
    opportunity_closed: bool = False
    opportunity_won: bool = False
    loss_reason: str | None = None
    is_customer: bool = False
    last_touch_at: datetime | None = None
    recycle_count: int = 0
    settled: bool = False
    never_accepted: bool = False


@dataclass(frozen=True, slots=True)
class RecycleDecision:
    """What to do with a dead lead.

    recycle: Salesforce Lead gets `lead_status` and the `owner_queue`; HubSpot lifecycle back
    to `lead`, the reason, time and count, the `reengagement_list`, the interest score as
    `interest` says. disqualify: `hubspot_lead_status` only (no list, no new hand-off)."""

    lead_id: str
    action: Literal["recycle", "disqualify"]
    reason: RecycleReason
    detail: str
    count: int
    lead_status: str | None
    owner_queue: str | None
    reengagement_list: str | None
    hubspot_lead_status: str | None
    interest: Literal["reset", "decay", "keep"]
    keep_percent: float

    @property
    def key(self) -> str:
        """Stable: one decision per hand-off and recycle count."""
        return f"recycle:{self.lead_id}:{self.count}:{self.action}"


def _reason(sla: SlaFile, lead: LeadOutcome, now: datetime) -> tuple[RecycleReason, str] | None:
    rules = sla.recycling
    if lead.opportunity_closed and not lead.opportunity_won and rules.opportunity_lost:
        return "opportunity_lost", lead.loss_reason or "opportunity lost (no reason given)"
    if lead.is_converted:
        return None  # the deal is sales' until its Opportunity closes
    closed = {s.strip().casefold() for s in rules.closed_statuses}
    if lead.status is not None and lead.status.strip().casefold() in closed:
        return "closed_not_converted", lead.status_reason or f"closed as {lead.status!r}"
    if lead.never_accepted and rules.never_accepted:
        return "never_accepted", "not worked within its SLA window"
    if rules.untouched_days > 0:
        handed = _utc(lead.handed_off_at, "handed_off_at")
        last = max(handed, _utc(lead.last_touch_at, "last_touch_at")) if lead.last_touch_at \
            else handed
        if now - last >= timedelta(days=rules.untouched_days):
            return "untouched", f"no sales activity for {rules.untouched_days} days"
    return None


def recycle(sla: SlaFile, lead: LeadOutcome, now: datetime) -> RecycleDecision | None:
    """The recycling decision for one handed-off lead as of `now`, or None (keep with sales)."""
    now = _utc(now, "now")
    rules = sla.recycling
    if not rules.enabled or lead.settled or lead.is_customer or lead.opportunity_won:
        return None
    found = _reason(sla, lead, now)
    if found is None:
        return None
    reason, detail = found
    if lead.recycle_count >= rules.max_recycles:
        return RecycleDecision(lead.lead_id, "disqualify", reason, detail, lead.recycle_count,
                               None, None, None, rules.disqualified_hubspot_status, "keep", 100.0)
    keep = 0.0 if rules.interest == "reset" else rules.decay_to_percent
    return RecycleDecision(lead.lead_id, "recycle", reason, detail, lead.recycle_count + 1,
                           rules.lead_status, rules.owner_queue, rules.reengagement_list,
                           sla.hubspot_status(rules.lead_status), rules.interest, keep)


def interest_after(decision: RecycleDecision, score: float) -> float:
    """The interest score a recycled contact keeps (reset: 0; decay: its share)."""
    return round(score * decision.keep_percent / 100.0, 2)
