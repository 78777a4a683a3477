"""Contacts and their activities as pulled from HubSpot, merges and archiving included."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from operator import itemgetter
from typing import Any, NamedTuple

import orjson
from sqlalchemy import (
    Select,
    String,
    Text,
    bindparam,
    cast,
    delete,
    func,
    insert,
    select,
    type_coerce,
    update,
)
from sqlalchemy.orm import Session

from connector.store._base import (
    StoreBase,
    _json_loads,
    _rowcount,
    _table,
    in_pages,
    padded,
)
from connector.store.models import (
    Activity,
    Contact,
    IdLink,
    Score,
    sqlite_json_text,
    sqlite_utc_text,
    utc_from_row,
)

__all__ = ["ActivityRecord", "ActivityRow", "ContactRecord", "ContactStore", "MqlContact",
           "ScoredActivityRow"]


@dataclass(frozen=True, slots=True)
class ContactRecord:
    """A contact as pulled from HubSpot, ready to store."""

    hubspot_id: str
    email: str | None
    properties: Mapping[str, Any]
    hubspot_created_at: datetime | None
    hubspot_updated_at: datetime | None
    archived: bool = False
    merged_into: str | None = None


@dataclass(frozen=True, slots=True)
class ActivityRecord:
    """An activity (email event, page view, form...) of a contact, ready to store."""

    contact_id: str
    type: str
    occurred_at: datetime
    source: str
    source_id: str
    title: str | None = None
    url: str | None = None
    content: str | None = None
    details: Mapping[str, Any] | None = None


class MqlContact(NamedTuple):
    """A contact as the push reads it (`ContactStore.mql_pages`, `contacts_by_id`): what
    planning, routing and the hand-off read of a `Contact`, as a read-only row (no ORM
    object; properties decoded by orjson)."""

    hubspot_id: str
    email: str | None
    properties: dict[str, Any]
    lifecycle_stage: str | None
    hubspot_created_at: datetime | None
    hubspot_updated_at: datetime | None


# SQLite binds at most 32,766 values a statement: 10 columns x 500 rows stays well under
SQLITE_ROWS = 500
_ACTIVITY_COLUMNS = ("contact_id", "type", "occurred_at", "source", "source_id", "title", "url",
                     "content", "details", "ingested_at")


def _chunk_sizes(total: int) -> Iterator[int]:
    """`total` rows as statements of `SQLITE_ROWS` rows, the rest in powers of two: a handful
    of statement texts in all. A statement per remainder size made every page's last statement
    new, and the driver keeps up to 128 prepared statements per connection, each of a
    multi-row INSERT holding hundreds of kilobytes: a pull's memory grew with its length."""
    full, rest = divmod(total, SQLITE_ROWS)
    yield from [SQLITE_ROWS] * full
    bit = 1 << max(rest.bit_length() - 1, 0)
    while rest:
        if rest >= bit:
            yield bit
            rest -= bit
        bit >>= 1


@cache
def _sqlite_insert_sql(rows: int) -> str:
    """INSERT of `rows` activities (values as the driver receives them), skipping those already
    stored (same source and source id), returning each new row's contact."""
    one = "(" + ",".join("?" * len(_ACTIVITY_COLUMNS)) + ")"
    return (f"INSERT INTO activities ({', '.join(_ACTIVITY_COLUMNS)}) VALUES "
            + ",".join([one] * rows)
            + " ON CONFLICT (source, source_id) DO NOTHING RETURNING contact_id")


_UNREAD: Any = object()


class ScoredActivityRow:
    """A stored activity as the score reads it (`ContactStore.activities_for_many` with
    `sources=False`): the `Activity` attributes the engine and the lifecycle read, `details`
    decoded from its JSON text on first read (the score reads the details of few activities:
    forms and bounces)."""

    __slots__ = ("_details", "_raw", "contact_id", "id", "occurred_at", "title", "type", "url")

    def __init__(self, id: int, contact_id: str, type: str, occurred_at: datetime,
                 title: str | None, url: str | None, raw: str | bytes | None) -> None:
        self.id = id
        self.contact_id = contact_id
        self.type = type
        self.occurred_at = occurred_at
        self.title = title
        self.url = url
        self._raw = raw
        self._details = _UNREAD

    @property
    def details(self) -> Any:
        """The activity's details (a dict; None only when stored as SQL NULL)."""
        details = self._details
        if details is _UNREAD:
            raw = self._raw
            details = self._details = None if raw is None else _details_loads(raw)
        return details

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(id={self.id!r}, contact_id={self.contact_id!r}, "
                f"type={self.type!r})")


