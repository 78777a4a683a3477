"""Sales data: outcomes pulled back from Salesforce, SLA timers and round-robin pointers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, update

from connector.store._base import StoreBase
from connector.store.models import LeadRoute, RoutingPointer, SalesOutcome, SlaTimer

__all__ = ["SalesStore"]


class SalesStore(StoreBase):
    """Sales outcomes, SLA timers and the persisted round-robin pointers."""

    # --- outcomes ---------------------------------------------------------------------------------

    def add_outcomes(self, rows: Sequence[Mapping[str, Any]]) -> int:
        """Store outcomes pulled back from Salesforce, once each (by source id)."""
        if not rows:
            return 0
        stmt = self._insert(SalesOutcome).values([dict(r) for r in rows]).on_conflict_do_nothing(
            index_elements=["source_id"]
        ).returning(SalesOutcome.id)
        with self.transaction() as s:
            return len(list(s.scalars(stmt)))

    def outcomes_for(self, hubspot_id: str) -> list[SalesOutcome]:
        with self.transaction() as s:
            return list(
                s.scalars(
                    select(SalesOutcome)
                    .where(SalesOutcome.hubspot_id == hubspot_id)
                    .order_by(SalesOutcome.occurred_at)
                )
            )

    def latest_recycles(self, hubspot_ids: Sequence[str]) -> dict[str, SalesOutcome]:
        """The newest `recycled` outcome (the pull-back's hand-back to marketing) of each given
        contact that has one: its `details["count"]` is the contact's recycles so far."""
        if not hubspot_ids:
            return {}
        out: dict[str, SalesOutcome] = {}
        with self.transaction() as s:
            rows = s.scalars(
                select(SalesOutcome)
                .where(SalesOutcome.kind == "recycled",
                       SalesOutcome.hubspot_id.in_(list(hubspot_ids)))
                .order_by(SalesOutcome.occurred_at, SalesOutcome.id)
            )
            for row in rows:  # oldest first: the newest wins
                out[str(row.hubspot_id)] = row
            return out

    # --- SLA timers -------------------------------------------------------------------------------

    def open_sla_timer(
        self, *, hubspot_id: str, sf_id: str, owner_id: str | None, assigned_at: datetime,
        first_touch_due: datetime, worked_due: datetime, recycled_from: int | None = None,
    ) -> int:
        with self.transaction() as s:
            row = SlaTimer(
                hubspot_id=hubspot_id, sf_id=sf_id, owner_id=owner_id, assigned_at=assigned_at,
                first_touch_due=first_touch_due, worked_due=worked_due, state="open",
                recycled_from=recycled_from,
            )
            s.add(row)
            s.flush()
            return row.id

    def sla_timers(self, *, state: str | None = None) -> list[SlaTimer]:
        with self.transaction() as s:
            q = select(SlaTimer)
            if state:
                q = q.where(SlaTimer.state == state)
            return list(s.scalars(q.order_by(SlaTimer.id)))

    def update_sla_timer(self, timer_id: int, **values: Any) -> None:
        with self.transaction() as s:
            s.execute(update(SlaTimer).where(SlaTimer.id == timer_id).values(**values))

    # --- routing ----------------------------------------------------------------------------------

    def lead_route(self, hubspot_id: str) -> LeadRoute | None:
        """The owner routing chose for this contact's Lead create, if one was recorded."""
        with self.transaction() as s:
            return s.get(LeadRoute, hubspot_id)

    def record_lead_route(self, hubspot_id: str, *, owner_id: str | None, reason: str,
                          use_assignment_rules: bool) -> None:
        """Keep the owner chosen for a Lead about to be created (replacing an earlier choice)."""
        with self.transaction() as s:
            s.merge(LeadRoute(hubspot_id=hubspot_id, owner_id=owner_id, reason=reason,
                              use_assignment_rules=use_assignment_rules, decided_at=self._now()))

    def next_round_robin(self, team: str, size: int) -> int:
        """The team member's index to assign next, advancing the persisted pointer atomically."""
        if size <= 0:
            raise ValueError("team size must be positive")
        with self.transaction() as s:
            row = s.get(RoutingPointer, team, with_for_update=True)
            if row is None:
                s.execute(
                    self._insert(RoutingPointer)
                    .values(team=team, position=0, updated_at=self._now())
                    .on_conflict_do_nothing(index_elements=["team"])
                )
                row = s.get(RoutingPointer, team, with_for_update=True)
                assert row is not None
            index = row.position % size
            row.position = index + 1
            row.updated_at = self._now()
            return index
