"""Sync runs and stage leases: what ran, how it ended, and who may write now."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, or_, select, update

from connector.errors import Actor
from connector.store._base import StoreBase, _rowcount
from connector.store.models import DeadLetter, Lease, SyncRun

__all__ = ["RunStore"]


class _Fenced(Exception):
    """A fence of `begin_run` no longer held: its transaction is rolled back."""


class RunStore(StoreBase):
    """The `sync_runs` records and the `leases` rows the stage runtime keeps."""

    # --- runs -------------------------------------------------------------------------------

    def start_run(self, stage: str, *, trigger: str = "manual", instance: str = "",
                  run_id: str | None = None) -> str:
        """Record a run of `stage` as running, unfenced; returns its id (`run_id` when given)."""
        run_id = run_id or str(uuid.uuid4())
        self.begin_run(stage, trigger=trigger, instance=instance, run_id=run_id, fences=(),
                       abandon=(), reason="")
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

    def begin_run(self, stage: str, *, trigger: str, instance: str, run_id: str,
                  fences: Sequence[tuple[str, str, int]], abandon: Sequence[str],
                  reason: str) -> list[str] | None:
        """Record a run of `stage` as running and mark the runs of `abandon` still recorded as
        running as abandoned, in one transaction fenced by `fences` (lease name, holder, fence
        number): when any of those leases is no longer its holder's at that fence, nothing is
        written and None is returned; else the ids abandoned.

        Each fence is checked by a write to its lease row, the transaction's first statements:
        that holds the row (PostgreSQL) or the database (SQLite) until the commit, so a taker of
        the lease waits for this transaction, and a run is never recorded after its lease (or
        its daemon's leadership) changed hands."""
        try:
            with self.transaction() as s:
                for name, holder, fence in fences:
                    if not _rowcount(s.execute(
                        update(Lease)
                        .where(Lease.name == name, Lease.holder == holder, Lease.fence == fence)
                        .values(fence=Lease.fence)
                    )):
                        raise _Fenced
                now = self._now()
                ids = list(s.scalars(select(SyncRun.id).where(
                    SyncRun.stage.in_(list(abandon)), SyncRun.status == "running",
                    SyncRun.id != run_id))) if abandon else []
                if ids:
                    s.execute(update(SyncRun).where(SyncRun.id.in_(ids)).values(
                        status="abandoned", finished_at=now, error=reason))
                s.add(SyncRun(id=run_id, stage=stage, trigger=trigger, instance=instance[:128],
                              started_at=now, status="running", counts={}))
                return ids
        except _Fenced:
            return None

    def runs(self, *, stage: str | None = None, limit: int = 50) -> list[SyncRun]:
        """The newest runs first (of one stage, or all)."""
        with self.transaction() as s:
            q = select(SyncRun)
            if stage:
                q = q.where(SyncRun.stage == stage)
            return list(s.scalars(q.order_by(SyncRun.started_at.desc()).limit(limit)))

    def runs_since(self, since: datetime | None = None) -> list[SyncRun]:
        """Every run started at or after `since` (all runs when None), oldest first: what
        `handshake status` and `/metrics` add up (their figures equal these records)."""
        with self.transaction() as s:
            q = select(SyncRun)
            if since is not None:
                q = q.where(SyncRun.started_at >= since)
            return list(s.scalars(q.order_by(SyncRun.started_at, SyncRun.id)))

    def runs_finished(self, *, since: datetime | None = None, before: datetime | None = None,
                      unfinished: bool = False) -> list[SyncRun]:
        """The runs that finished in [since, before) (either bound open when None), and with
        `unfinished` those not finished yet too: what `/metrics` adds to its totals."""
        with self.transaction() as s:
            bounds: list[ColumnElement[bool]] = [SyncRun.finished_at.is_not(None)]
            if since is not None:
                bounds.append(SyncRun.finished_at >= since)
            if before is not None:
                bounds.append(SyncRun.finished_at < before)
            where = and_(*bounds)
            if unfinished:
                where = or_(where, SyncRun.finished_at.is_(None))
            return list(s.scalars(select(SyncRun).where(where)
                                  .order_by(SyncRun.started_at, SyncRun.id)))

    def last_runs(self, *, statuses: Sequence[str] | None = None) -> dict[str, SyncRun]:
        """The newest run of each stage (only runs in `statuses` when given), by stage."""
        with self.transaction() as s:
            newest = select(SyncRun.stage, func.max(SyncRun.started_at).label("at"))
            if statuses is not None:
                newest = newest.where(SyncRun.status.in_(list(statuses)))
            sub = newest.group_by(SyncRun.stage).subquery()
            q = select(SyncRun).join(sub, (SyncRun.stage == sub.c.stage)
                                     & (SyncRun.started_at == sub.c.at))
            if statuses is not None:
                q = q.where(SyncRun.status.in_(list(statuses)))
            return {r.stage: r for r in s.scalars(q.order_by(SyncRun.started_at, SyncRun.id))}

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

    # --- leases -----------------------------------------------------------------------------

    def acquire_lease(self, name: str, holder: str, *, ttl_seconds: float) -> bool:
        """Take or renew the named lease; False when another holder's lease has not expired."""
        return self.take_lease(name, holder, ttl_seconds=ttl_seconds) is not None

    def take_lease(self, name: str, holder: str, *, ttl_seconds: float) -> int | None:
        """Take the named lease for `holder` (or renew it), or None when another holder's lease
        has not expired. Returns the fencing number, raised whenever the holder changes."""
        now = self._now()
        expires = now + timedelta(seconds=ttl_seconds)
        with self.transaction() as s:
            # RETURNING tells whether the row was new (rowcount is -1 here on PostgreSQL)
            inserted = s.execute(
                self._insert(Lease)
                .values(name=name, holder=holder, expires_at=expires, fence=1, acquired_at=now)
                .on_conflict_do_nothing(index_elements=["name"])
                .returning(Lease.fence)
            ).first()
            if inserted is not None:
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
