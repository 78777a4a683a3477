"""Dead letters: records parked for an admin (or for time), with the reason and who must act."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import select, update

from connector.errors import Actor
from connector.store._base import StoreBase, _rowcount
from connector.store.models import DeadLetter

__all__ = ["DeadLetterStore"]


class DeadLetterStore(StoreBase):
    """Parked records: one open dead letter per stage and record, counting attempts."""

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
