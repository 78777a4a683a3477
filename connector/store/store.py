"""The state store: SQLite by default (WAL), PostgreSQL by URL; schema kept by Alembic.

`Store` is one facade over the store's parts, each a mixin on `StoreBase` (`_base.py`: engine,
sessions, schema, and the boundary where database failures become `StoreError`s):

    bookmarks.py      BookmarkStore     where each stream resumes
    contacts.py       ContactStore      contacts and activities
    scores.py         ScoreStore        scores and lifecycle transitions
    ledger.py         LedgerStore       the write ledger and the HubSpot-Salesforce id links
    dead_letters.py   DeadLetterStore   records parked for an admin
    sales.py          SalesStore        sales outcomes, SLA timers, round-robin pointers
    store.py          Store             sync runs and stage leases, and the facade itself

Each method is one short transaction, so a crash never leaves half a batch behind, and a
bookmark can be written in the same transaction as the records it covers (`transaction()`).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import delete, update

from connector.store._base import _rowcount
from connector.store.bookmarks import BookmarkStore
from connector.store.contacts import ActivityRecord, ContactRecord, ContactStore
from connector.store.dead_letters import DeadLetterStore
from connector.store.ledger import LedgerStore, payload_hash
from connector.store.models import Lease, SyncRun
from connector.store.sales import SalesStore
from connector.store.scores import ScoreStore

__all__ = ["ActivityRecord", "ContactRecord", "Store", "payload_hash"]


class Store(BookmarkStore, ContactStore, ScoreStore, LedgerStore, DeadLetterStore, SalesStore):
    """Repository over the state database; every flow goes through it."""

    # --- runs -------------------------------------------------------------------------------------

    def start_run(self, stage: str, *, trigger: str = "manual", instance: str = "") -> str:
        run_id = str(uuid.uuid4())
        with self.transaction() as s:
            s.add(
                SyncRun(
                    id=run_id,
                    stage=stage,
                    trigger=trigger,
                    instance=instance,
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
        with self.transaction() as s:
            s.execute(
                update(SyncRun)
                .where(SyncRun.id == run_id)
                .values(finished_at=self._now(), status=status, counts=dict(counts or {}), error=error)
            )

    def get_run(self, run_id: str) -> SyncRun | None:
        with self.transaction() as s:
            return s.get(SyncRun, run_id)

    # --- leases -----------------------------------------------------------------------------------

    def acquire_lease(self, name: str, holder: str, *, ttl_seconds: float) -> bool:
        """Take or renew the named lease; False when another holder's lease has not expired."""
        from datetime import timedelta

        now = self._now()
        expires = now + timedelta(seconds=ttl_seconds)
        with self.transaction() as s:
            s.execute(
                self._insert(Lease)
                .values(name=name, holder=holder, expires_at=expires)
                .on_conflict_do_nothing(index_elements=["name"])
            )
            taken = _rowcount(s.execute(
                update(Lease)
                .where(Lease.name == name)
                .where((Lease.holder == holder) | (Lease.expires_at < now))
                .values(holder=holder, expires_at=expires)
            ))
            return bool(taken)

    def release_lease(self, name: str, holder: str) -> None:
        with self.transaction() as s:
            s.execute(delete(Lease).where(Lease.name == name, Lease.holder == holder))
