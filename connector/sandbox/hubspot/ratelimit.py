"""Per-token rate limiting as HubSpot applies it to a private app: a rolling 10-second window,
a per-second cap on search, and a daily budget that resets at midnight (of the sandbox clock).

Windows run on real monotonic time (a client's back-off sleeps are real); the daily budget
follows the sandbox clock so simulated days reset it.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

from ..base import SandboxClock
from . import settings
from .settings import RateLimits

__all__ = ["Decision", "RateLimiter"]


@dataclass
class _Bucket:
    window: deque[float] = field(default_factory=deque)
    search: deque[float] = field(default_factory=deque)
    day: date | None = None
    daily_used: int = 0


@dataclass(frozen=True)
class Decision:
    """The outcome for one request: `policy` is None when allowed, else the 429 policy name;
    `headers` are the X-HubSpot-RateLimit-* headers to send (none for search)."""

    policy: str | None
    headers: dict[str, str]


class RateLimiter:
    """Counts requests per token against a `RateLimits` (changeable at run time)."""

    def __init__(
        self,
        clock: SandboxClock,
        limits: RateLimits,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.clock = clock
        self.limits = limits
        self._monotonic = monotonic
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def configure(self, limits: RateLimits) -> None:
        """Swap the limits (tests lower them to exceed them quickly)."""
        with self._lock:
            self.limits = limits

    def reset(self, token: str | None = None) -> None:
        """Forget usage of one token (or all)."""
        with self._lock:
            if token is None:
                self._buckets.clear()
            else:
                self._buckets.pop(token, None)

    def spend_daily(self, token: str, count: int) -> None:
        """Pretend `count` requests were already made today (to reach the daily limit fast)."""
        with self._lock:
            bucket = self._bucket(token)
            bucket.daily_used += count

    def _bucket(self, token: str) -> _Bucket:
        bucket = self._buckets.setdefault(token, _Bucket())
        today = self.clock.now().date()
        if bucket.day != today:
            bucket.day = today
            bucket.daily_used = 0
        return bucket

    def check(self, token: str, *, is_search: bool) -> Decision:
        """Count one request and say whether it may proceed."""
        with self._lock:
            limits = self.limits
            now = self._monotonic()
            bucket = self._bucket(token)
            while bucket.window and now - bucket.window[0] >= limits.window_seconds:
                bucket.window.popleft()
            while bucket.search and now - bucket.search[0] >= 1.0:
                bucket.search.popleft()
            policy: str | None = None
            if bucket.daily_used >= limits.daily:
                policy = settings.POLICY_DAILY
            elif is_search and len(bucket.search) >= limits.search_per_second:
                policy = settings.POLICY_SECONDLY
            elif len(bucket.window) >= limits.window_max:
                policy = settings.POLICY_TEN_SECONDLY
            if policy is None:
                bucket.window.append(now)
                bucket.daily_used += 1
                if is_search:
                    bucket.search.append(now)
            if is_search:
                return Decision(policy, {})
            remaining = max(0, limits.window_max - len(bucket.window))
            per_second = max(1, int(limits.window_max / limits.window_seconds))
            recent = sum(1 for t in bucket.window if now - t < 1.0)
            headers = {
                settings.H_DAILY: str(limits.daily),
                settings.H_DAILY_REMAINING: str(max(0, limits.daily - bucket.daily_used)),
                settings.H_INTERVAL: str(int(limits.window_seconds * 1000)),
                settings.H_MAX: str(limits.window_max),
                settings.H_REMAINING: str(remaining),
                settings.H_SECONDLY: str(per_second),
                settings.H_SECONDLY_REMAINING: str(max(0, per_second - recent)),
            }
            return Decision(policy, headers)

    def usage(self, token: str) -> dict[str, int]:
        """Current counters of a token (for tests and stats)."""
        with self._lock:
            bucket = self._bucket(token)
            return {
                "window": len(bucket.window),
                "search": len(bucket.search),
                "daily": bucket.daily_used,
            }
