"""The webhook queue: contacts HubSpot's webhooks said changed, waiting for the targeted sync.

One row per contact however many events name it (a contact queued twice is synced once).
A sync takes a batch (claiming the rows with its run id), and when done deletes the rows no
event touched meanwhile; a row an event touched after it was taken becomes pending again, so
the newer change is synced too. A claim older than `reclaim_after` (its run died) is taken
again by the next sync.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from sqlalchemy import delete, func, or_, select, update

from connector.store._base import StoreBase, _rowcount
from connector.store.models import WebhookQueueEntry

__all__ = ["WebhookQueueStore"]

Q = WebhookQueueEntry


class WebhookQueueStore(StoreBase):
    """Enqueue contact ids, take a batch, mark it done (or release it), read the depth."""

    def enqueue_webhook_contacts(self, ids: Iterable[str], *, kind: str = "") -> int:
        """Queue contacts (idempotent per contact); returns how many distinct contacts."""
        unique = list(dict.fromkeys(str(i) for i in ids if str(i)))
        if not unique:
            return 0
        now = self._now()
        stmt = self._insert(Q).values([
            {"hubspot_id": cid, "kind": kind[:32], "seq": 1, "queued_at": now, "updated_at": now}
            for cid in unique
        ])
        stmt = stmt.on_conflict_do_update(
            index_elements=["hubspot_id"],
            set_={"seq": Q.seq + 1, "kind": stmt.excluded.kind,
                  "updated_at": stmt.excluded.updated_at},
        )
        with self.transaction() as s:
            s.execute(stmt)
        return len(unique)

    def take_webhook_batch(self, run_id: str, *, limit: int = 100,
                           reclaim_after: timedelta = timedelta(minutes=10)) -> list[str]:
        """Claim up to `limit` pending contacts, oldest first, for run `run_id`."""
        now = self._now()
        with self.transaction() as s:
            ids = list(s.scalars(
                select(Q.hubspot_id)
                .where(or_(Q.taken_by.is_(None), Q.taken_at < now - reclaim_after))
                .order_by(Q.queued_at, Q.hubspot_id).limit(limit)
            ))
            if ids:
                s.execute(update(Q).where(Q.hubspot_id.in_(ids))
                          .values(taken_seq=Q.seq, taken_by=run_id, taken_at=now))
            return ids

    def finish_webhook_batch(self, run_id: str, ids: Iterable[str]) -> int:
        """The batch is synced: delete its rows, except those an event touched since they
        were taken (pending again). Returns how many rows were deleted."""
        chosen = list(ids)
        if not chosen:
            return 0
        mine = (Q.hubspot_id.in_(chosen), Q.taken_by == run_id)
        with self.transaction() as s:
            done = _rowcount(s.execute(delete(Q).where(*mine, Q.seq == Q.taken_seq)))
            s.execute(update(Q).where(*mine).values(taken_seq=None, taken_by=None,
                                                    taken_at=None))
        return done

    def release_webhook_batch(self, run_id: str, ids: Iterable[str]) -> None:
        """The sync of the batch failed: its rows are pending again for the next one."""
        chosen = list(ids)
        if not chosen:
            return
        with self.transaction() as s:
            s.execute(update(Q).where(Q.hubspot_id.in_(chosen), Q.taken_by == run_id)
                      .values(taken_seq=None, taken_by=None, taken_at=None))

    def webhook_queue_depth(self) -> int:
        """Contacts waiting for (or in) a targeted sync."""
        with self.transaction() as s:
            return int(s.scalar(select(func.count()).select_from(Q)) or 0)
