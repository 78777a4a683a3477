"""Every limit, header name and default of the HTTP policy, in one place.

Sources (checked while writing this module):
- HubSpot burst and daily limits per private app: Free/Starter 100 per 10 s and 250,000 a day;
  Professional 190 and 650,000; Enterprise 190 and 1,000,000; the "API limit increase" capacity
  pack adds 1,000,000 a day per pack (at most two) and lifts the burst to 250 per 10 s (the burst
  does not stack) -- developers.hubspot.com/changelog/increasing-our-api-limits.
- HubSpot search: "The search endpoints are rate limited to five requests per second per account"
  and its responses carry no rate-limit headers -- HubSpot "Search the CRM" guide, Limits.
- HubSpot daily limit: resets at midnight in the time zone set on the HubSpot account
  (API usage guidelines; legacy "check daily API usage": "midnight to midnight based on the
  connected account's time zone settings"), hence a setting, not a constant.
- Salesforce: the daily allocation is a rolling 24 h window (no fixed reset: calls age out);
  25 concurrent long-running (> 20 s) requests per production org.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

__all__ = [
    "CONCURRENCY",
    "DEFAULT_SAFETY_MARGIN",
    "HUBSPOT_BURST",
    "HUBSPOT_BURST_WINDOW_SECONDS",
    "HUBSPOT_CAPACITY_PACK",
    "HUBSPOT_SEARCH",
    "HUBSPOT_SEARCH_PER_SECOND",
    "HUBSPOT_SYSTEM",
    "HUBSPOT_TIERS",
    "SALESFORCE_CONCURRENT_LONG_REQUESTS",
    "SALESFORCE_SYSTEM",
    "WEBHOOK_SYSTEM",
    "HubSpotLimits",
    "PolicySettings",
    "RollingLimit",
    "hubspot_limits",
    "hubspot_settings",
    "salesforce_settings",
    "webhook_settings",
]

# --- system names (the `system` of every error raised) -------------------------------------
HUBSPOT_SYSTEM = "hubspot"
SALESFORCE_SYSTEM = "salesforce"
WEBHOOK_SYSTEM = "webhook"

# --- limiter names (what `HttpPolicy.execute(limiter=...)` takes) ----------------------------
HUBSPOT_BURST = "burst"
HUBSPOT_SEARCH = "search"
CONCURRENCY = "concurrency"

# --- HubSpot limits -------------------------------------------------------------------------
HUBSPOT_BURST_WINDOW_SECONDS = 10.0
HUBSPOT_SEARCH_PER_SECOND = 5
HUBSPOT_SEARCH_WINDOW_SECONDS = 1.0
HUBSPOT_SECONDLY_WINDOW_SECONDS = 1.0


@dataclass(frozen=True)
class HubSpotLimits:
    """A HubSpot account's request allowance: a burst per 10-second window and a daily total."""

    burst: int
    daily: int


# developers.hubspot.com/docs/developer-tooling/platform/usage-guidelines (2026-11): Professional
# is 625,000 a day (the 2023 changelog's 650,000 is out of date), as the sandbox answers.
HUBSPOT_TIERS: Mapping[str, HubSpotLimits] = MappingProxyType(
    {
        "free": HubSpotLimits(burst=100, daily=250_000),
        "starter": HubSpotLimits(burst=100, daily=250_000),
        "professional": HubSpotLimits(burst=190, daily=625_000),
        "enterprise": HubSpotLimits(burst=190, daily=1_000_000),
    }
)
# What one "API limit increase" capacity pack changes; the burst lift does not stack.
HUBSPOT_CAPACITY_PACK = HubSpotLimits(burst=250, daily=1_000_000)
HUBSPOT_CAPACITY_PACK_MAX = 2

# --- Salesforce limits ----------------------------------------------------------------------
SALESFORCE_CONCURRENT_LONG_REQUESTS = 25
SALESFORCE_DEFAULT_CONCURRENCY = 5  # our share of the org's 25: other integrations need theirs
SALESFORCE_QUOTA_COOLDOWN_SECONDS = 3600.0  # rolling 24 h: try again once old calls aged out

