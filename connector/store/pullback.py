"""The pull-back's part of the store: what Handshake handed off, where each hand-off stands in
Salesforce now, and the outcomes read against it, written with the bookmark that covers them."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, or_, select, update

from connector.store._base import StoreBase, _table, in_pages
from connector.store.bookmarks import BookmarkStore
from connector.store.models import (
    HandoffState,
    IdLink,
    SalesOutcome,
    Score,
    SlaBreachRecord,
    WriteLedgerEntry,
    utc_from_row,
)

__all__ = ["PullbackStore"]

PAGE = 500  # ids one IN (...) carries
# the columns of a hand-off's state the pull-back keeps (all but `updated_at`)
STATE_COLUMNS = tuple(c.name for c in _table(HandoffState).columns if c.name != "updated_at")
OUTCOME_COLUMNS = tuple(c.name for c in _table(SalesOutcome).columns)
BREACH_COLUMNS = tuple(c.name for c in _table(SlaBreachRecord).columns)


def _pages(ids: Iterable[str]) -> Iterator[list[str]]:
    return in_pages(sorted(set(ids)), PAGE)


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
            if states:
                self._upsert_states(s, states, now)
            if stream is not None and bookmark is not None:
                self.set_bookmark(stream, bookmark, run_id=run_id, session=s)
            return added

    def _upsert_states(self, s: Any, states: Sequence[Mapping[str, Any]], now: datetime) -> None:
        """Each state inserted, or its given columns updated (as `Session.merge` of the
        mapping would): one statement per set of columns given, executed for every row."""
        table = _table(HandoffState)
        last: dict[str, dict[str, Any]] = {}
        for state in states:  # a hand-off given twice: its columns merged, the last wins
            last.setdefault(str(state["hubspot_id"]), {}).update(state)
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for row in last.values():
            row["updated_at"] = now
            groups.setdefault(tuple(sorted(row)), []).append(row)
        conn = self._core(s)
        for columns, rows in groups.items():
            def build(columns: tuple[str, ...] = columns) -> Any:
                stmt = self._insert(table)
                return stmt.on_conflict_do_update(
                    index_elements=["hubspot_id"],
                    set_={c: stmt.excluded[c] for c in columns if c != "hubspot_id"})
            conn.execute(self._statement("pullback.states:" + ",".join(columns), build), rows)

    # --- Core rows for the pull-back's hot paths (no ORM instances) -------------------------

    def handoff_links(self) -> list[Any]:
        """Every hand-off's link as a row (hubspot_id, sf_object, sf_id, linked_at), by
        HubSpot id: what `handoffs` gives, without ORM instances."""
        table = _table(IdLink)
        stmt = self._statement("pullback.links", lambda: select(
            table.c.hubspot_id, table.c.sf_object, table.c.sf_id, table.c.linked_at)
            .order_by(table.c.hubspot_id))
        with self.transaction() as s:
            return list(self._core(s).execute(stmt))

    def handoff_state_rows(self, hubspot_ids: Collection[str] | None = None,
                           ) -> dict[str, dict[str, Any]]:
        """The state of each hand-off (of those given) as last pulled back, by HubSpot id,
        each a mapping of its columns but `updated_at`."""
        table = _table(HandoffState)
        columns = [table.c[c] for c in STATE_COLUMNS]
        with self.transaction() as s:
            conn = self._core(s)
            if hubspot_ids is None:
                rows = list(conn.execute(self._statement(
                    "pullback.states.all", lambda: select(*columns))))
            else:
                stmt = self._statement("pullback.states.some", lambda: select(*columns).where(
                    table.c.hubspot_id.in_(bindparam("ids", expanding=True))))
                rows = [r for page in _pages(hubspot_ids)
                        for r in conn.execute(stmt, {"ids": page})]
        return {r.hubspot_id: dict(zip(STATE_COLUMNS, r, strict=True)) for r in rows}

    def outcome_rows(self, *, kinds: Sequence[str] | None = None,
                     hubspot_ids: Collection[str] | None = None) -> list[Any]:
        """`outcomes` as Core rows (attribute access as on `SalesOutcome`), of these kinds
        and these contacts when given, oldest first."""
        table = _table(SalesOutcome)
        base = select(*(table.c[c] for c in OUTCOME_COLUMNS))
        order = (table.c.occurred_at, table.c.id)
        with self.transaction() as s:
            conn = self._core(s)
            if hubspot_ids is None:
                if kinds:
                    stmt = self._statement("pullback.outcomes.kinds", lambda: base.where(
                        table.c.kind.in_(bindparam("kinds", expanding=True))).order_by(*order))
                    return list(conn.execute(stmt, {"kinds": list(kinds)}))
                return list(conn.execute(self._statement(
                    "pullback.outcomes.all", lambda: base.order_by(*order))))
            stmt = self._statement("pullback.outcomes.of", lambda: base.where(
                table.c.hubspot_id.in_(bindparam("ids", expanding=True))))
            rows = [r for page in _pages(hubspot_ids) for r in conn.execute(stmt, {"ids": page})
                    if not kinds or r.kind in kinds]
        rows.sort(key=lambda r: (r.occurred_at, r.id))
        return rows

    def gone_ids(self) -> set[str]:
        """The Salesforce ids of the records deleted or merged away (no longer followed)."""
        table = _table(SalesOutcome)
        stmt = self._statement("pullback.gone", lambda: select(table.c.sf_id).where(
            table.c.kind.in_(("deleted", "merged"))))
        with self.transaction() as s:
            return set(self._core(s).scalars(stmt))

    def newest_score_times(self, contact_ids: Collection[str]) -> dict[str, datetime]:
        """When each given contact was last scored (those scored), one aggregate query a page
        of ids: what tells whether a recycled contact's interest is adjusted yet, without
        reading its scores."""
        table = _table(Score)
        stmt = self._statement("pullback.scores.newest", lambda: select(
            table.c.contact_id, func.max(table.c.scored_at)).where(
                table.c.contact_id.in_(bindparam("ids", expanding=True)))
            .group_by(table.c.contact_id))
        out: dict[str, datetime] = {}
        with self.transaction() as s:
            conn = self._core(s)
            for page in _pages(contact_ids):
                out.update({c: utc_from_row(at) for c, at in conn.execute(stmt, {"ids": page})
                            if at is not None})
        return out

    def outcome_mark(self) -> int:
        """The newest outcome's id (0 before any): outcomes stored later have greater ids
        (the pull-back, their only writer, runs under its lease)."""
        table = _table(SalesOutcome)
        stmt = self._statement("pullback.outcomes.mark", lambda: select(
            func.coalesce(func.max(table.c.id), 0)))
        with self.transaction() as s:
            return int(self._core(s).scalar(stmt) or 0)

    def outcomes_changed(self, *, after_id: int, occurring_after: datetime) -> set[str]:
        """The contacts with an outcome stored after `after_id`, or one that happens after
        `occurring_after` (an Event set ahead: it counts once its time comes)."""
        table = _table(SalesOutcome)
        stmt = self._statement("pullback.outcomes.changed", lambda: select(
            table.c.hubspot_id).distinct().where(
                or_(table.c.id > bindparam("after"), table.c.occurred_at > bindparam("at")),
                table.c.hubspot_id.is_not(None)))
        with self.transaction() as s:
            return set(self._core(s).scalars(stmt, {"after": after_id,
                                                    "at": occurring_after}))

    def states_changed(self, since: datetime) -> set[str]:
        """The hand-offs whose state was stored at or after `since`."""
        table = _table(HandoffState)
        stmt = self._statement("pullback.states.changed", lambda: select(
            table.c.hubspot_id).where(table.c.updated_at >= bindparam("since")))
        with self.transaction() as s:
            return set(self._core(s).scalars(stmt, {"since": since}))

    def sla_breach_marks(self, hubspot_ids: Collection[str] | None = None,
                         ) -> dict[str, datetime | None]:
        """Each recorded breach's key and `met_at` (of these contacts when given)."""
        table = _table(SlaBreachRecord)
        with self.transaction() as s:
            conn = self._core(s)
            if hubspot_ids is None:
                stmt = self._statement("pullback.breaches.marks", lambda: select(
                    table.c.key, table.c.met_at))
                return {k: m for k, m in conn.execute(stmt)}
            stmt = self._statement("pullback.breaches.marks.of", lambda: select(
                table.c.key, table.c.met_at).where(
                    table.c.hubspot_id.in_(bindparam("ids", expanding=True))))
            return {k: m for page in _pages(hubspot_ids)
                    for k, m in conn.execute(stmt, {"ids": page})}

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
        returns how many were new. Only what changed is written: the keys already recorded
        are read first, the new ones inserted and the newly met ones updated by statements
        built once, executed for every row."""
        if not breaches:
            return 0
        now = self._now()
        table = _table(SlaBreachRecord)
        read = self._statement("sla.breaches.read", lambda: select(
            table.c.key, table.c.met_at).where(
                table.c.key.in_(bindparam("keys", expanding=True))))
        add = self._statement("sla.breaches.add", lambda: self._insert(table)
                              .on_conflict_do_nothing(index_elements=["key"]))
        met = self._statement("sla.breaches.met", lambda: update(table).where(
            table.c.key == bindparam("k"), table.c.met_at.is_(None)).values(
                met_at=bindparam("m")))
        with self.transaction() as s:
            conn = self._core(s)
            stored: dict[str, Any] = {}
            for page in _pages(str(b["key"]) for b in breaches):
                stored.update({k: m for k, m in conn.execute(read, {"keys": page})})
            added: dict[str, dict[str, Any]] = {}
            updates: list[dict[str, Any]] = []
            for b in breaches:  # in order, as one insert-or-update after another would
                key = str(b["key"])
                if key not in stored:
                    added[key] = {**{c: b.get(c) for c in BREACH_COLUMNS},
                                  "found_at": b.get("found_at") or now}
                    stored[key] = b.get("met_at")
                elif b.get("met_at") is not None and stored[key] is None:
                    stored[key] = b["met_at"]
                    if key in added:
                        added[key]["met_at"] = b["met_at"]
                    else:
                        updates.append({"k": key, "m": b["met_at"]})
            if added:
                conn.execute(add, list(added.values()))
            if updates:
                conn.execute(met, updates)
            return len(added)
