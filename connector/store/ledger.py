"""The write ledger (each remote write claimed, then settled) and the HubSpot-Salesforce links."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select, update

from connector.store._base import StoreBase
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
