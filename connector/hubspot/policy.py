"""The HTTP policy of one HubSpot account: its tier's limits, the search limiter, the daily
reset in the account's time zone, and HubSpot's table (`connector.hubspot.errors`).

    policy = build_hubspot_policy(config)          # from handshake.toml
    policy = hubspot_policy("enterprise", timezone="Europe/Paris", clock=clock)
"""

from __future__ import annotations

from collections.abc import Iterable
from random import Random
from typing import Any

from connector.clock import Clock
from connector.config import Config
from connector.http import HttpPolicy, PolicySettings, RollingLimit
from connector.hubspot import settings as hs
from connector.hubspot.errors import HUBSPOT

__all__ = ["build_hubspot_policy", "hubspot_limits", "hubspot_policy", "hubspot_settings"]


def hubspot_limits(tier: str, capacity_packs: int = 0) -> hs.HubSpotLimits:
    """The burst and daily allowance of a HubSpot account tier plus capacity packs."""
    try:
        base = hs.HUBSPOT_TIERS[tier.lower()]
    except KeyError:
        raise ValueError(
            f"unknown HubSpot tier {tier!r}; expected one of {', '.join(hs.HUBSPOT_TIERS)}"
        ) from None
    if not 0 <= capacity_packs <= hs.HUBSPOT_CAPACITY_PACK_MAX:
        raise ValueError(f"capacity_packs must be 0..{hs.HUBSPOT_CAPACITY_PACK_MAX}")
    if capacity_packs == 0:
        return base
    return hs.HubSpotLimits(
        burst=max(base.burst, hs.HUBSPOT_CAPACITY_PACK.burst),
        daily=base.daily + capacity_packs * hs.HUBSPOT_CAPACITY_PACK.daily,
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
        system=hs.HUBSPOT_SYSTEM,
        rolling={
            hs.HUBSPOT_BURST: RollingLimit(limits.burst, hs.HUBSPOT_BURST_WINDOW_SECONDS),
            hs.HUBSPOT_SEARCH: RollingLimit(
                hs.HUBSPOT_SEARCH_PER_SECOND, hs.HUBSPOT_SEARCH_WINDOW_SECONDS
            ),
        },
        default_limiter=hs.HUBSPOT_BURST,
        daily_reset_timezone=timezone,
    )
    return base.with_(**overrides)


def hubspot_policy(
    tier: str = "professional",
    *,
    capacity_packs: int = 0,
    timezone: str = "UTC",
    clock: Clock | None = None,
    random: Random | None = None,
    secrets: Iterable[str] = (),
    **overrides: Any,
) -> HttpPolicy:
    """A policy for one HubSpot account (burst by tier, search limiter, daily reset at
    midnight in the account's `timezone`); `overrides` change any `PolicySettings` field."""
    settings = hubspot_settings(
        tier, capacity_packs=capacity_packs, timezone=timezone, **overrides
    )
    return HttpPolicy(settings, HUBSPOT, clock=clock, random=random, secrets=secrets)


def build_hubspot_policy(config: Config, clock: Clock | None = None) -> HttpPolicy:
    """The HubSpot policy from the config: the tier's limits, scaled by the allowed share."""
    hub = config.hubspot
    packs = 1 if hub.tier.value == "capacity_pack" else 0
    tier = "professional" if packs else hub.tier.value
    return hubspot_policy(
        tier,
        capacity_packs=packs,
        timezone=hub.account_timezone,
        clock=clock,
        max_attempts=hub.max_attempts,
        safety_margin=hub.rate_limit_share,
        connect_timeout=min(10.0, hub.timeout_seconds),
        read_timeout=hub.timeout_seconds,
        rolling={
            hs.HUBSPOT_BURST: RollingLimit(
                hubspot_limits(tier, packs).burst, hs.HUBSPOT_BURST_WINDOW_SECONDS
            ),
            hs.HUBSPOT_SEARCH: RollingLimit(
                int(hub.search_requests_per_second), hs.HUBSPOT_SEARCH_WINDOW_SECONDS
            ),
        },
    )
