"""Run control: where a running stage asks "may I go on?".

The stage runtime (`connector.runtime`) sets a stop request when SIGINT/SIGTERM arrive and binds
the run's lease guard; the engines and the HTTP policy call `checkpoint()` between batches and
before each remote call, so a stop lands after the batch in flight committed and a run whose
lease was lost never writes again. Without a bound run, `checkpoint()` only honours a stop.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from connector.clock import Clock, SystemClock
from connector.errors import StopRequested

__all__ = [
    "checkpoint",
    "clear_stop",
    "current_fence",
    "current_guard",
    "guarded",
    "request_stop",
    "stop_requested",
    "wait",
]

_stop = threading.Event()
_signum: int | None = None
_guard: contextvars.ContextVar[Callable[[], None] | None] = contextvars.ContextVar(
    "handshake_run_guard", default=None)
# (lease name, holder, fence number) of the lease the guard stands for, or None
Fence = tuple[str, str, int]
_fence: contextvars.ContextVar[Callable[[], Fence | None] | None] = contextvars.ContextVar(
    "handshake_run_fence", default=None)


def request_stop(signum: int | None = None) -> None:
    """Ask every running stage of this process to stop at its next checkpoint."""
    global _signum
    _signum = signum
    _stop.set()


def clear_stop() -> None:
    """Forget a stop request (a new run starts)."""
    global _signum
    _signum = None
    _stop.clear()


def stop_requested() -> int | None:
    """The signal number of a pending stop request (0 when asked without one), else None."""
    return (_signum or 0) if _stop.is_set() else None


def checkpoint() -> None:
    """Raise `StopRequested` when a stop was asked, and let the bound run's guard raise
    (`LeaseLost`) when the run may no longer write. Cheap: call it as often as batches go."""
    if _stop.is_set():
        raise StopRequested("stopped on request", signum=_signum)
    guard = _guard.get()
    if guard is not None:
        guard()


def current_guard() -> Callable[[], None] | None:
    """The guard bound in this context (a daemon binds its leader lease around the stage runs
    it starts, and `stage_run` checks it with the stage's own lease)."""
    return _guard.get()


def current_fence() -> Fence | None:
    """The lease the bound guard stands for, as (name, holder, fence number), if it gave one:
    `stage_run` records a run only while that lease is still this holder's, checked in the
    same transaction (a process paused between its guard's check and that write)."""
    fence = _fence.get()
    return fence() if fence is not None else None


@contextmanager
def guarded(guard: Callable[[], None],
            fence: Callable[[], Fence | None] | None = None) -> Iterator[None]:
    """Bind `guard` (called by every checkpoint of this context) for the duration, with the
    lease it stands for (`fence`) when there is one."""
    token = _guard.set(guard)
    fence_token = _fence.set(fence)
    try:
        yield
    finally:
        _fence.reset(fence_token)
        _guard.reset(token)


def wait(clock: Clock, seconds: float) -> None:
    """Sleep `seconds` on `clock`, waking early (and raising) when a stop is asked, so a retry
    back-off never holds a stop for longer than it takes to notice."""
    if isinstance(clock, SystemClock) and seconds > 0:
        _stop.wait(seconds)
    else:
        clock.sleep(seconds)
    checkpoint()
