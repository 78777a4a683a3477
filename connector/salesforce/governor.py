"""The allocation governor: Handshake spends at most its share of the org's daily API calls.

Salesforce counts API calls over a rolling 24 hours and reports them on every REST answer:
`Sforce-Limit-Info: api-usage=N/M` (the whole org), and `per-app-api-usage=N/M(appName=...)`
when the connected app has its own limit. Other integrations share the allocation, so
Handshake may use `share * M` calls in any 24 hours, and never more than the org has left:

    allowance = min(floor(share * M) - Handshake's calls in the last 24 h,  M - N)

Handshake's own calls are the per-app figure when Salesforce reports one, otherwise the calls
this governor counted. A new run starts from the previous run's `snapshot()` (stored by the
caller: the call times of the last 24 hours and the allocation last seen), so the share holds
across runs and a spent share refuses the very first call. Without a snapshot the allocation is
unknown until the first answer, and that one call is allowed to learn it.
"""

from __future__ import annotations

import math
import re
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from connector.clock import Clock, SystemClock
from connector.errors import QuotaExhausted
from connector.salesforce import settings as ss
from connector.salesforce.settings import SALESFORCE_SYSTEM

__all__ = ["AllocationGovernor", "GovernorSnapshot", "Usage", "parse_limit_info"]

_API_USAGE = re.compile(ss.API_USAGE_RE)
_PER_APP = re.compile(ss.PER_APP_USAGE_RE)


@dataclass(frozen=True, slots=True)
class Usage:
    """What one `Sforce-Limit-Info` header says: the org's calls and, if set, the app's."""

    used: int
    allowed: int
    app_used: int | None = None
    app_allowed: int | None = None


@dataclass(frozen=True, slots=True)
class GovernorSnapshot:
    """What the next run needs: Handshake's call times in the window and the allocation."""

    calls: tuple[datetime, ...] = ()
    allowed: int | None = None

    def to_json(self) -> dict[str, Any]:
        """A JSON-able form, for the state store."""
        return {"calls": [c.isoformat() for c in self.calls], "allowed": self.allowed}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> GovernorSnapshot:
        """The snapshot `to_json` wrote."""
        allowed = data.get("allowed")
        return cls(
            tuple(datetime.fromisoformat(c) for c in data.get("calls") or ()),
            int(allowed) if allowed is not None else None,
        )


def parse_limit_info(value: str | None) -> Usage | None:
    """The `Usage` in a `Sforce-Limit-Info` value, or None when it has no `api-usage`."""
    if not value:
        return None
    found = _API_USAGE.search(value)
    if found is None:
        return None
    app = _PER_APP.search(value)
    return Usage(
        int(found.group(1)),
        int(found.group(2)),
        int(app.group(1)) if app else None,
        int(app.group(2)) if app else None,
    )


class AllocationGovernor:
    """Counts Handshake's calls, reads the org's usage, and refuses a call past the share."""

    def __init__(
        self,
        share: float,
        *,
        clock: Clock | None = None,
        snapshot: GovernorSnapshot | None = None,
    ) -> None:
        if not 0 < share <= 1:
            raise ValueError("share must be in (0, 1]")
        self.share = share
        self.clock: Clock = clock or SystemClock()
        self.usage: Usage | None = None
        self._allowed = snapshot.allowed if snapshot is not None else None
        self._calls: deque[datetime] = deque(sorted(snapshot.calls) if snapshot else ())
        self._lock = threading.RLock()  # `take` checks and counts as one step

    # --- what the client reports ---------------------------------------------------------

    def record_call(self) -> None:
        """One call Handshake sent (counted whatever its answer)."""
        with self._lock:
            self._calls.append(self.clock.now())

    def observe(self, headers: Mapping[str, str]) -> None:
        """Read `Sforce-Limit-Info` from an answer's headers (any case)."""
        value = next(
            (v for k, v in headers.items() if k.lower() == ss.LIMIT_INFO_HEADER.lower()), None
        )
        usage = parse_limit_info(value)
        if usage is not None:
            with self._lock:
                self.usage = usage
                self._allowed = usage.allowed

    # --- what the client asks ------------------------------------------------------------

    def own_calls(self) -> int:
        """Handshake's calls in the rolling 24 hours (Salesforce's per-app figure if given)."""
        with self._lock:
            self._prune()
            if self.usage is not None and self.usage.app_used is not None:
                return self.usage.app_used
            return len(self._calls)

    def budget(self) -> int | None:
        """Calls Handshake may make in any 24 hours; None while the allocation is unknown."""
        usage, allowed = self.usage, self._allowed
        if allowed is None:
            return None
        budget = math.floor(self.share * allowed)
        if usage is not None and usage.app_allowed is not None:
            budget = min(budget, usage.app_allowed)
        return budget

    def allowance(self) -> int | None:
        """Calls Handshake may still make now; None while the allocation is unknown."""
        budget = self.budget()
        if budget is None:
            return None
        left = budget - self.own_calls()
        usage = self.usage
        if usage is not None:
            left = min(left, usage.allowed - usage.used)  # the org's own ceiling
        return max(0, left)

    def check(self, calls: int = 1, *, what: str = "request") -> None:
        """Raise `QuotaExhausted` (nothing is sent) unless `calls` more calls are allowed."""
        left = self.allowance()
        if left is None or left >= calls:
            return
        resets_at = self.resets_at()
        usage = self.usage
        org = f"; the org has used {usage.used} of {usage.allowed}" if usage else ""
        when = f"; resumes at {resets_at.isoformat()}" if resets_at else ""
        raise QuotaExhausted(
            f"{what}: not sent: Handshake's share ({self.share:.0%}) of the daily API "
            f"allocation is spent ({self.own_calls()} of {self.budget()} calls in the last "
            f"24 hours{org}){when}",
            system=SALESFORCE_SYSTEM,
            resets_at=resets_at,
        )

    def take(self, *, what: str = "request") -> None:
        """Check and count one call as one step, so threads cannot overshoot the share
        together; raises `QuotaExhausted` (the call is not counted) when it is spent."""
        with self._lock:
            self.check(what=what)
            self.record_call()

    def resets_at(self) -> datetime | None:
        """When the oldest counted call ages out of the 24-hour window (None if none)."""
        with self._lock:
            self._prune()
            return self._calls[0] + ss.DAILY_WINDOW if self._calls else None

    def history(self) -> list[datetime]:
        """The times of Handshake's calls in the last 24 hours."""
        with self._lock:
            self._prune()
            return list(self._calls)

    def snapshot(self) -> GovernorSnapshot:
        """What the next run's governor starts from (store it after each run)."""
        return GovernorSnapshot(tuple(self.history()), self._allowed)

    def _prune(self) -> None:
        horizon = self.clock.now() - ss.DAILY_WINDOW
        while self._calls and self._calls[0] <= horizon:
            self._calls.popleft()

    def __repr__(self) -> str:
        return f"AllocationGovernor(share={self.share}, usage={self.usage!r})"
