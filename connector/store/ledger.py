"""The write ledger (each remote write claimed, then settled) and the HubSpot-Salesforce links."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import bindparam, func, insert, or_, select, text, update
from sqlalchemy.orm import Session

from connector.store._base import StoreBase, _table, in_pages
from connector.store.models import IdLink, WriteLedgerEntry, sqlite_utc_text, utc_from_row

__all__ = ["LedgerStore", "WriteClaim", "payload_hash"]

PAGE = 500  # keys (or ids) one IN (...) carries
PREFIX_PAGE = 100  # key prefixes one OR-ed query carries (3 parameters each on SQLite)
_SQLITE_CLAIM = (
    "INSERT INTO write_ledger (key, system, operation, target, payload_hash, status, remote_id, "
    "run_id, created_at, completed_at) VALUES (?, ?, ?, ?, ?, 'pending', NULL, ?, ?, NULL)")
_SQLITE_COMPLETE = "UPDATE write_ledger SET status = ?, remote_id = ?, completed_at = ? WHERE key = ?"


@dataclass(frozen=True, slots=True)
class WriteClaim:
    """One write to reserve in the ledger (`LedgerStore.claim_writes`)."""

    key: str
    operation: str
    target: str
    payload: Any = None



def payload_hash(payload: Any) -> str:
    """A stable hash of a JSON-able payload (sorted keys), to tell whether a write changed."""
    return hashlib.sha256(_hashed_text(payload)).hexdigest()


def _hashed_text(payload: Any) -> bytes:
    """What `payload_hash` hashes: the payload as `json.dumps` writes it with sorted keys,
    compactly, ASCII only. A write-back's payload (a contact's properties: text by name) is
    encoded by orjson, several times faster, when the bytes are the same: printable ASCII
    that neither escapes (a quote, a backslash, a control character or anything past ASCII
    is escaped by `json`, DEL by `json` alone)."""
    if payload.__class__ is dict and all(
            k.__class__ is str and v.__class__ is str for k, v in payload.items()):
        raw = orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)
        if raw.isascii() and b"\\" not in raw and b"\x7f" not in raw:
            return raw
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str).encode()


class LedgerStore(StoreBase):
    """The write ledger and the id map between HubSpot contacts and Salesforce records."""

    # --- id map -----------------------------------------------------------------------------------

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

    def link_many(self, links: Sequence[tuple[str, str, str, str]]) -> None:
        """`link` of many contacts `(hubspot_id, sf_object, sf_id, how)` in one transaction
        (one statement built once, executed for every row; a contact named twice keeps its
        last link, as `link` called in order would)."""
        if not links:
            return
        table = _table(IdLink)

        def build() -> Any:
            stmt = self._insert(table)
            return stmt.on_conflict_do_update(
                index_elements=["hubspot_id"],
                set_={"sf_object": stmt.excluded.sf_object, "sf_id": stmt.excluded.sf_id,
                      "how": stmt.excluded.how, "updated_at": stmt.excluded.updated_at})

        stmt = self._statement("links.upsert", build)
        now = self._now()
        last = {hid: (hid, obj, sf_id, how) for hid, obj, sf_id, how in links}
        rows = [{"hubspot_id": hid, "sf_object": obj, "sf_id": sf_id, "how": how,
                 "linked_at": now, "updated_at": now} for hid, obj, sf_id, how in last.values()]
        with self.transaction() as s:
            self._core(s).execute(stmt, rows)

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

    def link_targets(self, hubspot_ids: Sequence[str]) -> dict[str, Any]:
        """`linked_many` as read-only rows (`hubspot_id`, `sf_object`, `sf_id`), one Core query
        a page of ids: what the push reads of a round's links, without an ORM object each."""
        ids = sorted(set(hubspot_ids))
        if not ids:
            return {}
        table = _table(IdLink)
        stmt = self._statement("links.targets", lambda: select(
            table.c.hubspot_id, table.c.sf_object, table.c.sf_id).where(
                table.c.hubspot_id.in_(bindparam("ids", expanding=True))))
        out: dict[str, Any] = {}
        with self.transaction() as s:
            conn = self._core(s)
            for page in in_pages(ids, PAGE):
                out.update((row.hubspot_id, row) for row in conn.execute(stmt, {"ids": page}))
        return out

    def hubspot_ids_for(self, sf_ids: Sequence[str]) -> dict[str, str]:
        """`hubspot_id_for` of many Salesforce ids in one query: those linked, by sf id."""
        ids = sorted(set(sf_ids))
        if not ids:
            return {}
        table = _table(IdLink)
        stmt = self._statement("links.by_sf_id", lambda: select(
            table.c.sf_id, table.c.hubspot_id).where(
                table.c.sf_id.in_(bindparam("ids", expanding=True))))
        out: dict[str, str] = {}
        with self.transaction() as s:
            conn = self._core(s)
            for page in in_pages(ids, PAGE):
                out.update({str(a): str(b) for a, b in conn.execute(stmt, {"ids": page})})
        return out

    def hubspot_id_for(self, sf_id: str) -> str | None:
        with self.transaction() as s:
            return s.scalar(select(IdLink.hubspot_id).where(IdLink.sf_id == sf_id))

    # --- write ledger -----------------------------------------------------------------------------

    def claim_write(
        self, key: str, *, system: str, operation: str, target: str, payload: Any = None,
        run_id: str | None = None,
    ) -> WriteLedgerEntry | None:
        """Reserve a write. Returns None if the same key is already done with the same payload
        (nothing to do); otherwise the pending entry (new, or left by a crash / a changed payload).
        """
        digest = payload_hash(payload) if payload is not None else ""
        now = self._now()
        table = _table(WriteLedgerEntry)
        # Core statements built once: a push claims a write or more per hand-off, each its own
        # short transaction, so the ORM's unit of work and cache keys cost more than the rows.
        read = self._statement("ledger.claim.read", lambda: select(table).where(
            table.c.key == bindparam("k")).with_for_update())
        add = self._statement("ledger.claim.insert", lambda: insert(table))
        renew = self._statement("ledger.claim.update", lambda: update(table).where(
            table.c.key == bindparam("k")).values(
                status="pending", payload_hash=bindparam("h"), run_id=bindparam("rid")))
        with self.transaction() as s:
            conn = self._core(s)
            row = conn.execute(read, {"k": key}).mappings().first()
            if row is None:
                values = {"key": key, "system": system, "operation": operation,
                          "target": target, "payload_hash": digest, "status": "pending",
                          "remote_id": None, "run_id": run_id, "created_at": now,
                          "completed_at": None}
                conn.execute(add, values)
                return WriteLedgerEntry(**values)
            if row["status"] == "done" and row["payload_hash"] == digest:
                return None
            conn.execute(renew, {"k": key, "h": digest, "rid": run_id})
            return WriteLedgerEntry(**{**row, "status": "pending", "payload_hash": digest,
                                       "run_id": run_id})

    def claim_writes(self, claims: Sequence[WriteClaim], *, system: str,
                     run_id: str | None = None) -> list[bool]:
        """`claim_write` of many writes, in order, in one transaction: for each, whether it
        is to be sent (new, changed, or left pending/failed) or not (done with the same
        payload), as `claim_write` returning an entry or None. The existing
        entries are read in one query a page (locked for update), the new ones inserted and
        the renewed ones updated by statements built once, executed for every row."""
        if not claims:
            return []
        table = _table(WriteLedgerEntry)
        read = self._statement("ledger.claims.read", lambda: select(
            table.c.key, table.c.status, table.c.payload_hash).where(
                table.c.key.in_(bindparam("keys", expanding=True))).with_for_update())
        add = self._statement("ledger.claim.insert", lambda: insert(table))
        renew = self._statement("ledger.claim.update", lambda: update(table).where(
            table.c.key == bindparam("k")).values(
                status="pending", payload_hash=bindparam("h"), run_id=bindparam("rid")))
        now = self._now()
        keys = sorted({c.key for c in claims})
        claimed: list[bool] = []
        with self.transaction() as s:
            conn = self._core(s)
            state: dict[str, tuple[str, str]] = {}
            for page in in_pages(keys, PAGE):
                for key, status, digest in conn.execute(read, {"keys": page}):
                    state[key] = (status, digest)
            added: dict[str, dict[str, Any]] = {}
            renewed: dict[str, dict[str, Any]] = {}
            for c in claims:  # in order, as one `claim_write` after another would
                digest = payload_hash(c.payload) if c.payload is not None else ""
                before = state.get(c.key)
                if before is None:
                    added[c.key] = {"key": c.key, "system": system, "operation": c.operation,
                                    "target": c.target, "payload_hash": digest,
                                    "status": "pending", "remote_id": None, "run_id": run_id,
                                    "created_at": now, "completed_at": None}
                elif before == ("done", digest):
                    claimed.append(False)
                    continue
                elif c.key in added:
                    added[c.key]["payload_hash"] = digest
                else:
                    renewed[c.key] = {"k": c.key, "h": digest, "rid": run_id}
                state[c.key] = ("pending", digest)
                claimed.append(True)
            if added and self.engine.dialect.name == "sqlite":
                # as `complete_writes` settles them: the driver's executemany, the time
                # formatted once
                at = sqlite_utc_text(now)
                conn.exec_driver_sql(_SQLITE_CLAIM, [
                    (a["key"], system, a["operation"], a["target"], a["payload_hash"], run_id,
                     at) for a in added.values()])
            elif added:
                conn.execute(add, list(added.values()))
            if renewed:
                conn.execute(renew, list(renewed.values()))
        return claimed

    def complete_write(self, key: str, *, remote_id: str | None = None, ok: bool = True) -> None:
        with self.transaction() as s:
            s.execute(
                update(WriteLedgerEntry)
                .where(WriteLedgerEntry.key == key)
                .values(status="done" if ok else "failed", remote_id=remote_id,
                        completed_at=self._now())
            )

    def complete_writes(self, settled: Sequence[tuple[str, str | None]], *,
                        ok: bool = True) -> None:
        """Settle many writes `(key, remote_id)` in one transaction, as `complete_write` does
        each (one statement built once, executed for every row)."""
        if not settled:
            return
        with self.transaction() as s:
            self._complete_writes(s, settled, ok=ok)

    def _complete_writes(self, s: Session, settled: Sequence[tuple[str, str | None]], *,
                         ok: bool = True) -> None:
        """`complete_writes` inside the caller's transaction."""
        now = self._now()
        status = "done" if ok else "failed"
        if self.engine.dialect.name == "sqlite":
            # SQLite: the driver's executemany of the values as the column types would
            # bind them (the time as `UTCDateTime` writes it, formatted once), without
            # per-row parameter processing: a write-back settles every contact it sends.
            at = sqlite_utc_text(now)
            self._core(s).exec_driver_sql(_SQLITE_COMPLETE, [
                (status, rid, at, k) for k, rid in settled])
            return
        table = _table(WriteLedgerEntry)
        stmt = self._statement("ledger.complete", lambda: update(table).where(
            table.c.key == bindparam("k")).values(
                status=bindparam("st"), remote_id=bindparam("rid"),
                completed_at=bindparam("at")))
        self._core(s).execute(stmt, [{"k": k, "st": status, "rid": rid, "at": now}
                                     for k, rid in settled])

    def ledger_entry(self, key: str) -> WriteLedgerEntry | None:
        stmt = self._statement("ledger.entry", lambda: select(WriteLedgerEntry).where(
            WriteLedgerEntry.key == bindparam("k")))
        with self.transaction() as s:
            return s.scalars(stmt, {"k": key}).first()

    def earliest_done(self, prefix: str) -> datetime | None:
        """The earliest time a done entry whose key starts with `prefix` was written (its
        completion, else its claim), None when there is none: no hand-off written before
        it."""
        table = _table(WriteLedgerEntry)
        ranged = self.engine.dialect.name == "sqlite" and bool(prefix) and ord(prefix[-1]) < 0x10FFFF

        def build() -> Any:
            key = table.c.key
            q = select(func.min(func.coalesce(table.c.completed_at, table.c.created_at))).where(
                key.like(bindparam("like"), escape="/"), table.c.status == "done")
            if ranged:  # read by the key's index (see `_prefix_query`)
                q = q.where(key >= bindparam("lo"), key < bindparam("hi"))
            return q

        params: dict[str, Any] = {
            "like": prefix.replace("/", "//").replace("%", "/%").replace("_", "/_") + "%"}
        if ranged:
            params.update(lo=prefix, hi=prefix[:-1] + chr(ord(prefix[-1]) + 1))
        stmt = self._statement(f"ledger.earliest_done.{ranged}", build)
        with self.transaction() as s:
            value = self._core(s).execute(stmt, params).scalar()
        return None if value is None else utc_from_row(value)

    def ledger_entries_by_key(self, keys: Sequence[str]) -> dict[str, Any]:
        """`ledger_entry` of many keys in one query a page: those that exist, by key, as
        read-only rows with the `WriteLedgerEntry` attributes (no ORM object: the push reads a
        round's entries, thousands)."""
        wanted = sorted(set(keys))
        if not wanted:
            return {}
        table = _table(WriteLedgerEntry)
        stmt = self._statement("ledger.entries.by_key", lambda: select(table).where(
            table.c.key.in_(bindparam("keys", expanding=True))))
        out: dict[str, Any] = {}
        with self.transaction() as s:
            conn = self._core(s)
            for page in in_pages(wanted, PAGE):
                out.update((row.key, row) for row in conn.execute(stmt, {"keys": page}))
        return out

    def ledger_entries(self, prefix: str, *, status: str | None = None) -> list[WriteLedgerEntry]:
        """Ledger entries whose key starts with `prefix` (e.g. every digest of one contact)."""
        with self.transaction() as s:
            return self._entries_with_prefix(s, prefix, status)

    def ledger_entries_many(self, prefixes: Sequence[str], *,
                            status: str | None = None) -> dict[str, list[Any]]:
        """`ledger_entries` of many prefixes, by prefix: one query a page of prefixes (their
        conditions OR-ed), each entry given to every prefix its key starts with, as read-only
        rows with the `WriteLedgerEntry` attributes."""
        out: dict[str, list[Any]] = {p: [] for p in prefixes}
        wanted = sorted(set(prefixes))
        if not wanted:
            return out
        lengths = sorted({len(p) for p in wanted})
        with self.transaction() as s:
            for k in range(0, len(wanted), PREFIX_PAGE):
                for entry in self._entries_with_prefixes(s, wanted[k:k + PREFIX_PAGE], status):
                    for n in lengths:
                        found = out.get(entry.key[:n])
                        if found is not None and len(entry.key) >= n:
                            found.append(entry)
        return out

    def _entries_with_prefixes(self, s: Session, prefixes: Sequence[str],
                               status: str | None) -> list[Any]:
        """Entries whose key starts with one of `prefixes` (each entry once), by key: as
        `_entries_with_prefix` for each, in one statement (built per number of prefixes,
        cached). On SQLite the prefixes' ranges are a VALUES list joined to the ledger, each
        read by the key's index (OR-ed ranges make its planner scan the whole ledger)."""
        ranged = (self.engine.dialect.name == "sqlite"
                  and all(p and ord(p[-1]) < 0x10FFFF for p in prefixes))
        params: dict[str, Any] = {"st": status or ""}
        for i, prefix in enumerate(prefixes):
            if ranged:
                params[f"lo{i}"] = prefix
                params[f"hi{i}"] = prefix[:-1] + chr(ord(prefix[-1]) + 1)
            else:
                params[f"like{i}"] = (prefix.replace("/", "//").replace("%", "/%")
                                      .replace("_", "/_") + "%")
        stmt = self._statement(
            f"ledger.prefixes.{len(prefixes)}.{ranged}.{bool(status)}",
            lambda: _prefixes_query(len(prefixes), ranged, bool(status)))
        seen: set[str] = set()
        out: list[Any] = []
        for entry in self._core(s).execute(stmt, params):
            if entry.key not in seen:  # a key under two of the prefixes comes twice
                seen.add(entry.key)
                out.append(entry)
        return out

    def _entries_with_prefix(self, s: Session, prefix: str,
                             status: str | None) -> list[WriteLedgerEntry]:
        escaped = prefix.replace("/", "//").replace("%", "/%").replace("_", "/_") + "%"
        params: dict[str, Any] = {"like": escaped, "st": status or ""}
        ranged = (self.engine.dialect.name == "sqlite" and bool(prefix)
                  and ord(prefix[-1]) < 0x10FFFF)
        if ranged:
            params.update(lo=prefix, hi=prefix[:-1] + chr(ord(prefix[-1]) + 1))
        stmt = self._statement(
            f"ledger.prefix.{ranged}.{bool(status)}", lambda: _prefix_query(ranged, bool(status)))
        return list(s.scalars(stmt, params))

    def pending_writes(self, system: str | None = None) -> list[WriteLedgerEntry]:
        with self.transaction() as s:
            q = select(WriteLedgerEntry).where(WriteLedgerEntry.status == "pending")
            if system:
                q = q.where(WriteLedgerEntry.system == system)
            return list(s.scalars(q.order_by(WriteLedgerEntry.created_at)))


