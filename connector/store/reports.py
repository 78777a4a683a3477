"""What the reports read: one row of facts per hand-off and the funnel's head counts, read in a
few set-based queries (the reports never load ORM objects)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select, union

from connector.store._base import StoreBase
from connector.store.models import Contact, HandoffState, IdLink, SalesOutcome, Score

__all__ = ["FunnelRows", "HandoffFacts", "ReportStore"]


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
