"""Sales data: outcomes pulled back from Salesforce, SLA timers and round-robin pointers."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, insert, or_, select, update

from connector.store._base import StoreBase, _table, in_pages
from connector.store.models import (
    LeadRoute,
    RoutingPointer,
    SalesOutcome,
    SlaTimer,
    sqlite_utc_text,
    utc_from_row,
)

__all__ = ["SalesStore"]

PAGE = 500  # ids one IN (...) carries
_SQLITE_SLA_OPEN = (
    "INSERT INTO sla_timers (hubspot_id, sf_id, owner_id, assigned_at, first_touch_due, "
    "worked_due, state, recycled_from) VALUES (?, ?, ?, ?, ?, ?, 'open', ?)")


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

    def open_sla_timers(self, timers: Sequence[Mapping[str, Any]]) -> None:
        """`open_sla_timer` of many hand-offs in one transaction (one statement built once,
        executed for every row): each mapping has hubspot_id, sf_id, owner_id, assigned_at,
        first_touch_due and worked_due."""
        if not timers:
            return
        if self.engine.dialect.name == "sqlite":
            # SQLite: the driver's executemany of the values as the column types bind them,
            # each time formatted once (a push's hand-offs of one batch share their times)
            stamps: dict[datetime, str] = {}

            def stamp(when: datetime) -> str:
                text = stamps.get(when)
                if text is None:
                    text = stamps[when] = sqlite_utc_text(when)
                return text

            values = [(t["hubspot_id"], t["sf_id"], t["owner_id"], stamp(t["assigned_at"]),
                       stamp(t["first_touch_due"]), stamp(t["worked_due"]),
                       t.get("recycled_from")) for t in timers]
            with self.transaction() as s:
                self._core(s).exec_driver_sql(_SQLITE_SLA_OPEN, values)
            return
        table = _table(SlaTimer)
        stmt = self._statement("sla.open", lambda: insert(table))
        rows = [{"hubspot_id": t["hubspot_id"], "sf_id": t["sf_id"], "owner_id": t["owner_id"],
                 "assigned_at": t["assigned_at"], "first_touch_due": t["first_touch_due"],
                 "worked_due": t["worked_due"], "state": "open",
                 "recycled_from": t.get("recycled_from")} for t in timers]
        with self.transaction() as s:
            self._core(s).execute(stmt, rows)

    def sla_timers(self, *, state: str | None = None) -> list[SlaTimer]:
        with self.transaction() as s:
            q = select(SlaTimer)
            if state:
                q = q.where(SlaTimer.state == state)
            return list(s.scalars(q.order_by(SlaTimer.id)))

    def sla_timer_rows(self, hubspot_ids: Collection[str] | None = None) -> list[Any]:
        """`sla_timers` as Core rows (attribute access as on `SlaTimer`), of these contacts
        when given, by id."""
        table = _table(SlaTimer)
        with self.transaction() as s:
            conn = self._core(s)
            if hubspot_ids is None:
                return list(conn.execute(self._statement(
                    "sla.timers.all", lambda: select(table).order_by(table.c.id))))
            stmt = self._statement("sla.timers.of", lambda: select(table).where(
                table.c.hubspot_id.in_(bindparam("ids", expanding=True))))
            ids = sorted(set(hubspot_ids))
            rows = [r for page in in_pages(ids, PAGE) for r in conn.execute(stmt, {"ids": page})]
        rows.sort(key=lambda r: r.id)
        return rows

    def sla_timers_live(self, *, after_id: int) -> set[str]:
        """The contacts with an SLA timer opened after `after_id`, or one with an owner and
        not yet worked (whose windows time alone may still decide)."""
        table = _table(SlaTimer)
        stmt = self._statement("sla.timers.live", lambda: select(
            table.c.hubspot_id).distinct().where(or_(
                table.c.id > bindparam("after"),
                (table.c.worked_at.is_(None) & table.c.owner_id.is_not(None)))))
        with self.transaction() as s:
            return set(self._core(s).scalars(stmt, {"after": after_id}))

    def sla_timers_opened(self, *, after_id: int) -> set[str]:
        """The contacts with an SLA timer opened after `after_id`."""
        table = _table(SlaTimer)
        stmt = self._statement("sla.timers.opened", lambda: select(
            table.c.hubspot_id).distinct().where(table.c.id > bindparam("after")))
        with self.transaction() as s:
            return set(self._core(s).scalars(stmt, {"after": after_id}))

    def sla_timer_mark(self) -> int:
        """The newest SLA timer's id (0 before any)."""
        table = _table(SlaTimer)
        stmt = self._statement("sla.timers.mark", lambda: select(
            func.coalesce(func.max(table.c.id), 0)))
        with self.transaction() as s:
            return int(self._core(s).scalar(stmt) or 0)

    def first_handoff_times(self) -> dict[str, datetime]:
        """Each contact's newest SLA timer the push opened (not a reassignment's): when its
        newest hand-off began, as far as the timers say."""
        table = _table(SlaTimer)
        stmt = self._statement("sla.timers.handoffs", lambda: select(
            table.c.hubspot_id, func.max(table.c.assigned_at)).where(
                table.c.recycled_from.is_(None)).group_by(table.c.hubspot_id))
        with self.transaction() as s:
            return {h: utc_from_row(at) for h, at in self._core(s).execute(stmt)
                    if at is not None}

    def update_sla_timers(self, updates: Sequence[Mapping[str, Any]]) -> None:
        """`update_sla_timer` of many timers in one transaction: each mapping has the timer's
        `id` and its first_touch_at, worked_at, state and breached_at (one statement built
        once, executed for every row)."""
        if not updates:
            return
        table = _table(SlaTimer)
        stmt = self._statement("sla.timers.update", lambda: update(table).where(
            table.c.id == bindparam("timer_id")).values(
                first_touch_at=bindparam("v_touch"), worked_at=bindparam("v_worked"),
                state=bindparam("v_state"), breached_at=bindparam("v_breached")))
        rows = [{"timer_id": u["id"], "v_touch": u["first_touch_at"],
                 "v_worked": u["worked_at"], "v_state": u["state"],
                 "v_breached": u["breached_at"]} for u in updates]
        with self.transaction() as s:
            self._core(s).execute(stmt, rows)

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

    def lead_routes(self, hubspot_ids: Sequence[str]) -> dict[str, LeadRoute]:
        """`lead_route` of many contacts in one query: those recorded, by HubSpot id."""
        ids = sorted(set(hubspot_ids))
        if not ids:
            return {}
        out: dict[str, LeadRoute] = {}
        with self.transaction() as s:
            for k in range(0, len(ids), PAGE):
                out.update({r.hubspot_id: r for r in s.scalars(select(LeadRoute).where(
                    LeadRoute.hubspot_id.in_(ids[k:k + PAGE])))})
        return out

    def round_robin_pointers(self) -> dict[str, int]:
        """Every team's persisted round-robin position (what `next_round_robin` reads)."""
        with self.transaction() as s:
            return {str(t): int(p) for t, p in s.execute(
                select(RoutingPointer.team, RoutingPointer.position))}

    def record_routing(self, routes: Sequence[Mapping[str, Any]],
                       pointers: Mapping[str, int]) -> None:
        """Keep the owners chosen for many Leads about to be created (`record_lead_route` of
        each: hubspot_id, owner_id, reason, use_assignment_rules) and the teams' round-robin
        positions they moved to, in one transaction (statements built once)."""
        if not routes and not pointers:
            return
        now = self._now()
        routes_table, pointers_table = _table(LeadRoute), _table(RoutingPointer)

        def upsert(table: Any, key: str, columns: Sequence[str]) -> Any:
            stmt = self._insert(table)
            return stmt.on_conflict_do_update(
                index_elements=[key], set_={c: stmt.excluded[c] for c in columns})

        route = self._statement("routing.routes", lambda: upsert(
            routes_table, "hubspot_id",
            ("owner_id", "reason", "use_assignment_rules", "decided_at")))
        pointer = self._statement("routing.pointers", lambda: upsert(
            pointers_table, "team", ("position", "updated_at")))
        last = {r["hubspot_id"]: r for r in routes}  # a contact routed twice keeps the last
        with self.transaction() as s:
            conn = self._core(s)
            if last:
                conn.execute(route, [
                    {"hubspot_id": r["hubspot_id"], "owner_id": r["owner_id"],
                     "reason": r["reason"], "use_assignment_rules": r["use_assignment_rules"],
                     "decided_at": now} for r in last.values()])
            if pointers:
                conn.execute(pointer, [{"team": t, "position": p, "updated_at": now}
                                       for t, p in pointers.items()])

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
