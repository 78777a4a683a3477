"""The write ledger (each remote write claimed, then settled) and the HubSpot-Salesforce links."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm import Session

from connector.store._base import StoreBase, _table
from connector.store.models import IdLink, WriteLedgerEntry

__all__ = ["LedgerStore", "payload_hash"]

# Keys read in one query when claiming many writes (an IN list well under any bound limit).
CLAIM_PAGE = 500


def payload_hash(payload: Any) -> str:
    """A stable hash of a JSON-able payload (sorted keys), to tell whether a write changed."""
    raw = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(raw.encode()).hexdigest()


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

    def claim_writes(
        self, claims: Sequence[tuple[str, Any]], *, system: str, operation: str, target: str,
        run_id: str | None = None,
    ) -> list[bool]:
        """`claim_write` of many `(key, payload)` in one transaction, each as that claims it
        in turn: per claim, False when the same key is already done with the same payload
        (nothing to do), True when it is now pending (new, left by a crash, or changed). Reads
        the keys' entries in one query and writes the new and renewed ones with statements
        built once (a score run claims one write per contact scored)."""
        if not claims:
            return []
        now = self._now()
        table = _table(WriteLedgerEntry)
        read = self._statement("ledger.claims.read", lambda: select(
            table.c.key, table.c.status, table.c.payload_hash).where(
                table.c.key.in_(bindparam("keys", expanding=True))).with_for_update())
        add = self._statement("ledger.claim.insert", lambda: insert(table))
        renew = self._statement("ledger.claims.update", lambda: update(table).where(
            table.c.key == bindparam("k")).values(
                status="pending", payload_hash=bindparam("h"), run_id=bindparam("rid")))
        out: list[bool] = []
        with self.transaction() as s:
            conn = self._core(s)
            keys = sorted({key for key, _ in claims})
            known: dict[str, tuple[str, str]] = {}
            for k in range(0, len(keys), CLAIM_PAGE):
                for key, status, digest in conn.execute(read, {"keys": keys[k:k + CLAIM_PAGE]}):
                    known[key] = (status, digest)
            added: list[dict[str, Any]] = []
            renewed: dict[str, dict[str, Any]] = {}
            for key, payload in claims:
                digest = payload_hash(payload) if payload is not None else ""
                state = known.get(key)
                if state is None:
                    added.append({"key": key, "system": system, "operation": operation,
                                  "target": target, "payload_hash": digest,
                                  "status": "pending", "remote_id": None, "run_id": run_id,
                                  "created_at": now, "completed_at": None})
                elif state == ("done", digest):
                    out.append(False)
                    continue
                else:
                    renewed[key] = {"k": key, "h": digest, "rid": run_id}
                known[key] = ("pending", digest)
                out.append(True)
            if added:
                conn.execute(add, added)
            if renewed:
                conn.execute(renew, list(renewed.values()))
        return out

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
        table = _table(WriteLedgerEntry)
        stmt = self._statement("ledger.complete", lambda: update(table).where(
            table.c.key == bindparam("k")).values(
                status=bindparam("st"), remote_id=bindparam("rid"),
                completed_at=bindparam("at")))
        now = self._now()
        status = "done" if ok else "failed"
        with self.transaction() as s:
            self._core(s).execute(stmt, [{"k": k, "st": status, "rid": rid, "at": now}
                                         for k, rid in settled])

    def ledger_entry(self, key: str) -> WriteLedgerEntry | None:
        stmt = self._statement("ledger.entry", lambda: select(WriteLedgerEntry).where(
            WriteLedgerEntry.key == bindparam("k")))
        with self.transaction() as s:
            return s.scalars(stmt, {"k": key}).first()

    def ledger_entries(self, prefix: str, *, status: str | None = None) -> list[WriteLedgerEntry]:
        """Ledger entries whose key starts with `prefix` (e.g. every digest of one contact)."""
        with self.transaction() as s:
            return self._entries_with_prefix(s, prefix, status)

    def ledger_entries_many(self, prefixes: Sequence[str], *,
                            status: str | None = None) -> dict[str, list[WriteLedgerEntry]]:
        """`ledger_entries` of many prefixes in one transaction, by prefix."""
        with self.transaction() as s:
            return {p: self._entries_with_prefix(s, p, status) for p in prefixes}

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
