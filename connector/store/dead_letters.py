"""Dead letters: records parked for an admin (or for time), with the reason and who must act."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from connector.errors import Actor
from connector.store._base import StoreBase, _rowcount, _table, in_pages
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

    def open_letter_keys(self, *, stage: str, record_keys: Iterable[str]) -> set[str]:
        """Which of `record_keys` have an open dead letter of `stage` (keys only: a cycle asks
        about a few records, not the whole store's letters)."""
        keys = sorted(set(record_keys))
        if not keys:
            return set()
        table = _table(DeadLetter)
        stmt = self._statement("dead_letters.open_keys", lambda: select(table.c.record_key).where(
            table.c.stage == bindparam("st"),
            table.c.record_key.in_(bindparam("keys", expanding=True)),
            table.c.status == "open"))
        found: set[str] = set()
        with self.transaction() as s:
            conn = self._core(s)
            for page in in_pages(keys):
                found.update(conn.execute(stmt, {"st": stage, "keys": page}).scalars())
        return found

    def resolve_dead_letters(self, *, stage: str, record_keys: Iterable[str]) -> int:
        keys = list(record_keys)
        if not keys:
            return 0
        with self.transaction() as s:
            return self._resolve_dead_letters(s, stage, keys)

    def _resolve_dead_letters(self, s: Session, stage: str, keys: Sequence[str]) -> int:
        """`resolve_dead_letters` inside the caller's transaction. When the stage has no open
        letter (the usual case) one indexed look says so: the keys are not matched."""
        table = _table(DeadLetter)
        conn = self._core(s)
        any_open = self._statement("dead_letters.any_open", lambda: select(table.c.id).where(
            table.c.stage == bindparam("st"), table.c.status == "open").limit(1))
        if conn.execute(any_open, {"st": stage}).first() is None:
            return 0
        # Core, built once: a write-back resolves the keys of every batch it sends.
        stmt = self._statement("dead_letters.resolve", lambda: update(table).where(
            table.c.stage == bindparam("st"),
            table.c.record_key.in_(bindparam("keys", expanding=True)),
            table.c.status == "open").values(status="resolved", resolved_at=bindparam("at")))
        resolved = 0
        for page in in_pages(keys):
            resolved += _rowcount(conn.execute(
                stmt, {"st": stage, "keys": page, "at": self._now()}))
        return resolved
