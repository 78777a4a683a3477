"""The pull-back's part of the store: what Handshake handed off, where each hand-off stands in
Salesforce now, and the outcomes read against it, written with the bookmark that covers them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import select, update

from connector.store._base import StoreBase
from connector.store.bookmarks import BookmarkStore
from connector.store.models import (
    HandoffState,
    IdLink,
    SalesOutcome,
    SlaBreachRecord,
    WriteLedgerEntry,
)

__all__ = ["PullbackStore"]


class PullbackStore(BookmarkStore, StoreBase):
    """Hand-offs (the id map), their current state, and outcomes, once each."""

    def handoffs(self) -> list[IdLink]:
        """Every HubSpot contact Handshake linked to a Salesforce Lead or Contact."""
        with self.transaction() as s:
            return list(s.scalars(select(IdLink).order_by(IdLink.hubspot_id)))

    def handoff_states(self) -> dict[str, HandoffState]:
        """The state of each hand-off as last pulled back, by HubSpot id."""
        with self.transaction() as s:
            return {row.hubspot_id: row for row in s.scalars(select(HandoffState))}

    def written_ids(self, *, system: str, target: str) -> set[str]:
        """The remote ids of the writes the ledger says Handshake made (a Task it created):
        reading one of them back is Handshake's own write, not what a person did."""
        with self.transaction() as s:
            return {
                rid for rid in s.scalars(
                    select(WriteLedgerEntry.remote_id).where(
                        WriteLedgerEntry.system == system,
                        WriteLedgerEntry.target == target,
                        WriteLedgerEntry.status == "done",
                        WriteLedgerEntry.remote_id.is_not(None),
                    )
                ) if rid
            }

    def stored_sources(self, source_ids: Sequence[str]) -> set[str]:
        """Those of these source ids (Task, Event ids) already stored as outcomes."""
        if not source_ids:
            return set()
        with self.transaction() as s:
            return set(s.scalars(select(SalesOutcome.source_id).where(
                SalesOutcome.source_id.in_(list(source_ids)))))

    def record_pullback(
        self,
        *,
        outcomes: Sequence[Mapping[str, Any]],
        states: Sequence[Mapping[str, Any]],
        stream: str | None = None,
        bookmark: str | None = None,
        run_id: str | None = None,
    ) -> int:
        """Store one page's outcomes (once each, by source id) and the states they moved, and
        the stream's bookmark, in one transaction: a crash keeps all of it or none. Returns
        how many outcomes were new."""
        now = self._now()
        with self.transaction() as s:
            added = 0
            if outcomes:
                stmt = (self._insert(SalesOutcome).values([dict(o) for o in outcomes])
                        .on_conflict_do_nothing(index_elements=["source_id"])
                        .returning(SalesOutcome.id))
                added = len(list(s.scalars(stmt)))
            for state in states:
                s.merge(HandoffState(**{**state, "updated_at": now}))
            if stream is not None and bookmark is not None:
                self.set_bookmark(stream, bookmark, run_id=run_id, session=s)
            return added

    def outcomes(self, *, kind: str | None = None) -> list[SalesOutcome]:
        """Every outcome pulled back (of one kind when given), oldest first."""
        with self.transaction() as s:
            q = select(SalesOutcome)
            if kind:
                q = q.where(SalesOutcome.kind == kind)
            return list(s.scalars(q.order_by(SalesOutcome.occurred_at, SalesOutcome.id)))

    def sla_breaches(self, *, kind: str | None = None) -> list[SlaBreachRecord]:
        """Every SLA breach and reassignment recorded (of one kind when given), oldest first."""
        with self.transaction() as s:
            q = select(SlaBreachRecord)
            if kind:
                q = q.where(SlaBreachRecord.kind == kind)
            return list(s.scalars(q.order_by(SlaBreachRecord.found_at, SlaBreachRecord.key)))

    def record_sla_breaches(self, breaches: Sequence[Mapping[str, Any]]) -> int:
        """Record breaches once each by key (a late window met since gets its `met_at`);
        returns how many were new."""
        if not breaches:
            return 0
        now = self._now()
        with self.transaction() as s:
            stmt = (self._insert(SlaBreachRecord)
                    .values([{**b, "found_at": b.get("found_at") or now} for b in breaches])
                    .on_conflict_do_nothing(index_elements=["key"])
                    .returning(SlaBreachRecord.key))
            added = len(list(s.scalars(stmt)))
            for b in breaches:
                if b.get("met_at") is not None:
                    s.execute(update(SlaBreachRecord).where(
                        SlaBreachRecord.key == b["key"], SlaBreachRecord.met_at.is_(None))
                        .values(met_at=b["met_at"]))
            return added