class ActivityRow(ScoredActivityRow):
    """A stored activity as read by `ContactStore.activities_for_many`: the `Activity`
    attributes, `details` decoded from its JSON text on first read."""

    __slots__ = ("source", "source_id")

    def __init__(self, id: int, contact_id: str, type: str, occurred_at: datetime,
                 title: str | None, url: str | None, raw: str | bytes | None, source: str,
                 source_id: str) -> None:
        super().__init__(id, contact_id, type, occurred_at, title, url, raw)
        self.source = source
        self.source_id = source_id


def _details_loads(raw: str | bytes) -> Any:
    """An activity's details decoded: by orjson, several times faster than the JSON type's
    `json` (a score reads every form's details), as exact here since details are stored from
    API answers orjson decoded (on SQLite, encoded by orjson too); what orjson refuses (NaN,
    lone surrogates) is left to the JSON type's decoder."""
    if raw == "{}" or raw == b"{}":
        return {}
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return _json_loads(raw)


class ContactStore(StoreBase):
    """Contacts and activities: what the pull writes and the score and push read."""

    # --- contacts ---------------------------------------------------------------------------------

    def contact_versions(
        self, ids: Sequence[str]
    ) -> dict[str, tuple[datetime | None, bool, dict[str, Any]]]:
        """For known ids: (HubSpot lastmodifieddate, archived, properties) as stored."""
        if not ids:
            return {}
        stmt = self._statement("contacts.versions", lambda: select(
            Contact.hubspot_id, Contact.hubspot_updated_at, Contact.archived, Contact.properties,
        ).where(Contact.hubspot_id.in_(bindparam("ids", expanding=True))))
        with self.transaction() as s:
            rows = self._core(s).execute(stmt, {"ids": padded(ids)})
            return {cid: (updated, archived, props or {}) for cid, updated, archived, props in rows}

    def resolve_contact_ids(self, ids: Iterable[str]) -> dict[str, str]:
        """Known ids -> the live id they stand for (the survivor for merged-away contacts)."""
        wanted = sorted(set(ids))
        if not wanted:
            return {}
        stmt = self._statement("contacts.resolve", lambda: select(
            Contact.hubspot_id, Contact.merged_into,
        ).where(Contact.hubspot_id.in_(bindparam("ids", expanding=True))))
        with self.transaction() as s:
            rows = self._core(s).execute(stmt, {"ids": padded(wanted)})
            return {cid: merged_into or cid for cid, merged_into in rows}

    def contact_ids_by_email(self, emails: Iterable[str]) -> dict[str, str]:
        """Email (lower-case) -> HubSpot id, live contacts first, then archived or merged ones
        (the merged survivor when known)."""
        wanted = sorted({e.lower() for e in emails if e})
        if not wanted:
            return {}
        out: dict[str, str] = {}
        stmt = self._statement("contacts.by_email", lambda: select(
            Contact.email, Contact.hubspot_id, Contact.archived, Contact.merged_into,
        ).where(Contact.email.in_(bindparam("emails", expanding=True))))
        chosen: dict[str, tuple[bool, bool, str, str | None]] = {}
        with self.transaction() as s:
            for email, cid, archived, merged_into in self._core(s).execute(
                    stmt, {"emails": padded(wanted)}):
                # one pass, no sort: the best-ranked contact of each address is kept
                rank = (bool(merged_into), archived, cid, merged_into)
                held = chosen.get(email)
                if email and (held is None or rank < held):
                    chosen[email] = rank
        for email, (_merged, _archived, cid, merged_into) in chosen.items():
            out[email] = merged_into or cid
        missing = [e for e in wanted if e not in out]
        if missing:
            out.update(self._ids_by_additional_email(missing))
        return out

    def _ids_by_additional_email(self, emails: Sequence[str]) -> dict[str, str]:
        """A merge leaves the merged-away address in the survivor's `hs_additional_emails`."""
        found: dict[str, str] = {}
        with self.transaction() as s:
            for email in emails:
                rows = s.execute(
                    select(Contact.hubspot_id, Contact.properties)
                    .where(cast(Contact.properties, String).contains(email, autoescape=True),
                           Contact.merged_into.is_(None))
                    .order_by(Contact.archived, Contact.hubspot_id)
                )
                for cid, props in rows:
                    extra = str((props or {}).get("hs_additional_emails") or "").lower()
                    if email in [e.strip() for e in extra.split(";")]:
                        found[email] = cid
                        break
        return found

    def mark_archived(
        self, records: Sequence[ContactRecord], *, session: Session | None = None
    ) -> int:
        """Flag contacts HubSpot archived (storing ones never seen, so their history still has
        an owner); the data of known ones stays for history and reports."""
        if not records:
            return 0
        ids = [r.hubspot_id for r in records]
        now = self._now()
        absent = self._insert(Contact).values([
            {"hubspot_id": r.hubspot_id, "email": r.email.lower() if r.email else None,
             "properties": dict(r.properties), "hubspot_created_at": r.hubspot_created_at,
             "hubspot_updated_at": r.hubspot_updated_at, "archived": True,
             "first_seen_at": now, "updated_at": now}
            for r in records
        ]).on_conflict_do_nothing(index_elements=["hubspot_id"])
        stmt = (
            update(Contact)
            .where(Contact.hubspot_id.in_(list(ids)), Contact.archived.is_(False))
            .values(archived=True, updated_at=now, inputs_changed_at=now)
        )
        if session is not None:
            session.execute(absent)
            return _rowcount(session.execute(stmt))
        with self.transaction() as s:
            s.execute(absent)
            return _rowcount(s.execute(stmt))

    def mark_merged(self, survivor: str, merged_ids: Sequence[str], *, session: Session) -> int:
        """Redirect merged-away contacts to the survivor: flag them, move their activities."""
        merged = [m for m in merged_ids if m and m != survivor]
        if not merged:
            return 0
        now = self._now()
        session.execute(
            self._insert(Contact)
            .values([
                {"hubspot_id": m, "email": None, "properties": {}, "archived": False,
                 "merged_into": survivor, "first_seen_at": now, "updated_at": now}
                for m in merged
            ])
            .on_conflict_do_nothing(index_elements=["hubspot_id"])
        )
        session.execute(
            update(Contact).where(Contact.hubspot_id.in_(merged))
            .values(merged_into=survivor, updated_at=now)
        )
        # Moved activities are stored again under new ids, as if just pulled for the survivor:
        # the push sends activity history by id ranges, and an old id inside a range already
        # sent to the survivor's Lead would never reach it.
        columns = [c for c in _table(Activity).columns if c.name != "id"]
        rows = [dict(r._mapping) for r in session.execute(
            select(*columns).where(Activity.contact_id.in_(merged)).order_by(Activity.id))]
        moved = len(rows)
        if rows:
            session.execute(delete(Activity).where(Activity.contact_id.in_(merged)))
            for row in rows:
                row["contact_id"] = survivor
            session.execute(insert(Activity), rows)
        session.execute(
            update(Contact).where(Contact.hubspot_id == survivor).values(inputs_changed_at=now)
        )
        return int(moved or 0)

    def upsert_contacts(
        self, records: Sequence[ContactRecord], *, session: Session | None = None
    ) -> int:
        """Insert or update contacts by HubSpot id; returns how many rows changed."""
        if not records:
            return 0
        now = self._now()
        rows = [
            {
                "hubspot_id": r.hubspot_id,
                "email": r.email.lower() if r.email else None,
                "properties": dict(r.properties),
                "hubspot_created_at": r.hubspot_created_at,
                "hubspot_updated_at": r.hubspot_updated_at,
                "archived": r.archived,
                "merged_into": r.merged_into,
                "lifecycle_stage": r.properties.get("lifecyclestage") or None,
                "inputs_changed_at": now,
                "first_seen_at": now,
                "updated_at": now,
            }
            for r in records
        ]
        # One statement, built once, executed for many rows ("insertmanyvalues") in Core: a
        # multi-row VALUES per batch size would put a large compiled statement in the cache for
        # every size seen, and the ORM's bulk path costs more than the database does.
        stmt = self._statement("contacts.upsert", self._contacts_upsert)
        if session is not None:
            return len(self._core(session).execute(stmt, rows).all())
        with self.transaction() as s:
            return len(self._core(s).execute(stmt, rows).all())

    def _contacts_upsert(self) -> Any:
        table = _table(Contact)
        stmt = self._insert(table)
        ex = stmt.excluded
        return stmt.on_conflict_do_update(
            index_elements=["hubspot_id"],
            set_={
                "email": ex.email,
                "properties": ex.properties,
                "hubspot_created_at": ex.hubspot_created_at,
                "hubspot_updated_at": ex.hubspot_updated_at,
                "archived": ex.archived,
                "merged_into": ex.merged_into,
                "lifecycle_stage": ex.lifecycle_stage,
                "inputs_changed_at": ex.inputs_changed_at,
                "updated_at": ex.updated_at,
            },
        ).returning(table.c.hubspot_id)

    def get_contact(self, hubspot_id: str) -> Contact | None:
        with self.transaction() as s:
            return s.get(Contact, hubspot_id)

    def contact_emails(self, hubspot_ids: Sequence[str]) -> dict[str, str | None]:
        """`get_contact(id).email` of many contacts, by id (those stored), one query a page of
        ids: what an alert names its lead by, without an ORM object per contact."""
        ids = sorted(set(hubspot_ids))
        table = _table(Contact)
        stmt = self._statement("contacts.emails", lambda: select(
            table.c.hubspot_id, table.c.email).where(
                table.c.hubspot_id.in_(bindparam("ids", expanding=True))))
        out: dict[str, str | None] = {}
        with self.transaction() as s:
            conn = self._core(s)
            for page in in_pages(ids):
                out.update((hid, email) for hid, email in conn.execute(stmt, {"ids": page}))
        return out

    def find_contact_by_email(self, email: str) -> Contact | None:
        with self.transaction() as s:
            return s.scalars(
                select(Contact).where(Contact.email == email.lower(), Contact.archived.is_(False))
            ).first()

    def get_contact_by_email(self, email: str) -> Contact | None:
        """The live contact with this address (case-insensitive), else any stored one."""
        with self.transaction() as s:
            rows = list(s.scalars(
                select(Contact).where(Contact.email == email.strip().lower())
                .order_by(Contact.archived, Contact.merged_into.is_not(None), Contact.hubspot_id)
            ))
            return rows[0] if rows else None

    def count_contacts(self, *, include_archived: bool = False) -> int:
        with self.transaction() as s:
            q = select(func.count()).select_from(Contact)
            if not include_archived:
                q = q.where(Contact.archived.is_(False), Contact.merged_into.is_(None))
            return int(s.scalar(q) or 0)

    def iter_contacts(self, *, batch: int = 1000) -> Iterator[Contact]:
        """All live contacts, by id, in batches (memory stays flat)."""
        return self._live_contacts(lambda after: select(Contact), batch)

    def _live_contacts(self, query: Callable[[str], Select[Any]],
                       batch: int) -> Iterator[Contact]:
        """Live contacts of `query(after)` (a select of Contact), by id, `batch` a transaction:
        each page starts after the last id of the one before."""
        last = ""
        while True:
            with self.transaction() as s:
                rows = list(s.scalars(
                    query(last)
                    .where(Contact.hubspot_id > last, Contact.archived.is_(False),
                           Contact.merged_into.is_(None))
                    .order_by(Contact.hubspot_id)
                    .limit(batch)
                ))
            if not rows:
                return
            yield from rows
            last = rows[-1].hubspot_id

    def count_unlinked_mqls(self, *, ids: Collection[str] | None = None) -> int:
        """How many of `iter_mqls(ids=ids)` have no link to a Salesforce record yet, counted
        by the database in one query (no contact read)."""
        ranked = select(Score.contact_id.label("cid"), Score.is_mql.label("mql"),
                        func.row_number().over(
                            partition_by=Score.contact_id,
                            order_by=(Score.scored_at.desc(), Score.id.desc())).label("n"))
        if ids is not None:
            ranked = ranked.where(Score.contact_id.in_(list(ids)))
        mqls = ranked.subquery()
        query = (select(func.count()).select_from(Contact)
                 .join(mqls, mqls.c.cid == Contact.hubspot_id)
                 .outerjoin(IdLink, IdLink.hubspot_id == Contact.hubspot_id)
                 .where(mqls.c.n == 1, mqls.c.mql.is_(True), Contact.email.is_not(None),
                        Contact.email != "", Contact.archived.is_(False),
                        Contact.merged_into.is_(None), IdLink.hubspot_id.is_(None)))
        with self.transaction() as s:
            return int(s.scalar(query) or 0)

    def count_mqls(self) -> int:
        """How many live contacts' newest score makes them an MQL (with an email or not),
        counted by the database in one query (no contact or score read)."""
        ranked = select(Score.contact_id.label("cid"), Score.is_mql.label("mql"),
                        func.row_number().over(
                            partition_by=Score.contact_id,
                            order_by=(Score.scored_at.desc(), Score.id.desc())).label("n"))
        mqls = ranked.subquery()
        query = (select(func.count()).select_from(Contact)
                 .join(mqls, mqls.c.cid == Contact.hubspot_id)
                 .where(mqls.c.n == 1, mqls.c.mql.is_(True), Contact.archived.is_(False),
                        Contact.merged_into.is_(None)))
        with self.transaction() as s:
            return int(s.scalar(query) or 0)

    def iter_mqls(self, *, batch: int = 1000,
                  ids: Collection[str] | None = None) -> Iterator[Contact]:
        """Live contacts with an email whose newest score makes them an MQL, by id, in batches:
        found by the database (the newest score per contact by a window function), so a push
        reads the MQLs, not every contact and its score history. `ids`: only these contacts
        (the webhooks' targeted sync)."""

        def mqls_after(after: str) -> Select[Any]:
            ranked = (
                select(Score.contact_id.label("cid"), Score.is_mql.label("mql"),
                       func.row_number().over(
                           partition_by=Score.contact_id,
                           order_by=(Score.scored_at.desc(), Score.id.desc())).label("n"))
                .where(Score.contact_id > after)
            )
            if ids is not None:
                ranked = ranked.where(Score.contact_id.in_(list(ids)))
            mqls = ranked.subquery()
            return (select(Contact).join(mqls, mqls.c.cid == Contact.hubspot_id)
                    .where(mqls.c.n == 1, mqls.c.mql.is_(True),
                           Contact.email.is_not(None), Contact.email != ""))

        return self._live_contacts(mqls_after, batch)

    def mql_pages(self, *, batch: int = 1000,
                  ids: Collection[str] | None = None) -> Iterator[list[MqlContact]]:
        """`iter_mqls` a page at a time as `MqlContact` rows, by id: each contact's newest
        score read by the (contact_id, scored_at) index (one lookup a contact, not a window
        over every score for each page), no ORM object built."""
        sqlite = self.engine.dialect.name == "sqlite"
        stmt = self._statement(f"contacts.mqls.{ids is not None}.{batch}",
                               lambda: _mql_query(sqlite, ids is not None, batch))
        params: dict[str, Any] = {"after": ""}
        if ids is not None:
            params["ids"] = sorted(set(ids))
        while True:
            with self.transaction() as s:
                rows = self._core(s).execute(stmt, params).all()
            if not rows:
                return
            yield _mql_contacts(rows)
            params["after"] = rows[-1][0]

    def contacts_by_id(self, hubspot_ids: Sequence[str]) -> dict[str, MqlContact]:
        """These stored contacts (live or not) as `MqlContact` rows, by id, one query a page of
        ids: what a backfill's held Lead creates read again for their hand-off Tasks."""
        ids = sorted(set(hubspot_ids))
        sqlite = self.engine.dialect.name == "sqlite"
        stmt = self._statement("contacts.push_rows", lambda: select(
            *_mql_columns(sqlite)).where(
                _table(Contact).c.hubspot_id.in_(bindparam("ids", expanding=True))))
        out: dict[str, MqlContact] = {}
        with self.transaction() as s:
            conn = self._core(s)
            for page in in_pages(ids):
                out.update((c.hubspot_id, c) for c in _mql_contacts(
                    conn.execute(stmt, {"ids": page}).all()))
        return out

    # --- activities -------------------------------------------------------------------------------

    def add_activities(
        self, records: Iterable[ActivityRecord], *, session: Session | None = None,
        defer_marks: set[str] | None = None,
    ) -> int:
        """Store activities, ignoring ones already stored (same source and source id).

        Returns how many were new; their contacts are marked changed for re-scoring, or, with
        `defer_marks`, added to that set for the caller to mark later with
        `mark_contacts_changed` (a stream marks each contact once, not once per page: at
        100,000 contacts rewriting the contacts' rows page after page was a quarter of a
        pull's CPU).
        """
        now = self._now()
        sqlite = self.engine.dialect.name == "sqlite"
        rows: list[dict[str, Any]]
        if sqlite:
            # SQLite: the rows carry the very text the column types would bind (times as
            # `UTCDateTime` writes them, details as the JSON type dumps them), given to the
            # driver as they are: a pull stores ~20 activities per contact.
            stamp = sqlite_utc_text(now)
            values = [
                (r.contact_id, str(r.type), sqlite_utc_text(r.occurred_at), r.source,
                 r.source_id, r.title, r.url, r.content, sqlite_json_text(r.details), stamp)
                for r in records
            ]
            if not values:
                return 0
            # in contact and time order, the rows fill the (contact_id, occurred_at) index and
            # the contacts they touch page after page instead of all over them: fewer pages
            # are read and rewritten, which counts more the larger the store
            values.sort(key=itemgetter(0, 2))
            if session is not None:
                return self._sqlite_add_activities(session, values, now, defer_marks)
            with self.transaction() as s:
                return self._sqlite_add_activities(s, values, now, defer_marks)
        else:
            rows = [
                {
                    "contact_id": r.contact_id,
                    "type": r.type,
                    "occurred_at": r.occurred_at,
                    "source": r.source,
                    "source_id": r.source_id,
                    "title": r.title,
                    "url": r.url,
                    "content": r.content,
                    "details": dict(r.details or {}),
                    "ingested_at": now,
                }
                for r in records
            ]
        if not rows:
            return 0

        # RETURNING yields one row per inserted activity; count them while collecting contacts.
        # Core executemany of statements built once (no ORM objects: a pull stores ~20 per
        # contact).
        table = _table(Activity)
        stmt = self._statement("activities.insert", lambda: self._insert(
            table).on_conflict_do_nothing(
                index_elements=["source", "source_id"]).returning(table.c.contact_id))

        def insert(s: Session) -> int:
            inserted = list(self._core(s).execute(stmt, rows).scalars())
            self._mark_inserted(s, inserted, now, defer_marks)
            return len(inserted)

        if session is not None:
            return insert(session)
        with self.transaction() as s:
            return insert(s)

    def _sqlite_add_activities(self, s: Session, values: Sequence[tuple[Any, ...]],
                               now: datetime, defer_marks: set[str] | None) -> int:
        """SQLite's insert of many activities: multi-row INSERT statements (one text per row
        count, kept) run by the driver on the session's connection, a flat tuple of values
        each, with no per-row parameter processing; the contacts of the new rows marked
        changed. Returns how many were new."""
        conn = self._core(s)
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        inserted: list[str] = []
        try:
            k = 0
            for size in _chunk_sizes(len(values)):
                chunk = values[k:k + size]
                k += size
                cursor.execute(_sqlite_insert_sql(size), [v for row in chunk for v in row])
                inserted.extend(row[0] for row in cursor.fetchall())
        finally:
            cursor.close()
        self._mark_inserted(s, inserted, now, defer_marks)
        return len(inserted)

    def _mark_inserted(self, s: Session, contact_ids: Iterable[str], now: datetime,
                       defer_marks: set[str] | None) -> None:
        if defer_marks is not None:
            defer_marks.update(contact_ids)
        else:
            self._mark_changed(s, set(contact_ids), now)

    def _mark_changed(self, s: Session, contact_ids: Collection[str], now: datetime) -> None:
        touch = self._statement("activities.touch", lambda: update(_table(Contact)).where(
            _table(Contact).c.hubspot_id.in_(bindparam("ids", expanding=True))).values(
                inputs_changed_at=bindparam("now")))
        conn = self._core(s)
        ids = sorted(contact_ids)
        for page in in_pages(ids):
            conn.execute(touch, {"ids": page, "now": now})

    def mark_contacts_changed(self, contact_ids: Collection[str], *,
                              session: Session | None = None) -> None:
        """Mark these contacts changed now (their activities were stored with `defer_marks`)."""
        if not contact_ids:
            return
        if session is not None:
            self._mark_changed(session, contact_ids, self._now())
            return
        with self.transaction() as s:
            self._mark_changed(s, contact_ids, self._now())

    def mark_contacts_with_activities_since(self, since: datetime, *,
                                            session: Session | None = None) -> int:
        """Mark changed now every contact with an activity stored at or after `since`: the
        marks a stream deferred and never made (its process died first). One pass over the
        activities; only run after such a crash. Returns how many contacts."""
        activities, contacts = _table(Activity), _table(Contact)
        stmt = update(contacts).where(contacts.c.hubspot_id.in_(
            select(activities.c.contact_id).where(activities.c.ingested_at >= since)
            .distinct().scalar_subquery())).values(inputs_changed_at=self._now())

        def run(s: Session) -> int:
            return _rowcount(self._core(s).execute(stmt))

        if session is not None:
            return run(session)
        with self.transaction() as s:
            return run(s)

    def activities_for(self, contact_id: str) -> list[Activity]:
        with self.transaction() as s:
            return list(
                s.scalars(
                    select(Activity)
                    .where(Activity.contact_id == contact_id)
                    .order_by(Activity.occurred_at, Activity.id)
                )
            )

    def count_activities_by_type(self, *, live_only: bool = False) -> dict[str, int]:
        """Activities by type; `live_only` leaves out archived and merged-away contacts'."""
        with self.transaction() as s:
            q = select(Activity.type, func.count()).group_by(Activity.type)
            if live_only:
                q = q.join(Contact, Contact.hubspot_id == Activity.contact_id).where(
                    Contact.archived.is_(False), Contact.merged_into.is_(None))
            return {t: int(n) for t, n in s.execute(q)}

    def archived_contact_ids(self) -> set[str]:
        """Ids of the contacts HubSpot archived."""
        with self.transaction() as s:
            return set(s.scalars(select(Contact.hubspot_id).where(Contact.archived)))

    def merged_contacts(self) -> dict[str, str]:
        """Merged-away contact id -> the id of the contact it was merged into."""
        with self.transaction() as s:
            rows = s.execute(select(Contact.hubspot_id, Contact.merged_into)
                             .where(Contact.merged_into.is_not(None)))
            return {str(k): str(v) for k, v in rows}

    def count_activities_by_contact(self) -> dict[str, int]:
        """Stored activities per contact id (every contact, live or not)."""
        with self.transaction() as s:
            q = select(Activity.contact_id, func.count()).group_by(Activity.contact_id)
            return {str(c): int(n) for c, n in s.execute(q)}

    def activities_for_many(self, contact_ids: Sequence[str], *,
                            types: Collection[str] | None = None,
                            sources: bool = True) -> dict[str, list[Any]]:
        """Activities of many contacts in one query, oldest first, by contact id: read-only
        `ActivityRow`s with the `Activity` attributes (no ORM objects: scoring reads tens of
        thousands). Their `details` are decoded on first read (scoring reads few). `types`:
        only activities of these types (what a reader can use of them). `sources=False`
        reads `ScoredActivityRow`s: without `source` and `source_id` (the score's read)."""
        out: dict[str, list[Any]] = {cid: [] for cid in contact_ids}
        if not contact_ids:
            return out
        sqlite = self.engine.dialect.name == "sqlite"

        def build() -> Any:
            # SQLite keeps a datetime as ISO text: read it raw and parse it in C
            # (fromisoformat), not through SQLAlchemy's regular expression and our decorator.
            columns: list[Any] = [
                Activity.id, Activity.contact_id, Activity.type,
                type_coerce(Activity.occurred_at, String) if sqlite else Activity.occurred_at,
                Activity.title, Activity.url, cast(Activity.details, Text)]
            if sources:
                columns += [Activity.source, Activity.source_id]
            q = select(*columns).where(
                Activity.contact_id.in_(bindparam("ids", expanding=True)))
            if types is not None:
                q = q.where(Activity.type.in_(bindparam("types", expanding=True)))
            return q.order_by(Activity.contact_id, Activity.occurred_at, Activity.id)

        stmt = self._statement(f"activities.for_many.{types is not None}.{sources}", build)
        params: dict[str, Any] = {"ids": list(contact_ids)}
        if types is not None:
            params["types"] = sorted(str(t) for t in types)
        with self.transaction() as s:
            result = self._core(s).execute(stmt, params)
            try:
                # the driver's own tuples: no column here needs SQLAlchemy's processing (the
                # time is made aware below), and no Row per activity is built
                rows = result.cursor.fetchall()
            finally:
                result.close()
        current = ""
        into: list[Any] = []
        if sources:
            for aid, cid, kind, at, title, url, raw, source, source_id in rows:
                if cid != current:
                    current, into = cid, out[cid]
                into.append(ActivityRow(aid, cid, kind, utc_from_row(at), title, url, raw,
                                        source, source_id))
            return out
        scored = ScoredActivityRow
        if sqlite:  # the stored text parsed in C, made aware in UTC (as `utc_from_row`)
            parse = datetime.fromisoformat
            for aid, cid, kind, at, title, url, raw in rows:
                if cid != current:
                    current, into = cid, out[cid]
                into.append(scored(aid, cid, kind, parse(at + "+00:00"), title, url, raw))
            return out
        for aid, cid, kind, at, title, url, raw in rows:
            if cid != current:
                current, into = cid, out[cid]
            into.append(scored(aid, cid, kind, utc_from_row(at), title, url, raw))
        return out

    def last_linked_activity_id(self) -> int:
        """The newest id of an activity whose contact is linked to a Salesforce record (0:
        none): where a scan of `linked_activity_times_after` up to now ends."""
        with self.transaction() as s:
            return int(s.scalar(select(func.max(Activity.id)).join(
                IdLink, IdLink.hubspot_id == Activity.contact_id)) or 0)

    def linked_activity_times_after(self, after_id: int, *, until_id: int,
                                    occurred_since: datetime, limit: int = 2000,
                                    ingested_after: datetime | None = None) -> list[Any]:
        """Activities with an id in (`after_id`, `until_id`] whose contact is linked to a
        Salesforce record and that occurred at `occurred_since` or later (and, when given,
        were stored after `ingested_after`), by id, at most `limit`, without what they say:
        read-only rows of id, contact_id, occurred_at and ingested_at (what the alert scan
        filters on; the few activities it keeps are read in full with `activities_by_id`).
        The database drops the others: no row for them."""
        stored = ingested_after is not None

        def build() -> Any:
            q = (select(Activity.id, Activity.contact_id, Activity.occurred_at,
                        Activity.ingested_at)
                 .join(IdLink, IdLink.hubspot_id == Activity.contact_id)
                 .where(Activity.id > bindparam("after"), Activity.id <= bindparam("until"),
                        Activity.occurred_at >= bindparam("since")))
            if stored:
                q = q.where(Activity.ingested_at > bindparam("stored"))
            return q.order_by(Activity.id).limit(bindparam("limit"))

        stmt = self._statement(f"activities.linked_times_after.{stored}", build)
        params: dict[str, Any] = {"after": after_id, "until": until_id, "since": occurred_since,
                                  "limit": limit}
        if stored:
            params["stored"] = ingested_after
        with self.transaction() as s:
            return list(self._core(s).execute(stmt, params).all())

    def activities_by_id(self, ids: Sequence[int]) -> list[Any]:
        """These activities by id, as `linked_activities_after` gives them (with
        `ingested_at`), read-only rows in id order."""
        wanted = sorted(set(ids))
        if not wanted:
            return []
        stmt = self._statement("activities.by_id", lambda: select(
            Activity.id, Activity.contact_id, Activity.type, Activity.occurred_at,
            Activity.title, Activity.url, Activity.details, Activity.ingested_at)
            .where(Activity.id.in_(bindparam("ids", expanding=True))).order_by(Activity.id))
        out: list[Any] = []
        with self.transaction() as s:
            conn = self._core(s)
            for page in in_pages(wanted):
                out.extend(conn.execute(stmt, {"ids": page}))
        return out

    def engagement_times_for_many(self, contact_ids: Sequence[str], *,
                                  excluding: Collection[str]) -> dict[str, list[datetime]]:
        """When each of these contacts did something, oldest first, by contact id: the times
        of its activities of any type but `excluding`, in one query (no row objects: an alert
        scan only asks when a contact was last active before a visit)."""
        out: dict[str, list[datetime]] = {cid: [] for cid in contact_ids}
        if not contact_ids:
            return out
        sqlite = self.engine.dialect.name == "sqlite"
        stmt = self._statement("activities.engagement_times", lambda: select(
            Activity.contact_id,
            type_coerce(Activity.occurred_at, String) if sqlite else Activity.occurred_at,
        ).where(Activity.contact_id.in_(bindparam("ids", expanding=True)),
                Activity.type.not_in(bindparam("skip", expanding=True)))
            .order_by(Activity.contact_id, Activity.occurred_at))
        with self.transaction() as s:
            result = self._core(s).execute(stmt, {"ids": list(contact_ids),
                                                  "skip": sorted(str(t) for t in excluding)})
            try:
                rows = result.cursor.fetchall()  # as `activities_for_many` reads them
            finally:
                result.close()
        for cid, at in rows:
            out[cid].append(utc_from_row(at))
        return out

    def linked_activities_after(self, after_id: int, *, limit: int = 2000) -> list[Any]:
        """Activities stored with an id above `after_id` whose contact is linked to a Salesforce
        record, by id, at most `limit`: read-only rows with `ingested_at` (alerts scan them)."""
        with self.transaction() as s:
            return list(s.execute(
                select(Activity.id, Activity.contact_id, Activity.type, Activity.occurred_at,
                       Activity.title, Activity.url, Activity.details, Activity.ingested_at)
                .join(IdLink, IdLink.hubspot_id == Activity.contact_id)
                .where(Activity.id > after_id)
                .order_by(Activity.id)
                .limit(limit)
            ))


