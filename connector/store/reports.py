"""What the reports read: one row of facts per hand-off and the funnel's head counts, read in a
few set-based queries (the reports never load ORM objects)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, union

from connector.store._base import StoreBase
from connector.store.models import Activity, Contact, HandoffState, IdLink, SalesOutcome, Score

__all__ = ["ContactFacts", "FunnelRows", "HandoffFacts", "LostContact", "ReportStore"]


@dataclass(frozen=True, slots=True)
class HandoffFacts:
    """One handed-off contact as the pull-back last read it, with every Lead status it held."""

    hubspot_id: str
    linked_at: datetime
    statuses: frozenset[str]
    is_converted: bool
    opportunity_id: str | None
    is_closed: bool
    is_won: bool
    amount: float | None


@dataclass(frozen=True)
class FunnelRows:
    """The funnel's head counts and each hand-off's facts."""

    contacts: int  # live contacts (the leads)
    mqls: int  # live contacts that were ever an MQL (scored one, or handed off)
    handoffs: list[HandoffFacts] = field(default_factory=list)


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

    def funnel_rows(self) -> FunnelRows:
        """The head counts and the facts of every hand-off."""
        live = (Contact.archived.is_(False)) & (Contact.merged_into.is_(None))
        ever_mql = union(
            select(Score.contact_id.label("cid")).where(Score.is_mql.is_(True)),
            select(IdLink.hubspot_id.label("cid")),
        ).subquery()
        with self.transaction() as s:
            contacts = s.execute(select(func.count()).select_from(Contact).where(live)).scalar()
            mqls = s.execute(
                select(func.count()).select_from(Contact)
                .join(ever_mql, ever_mql.c.cid == Contact.hubspot_id).where(live)).scalar()
            statuses: defaultdict[str, set[str]] = defaultdict(set)
            for hid, status in s.execute(
                    select(SalesOutcome.hubspot_id, SalesOutcome.status)
                    .where(SalesOutcome.kind == "status", SalesOutcome.status.is_not(None))
                    .distinct()):
                if hid is not None and status is not None:
                    statuses[hid].add(status)
            rows = s.execute(
                select(IdLink.hubspot_id, IdLink.linked_at, HandoffState.status,
                       HandoffState.is_converted, HandoffState.opportunity_id,
                       HandoffState.is_closed, HandoffState.is_won, HandoffState.amount)
                .outerjoin(HandoffState, HandoffState.hubspot_id == IdLink.hubspot_id)
                .order_by(IdLink.hubspot_id))
            handoffs = [
                HandoffFacts(
                    hubspot_id=r.hubspot_id, linked_at=r.linked_at,
                    statuses=frozenset(statuses.get(r.hubspot_id, set())
                                       | ({r.status} if r.status else set())),
                    is_converted=bool(r.is_converted), opportunity_id=r.opportunity_id,
                    is_closed=bool(r.is_closed), is_won=bool(r.is_won), amount=r.amount)
                for r in rows]
        return FunnelRows(contacts=int(contacts or 0), mqls=int(mqls or 0), handoffs=handoffs)

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
