"""The write ledger (each remote write claimed, then settled) and the HubSpot-Salesforce links."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, and_, bindparam, select, update

from connector.store._base import StoreBase, _table
from connector.store.models import IdLink, WriteLedgerEntry

__all__ = ["LedgerStore", "payload_hash"]


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
        with self.transaction() as s:
            return s.get(WriteLedgerEntry, key)

    def ledger_entries(self, prefix: str, *, status: str | None = None) -> list[WriteLedgerEntry]:
        """Ledger entries whose key starts with `prefix` (e.g. every digest of one contact)."""
        with self.transaction() as s:
            q = select(WriteLedgerEntry).where(self._key_prefix(prefix))
            if status:
                q = q.where(WriteLedgerEntry.status == status)
            return list(s.scalars(q.order_by(WriteLedgerEntry.key)))

    def pending_writes(self, system: str | None = None) -> list[WriteLedgerEntry]:
        with self.transaction() as s:
            q = select(WriteLedgerEntry).where(WriteLedgerEntry.status == "pending")
            if system:
                q = q.where(WriteLedgerEntry.system == system)
            return list(s.scalars(q.order_by(WriteLedgerEntry.created_at)))

    def _key_prefix(self, prefix: str) -> ColumnElement[bool]:
        """Keys starting with `prefix`. SQLite's LIKE is case-insensitive, so it never uses the
        key's index and every call scanned the whole ledger; its keys compare byte-wise
        (UTF-8 keeps code point order), so the range [prefix, prefix with its last character
        incremented) holds exactly the keys that start with it, and is read by the index. The
        LIKE stays beside it (exact on every backend; PostgreSQL's collations may not order
        keys that way)."""
        like = WriteLedgerEntry.key.startswith(prefix, autoescape=True)
        if self.engine.dialect.name != "sqlite" or not prefix or ord(prefix[-1]) >= 0x10FFFF:
            return like
        upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        return and_(WriteLedgerEntry.key >= prefix, WriteLedgerEntry.key < upper, like)