# --- shared defaults ------------------------------------------------------------------------
DEFAULT_SAFETY_MARGIN = 0.9  # use 90 % of a documented limit: other apps share the account

# Response headers the policy reads (lower-case; every adapter lower-cases header names).
RETRY_AFTER_HEADER = "retry-after"
HUBSPOT_INTERVAL_HEADER = "x-hubspot-ratelimit-interval-milliseconds"
HUBSPOT_DAILY_HEADER = "x-hubspot-ratelimit-daily"
HUBSPOT_DAILY_REMAINING_HEADER = "x-hubspot-ratelimit-daily-remaining"
SALESFORCE_LIMIT_INFO_HEADER = "sforce-limit-info"
SALESFORCE_API_USAGE = r"api-usage=(\d+)/(\d+)"  # e.g. "api-usage=25/15000"

# HubSpot 429 `policyName` values and what each one means for waiting.
HUBSPOT_POLICY_DAILY = "DAILY"
HUBSPOT_POLICY_TEN_SECONDLY = "TEN_SECONDLY_ROLLING"
HUBSPOT_POLICY_SECONDLY = "SECONDLY"

# Salesforce REQUEST_LIMIT_EXCEEDED messages: the daily total vs the concurrency cap.
SALESFORCE_LIMIT_EXCEEDED = "REQUEST_LIMIT_EXCEEDED"
SALESFORCE_TOTAL_REQUESTS_MESSAGE = r"TotalRequests"
SALESFORCE_CONCURRENT_MESSAGE = r"Concurrent"

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


def hubspot_limits(tier: str, capacity_packs: int = 0) -> HubSpotLimits:
    """The burst and daily allowance of a HubSpot account tier plus capacity packs."""
    try:
        base = HUBSPOT_TIERS[tier.lower()]
    except KeyError:
        raise ValueError(
            f"unknown HubSpot tier {tier!r}; expected one of {', '.join(HUBSPOT_TIERS)}"
        ) from None
    if not 0 <= capacity_packs <= HUBSPOT_CAPACITY_PACK_MAX:
        raise ValueError(f"capacity_packs must be 0..{HUBSPOT_CAPACITY_PACK_MAX}")
    if capacity_packs == 0:
        return base
    return HubSpotLimits(
        burst=max(base.burst, HUBSPOT_CAPACITY_PACK.burst),
        daily=base.daily + capacity_packs * HUBSPOT_CAPACITY_PACK.daily,
    )


def hubspot_settings(
    tier: str = "professional",
    *,
    capacity_packs: int = 0,
    timezone: str = "UTC",
    **overrides: Any,
) -> PolicySettings:
    """Policy settings for one HubSpot account: burst limiter by tier, search limiter, and the
    daily reset at midnight in the account's `timezone` (an IANA name)."""
    limits = hubspot_limits(tier, capacity_packs)
    base = PolicySettings(
        system=HUBSPOT_SYSTEM,
        rolling={
            HUBSPOT_BURST: RollingLimit(limits.burst, HUBSPOT_BURST_WINDOW_SECONDS),
            HUBSPOT_SEARCH: RollingLimit(HUBSPOT_SEARCH_PER_SECOND, HUBSPOT_SEARCH_WINDOW_SECONDS),
        },
        default_limiter=HUBSPOT_BURST,
        daily_reset_timezone=timezone,
    )
    return base.with_(**overrides)


def salesforce_settings(
    *, max_concurrent: int = SALESFORCE_DEFAULT_CONCURRENCY, **overrides: Any
) -> PolicySettings:
    """Policy settings for one Salesforce org: a concurrency cap and a cool-down after the
    rolling daily allocation is spent."""
    if not 1 <= max_concurrent <= SALESFORCE_CONCURRENT_LONG_REQUESTS:
        raise ValueError(f"max_concurrent must be 1..{SALESFORCE_CONCURRENT_LONG_REQUESTS}")
    base = PolicySettings(
        system=SALESFORCE_SYSTEM,
        concurrency={CONCURRENCY: max_concurrent},
        default_limiter=CONCURRENCY,
        quota_cooldown=SALESFORCE_QUOTA_COOLDOWN_SECONDS,
    )
    return base.with_(**overrides)


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
