"""Scores and lifecycle transitions: what the score stage writes and the push reads."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, exists, func, insert, or_, select, update

from connector.store._base import StoreBase, _table
from connector.store.models import Activity, Contact, IdLink, LifecycleTransition, Score

__all__ = ["ScoreStore"]


class ScoreStore(StoreBase):
    """Scores (a history per contact) and lifecycle transitions."""

    # --- scores -----------------------------------------------------------------------------------

    def contacts_to_score(
        self, *, stale_before: datetime | None = None, everyone: bool = False, batch: int = 1000,
        ids: Collection[str] | None = None,
    ) -> Iterator[list[Contact]]:
        """Live contacts to (re)score, by id, a batch at a time: never scored, inputs changed
        since their latest score, or (with `stale_before`) scored before it, for decay and
        expiry. `everyone` yields every live contact; `ids` limits it to these contacts."""
        latest = (
            select(Score.contact_id, func.max(Score.scored_at).label("last"))
            .group_by(Score.contact_id)
            .subquery()
        )
        last = ""
        while True:
            with self.transaction() as s:
                q = (
                    select(Contact)
                    .outerjoin(latest, latest.c.contact_id == Contact.hubspot_id)
                    .where(Contact.hubspot_id > last, Contact.archived.is_(False),
                           Contact.merged_into.is_(None))
                )
                if ids is not None:
                    q = q.where(Contact.hubspot_id.in_(list(ids)))
                if not everyone:
                    due = latest.c.last.is_(None) | (Contact.inputs_changed_at > latest.c.last)
                    if stale_before is not None:
                        due = due | (latest.c.last < stale_before)
                    q = q.where(due)
                rows = list(s.scalars(q.order_by(Contact.hubspot_id).limit(batch)))
            if not rows:
                return
            yield rows
            last = rows[-1].hubspot_id

    def contacts_in_window(
        self, since: datetime, until: datetime, *, after: str = "", mqls_only: bool = False,
        batch: int = 1000,
    ) -> Iterator[list[Contact]]:
        """Live contacts that changed or engaged in [since, until], by id after `after`, a
        batch at a time: modified in HubSpot, their inputs changed in the store, an activity
        that occurred, or a lifecycle step recorded in the window. `mqls_only`: those with an
        email whose newest score makes them an MQL (what a push hands off)."""
        last = after
        while True:
            with self.transaction() as s:
                q = _in_window(since, until, mqls_only).where(Contact.hubspot_id > last)
                rows = list(s.scalars(q.order_by(Contact.hubspot_id).limit(batch)))
            if not rows:
                return
            yield rows
            last = rows[-1].hubspot_id

    def count_in_window(self, since: datetime, until: datetime, *, after: str = "",
                        mqls_only: bool = False) -> int:
        """How many contacts `contacts_in_window` yields (a progress bar's total)."""
        with self.transaction() as s:
            q = _in_window(since, until, mqls_only).where(Contact.hubspot_id > after)
            return int(s.scalar(select(func.count()).select_from(q.subquery())) or 0)

    def leads_linked_in_window(self, since: datetime, until: datetime, *, after: str = "",
                               batch: int = 1000) -> Iterator[list[IdLink]]:
        """The links to Salesforce Leads made in [since, until], by HubSpot id after `after`,
        a batch at a time."""
        last = after
        while True:
            with self.transaction() as s:
                rows = list(s.scalars(
                    select(IdLink)
                    .where(IdLink.sf_object == "Lead", IdLink.hubspot_id > last,
                           IdLink.linked_at >= since, IdLink.linked_at <= until)
                    .order_by(IdLink.hubspot_id).limit(batch)))
            if not rows:
                return
            yield rows
            last = rows[-1].hubspot_id

    def add_scores(self, rows: Sequence[Mapping[str, Any]]) -> None:
        if not rows:
            return
        # Core executemany of one statement built once: no ORM objects, no multi-row VALUES
        # compiled anew for every batch size.
        stmt = self._statement("scores.insert", lambda: insert(_table(Score)))
        with self.transaction() as s:
            self._core(s).execute(stmt, [dict(r) for r in rows])

    def latest_score(self, contact_id: str) -> Score | None:
        with self.transaction() as s:
            return s.scalars(
                select(Score)
                .where(Score.contact_id == contact_id)
                .order_by(Score.scored_at.desc(), Score.id.desc())
                .limit(1)
            ).first()

    def latest_scores(self, contact_ids: Sequence[str]) -> dict[str, Score]:
        """The newest score of each given contact that has one."""
        if not contact_ids:
            return {}
        out: dict[str, Score] = {}
        with self.transaction() as s:
            rows = s.scalars(
                select(Score)
                .where(Score.contact_id.in_(list(contact_ids)))
                .order_by(Score.contact_id, Score.scored_at, Score.id)
            )
            for row in rows:
                out[row.contact_id] = row
        return out

    # --- lifecycle --------------------------------------------------------------------------------

    def record_transition(
        self, contact_id: str, from_stage: str | None, to_stage: str, *, reason: str,
        run_id: str | None = None,
    ) -> None:
        with self.transaction() as s:
            s.add(
                LifecycleTransition(
                    contact_id=contact_id,
                    from_stage=from_stage,
                    to_stage=to_stage,
                    at=self._now(),
                    reason=reason,
                    run_id=run_id,
                )
            )
            s.execute(
                update(Contact).where(Contact.hubspot_id == contact_id).values(lifecycle_stage=to_stage)
            )

    def add_transitions(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Record many transitions `{contact_id, from_stage, to_stage, at, reason, run_id}` in
        one transaction, moving each contact's stored stage to its last `to_stage`."""
        if not rows:
            return
        stmt = self._statement("transitions.insert",
                               lambda: insert(_table(LifecycleTransition)))
        with self.transaction() as s:
            self._core(s).execute(stmt, [dict(r) for r in rows])
            final = {r["contact_id"]: r["to_stage"] for r in rows}
            by_stage: dict[str, list[str]] = {}
            for contact_id, stage in final.items():
                by_stage.setdefault(stage, []).append(contact_id)
            for stage, ids in by_stage.items():
                s.execute(update(Contact).where(Contact.hubspot_id.in_(ids))
                          .values(lifecycle_stage=stage))

    def transitions_for(self, contact_id: str) -> list[LifecycleTransition]:
        with self.transaction() as s:
            return list(
                s.scalars(
                    select(LifecycleTransition)
                    .where(LifecycleTransition.contact_id == contact_id)
                    .order_by(LifecycleTransition.at, LifecycleTransition.id)
                )
            )

    def transitions_for_many(
        self, contact_ids: Sequence[str]
    ) -> dict[str, list[LifecycleTransition]]:
        """Lifecycle transitions of many contacts, oldest first, by contact id."""
        out: dict[str, list[LifecycleTransition]] = {cid: [] for cid in contact_ids}
        if not contact_ids:
            return out
        with self.transaction() as s:
            rows = s.scalars(
                select(LifecycleTransition)
                .where(LifecycleTransition.contact_id.in_(list(contact_ids)))
                .order_by(LifecycleTransition.at, LifecycleTransition.id)
            )
            for row in rows:
                out[row.contact_id].append(row)
        return out


def _between(column: Any, since: datetime,
             until: datetime) -> ColumnElement[bool]:
    return and_(column >= since, column <= until)


def _in_window(since: datetime, until: datetime, mqls_only: bool) -> Select[Any]:
    """Live contacts that changed or engaged in [since, until] (a backfill's selection)."""
    engaged = exists().where(Activity.contact_id == Contact.hubspot_id,
                             _between(Activity.occurred_at, since, until))
    stepped = exists().where(LifecycleTransition.contact_id == Contact.hubspot_id,
                             _between(LifecycleTransition.at, since, until))
    q = select(Contact).where(
        Contact.archived.is_(False), Contact.merged_into.is_(None),
        or_(_between(Contact.hubspot_updated_at, since, until),
            _between(Contact.inputs_changed_at, since, until), engaged, stepped))
    if mqls_only:
        ranked = (
            select(Score.contact_id.label("cid"), Score.is_mql.label("mql"),
                   func.row_number().over(
                       partition_by=Score.contact_id,
                       order_by=(Score.scored_at.desc(), Score.id.desc())).label("n"))
            .subquery()
        )
        q = (q.join(ranked, ranked.c.cid == Contact.hubspot_id)
             .where(ranked.c.n == 1, ranked.c.mql.is_(True), Contact.email.is_not(None),
                    Contact.email != ""))
    return q
