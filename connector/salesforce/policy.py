"""The HTTP policy of one Salesforce org: a concurrency cap, a cool-down once the rolling daily
allocation is spent, the session refresh hook, and Salesforce's table
(`connector.salesforce.errors`).

    policy = build_salesforce_policy(config, on_session_expired=login.refresh)
    policy = salesforce_policy(max_concurrent=2, clock=clock)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from random import Random
from typing import Any

from connector.clock import Clock
from connector.config import Config
from connector.http import HttpPolicy, PolicySettings, RefreshHook
from connector.salesforce import settings as ss
from connector.salesforce.errors import SALESFORCE

__all__ = ["build_salesforce_policy", "salesforce_policy", "salesforce_settings"]


def salesforce_settings(
    *, max_concurrent: int = ss.SALESFORCE_DEFAULT_CONCURRENCY, **overrides: Any
) -> PolicySettings:
    """Policy settings for one Salesforce org: a concurrency cap and a cool-down after the
    rolling daily allocation is spent."""
    if not 1 <= max_concurrent <= ss.SALESFORCE_CONCURRENT_LONG_REQUESTS:
        raise ValueError(f"max_concurrent must be 1..{ss.SALESFORCE_CONCURRENT_LONG_REQUESTS}")
    base = PolicySettings(
        system=ss.SALESFORCE_SYSTEM,
        concurrency={ss.CONCURRENCY: max_concurrent},
        default_limiter=ss.CONCURRENCY,
        quota_cooldown=ss.SALESFORCE_QUOTA_COOLDOWN_SECONDS,
    )
    return base.with_(**overrides)


def salesforce_policy(
    *,
    max_concurrent: int = ss.SALESFORCE_DEFAULT_CONCURRENCY,
    clock: Clock | None = None,
    random: Random | None = None,
    on_session_expired: RefreshHook | None = None,
    secrets: Iterable[str] = (),
    **overrides: Any,
) -> HttpPolicy:
    """A policy for one Salesforce org (concurrency cap, session refresh hook); `overrides`
    change any `PolicySettings` field."""
    settings = salesforce_settings(max_concurrent=max_concurrent, **overrides)
    return HttpPolicy(
        settings,
        SALESFORCE,
        clock=clock,
        random=random,
        on_session_expired=on_session_expired,
        secrets=secrets,
    )


def build_salesforce_policy(
    config: Config,
    *,
    clock: Clock | None = None,
    on_session_expired: Callable[[], Mapping[str, str] | None] | None = None,
) -> HttpPolicy:
    """The Salesforce policy from the config: concurrency cap, attempts and timeouts.

    The daily share is not the policy's business here: the `AllocationGovernor` counts
    Handshake's own calls, which the org-wide header alone cannot tell.
    """
    sf = config.salesforce
    return salesforce_policy(
        max_concurrent=sf.max_concurrent_requests,
        clock=clock,
        on_session_expired=on_session_expired,
        secrets=config.secrets.values(),
        max_attempts=sf.max_attempts,
        connect_timeout=min(10.0, sf.timeout_seconds),
        read_timeout=sf.timeout_seconds,
        write_timeout=sf.timeout_seconds,
    )
