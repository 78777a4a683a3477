"""One context every stage runs in: `stage_run(config, stage)`.

It opens the state store, takes the stage's lease (waiting for a running holder), records the
run (`running` -> `ok` | `degraded` | `stopped` | `failed` | `interrupted`; runs left `running`
by a killed process become `abandoned`), binds the run id to every log line, turns SIGINT and
SIGTERM into a clean stop, and closes whatever the stage opened, whatever happens. The stage
builds its pieces inside the context, so a failure while building (a refused login) is recorded
like any other.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import signal
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, cast

from connector.clock import Clock, SystemClock
from connector.config import Config
from connector.control import current_fence, current_guard, guarded
from connector.errors import ExitCode, LeaseLost, QuotaExhausted, StopRequested
from connector.logs import bind_run
from connector.runtime.lease import StageLease, instance_name, leadership_lost
from connector.runtime.signals import stop_on_signals
from connector.runtime.wiring import open_store
from connector.store import Store

__all__ = ["LEASES", "StageResult", "StageRun", "lease_name", "stage_run"]

log = logging.getLogger("connector.runtime")

# Which lease each recorded stage takes: stages that write the same data share one.
LEASES: dict[str, str] = {
    "pull": "pull",
    "backfill-pull": "pull",
    "dlq-retry": "pull",
    "score": "score",
    "backfill-score": "score",
    "push": "push",
    "backfill-push": "push",
    "backfill-fields": "push",
    "pullback": "pullback",
    "backfill-pullback": "pullback",
    # the webhooks' targeted sync: pull, score and push of the queued contacts
    "webhook-pull": "pull",
    "webhook-score": "score",
    "webhook-push": "push",
}


def lease_name(stage: str) -> str:
    """The lease a stage holds while it runs."""
    return LEASES.get(stage, stage)


def _family(lease: str) -> tuple[str, ...]:
    return tuple(s for s, name in LEASES.items() if name == lease) or (lease,)


@dataclass
class StageResult:
    """How a stage run ended, for the CLI, the jobs and the daemon."""

    run_id: str
    status: str  # ok | degraded | stopped (quota: resumes next cycle) | failed | interrupted
    counts: Counter[str] = field(default_factory=Counter)
    error: str | None = None
    planned: list[dict[str, Any]] = field(default_factory=list)  # dry runs: what would be written
    parked: dict[str, int] = field(default_factory=dict)  # for an admin, by error code
    problems: list[str] = field(default_factory=list)  # mapping problems met (file, key, fix)

    @property
    def exit_code(self) -> ExitCode:
        """The README's exit code for this ending."""
        return {"ok": ExitCode.OK, "degraded": ExitCode.DEGRADED,
                "stopped": ExitCode.QUOTA}.get(self.status, ExitCode.FAILED)


class _Closeable(Protocol):
    def close(self) -> None: ...


C = TypeVar("C", bound=_Closeable)


class StageRun:
    """What a stage body gets: the config, the store, the clock, the run id, the result to
    fill, and `own()` to have whatever it opens closed when the run ends."""

    def __init__(self, config: Config, stage: str, store: Store, clock: Clock, run_id: str,
                 resources: ExitStack) -> None:
        self.config = config
        self.stage = stage
        self.store = store
        self.clock = clock
        self.run_id = run_id
        self.result = StageResult(run_id, "running")
        self._resources = resources

    def own(self, thing: C) -> C:
        """Close `thing` when the run ends (in reverse order of `own` calls)."""
        self._resources.callback(thing.close)
        return thing

    def on_close(self, action: Callable[[], None]) -> None:
        """Run `action` when the run ends, before what was owned earlier is closed."""
        self._resources.callback(action)


@contextmanager
def stage_run(config: Config, stage: str, *, trigger: str = "manual",
              clock: Clock | None = None,
              guard: Callable[[], None] | None = None) -> Iterator[StageRun]:
    """Run the body as one recorded, leased, stoppable run of `stage`.

    `guard` (default: the guard bound where the run starts, such as the daemon's leader lease)
    is checked before the run starts and at every checkpoint, with the stage's own lease: when
    it raises (`LeaseLost`) nothing more is written and the run is recorded failed.

    A spent daily quota ends the run `stopped` (the body's exception is swallowed: the next
    cycle resumes); records parked for an admin during the run make it `degraded`; a stop
    request makes it `interrupted` and re-raises `StopRequested`; any other failure is recorded
    `failed` and re-raised for the caller to report.
    """
    clock = clock or SystemClock()
    settings = config.runtime
    outer = guard if guard is not None else current_guard()
    if outer is not None:
        outer()  # a daemon no longer the active one starts nothing
    run_id = str(uuid.uuid4())
    with stop_on_signals(settings.stop_timeout_seconds), ExitStack() as resources:
        store = open_store(config, clock)
        resources.callback(store.close)
        lease = StageLease(store, lease_name(stage), run_id, ttl=settings.lease_ttl_seconds,
                           wait=settings.lease_wait_seconds,
                           heartbeat=":memory:" not in config.state.database_url)
        lease.acquire()
        resources.callback(lease.release)
        if outer is not None:
            outer()  # the lease may have been waited for
        abandoned = _begin(store, lease, outer, stage, trigger, run_id)
        if abandoned:
            log.warning("%d earlier %s run(s) had died without finishing: recorded as abandoned",
                        len(abandoned), lease.name)
        started = store.get_run(run_id)
        run = StageRun(config, stage, store, clock, run_id, resources)
        result = run.result
        with bind_run(run_id), guarded(_checks(outer, lease.ensure)), batch_collection():
            try:
                with ExitStack() as owned:
                    run._resources = owned
                    yield run
            except QuotaExhausted as exc:
                result.status, result.error = "stopped", str(exc)
                log.warning("stopped until the quota resets: %s", exc)
            except (StopRequested, KeyboardInterrupt) as exc:
                signum = getattr(exc, "signum", None) or signal.SIGINT
                result.status = "interrupted"
                result.error = f"stopped by {signal.Signals(signum).name}"
                _finish(store, result)
                log.warning("run interrupted by %s: the batches written so far are committed; "
                            "the next run resumes", signal.Signals(signum).name)
                raise
            except BaseException as exc:
                result.status = "failed"
                result.error = f"{type(exc).__name__}: {exc}"[:2000]
                _finish(store, result)
                raise
            if result.status in ("running", "degraded"):
                since = started.started_at if started is not None else clock.now()
                result.parked = store.admin_letters_since(_family(lease.name), since)
                if result.status == "running":
                    result.status = "ok"
                if result.parked:
                    result.status = "degraded"
                    log.warning("finished, but %d record(s) were parked for an admin: %s "
                                "(`handshake dlq list` shows them)", sum(result.parked.values()),
                                ", ".join(f"{k} {n}" for k, n in sorted(result.parked.items())))
            _finish(store, result)


