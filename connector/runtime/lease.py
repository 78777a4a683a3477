"""The lease a stage run holds in the state store while it writes, so two runs of one stage
(CLI, cron, a daemon, another machine on the same PostgreSQL) never write at once.

A lease row with an expiry and a fencing number works through any connection pooler: the run
takes it (waiting up to `wait` seconds for a running holder), a heartbeat thread renews it, and
every checkpoint makes sure it is still held before the next write batch: past the last renewal's
safe window it renews synchronously, and a renewal refused (another run took the lease after it
expired) raises `LeaseLost` so the run stops writing at once.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from types import TracebackType
from typing import Self

from connector.clock import SystemClock
from connector.control import wait as stoppable_wait
from connector.errors import LeaseLost, StageBusy
from connector.store import Store

__all__ = ["LEADER", "LeaderLease", "StageLease", "instance_name", "is_dead_here", "leadership_lost"]

log = logging.getLogger("connector.runtime")

POLL_SECONDS = 0.5
# The lease row the daemons (`handshake run`) share: its holder is the active one.
LEADER = "leader"


def _pid_namespace() -> str:
    try:
        return str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        return "-"


def instance_name() -> str:
    """This process as a run's `instance`: host, pid and pid namespace (so a process of another
    container with the same host name is never mistaken for one of ours)."""
    return f"{socket.gethostname()}:{os.getpid()}:{_pid_namespace()}"


def is_dead_here(instance: str) -> bool:
    """True when `instance` names a process of this host and pid namespace that has ended."""
    host, _, rest = instance.partition(":")
    pid, _, namespace = rest.partition(":")
    if host != socket.gethostname() or namespace != _pid_namespace() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


class StageLease:
    """One run's hold on the lease `name`, as `holder` (the run id)."""

    def __init__(self, store: Store, name: str, holder: str, *, ttl: float, wait: float,
                 heartbeat: bool = True) -> None:
        self.store = store
        self.name = name
        self.holder = holder
        self.ttl = ttl
        self.wait = wait
        self.fence: int | None = None
        self._safe_until = 0.0
        self._lost = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._heartbeat = heartbeat
        self._thread: threading.Thread | None = None

    def acquire(self) -> Self:
        """Take the lease, waiting up to `wait` seconds while another run holds it; raise
        `StageBusy` (naming the holder and when its lease expires) when it stays taken."""
        deadline = time.monotonic() + self.wait
        announced = False
        while True:
            started = time.monotonic()
            fence = self.store.take_lease(self.name, self.holder, ttl_seconds=self.ttl)
            if fence is not None:
                self.fence = fence
                self._safe_until = started + self.ttl / 2
                break
            if self._holder_is_gone():
                continue
            if time.monotonic() >= deadline:
                raise self._busy()
            if not announced:
                log.warning("another %s run holds the lease; waiting up to %.0f s for it",
                            self.name, self.wait)
                announced = True
            stoppable_wait(SystemClock(), min(POLL_SECONDS, max(0.0, deadline - time.monotonic())))
        if self._heartbeat:
            self._thread = threading.Thread(target=self._beat, name=f"lease-{self.name}",
                                            daemon=True)
            self._thread.start()
        return self

    def _holder_is_gone(self) -> bool:
        """Expire the lease at once when its holder was a process of this machine that no
        longer exists (killed): no need to wait out its expiry. True when it did."""
        row = self.store.lease(self.name)
        run = self.store.get_run(row.holder) if row is not None and row.holder else None
        if row is None or run is None or not is_dead_here(run.instance):
            return False
        log.warning("the %s run holding the lease (%s) is gone: taking over", self.name,
                    run.instance)
        return self.store.expire_lease(self.name, row.holder, row.fence)

    def _busy(self) -> StageBusy:
        row = self.store.lease(self.name)
        holder = row.holder if row is not None else None
        until = row.expires_at.isoformat(timespec="seconds") if row is not None else "?"
        run = self.store.get_run(holder) if holder else None
        where = f" on {run.instance}" if run is not None and run.instance else ""
        since = (f" since {run.started_at.isoformat(timespec='seconds')}"
                 if run is not None else "")
        exc = StageBusy(
            f"another {self.name} run ({holder or 'unknown'}{where}{since}) still holds the "
            f"stage's lease after waiting {self.wait:.0f} s", stage=self.name, holder=holder)
        exc.fix = (f"let it finish (this run changes nothing meanwhile); if that process is "
                   f"gone, its lease expires at {until} and the next run takes over; "
                   f"`[runtime] lease_wait_seconds` sets how long to wait")
        return exc

    def ensure(self) -> None:
        """Raise `LeaseLost` unless this run still holds the lease (checked before writes)."""
        if self._lost:
            raise self._lost_error()
        if time.monotonic() < self._safe_until:
            return
        self._renew()
        if self._lost:
            raise self._lost_error()

    def _renew(self) -> None:
        with self._lock:
            if self._lost or self.fence is None:
                return
            started = time.monotonic()
            try:
                held = self.store.renew_lease(self.name, self.holder, self.fence,
                                              ttl_seconds=self.ttl)
            except Exception as exc:  # noqa: BLE001  (the database blinked: the next check retries)
                log.warning("could not renew the %s lease: %s", self.name, exc)
                return
            if held:
                self._safe_until = started + self.ttl / 2
            else:
                self._lost = True
                log.error("the %s lease was taken by another run: this run stops writing",
                          self.name)

    def _lost_error(self) -> LeaseLost:
        exc = LeaseLost(f"this {self.name} run lost the stage's lease (not renewed within "
                        f"{self.ttl:.0f} s, and another run took it); it stopped before its "
                        f"next write", system="state database")
        exc.fix = ("nothing to undo: the other run goes on; if the database or this machine was "
                   "paused, raise `[runtime] lease_ttl_seconds`")
        return exc

    def _beat(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            self._renew()
            if self._lost:
                return

    def release(self) -> None:
        """Stop renewing and give the lease up (kept when it was already lost)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.fence is not None and not self._lost:
            self.store.release_lease(self.name, self.holder)

    def __enter__(self) -> Self:
        return self.acquire()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()


class LeaderLease(StageLease):
    """A daemon's hold on the `leader` lease, on a store connection of its own.

    The holder is `<instance_name()>#<token>`, so the lease names the process holding it (a
    holder of this machine that died is expired at once) and two daemons in one process stay
    two holders. `try_acquire()` takes it without waiting; `ensure()`, bound as a guard of every
    stage run the daemon starts, checks it against the database before each write batch (at
    most every `check_seconds`), so a daemon whose lease was taken stops writing at once."""

    def __init__(self, store: Store, *, ttl: float, check_seconds: float = 1.0,
                 token: str = "") -> None:
        super().__init__(store, LEADER, f"{instance_name()}#{token or os.urandom(4).hex()}",
                         ttl=ttl, wait=0)
        self.check_seconds = check_seconds
        # the instance that held the lease before this daemon took it (None: it was free or
        # ours): its stage runs stopped writing when it lost the lease
        self.previous: str | None = None
        self._valid_until = 0.0

    @property
    def held(self) -> bool:
        """True while this daemon holds the lease (as far as the last check knows)."""
        return self.fence is not None and not self._lost

    def try_acquire(self) -> bool:
        """Take the lease if it is free (or its holder is known dead); never waits."""
        if self.held:
            return True
        self._lost = False
        row = self.store.lease(self.name)
        before = row.holder if row is not None else ""
        fence = self.store.take_lease(self.name, self.holder, ttl_seconds=self.ttl)
        if fence is None and self._holder_is_gone():
            fence = self.store.take_lease(self.name, self.holder, ttl_seconds=self.ttl)
        if fence is None:
            return False
        self.fence = fence
        self.previous = (before.rpartition("#")[0] or None) if before != self.holder else None
        self._safe_until = time.monotonic() + self.check_seconds
        self._valid_until = time.monotonic() + self.ttl / 2
        self._stop.clear()
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._beat, name="lease-leader", daemon=True)
            self._thread.start()
        return True

    def current_fence(self) -> tuple[str, str, int] | None:
        """(name, holder, fence number) while held: what a stage run's record is fenced by."""
        fence = self.fence
        return (self.name, self.holder, fence) if fence is not None and not self._lost else None

    def renew(self) -> bool:
        """Renew now (the daemon's heartbeat); False when the lease is no longer held."""
        self._renew()
        return self.held

    def ensure(self) -> None:
        """Raise `LeaseLost` unless this daemon still holds the lease: checked against the
        database when the last check is older than `check_seconds`."""
        if self._lost or self.fence is None:
            raise self._lost_error()
        if time.monotonic() >= self._safe_until:
            self._renew()
            if self._lost:
                raise self._lost_error()

    def _renew(self) -> None:
        with self._lock:
            if self._lost or self.fence is None:
                return
            started = time.monotonic()
            try:
                held = self.store.renew_lease(self.name, self.holder, self.fence,
                                              ttl_seconds=self.ttl)
            except Exception as exc:  # noqa: BLE001  (the database blinked: checked below)
                log.warning("could not renew the leader lease: %s", exc)
                held = None
            if held:
                self._valid_until = started + self.ttl / 2
                self._safe_until = started + self.check_seconds
            elif held is False or started >= self._valid_until:
                # taken by another daemon, or not renewed for half its ttl: another may take
                # it any moment, so this one stops writing now
                self._lost = True
                log.error("this daemon lost its leader lease (%s): it stops writing and "
                          "waits as standby", "taken by another daemon" if held is False
                          else "the state database did not answer")

    def _holder_is_gone(self) -> bool:
        row = self.store.lease(self.name)
        if row is None or not row.holder or row.expires_at is None:
            return False
        instance = row.holder.rpartition("#")[0]
        if not instance or not is_dead_here(instance):
            return False
        log.warning("the active daemon (%s) is gone: taking over", instance)
        return self.store.expire_lease(self.name, row.holder, row.fence)

    def _lost_error(self) -> LeaseLost:
        return leadership_lost()

    def release(self) -> None:
        """Stop renewing and give the lease up (kept when it was already lost)."""
        super().release()
        self.fence = None
        self._thread = None

    def abandon(self) -> None:
        """Stop renewing but keep the lease: it expires after `ttl` (a stage of this daemon
        may still be sending, so no other daemon may take it over at once)."""
        self._stop.set()


def leadership_lost() -> LeaseLost:
    """The error of a daemon that is no longer the active one."""
    exc = LeaseLost("this daemon is no longer the active one (its leader lease was taken "
                    "by another daemon or not renewed in time); it stopped before its "
                    "next write", system="state database")
    exc.fix = ("nothing to undo: the other daemon goes on and this one waits as standby; "
               "if the database or this machine was paused, raise "
               "`[daemon] leader_ttl_seconds`")
    return exc
