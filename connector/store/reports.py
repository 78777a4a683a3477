"""What the reports read: each live contact's path, each hand-off's deal, scores and lost
contacts, in a few set-based queries (the reports never load ORM objects)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from connector.store._base import StoreBase
from connector.store.models import Activity, Contact, HandoffState, IdLink, Score

__all__ = ["ContactFacts", "HandoffDeal", "LostContact", "ReportStore"]


@dataclass(frozen=True, slots=True)
class HandoffDeal:
    """One hand-off's Opportunity, as the pull-back last read it (none: `opportunity_id` None)."""

    hubspot_id: str
    opportunity_id: str | None
    is_closed: bool
    is_won: bool
    amount: float | None


@dataclass(frozen=True, slots=True)
class ContactFacts:
    """One live contact, for the report: when it came, from where, and its scoring path."""

    hubspot_id: str
    created_at: datetime | None
    source: str
    grade: str  # fit grade of its latest score ("" when never scored)
    track: str  # nurture track of its latest score that was not an MQL ("" when none)
    first_mql_at: datetime | None  # its first score that was an MQL
    # for a contact scored only as an MQL (so in no track): what its track is worked out from
    email: str | None = None
    properties: Mapping[str, Any] | None = None
    lifecycle_stage: str | None = None
    hubspot_created_at: datetime | None = None
    interest: float = 0.0
    fit_points: float = 0.0
    expired: bool = False


@dataclass(frozen=True, slots=True)
class LostContact:
    """A contact lost to the list: its first hard bounce, unsubscribe or spam report."""

    hubspot_id: str
    kind: str
    at: datetime


class ReportStore(StoreBase):
    """Read-only queries for `connector.reports`."""

    def handoff_deals(self) -> list[HandoffDeal]:
        """Every hand-off (the id map) with its Opportunity's state, by HubSpot id."""
        with self.transaction() as s:
            rows = s.execute(
                select(IdLink.hubspot_id, HandoffState.opportunity_id, HandoffState.is_closed,
                       HandoffState.is_won, HandoffState.amount)
                .outerjoin(HandoffState, HandoffState.hubspot_id == IdLink.hubspot_id)
                .order_by(IdLink.hubspot_id)).tuples()
            return [HandoffDeal(hid, opp, bool(closed), bool(won), amount)
                    for hid, opp, closed, won, amount in rows]

    def report_contacts(self) -> list[ContactFacts]:
        """Every live contact with its source, latest grade, nurture track and first MQL."""
        live = (Contact.archived.is_(False)) & (Contact.merged_into.is_(None))
        with self.transaction() as s:
            first_mql = dict(s.execute(
                select(Score.contact_id, func.min(Score.scored_at))
                .where(Score.is_mql.is_(True)).group_by(Score.contact_id)).tuples().all())
            grade: dict[str, tuple[str, float, float]] = {}
            track: dict[str, str] = {}
            for cid, g, points, interest, mql, t in s.execute(
                    select(Score.contact_id, Score.fit_grade, Score.fit_points, Score.interest,
                           Score.is_mql, Score.explanation["nurture_track"].as_string())
                    .order_by(Score.contact_id, Score.scored_at, Score.id)).tuples():
                grade[cid] = (g, points, interest)
                if not mql and t:
                    track[cid] = t
            rows = s.execute(
                select(Contact.hubspot_id, Contact.hubspot_created_at,
                       Contact.properties["hs_analytics_source"].as_string())
                .where(live).order_by(Contact.hubspot_id)).tuples()
            out = [ContactFacts(hid, created, source or "unknown", grade.get(hid, ("",))[0],
                                track.get(hid, ""), first_mql.get(hid))
                   for hid, created, source in rows]
            trackless = [c.hubspot_id for c in out if not c.track and c.hubspot_id in grade]
            profiles: dict[str, Any] = {}
            for start in range(0, len(trackless), 500):
                for row in s.execute(
                        select(Contact.hubspot_id, Contact.email, Contact.properties,
                               Contact.lifecycle_stage, Contact.hubspot_created_at)
                        .where(Contact.hubspot_id.in_(trackless[start:start + 500]))):
                    profiles[row.hubspot_id] = row
        for i, c in enumerate(out):
            profile = profiles.get(c.hubspot_id)
            if profile is not None:
                _, points, interest = grade[c.hubspot_id]
                out[i] = replace(c, email=profile.email, properties=profile.properties,
                                 lifecycle_stage=profile.lifecycle_stage,
                                 hubspot_created_at=profile.hubspot_created_at,
                                 interest=interest, fit_points=points)
        return out

    def interest_history(self, contact_ids: Collection[str]) -> dict[str, list[tuple[datetime, float]]]:
        """(scored_at, interest) of every score of these contacts, oldest first."""
        out: dict[str, list[tuple[datetime, float]]] = defaultdict(list)
        ids = list(contact_ids)
        with self.transaction() as s:
            for start in range(0, len(ids), 500):
                for cid, at, interest in s.execute(
                        select(Score.contact_id, Score.scored_at, Score.interest)
                        .where(Score.contact_id.in_(ids[start:start + 500]))
                        .order_by(Score.contact_id, Score.scored_at, Score.id)).tuples():
                    out[cid].append((at, interest))
        return dict(out)

    def lost_contacts(self, kinds: Collection[str]) -> list[LostContact]:
        """Each contact's first activity of one of `kinds` (hard bounce, unsubscribe, spam
        report): when the list lost it."""
        with self.transaction() as s:
            rows = s.execute(
                select(Activity.contact_id, Activity.type, Activity.occurred_at)
                .where(Activity.type.in_(list(kinds)))
                .order_by(Activity.contact_id, Activity.occurred_at, Activity.id)).tuples()
            seen: dict[str, LostContact] = {}
            for cid, kind, at in rows:
                if cid not in seen:
                    seen[cid] = LostContact(cid, kind, at)
        return list(seen.values())