def _prefixes_query(count: int, ranged: bool, with_status: bool) -> Any:
    """`_prefix_query` of `count` prefixes at once: with `ranged`, the ranges [:lo0, :hi0),
    [:lo1, :hi1)... as a VALUES list joined to the ledger (exact on SQLite, see
    `_prefix_query`); else :like0, :like1... OR-ed."""
    table = _table(WriteLedgerEntry)
    key = table.c.key
    if ranged:
        rows = ", ".join(f"(:lo{i}, :hi{i})" for i in range(count))
        where = " AND w.status = :st" if with_status else ""
        names = ", ".join(f"w.{c.name}" for c in table.c)
        return text(
            f"WITH p(lo, hi) AS (VALUES {rows}) SELECT {names} FROM p JOIN write_ledger AS w "
            f"ON w.key >= p.lo AND w.key < p.hi{where} ORDER BY w.key").columns(*table.c)
    q = select(table).where(or_(*[key.like(bindparam(f"like{i}"), escape="/")
                                  for i in range(count)]))
    if with_status:
        q = q.where(table.c.status == bindparam("st"))
    return q.order_by(key)


def _prefix_query(ranged: bool, with_status: bool) -> Any:
    """Ledger entries whose key is LIKE :like (ESCAPE '/'), by key. SQLite's LIKE is
    case-insensitive, so it never uses the key's index and every call scanned the whole
    ledger; its keys compare byte-wise (UTF-8 keeps code point order), so with `ranged` the
    range [:lo, :hi) (the prefix, and the prefix with its last character incremented) holds
    exactly the keys that start with it and is read by the index. The LIKE stays beside it:
    exact on every backend (PostgreSQL's collations may not order keys that way)."""
    key = WriteLedgerEntry.key
    q = select(WriteLedgerEntry).where(key.like(bindparam("like"), escape="/"))
    if ranged:
        q = q.where(key >= bindparam("lo"), key < bindparam("hi"))
    if with_status:
        q = q.where(WriteLedgerEntry.status == bindparam("st"))
    return q.order_by(key)
