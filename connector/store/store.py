"""The state store: SQLite by default (WAL), PostgreSQL by URL; schema kept by Alembic.

Each method is one short transaction, so a crash never leaves half a batch behind, and a
bookmark can be written in the same transaction as the records it covers (`transaction()`).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import (
    Engine,
    Select,
    String,
    case,
    cast,
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from connector.clock import Clock, SystemClock
from connector.errors import Actor
from connector.store.models import (
    Activity,
    Bookmark,
    Contact,
    DeadLetter,
    IdLink,
    Lease,
    LifecycleTransition,
    RoutingPointer,
    SalesOutcome,
    Score,
    SlaTimer,
    SyncRun,
    WriteLedgerEntry,
)

__all__ = ["ActivityRecord", "ContactRecord", "Store", "payload_hash"]

MIGRATIONS = Path(__file__).parent / "migrations"


def payload_hash(payload: Any) -> str:
    """A stable hash of a JSON-able payload (sorted keys), to tell whether a write changed."""
    raw = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(raw.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class ContactRecord:
    hubspot_id: str
    email: str | None
    properties: Mapping[str, Any]
    hubspot_created_at: datetime | None
    hubspot_updated_at: datetime | None
    archived: bool = False
    merged_into: str | None = None


@dataclass(frozen=True, slots=True)
class ActivityRecord:
    contact_id: str
    type: str
    occurred_at: datetime
    source: str
    source_id: str
    title: str | None = None
    url: str | None = None
    content: str | None = None
    details: Mapping[str, Any] | None = None


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()



def _rowcount(result: Any) -> int:
    """Rows an UPDATE or INSERT touched (a CursorResult's rowcount; typed Result lacks it)."""
    return int(getattr(result, "rowcount", 0) or 0)

class Store:
    """Repository over the state database; every flow goes through it."""

    def __init__(self, url: str, *, clock: Clock | None = None, echo: bool = False) -> None:
        self.url = url
        self.clock = clock or SystemClock()
        parsed = make_url(url)
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        kwargs: dict[str, Any] = {"echo": echo, "future": True}
        if parsed.get_backend_name() == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"timeout": 30}
        else:
            kwargs["pool_pre_ping"] = True
        self.engine: Engine = create_engine(parsed, **kwargs)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    # --- schema -------------------------------------------------------------------------------

    def _alembic(self) -> AlembicConfig:
        cfg = AlembicConfig()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        return cfg

    def migrate(self, revision: str = "head") -> None:
        """Create or upgrade the schema in place to `revision`."""
        cfg = self._alembic()
        with self.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)

    def schema_revision(self) -> str | None:
        with self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def head_revision(self) -> str | None:
        return ScriptDirectory.from_config(self._alembic()).get_current_head()

    def close(self) -> None:
        self.engine.dispose()

    # --- sessions -----------------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One transaction: committed when the block ends, rolled back if it raises."""
        with self._sessions.begin() as session:
            yield session

    def _now(self) -> datetime:
        return self.clock.now()

    def _insert(self, table: Any) -> Any:
        dialect = self.engine.dialect.name
        return (postgresql if dialect == "postgresql" else sqlite).insert(table)

    # --- runs ---------------------------------------------------------------------------------

    def start_run(self, stage: str, *, trigger: str = "manual", instance: str = "",
                  run_id: str | None = None) -> str:
        """Record a run of `stage` as running; returns its id (`run_id` when given)."""
        run_id = run_id or str(uuid.uuid4())
        with self.transaction() as s:
            s.add(
                SyncRun(
                    id=run_id,
                    stage=stage,
                    trigger=trigger,
                    instance=instance[:128],
                    started_at=self._now(),
                    status="running",
                    counts={},
                )
            )
        return run_id

    def finish_run(
        self, run_id: str, *, status: str, counts: Mapping[str, Any] | None = None,
        error: str | None = None,
    ) -> None:
        """Record how a run ended (ok, degraded, stopped, failed, interrupted)."""
        with self.transaction() as s:
            s.execute(
                update(SyncRun)
                .where(SyncRun.id == run_id)
                .values(finished_at=self._now(), status=status, counts=dict(counts or {}), error=error)
            )

    def abandon_runs(self, stages: Sequence[str], *, except_run: str, reason: str) -> list[str]:
        """Mark the runs of `stages` still recorded as running (other than `except_run`) as
        abandoned: called by the holder of the stages' lease, so none of them can be alive."""
        with self.transaction() as s:
            ids = list(s.scalars(select(SyncRun.id).where(
                SyncRun.stage.in_(list(stages)), SyncRun.status == "running",
                SyncRun.id != except_run)))
            if ids:
                s.execute(update(SyncRun).where(SyncRun.id.in_(ids)).values(
                    status="abandoned", finished_at=self._now(), error=reason))
            return ids

    def runs(self, *, stage: str | None = None, limit: int = 50) -> list[SyncRun]:
        """The newest runs first (of one stage, or all)."""
        with self.transaction() as s:
            q = select(SyncRun)
            if stage:
                q = q.where(SyncRun.stage == stage)
            return list(s.scalars(q.order_by(SyncRun.started_at.desc()).limit(limit)))

    def admin_letters_since(self, stages: Sequence[str], since: datetime) -> dict[str, int]:
        """Open dead letters of `stages` an admin must act on, parked or re-parked at or after
        `since`, counted by error code (the reason kinds a degraded run reports)."""
        with self.transaction() as s:
            rows = s.execute(
                select(DeadLetter.error_code, func.count())
                .where(DeadLetter.stage.in_(list(stages)), DeadLetter.status == "open",
                       DeadLetter.actor == str(Actor.ADMIN), DeadLetter.last_seen_at >= since)
                .group_by(DeadLetter.error_code)
            ).all()
            return {str(code or "unspecified"): int(n) for code, n in rows}

    def get_run(self, run_id: str) -> SyncRun | None:
        with self.transaction() as s:
            return s.get(SyncRun, run_id)

    # --- bookmarks ----------------------------------------------------------------------------

    def get_bookmark(self, stream: str) -> str | None:
        with self.transaction() as s:
            row = s.get(Bookmark, stream)
            return row.value if row else None

    def set_bookmark(
        self, stream: str, value: str, *, run_id: str | None = None, session: Session | None = None
    ) -> None:
        """Save where `stream` resumes; pass `session` to commit it with the records it covers."""
        stmt = self._insert(Bookmark).values(
            stream=stream, value=value, updated_at=self._now(), run_id=run_id
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["stream"],
            set_={"value": stmt.excluded.value, "updated_at": stmt.excluded.updated_at,
                  "run_id": stmt.excluded.run_id},
        )
        if session is not None:
            session.execute(stmt)
            return
        with self.transaction() as s:
            s.execute(stmt)

    def bookmarks(self, prefix: str | None = None) -> dict[str, str]:
        """All bookmarks, or those whose stream name starts with `prefix`."""
        with self.transaction() as s:
            q = select(Bookmark)
            if prefix:
                q = q.where(Bookmark.stream.startswith(prefix, autoescape=True))
            return {b.stream: b.value for b in s.scalars(q.order_by(Bookmark.stream))}

    def iter_bookmark_streams(self, prefix: str, *, batch: int = 500) -> Iterator[str]:
        """Names of the bookmarks starting with `prefix`, in order, read `batch` at a time
        (there may be one per contact)."""
        last = ""
        while True:
            with self.transaction() as s:
                names = list(s.scalars(
                    select(Bookmark.stream)
                    .where(Bookmark.stream.startswith(prefix, autoescape=True),
                           Bookmark.stream > last)
                    .order_by(Bookmark.stream).limit(batch)
                ))
            if not names:
                return
            yield from names
            last = names[-1]

    def delete_bookmark(self, stream: str, *, session: Session | None = None) -> None:
        stmt = delete(Bookmark).where(Bookmark.stream == stream)
        if session is not None:
            session.execute(stmt)
            return
        with self.transaction() as s:
            s.execute(stmt)

    # --- contacts -----------------------------------------------------------------------------

    def contact_versions(
        self, ids: Sequence[str]
    ) -> dict[str, tuple[datetime | None, bool, dict[str, Any]]]:
        """For known ids: (HubSpot lastmodifieddate, archived, properties) as stored."""
        if not ids:
            return {}
        with self.transaction() as s:
            rows = s.execute(
                select(Contact.hubspot_id, Contact.hubspot_updated_at, Contact.archived,
                       Contact.properties).where(Contact.hubspot_id.in_(list(ids)))
            )
            return {cid: (updated, archived, props or {}) for cid, updated, archived, props in rows}

    def resolve_contact_ids(self, ids: Iterable[str]) -> dict[str, str]:
        """Known ids -> the live id they stand for (the survivor for merged-away contacts)."""
        wanted = sorted(set(ids))
        if not wanted:
            return {}
        with self.transaction() as s:
            rows = s.execute(
                select(Contact.hubspot_id, Contact.merged_into).where(Contact.hubspot_id.in_(wanted))
            )
            return {cid: merged_into or cid for cid, merged_into in rows}

    def contact_ids_by_email(self, emails: Iterable[str]) -> dict[str, str]:
        """Email (lower-case) -> HubSpot id, live contacts first, then archived or merged ones
        (the merged survivor when known)."""
        wanted = sorted({e.lower() for e in emails if e})
        if not wanted:
            return {}
        out: dict[str, str] = {}
        with self.transaction() as s:
            rows = s.execute(
                select(Contact.email, Contact.hubspot_id, Contact.archived, Contact.merged_into)
                .where(Contact.email.in_(wanted))
            )
            ranked = sorted(rows, key=lambda r: (bool(r.merged_into), r.archived, r.hubspot_id))
        for email, cid, _archived, merged_into in reversed(ranked):
            if email:
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
        columns = [c for c in Activity.__table__.columns if c.name != "id"]
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
        # One statement executed for many rows ("insertmanyvalues"): a multi-row VALUES per batch
        # size would put a large compiled statement in the cache for every size seen.
        stmt = self._insert(Contact)
        ex = stmt.excluded
        stmt = stmt.on_conflict_do_update(
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
        )
        stmt = stmt.returning(Contact.hubspot_id)
        if session is not None:
            return len(list(session.scalars(stmt, rows)))
        with self.transaction() as s:
            return len(list(s.scalars(stmt, rows)))

    def get_contact(self, hubspot_id: str) -> Contact | None:
        with self.transaction() as s:
            return s.get(Contact, hubspot_id)

    def find_contact_by_email(self, email: str) -> Contact | None:
        with self.transaction() as s:
            return s.scalars(
                select(Contact).where(Contact.email == email.lower(), Contact.archived.is_(False))
            ).first()

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

    def iter_mqls(self, *, batch: int = 1000) -> Iterator[Contact]:
        """Live contacts with an email whose newest score makes them an MQL, by id, in batches:
        found by the database (the newest score per contact by a window function), so a push
        reads the MQLs, not every contact and its score history."""

        def mqls_after(after: str) -> Select[Any]:
            ranked = (
                select(Score.contact_id.label("cid"), Score.is_mql.label("mql"),
                       func.row_number().over(
                           partition_by=Score.contact_id,
                           order_by=(Score.scored_at.desc(), Score.id.desc())).label("n"))
                .where(Score.contact_id > after)
                .subquery()
            )
            return (select(Contact).join(ranked, ranked.c.cid == Contact.hubspot_id)
                    .where(ranked.c.n == 1, ranked.c.mql.is_(True),
                           Contact.email.is_not(None), Contact.email != ""))

        return self._live_contacts(mqls_after, batch)

    # --- activities ---------------------------------------------------------------------------

    def add_activities(
        self, records: Iterable[ActivityRecord], *, session: Session | None = None
    ) -> int:
        """Store activities, ignoring ones already stored (same source and source id).

        Returns how many were new; their contacts are marked changed for re-scoring.
        """
        now = self._now()
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
        def insert(s: Session) -> int:
            stmt = self._insert(Activity).on_conflict_do_nothing(
                index_elements=["source", "source_id"]
            ).returning(Activity.contact_id)
            inserted = list(s.scalars(stmt, rows))
            touched = set(inserted)
            if touched:
                s.execute(
                    update(Contact)
                    .where(Contact.hubspot_id.in_(touched))
                    .values(inputs_changed_at=now)
                )
            return len(inserted)

        if session is not None:
            return insert(session)
        with self.transaction() as s:
            return insert(s)

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

    # --- scores and lifecycle -----------------------------------------------------------------

    def add_scores(self, rows: Sequence[Mapping[str, Any]]) -> None:
        if not rows:
            return
        with self.transaction() as s:
            s.execute(self._insert(Score).values([dict(r) for r in rows]))

    def latest_score(self, contact_id: str) -> Score | None:
        with self.transaction() as s:
            return s.scalars(
                select(Score)
                .where(Score.contact_id == contact_id)
                .order_by(Score.scored_at.desc(), Score.id.desc())
                .limit(1)
            ).first()

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

    def transitions_for(self, contact_id: str) -> list[LifecycleTransition]:
        with self.transaction() as s:
            return list(
                s.scalars(
                    select(LifecycleTransition)
                    .where(LifecycleTransition.contact_id == contact_id)
                    .order_by(LifecycleTransition.at, LifecycleTransition.id)
                )
            )

    # --- id map -------------------------------------------------------------------------------

    def link(self, hubspot_id: str, sf_object: str, sf_id: str, *, how: str = "created") -> None:
        """Map a HubSpot contact to its Salesforce record (replacing an earlier link)."""
        now = self._now()
        stmt = self._insert(IdLink).values(
            hubspot_id=hubspot_id, sf_object=sf_object, sf_id=sf_id, how=how,
            linked_at=now, updated_at=now,
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["hubspot_id"],
            set_={"sf_object": stmt.excluded.sf_object, "sf_id": stmt.excluded.sf_id,
                  "how": stmt.excluded.how, "updated_at": stmt.excluded.updated_at},
        )
        with self.transaction() as s:
            s.execute(stmt)

    def linked(self, hubspot_id: str) -> IdLink | None:
        with self.transaction() as s:
            return s.get(IdLink, hubspot_id)

    def linked_many(self, hubspot_ids: Sequence[str]) -> dict[str, IdLink]:
        """The links of those given contacts that have one, by HubSpot id."""
        if not hubspot_ids:
            return {}
        with self.transaction() as s:
            rows = s.scalars(select(IdLink).where(IdLink.hubspot_id.in_(list(hubspot_ids))))
            return {row.hubspot_id: row for row in rows}

    def hubspot_id_for(self, sf_id: str) -> str | None:
        with self.transaction() as s:
            return s.scalar(select(IdLink.hubspot_id).where(IdLink.sf_id == sf_id))

    # --- write ledger -------------------------------------------------------------------------

    def claim_write(
        self, key: str, *, system: str, operation: str, target: str, payload: Any = None,
        run_id: str | None = None,
    ) -> WriteLedgerEntry | None:
        """Reserve a write. Returns None if the same key is already done with the same payload
        (nothing to do); otherwise the pending entry (new, or left by a crash / a changed payload).
        """
        digest = payload_hash(payload) if payload is not None else ""
        now = self._now()
        with self.transaction() as s:
            entry = s.get(WriteLedgerEntry, key, with_for_update=True)
            if entry is None:
                entry = WriteLedgerEntry(
                    key=key, system=system, operation=operation, target=target,
                    payload_hash=digest, status="pending", run_id=run_id, created_at=now,
                )
                s.add(entry)
                return entry
            if entry.status == "done" and entry.payload_hash == digest:
                return None
            entry.status = "pending"
            entry.payload_hash = digest
            entry.run_id = run_id
            return entry

    def complete_write(self, key: str, *, remote_id: str | None = None, ok: bool = True) -> None:
        with self.transaction() as s:
            s.execute(
                update(WriteLedgerEntry)
                .where(WriteLedgerEntry.key == key)
                .values(status="done" if ok else "failed", remote_id=remote_id,
                        completed_at=self._now())
            )

    def ledger_entry(self, key: str) -> WriteLedgerEntry | None:
        with self.transaction() as s:
            return s.get(WriteLedgerEntry, key)

    def ledger_entries(self, prefix: str, *, status: str | None = None) -> list[WriteLedgerEntry]:
        """Ledger entries whose key starts with `prefix` (e.g. every digest of one contact)."""
        with self.transaction() as s:
            q = select(WriteLedgerEntry).where(
                WriteLedgerEntry.key.startswith(prefix, autoescape=True))
            if status:
                q = q.where(WriteLedgerEntry.status == status)
            return list(s.scalars(q.order_by(WriteLedgerEntry.key)))

    def pending_writes(self, system: str | None = None) -> list[WriteLedgerEntry]:
        with self.transaction() as s:
            q = select(WriteLedgerEntry).where(WriteLedgerEntry.status == "pending")
            if system:
                q = q.where(WriteLedgerEntry.system == system)
            return list(s.scalars(q.order_by(WriteLedgerEntry.created_at)))

    # --- dead letters -------------------------------------------------------------------------

    def dead_letter(
        self, *, stage: str, system: str, record_key: str, reason: str, actor: Actor | str,
        payload: Mapping[str, Any] | None = None, error_code: str | None = None,
    ) -> int:
        """Park a record; the same open record parked again counts one more attempt."""
        now = self._now()
        with self.transaction() as s:
            existing = s.scalars(
                select(DeadLetter).where(
                    DeadLetter.stage == stage,
                    DeadLetter.record_key == record_key,
                    DeadLetter.status == "open",
                )
            ).first()
            if existing is not None:
                existing.attempts += 1
                existing.reason = reason
                if error_code is not None:
                    existing.error_code = error_code
                existing.actor = str(actor)
                existing.last_seen_at = now
                if payload is not None:
                    existing.payload = dict(payload)
                return existing.id
            row = DeadLetter(
                stage=stage, system=system, record_key=record_key, payload=dict(payload or {}),
                reason=reason, error_code=error_code or "", actor=str(actor), attempts=1,
                status="open", first_seen_at=now, last_seen_at=now,
            )
            s.add(row)
            s.flush()
            return row.id

    def dead_letters(self, *, status: str | None = "open", stage: str | None = None) -> list[DeadLetter]:
        with self.transaction() as s:
            q = select(DeadLetter)
            if status:
                q = q.where(DeadLetter.status == status)
            if stage:
                q = q.where(DeadLetter.stage == stage)
            return list(s.scalars(q.order_by(DeadLetter.id)))

    def resolve_dead_letters(self, *, stage: str, record_keys: Iterable[str]) -> int:
        keys = list(record_keys)
        if not keys:
            return 0
        with self.transaction() as s:
            return _rowcount(s.execute(
                update(DeadLetter)
                .where(DeadLetter.stage == stage, DeadLetter.record_key.in_(keys),
                       DeadLetter.status == "open")
                .values(status="resolved", resolved_at=self._now())
            ))

    # --- sales outcomes and SLA ---------------------------------------------------------------

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

    # --- routing and leases -------------------------------------------------------------------

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

    def acquire_lease(self, name: str, holder: str, *, ttl_seconds: float) -> bool:
        """Take or renew the named lease; False when another holder's lease has not expired."""
        return self.take_lease(name, holder, ttl_seconds=ttl_seconds) is not None

    def take_lease(self, name: str, holder: str, *, ttl_seconds: float) -> int | None:
        """Take the named lease for `holder` (or renew it), or None when another holder's lease
        has not expired. Returns the fencing number, raised whenever the holder changes."""
        now = self._now()
        expires = now + timedelta(seconds=ttl_seconds)
        with self.transaction() as s:
            inserted = _rowcount(s.execute(
                self._insert(Lease)
                .values(name=name, holder=holder, expires_at=expires, fence=1, acquired_at=now)
                .on_conflict_do_nothing(index_elements=["name"])
            ))
            if inserted:
                return 1
            # One statement decides, so two takers on any backend never both win.
            taken = _rowcount(s.execute(
                update(Lease)
                .where(Lease.name == name)
                .where((Lease.holder == holder) | (Lease.expires_at < now))
                .values(
                    fence=Lease.fence + case((Lease.holder == holder, 0), else_=1),
                    acquired_at=case((Lease.holder == holder, Lease.acquired_at), else_=now),
                    holder=holder, expires_at=expires,
                )
            ))
            if not taken:
                return None
            return int(s.scalar(select(Lease.fence).where(Lease.name == name)) or 0)

    def renew_lease(self, name: str, holder: str, fence: int, *, ttl_seconds: float) -> bool:
        """Extend a held lease; False when it is no longer this holder's at this fence."""
        expires = self._now() + timedelta(seconds=ttl_seconds)
        with self.transaction() as s:
            return bool(_rowcount(s.execute(
                update(Lease)
                .where(Lease.name == name, Lease.holder == holder, Lease.fence == fence)
                .values(expires_at=expires)
            )))

    def release_lease(self, name: str, holder: str) -> None:
        """Give the lease up at once (its row stays, expired, so the fence never goes back)."""
        with self.transaction() as s:
            s.execute(
                update(Lease).where(Lease.name == name, Lease.holder == holder)
                .values(holder="", expires_at=datetime(1970, 1, 1, tzinfo=UTC))
            )

    def expire_lease(self, name: str, holder: str, fence: int) -> bool:
        """Expire `holder`'s lease now (its process is known dead); False if it changed hands."""
        with self.transaction() as s:
            return bool(_rowcount(s.execute(
                update(Lease).where(Lease.name == name, Lease.holder == holder,
                                    Lease.fence == fence)
                .values(expires_at=datetime(1970, 1, 1, tzinfo=UTC))
            )))

    def lease(self, name: str) -> Lease | None:
        """The named lease's row (holder, expiry, fence), if it was ever taken."""
        with self.transaction() as s:
            return s.get(Lease, name)

    # --- scoring (bulk reads and writes for the score stage) ----------------------------------

    def contacts_to_score(
        self, *, stale_before: datetime | None = None, everyone: bool = False, batch: int = 1000,
    ) -> Iterator[list[Contact]]:
        """Live contacts to (re)score, by id, a batch at a time: never scored, inputs changed
        since their latest score, or (with `stale_before`) scored before it, for decay and
        expiry. `everyone` yields every live contact."""
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

    def activities_for_many(self, contact_ids: Sequence[str]) -> dict[str, list[Any]]:
        """Activities of many contacts in one query, oldest first, by contact id: read-only
        rows with the `Activity` attributes (no ORM objects: scoring reads tens of thousands)."""
        out: dict[str, list[Any]] = {cid: [] for cid in contact_ids}
        if not contact_ids:
            return out
        with self.transaction() as s:
            rows = s.execute(
                select(Activity.id, Activity.contact_id, Activity.type, Activity.occurred_at,
                       Activity.title, Activity.url, Activity.details, Activity.source,
                       Activity.source_id)
                .where(Activity.contact_id.in_(list(contact_ids)))
                .order_by(Activity.contact_id, Activity.occurred_at, Activity.id)
            )
            for row in rows:
                out[row.contact_id].append(row)
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

    def add_transitions(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Record many transitions `{contact_id, from_stage, to_stage, at, reason, run_id}` in
        one transaction, moving each contact's stored stage to its last `to_stage`."""
        if not rows:
            return
        with self.transaction() as s:
            s.execute(self._insert(LifecycleTransition).values([dict(r) for r in rows]))
            final = {r["contact_id"]: r["to_stage"] for r in rows}
            by_stage: dict[str, list[str]] = {}
            for contact_id, stage in final.items():
                by_stage.setdefault(stage, []).append(contact_id)
            for stage, ids in by_stage.items():
                s.execute(update(Contact).where(Contact.hubspot_id.in_(ids))
                          .values(lifecycle_stage=stage))

    def get_contact_by_email(self, email: str) -> Contact | None:
        """The live contact with this address (case-insensitive), else any stored one."""
        with self.transaction() as s:
            rows = list(s.scalars(
                select(Contact).where(Contact.email == email.strip().lower())
                .order_by(Contact.archived, Contact.merged_into.is_not(None), Contact.hubspot_id)
            ))
            return rows[0] if rows else None