# While a stage runs: the young generation is collected every this many allocations (Python's
# default, 700, suits interactive programs; a stage allocates and frees a page of records at a
# time, nearly all of it freed by reference counting, and the default made the collector run
# about one full collection per thousand contacts scored: a fifth of the score stage's CPU).
STAGE_GC_THRESHOLD = 50_000
_gc_lock = threading.Lock()
_gc_depth = 0
_gc_saved: tuple[int, int, int] = gc.get_threshold()


@contextmanager
def batch_collection() -> Iterator[None]:
    """Collector thresholds for batch work while any stage runs (stages nest: a backfill runs
    stages, the daemon one at a time); the process's own restored, and the memory the stages
    freed released, when the last one ends."""
    global _gc_depth, _gc_saved
    with _gc_lock:
        if _gc_depth == 0:
            _gc_saved = gc.get_threshold()
            gc.set_threshold(STAGE_GC_THRESHOLD, _gc_saved[1], _gc_saved[2])
        _gc_depth += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_depth -= 1
            if _gc_depth == 0:
                gc.set_threshold(*_gc_saved)
                release_memory()


def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's `malloc_trim`, or None where the C library has none (musl, macOS)."""
    try:
        trim = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return cast(Callable[[int], int], trim)


_TRIM = _malloc_trim()


def release_memory() -> None:
    """Hand the memory the stages freed back to the system (well under a millisecond). Python
    returns freed blocks to the C allocator, which keeps them for the process: without this,
    a stage's pages stayed resident after it ended and the next stage grew on top of them, so
    a daemon's (or the demo's) peak was the sum of its stages' peaks rather than the largest."""
    if _TRIM is not None:
        _TRIM(0)


def _begin(store: Store, lease: StageLease, outer: Callable[[], None] | None, stage: str,
           trigger: str, run_id: str) -> list[str]:
    """Record the run (and the dead runs of its family abandoned) while its stage lease and
    its daemon's leadership, if any, are still held: checked in the same transaction, so a
    process paused after its last check (a lost network, SIGSTOP) records nothing once it
    resumes. Raise `LeaseLost` when either changed hands."""
    assert lease.fence is not None
    fences = [(lease.name, lease.holder, lease.fence)]
    leader = current_fence() if outer is not None else None
    if leader is not None:
        fences.append(leader)
    abandoned = store.begin_run(
        stage, trigger=trigger, instance=instance_name(), run_id=run_id, fences=fences,
        abandon=_family(lease.name),
        reason="its process ended without finishing (killed or lost); the next run took over")
    if abandoned is not None:
        return abandoned
    if leader is not None:
        row = store.lease(leader[0])
        if row is None or (row.holder, row.fence) != leader[1:]:
            raise leadership_lost()
    exc = LeaseLost(f"this {stage} run's lease was taken by another run before it started; "
                    "it wrote nothing", system="state database")
    exc.fix = "nothing to undo: the other run goes on; the next cycle runs this stage again"
    raise exc


def _checks(outer: Callable[[], None] | None,
            ensure: Callable[[], None]) -> Callable[[], None]:
    """The stage lease's check, after the outer guard's (the daemon's leadership) if any."""
    if outer is None:
        return ensure

    def both() -> None:
        outer()
        ensure()

    return both


def _finish(store: Store, result: StageResult) -> None:
    try:
        counts = dict(result.counts)
        if result.parked:
            counts["parked_for_admin"] = sum(result.parked.values())
        store.finish_run(result.run_id, status=result.status, counts=counts, error=result.error)
    except Exception:  # the database is gone too: the next run records this one abandoned
        log.error("could not record how run %s ended (status %s)", result.run_id, result.status,
                  exc_info=log.isEnabledFor(logging.DEBUG))
