"""Client-side rate limiters: a rolling window (N calls per W seconds) and a concurrency cap.

Both are thread-safe. The rolling limiter is timed and put to sleep by the injected `Clock`, so
tests with `FrozenClock` run instantly and can read the waits in `clock.slept`.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol

from connector.clock import Clock
from connector.control import wait

__all__ = ["ConcurrencyLimiter", "Limiter", "LimiterBusy", "RollingWindowLimiter"]


class LimiterBusy(Exception):
    """A concurrency slot did not free up within the acquire timeout."""


class Limiter(Protocol):
    """What the policy needs of a limiter: hold it around one request, and pause it."""

    name: str

    def hold(self) -> AbstractContextManager[None]: ...

    def pause(self, seconds: float) -> None: ...


class RollingWindowLimiter:
    """At most `capacity` acquisitions in any `window` seconds (a sliding log of call times).

    `capacity` is `floor(limit * safety_margin)`, at least 1, so a 190-per-10 s tier with a 0.9
    margin admits 171. `pause(seconds)` makes every caller wait, as after a 429 from the server.
    """

    def __init__(
        self,
        limit: int,
        window: float,
        *,
        clock: Clock,
        safety_margin: float = 1.0,
        name: str = "rolling",
    ) -> None:
        if limit < 1 or window <= 0:
            raise ValueError("a rolling limit needs limit >= 1 and window > 0")
        self.name = name
        self.limit = limit
        self.window = float(window)
        self.capacity = max(1, math.floor(limit * safety_margin))
        self._clock = clock
        self._calls: deque[float] = deque()
        self._paused_until = -math.inf
        self._lock = threading.Lock()

    def _delay(self, now: float) -> float:
        """Seconds until one more call is allowed (0 if allowed now); caller holds the lock."""
        while self._calls and self._calls[0] <= now - self.window:
            self._calls.popleft()
        wait = max(0.0, self._paused_until - now)
        if len(self._calls) >= self.capacity:
            wait = max(wait, self._calls[0] + self.window - now)
        return wait

    def try_acquire(self) -> bool:
        """Take a slot if one is free now; never waits."""
        with self._lock:
            now = self._clock.monotonic()
            if self._delay(now) > 0:
                return False
            self._calls.append(now)
            return True

    def acquire(self) -> float:
        """Take a slot, sleeping on the clock until one is free. Returns the seconds waited."""
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock.monotonic()
                delay = self._delay(now)
                if delay <= 0:
                    self._calls.append(now)
                    return waited
            # sleep outside the lock so other threads can read the state meanwhile
            wait(self._clock, delay)  # a stop request wakes it
            waited += delay

    @contextmanager
    def hold(self) -> Iterator[None]:
        """Acquire for one request (a rolling slot is spent on taking, nothing to give back)."""
        self.acquire()
        yield

    def pause(self, seconds: float) -> None:
        """Block every caller for `seconds` from now (the server said the window is full)."""
        with self._lock:
            until = self._clock.monotonic() + seconds
            self._paused_until = max(self._paused_until, until)

    def in_window(self) -> int:
        """How many calls the current window holds."""
        with self._lock:
            self._delay(self._clock.monotonic())
            return len(self._calls)

    def __repr__(self) -> str:
        return (
            f"RollingWindowLimiter({self.name!r}, {self.capacity}/{self.limit} per "
            f"{self.window:g}s)"
        )


class ConcurrencyLimiter:
    """At most `max_concurrent` requests in flight at once (a bounded semaphore).

    Waiting for a slot is real waiting on other threads, so it is bounded by `acquire_timeout`
    (wall seconds, None for no bound) and raises `LimiterBusy` past it.
    """

    def __init__(
        self,
        max_concurrent: int,
        *,
        acquire_timeout: float | None = None,
        name: str = "concurrency",
    ) -> None:
        if max_concurrent < 1:
            raise ValueError("max_concurrent must be at least 1")
        self.name = name
        self.max_concurrent = max_concurrent
        self.acquire_timeout = acquire_timeout
        self._slots = threading.BoundedSemaphore(max_concurrent)
        self._lock = threading.Lock()
        self._in_flight = 0
        self.peak = 0

    @contextmanager
    def hold(self) -> Iterator[None]:
        """Hold one slot for the duration of a request."""
        if not self._slots.acquire(timeout=self.acquire_timeout):
            raise LimiterBusy(f"no free {self.name} slot after {self.acquire_timeout}s")
        with self._lock:
            self._in_flight += 1
            self.peak = max(self.peak, self._in_flight)
        try:
            yield
        finally:
            with self._lock:
                self._in_flight -= 1
            self._slots.release()

    def pause(self, seconds: float) -> None:
        """A concurrency cap has no window to pause; the retry wait does the backing off."""

    @property
    def in_flight(self) -> int:
        """Requests holding a slot right now."""
        with self._lock:
            return self._in_flight

    def __repr__(self) -> str:
        return f"ConcurrencyLimiter({self.name!r}, max {self.max_concurrent})"
