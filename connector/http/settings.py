"""The numbers and header names of the HTTP policy mechanism, whichever system it serves.

Each remote system's own limits, header names and policy settings live with its adapter
(`connector.hubspot.settings`, `connector.salesforce.settings`); the alert webhook, which is no
vendor, keeps its settings here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

__all__ = [
    "DEFAULT_SAFETY_MARGIN",
    "MAX_REMOTE_MESSAGE_CHARS",
    "RETRY_AFTER_HEADER",
    "WEBHOOK_SYSTEM",
    "PolicySettings",
    "RollingLimit",
    "webhook_settings",
]

WEBHOOK_SYSTEM = "webhook"  # the `system` of every error an alert webhook's policy raises

DEFAULT_SAFETY_MARGIN = 0.9  # use 90 % of a documented limit: other apps share the account

# Response headers the policy reads (lower-case; every adapter lower-cases header names).
RETRY_AFTER_HEADER = "retry-after"

MAX_REMOTE_MESSAGE_CHARS = 500  # keep error messages readable when a server answers with a page


@dataclass(frozen=True)
class RollingLimit:
    """At most `limit` calls in any `window` seconds."""

    limit: int
    window: float


@dataclass(frozen=True)
class PolicySettings:
    """Plain numbers an `HttpPolicy` is built from (one per remote system).

    `default_limiter` is taken by every call that names no limiter; a call naming one (e.g. the
    HubSpot search limiter) takes that one instead. Concurrency limiters are held for the time of
    the request; rolling ones are taken once per attempt.
    """

    system: str
    max_attempts: int = 5
    backoff_base: float = 1.0
    backoff_max: float = 60.0
    jitter: float = 1.0
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    write_timeout: float = 60.0
    pool_timeout: float = 30.0
    max_retry_after: float = 300.0  # a longer hint is given up on: the next run will try again
    safety_margin: float = DEFAULT_SAFETY_MARGIN
    rolling: Mapping[str, RollingLimit] = field(default_factory=dict)
    concurrency: Mapping[str, int] = field(default_factory=dict)
    default_limiter: str | None = None
    daily_reset_timezone: str = "UTC"
    quota_cooldown: float | None = None  # None: the quota resets at midnight in the time zone
    # stop before the account's daily allocation is spent, e.g. 0.8: other integrations share it
    daily_share: float | None = None

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if not 0 < self.safety_margin <= 1:
            raise ValueError("safety_margin must be in (0, 1]")
        if self.daily_share is not None and not 0 < self.daily_share <= 1:
            raise ValueError("daily_share must be in (0, 1]")
        known = set(self.rolling) | set(self.concurrency)
        if self.default_limiter is not None and self.default_limiter not in known:
            raise ValueError(f"default_limiter {self.default_limiter!r} is not a limiter")

    def with_(self, **changes: Any) -> PolicySettings:
        """A copy with some settings changed."""
        return replace(self, **changes)


def webhook_settings(*, max_attempts: int = 4, timeout: float = 10.0,
                     **overrides: Any) -> PolicySettings:
    """Policy settings for an alert webhook: short timeouts, a few quick retries (an alert is
    worth little late; what still fails is parked and sent again next cycle)."""
    base = PolicySettings(
        system=WEBHOOK_SYSTEM,
        max_attempts=max_attempts,
        backoff_base=0.5,
        backoff_max=10.0,
        jitter=0.5,
        connect_timeout=min(timeout, 10.0),
        read_timeout=timeout,
        write_timeout=timeout,
        pool_timeout=timeout,
        max_retry_after=30.0,
    )
    return base.with_(**overrides)
