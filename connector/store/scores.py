"""Scores and lifecycle transitions: what the score stage writes and the push reads."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple

import orjson
from sqlalchemy import (
    JSON,
    ColumnElement,
    Dialect,
    Select,
    String,
    Text,
    TypeDecorator,
    and_,
    bindparam,
    cast,
    exists,
    func,
    insert,
    or_,
    select,
    type_coerce,
    update,
)
from sqlalchemy.orm import Session

from connector.activities import activity_label
from connector.store._base import INSERT_PAGE, StoreBase, _table, in_pages
from connector.store.models import (
    Activity,
    Contact,
    IdLink,
    LifecycleTransition,
    Score,
    UTCDateTime,
    sqlite_utc_text,
    utc_from_row,
)

__all__ = ["ContactRow", "ScoreStore"]

_PAGE = INSERT_PAGE  # activity ids a query reads back an explanation's by

_SQLITE_SCORES_INSERT = (
    "INSERT INTO scores (contact_id, scored_at, interest, fit_grade, fit_points, is_mql, "
    "model_version, explanation) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")


class _EncodedJSON(TypeDecorator[str]):
    """A JSON column's value already encoded: bound as it is (the JSON type would encode it
    again), cast to JSON where the driver needs it (PostgreSQL)."""

    impl = JSON
    cache_ok = True

    def bind_processor(self, dialect: Dialect) -> None:
        return None


class ContactRow(NamedTuple):
    """A live contact as `ScoreStore.contacts_to_score` reads it: what scoring and the
    write-back read of a `Contact`."""

    hubspot_id: str
    email: str | None
    properties: dict[str, Any]
    lifecycle_stage: str | None
    hubspot_created_at: datetime | None


class ScoreStore(StoreBase):
    """Scores (a history per contact) and lifecycle transitions."""

    # --- scores -----------------------------------------------------------------------------------

    def contacts_to_score(
        self, *, stale_before: datetime | None = None, everyone: bool = False, batch: int = 1000,
        ids: Collection[str] | None = None,
    ) -> Iterator[list[ContactRow]]:
        """Live contacts to (re)score, by id, a batch at a time: never scored, inputs changed
        since their latest score, or (with `stale_before`) scored before it, for decay and
        expiry. `everyone` yields every live contact; `ids` limits it to these contacts.
        Read as `ContactRow`s (no ORM objects; properties decoded by orjson)."""
        sqlite = self.engine.dialect.name == "sqlite"
        stale = stale_before is not None and not everyone

        def build() -> Any:
            contact, score = _table(Contact), _table(Score)
            q = select(
                contact.c.hubspot_id, contact.c.email, cast(contact.c.properties, Text),
                contact.c.lifecycle_stage,
                # SQLite keeps a time as ISO text: parsed in C below (see activities_for_many)
                type_coerce(contact.c.hubspot_created_at, String) if sqlite
                else contact.c.hubspot_created_at,
            ).where(contact.c.hubspot_id > bindparam("after"), contact.c.archived.is_(False),
                    contact.c.merged_into.is_(None))
            if ids is not None:
                q = q.where(contact.c.hubspot_id.in_(bindparam("ids", expanding=True)))
            if not everyone:
                # each contact's latest score, read by the (contact_id, scored_at) index: no
                # grouping of the whole scores table for every batch
                last = (select(func.max(score.c.scored_at))
                        .where(score.c.contact_id == contact.c.hubspot_id).scalar_subquery())
                due = last.is_(None) | (contact.c.inputs_changed_at > last)
                if stale:
                    due = due | (last < bindparam("stale", type_=UTCDateTime()))
                q = q.where(due)
            return q.order_by(contact.c.hubspot_id).limit(batch)

        stmt = self._statement(
            f"contacts.to_score.{ids is not None}.{everyone}.{stale}.{batch}", build)
        params: dict[str, Any] = {"after": ""}
        if ids is not None:
            params["ids"] = list(ids)
        if stale:
            params["stale"] = stale_before
        loads = orjson.loads
        while True:
            with self.transaction() as s:
                rows = self._core(s).execute(stmt, params).all()
            if not rows:
                return
            out = []
            for hubspot_id, email, properties, stage, created in rows:
                out.append(ContactRow(hubspot_id, email, loads(properties), stage,
                                      None if created is None else utc_from_row(created)))
            yield out
            params["after"] = rows[-1][0]

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
        """Store scores `{contact_id, scored_at, interest, fit_grade, fit_points, is_mql,
        model_version, explanation}`; an explanation's datetimes are written as `isoformat`
        writes them (`ScoreResult.explanation(text_times=False)` leaves them so)."""
        self.record_scores(rows, ())

    def record_scores(self, scores: Sequence[Mapping[str, Any]],
                      transitions: Sequence[Mapping[str, Any]]) -> None:
        """`add_scores` and `add_transitions` in one transaction (a batch of the score stage:
        its scores and lifecycle steps stand or fall together)."""
        if not scores and not transitions:
            return
        with self.transaction() as s:
            if scores:
                self._add_scores(s, scores)
            if transitions:
                self._add_transitions(s, transitions)

    def _add_scores(self, s: Session, rows: Sequence[Mapping[str, Any]]) -> None:
        # The explanations are encoded here by orjson (several times faster than the JSON
        # type's `json.dumps`; readers decode either).
        dumps = orjson.dumps
        if self.engine.dialect.name == "sqlite":
            # SQLite: the rows carry the very values the column types would bind (times as
            # `UTCDateTime` writes them; the columns' defaults where a row leaves one out),
            # given to the driver's executemany as they are: no per-row parameter processing
            # (a batch's rows share one time, formatted once).
            stamps: dict[datetime, str] = {}
            values = []
            for r in rows:
                at = r["scored_at"]
                stamp = stamps.get(at)
                if stamp is None:
                    stamp = stamps[at] = sqlite_utc_text(at)
                values.append((r["contact_id"], stamp, r["interest"], r["fit_grade"],
                               r.get("fit_points", 0), bool(r.get("is_mql", False)),
                               r.get("model_version", ""), dumps(r.get("explanation", {})).decode()))
            self._core(s).exec_driver_sql(_SQLITE_SCORES_INSERT, values)
            return
        # Core executemany of one statement built once: no ORM objects, no multi-row VALUES
        # compiled anew for every batch size.
        stmt = self._statement("scores.insert", lambda: insert(_table(Score)).values(
            explanation=bindparam("explanation", type_=_EncodedJSON())))
        self._core(s).execute(stmt, [
            {**r, "explanation": dumps(r["explanation"]).decode()} for r in rows])

    def latest_score(self, contact_id: str) -> Score | None:
        """The contact's newest score, its explanation whole (`expand_explanations`)."""
        with self.transaction() as s:
            score = s.scalars(
                select(Score)
                .where(Score.contact_id == contact_id)
                .order_by(Score.scored_at.desc(), Score.id.desc())
                .limit(1)
            ).first()
        if score is not None:
            self.expand_explanations([score])
        return score

    def expand_explanations(self, scores: Iterable[Score]) -> None:
        """Make each score's explanation whole, in place: the score stage stores its interest
        rules compact (`hits`: `[rule, activity id, points, decayed]`, see
        `ScoreResult.explanation(compact=True)`); whole, each is `[rule, activity id, type,
        time, label, points, decayed]` under `rules`, with the activity's type, time (ISO text)
        and label read from the store, as the score's result gave them. An activity no longer
        stored as the contact's (a merged-away contact's activities move to the survivor under
        new ids; SQLite may give a deleted id to another row) reads as None. Other
        explanations stay as they are."""
        compact = [score for score in scores
                   if isinstance(score.explanation, dict)
                   and isinstance(score.explanation.get("interest"), dict)
                   and "hits" in score.explanation["interest"]]
        if not compact:
            return
        wanted = sorted({int(hit[1]) for score in compact
                         for hit in score.explanation["interest"]["hits"]})
        found: dict[int, tuple[str, str, str, str]] = {}
        if wanted:
            table = _table(Activity)
            stmt = self._statement("scores.explained_activities", lambda: select(
                table.c.id, table.c.contact_id, table.c.type, table.c.occurred_at,
                table.c.title, table.c.url, table.c.details,
            ).where(table.c.id.in_(bindparam("ids", expanding=True))))
            with self.transaction() as s:
                conn = self._core(s)
                for page in in_pages(wanted, _PAGE):
                    for row in conn.execute(stmt, {"ids": page}):
                        found[row.id] = (row.contact_id, row.type,
                                         row.occurred_at.isoformat(), activity_label(row))
        missing = (None, None, None)
        for score in compact:
            explanation = dict(score.explanation)
            interest = dict(explanation["interest"])
            hits = interest.pop("hits")
            rules = interest["rules"] = []
            for rule, aid, points, worth in hits:
                activity = found.get(aid)
                said = (activity[1:] if activity is not None
                        and activity[0] == score.contact_id else missing)
                rules.append([rule, aid, *said, points, worth])
            explanation["interest"] = interest
            score.explanation = explanation

    def latest_scores(self, contact_ids: Sequence[str]) -> dict[str, Score]:
        """The newest score of each given contact that has one, its explanation as stored (the
        score stage's compact: `expand_explanations` makes it whole)."""
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
        self.record_scores((), rows)

    def _add_transitions(self, s: Session, rows: Sequence[Mapping[str, Any]]) -> None:
        stmt = self._statement("transitions.insert",
                               lambda: insert(_table(LifecycleTransition)))
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