def _mql_columns(sqlite: bool) -> list[Any]:
    """The columns of an `MqlContact` (times as SQLite's text, parsed in C by `_mql_contacts`;
    properties as JSON text, decoded by orjson)."""
    c = _table(Contact).c
    if sqlite:
        return [c.hubspot_id, c.email, cast(c.properties, Text), c.lifecycle_stage,
                type_coerce(c.hubspot_created_at, String), type_coerce(c.hubspot_updated_at, String)]
    return [c.hubspot_id, c.email, cast(c.properties, Text), c.lifecycle_stage,
            c.hubspot_created_at, c.hubspot_updated_at]


def _mql_contacts(rows: Iterable[Any]) -> list[MqlContact]:
    loads = orjson.loads
    return [MqlContact(hid, email, loads(props), stage,
                       None if created is None else utc_from_row(created),
                       None if updated is None else utc_from_row(updated))
            for hid, email, props, stage, created, updated in rows]


def _mql_query(sqlite: bool, with_ids: bool, batch: int) -> Any:
    """Live contacts with an email whose newest score (latest scored_at, then id) is an MQL,
    by id after :after (of :ids when `with_ids`), `batch` at most."""
    contact, score = _table(Contact), _table(Score)
    newest = (select(score.c.is_mql).where(score.c.contact_id == contact.c.hubspot_id)
              .order_by(score.c.scored_at.desc(), score.c.id.desc()).limit(1)
              .scalar_subquery())
    q = select(*_mql_columns(sqlite)).where(
        contact.c.hubspot_id > bindparam("after"), contact.c.archived.is_(False),
        contact.c.merged_into.is_(None), contact.c.email.is_not(None), contact.c.email != "",
        newest.is_(True))
    if with_ids:
        q = q.where(contact.c.hubspot_id.in_(bindparam("ids", expanding=True)))
    return q.order_by(contact.c.hubspot_id).limit(batch)
