"""Shared pieces of the pull tests: config for a running sandbox, store snapshots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select

from connector.clock import Clock
from connector.config import Config, HubSpotSettings, SalesforceSettings, Secrets, StateSettings
from connector.demo.verify import pull_differences
from connector.hubspot.client import HubSpotClient
from connector.hubspot.policy import build_hubspot_policy
from connector.pull import PullContext, needed_properties
from connector.sandbox import Sandbox
from connector.store import Activity, Contact, DeadLetter, Store


def sandbox_config(sb: Sandbox, db: Path) -> Config:
    info = sb.info()
    config = Config(
        hubspot=HubSpotSettings(base_url=info["hubspot"]["base_url"]),
        salesforce=SalesforceSettings(instance_url=info["salesforce"]["instance_url"]),
        state=StateSettings(database_url=f"sqlite:///{db}"),
    )
    return config.model_copy(
        update={"secrets": Secrets(hubspot_token=info["hubspot"]["access_token"])}  # type: ignore[arg-type]
    )


def sandbox_toml(sb: Sandbox, db: Path) -> str:
    info = sb.info()
    return f"""
[hubspot]
base_url = "{info['hubspot']['base_url']}"
[salesforce]
instance_url = "{info['salesforce']['instance_url']}"
login_url = "{info['salesforce']['login_url']}"
ca_bundle = "{info['salesforce']['ca_bundle']}"
[state]
database_url = "sqlite:///{db}"
"""


def sandbox_env(sb: Sandbox) -> dict[str, str]:
    """The secrets of the sandbox, as the environment variables Handshake reads."""
    info = sb.info()
    return {"HANDSHAKE_HUBSPOT_TOKEN": info["hubspot"]["access_token"],
            "HANDSHAKE_HUBSPOT_APP_SECRET": info["hubspot"]["app_secret"],
            "HANDSHAKE_SF_USERNAME": info["salesforce"]["username"],
            "HANDSHAKE_SF_PASSWORD": info["salesforce"]["password"],
            "HANDSHAKE_SF_SECURITY_TOKEN": info["salesforce"]["security_token"]}


def unthrottle(sb: Sandbox) -> None:
    """Lift the sandbox's rate limits: tests of sync logic need not wait for HubSpot's pace
    (the limits themselves are tested in tests/sandbox and tests/test_http_policy.py)."""
    from connector.sandbox.hubspot.settings import RateLimits

    assert sb.hubspot is not None
    sb.hubspot.limiter.configure(RateLimits(window_max=1_000_000, daily=100_000_000,
                                            search_per_second=100_000))


def context(config: Config, store: Store, *, policy_clock: Clock | None = None,
            fast: bool = True, **overrides: Any) -> PullContext:
    """A pull context; `policy_clock` (e.g. a FrozenClock) makes retry waits instant, and
    `fast` lifts the client-side limiters to match `unthrottle`."""
    policy = build_hubspot_policy(config, policy_clock)
    if fast:
        from connector.http.settings import RollingLimit

        overrides.setdefault("rolling", {"burst": RollingLimit(1_000_000, 10.0),
                                         "search": RollingLimit(100_000, 1.0)})
    if overrides:
        from connector.http import HttpPolicy

        policy = HttpPolicy(policy.settings.with_(**overrides), policy.dialect, clock=policy_clock)
    assert config.secrets.hubspot_token is not None
    client = HubSpotClient(config.hubspot.base_url, config.secrets.hubspot_token.get_secret_value(),
                           policy, api_version=config.hubspot.api_version)
    from connector.clock import SystemClock

    return PullContext(store=store, client=client, clock=SystemClock(),
                       properties=needed_properties(config))


def snapshot(store: Store) -> dict[str, Any]:
    """What a pull stored, minus what legitimately differs between runs (times, attempts)."""
    with store.transaction() as s:
        contacts = {
            c.hubspot_id: (c.email, c.archived, c.merged_into, c.hubspot_updated_at,
                           tuple(sorted(c.properties.items())))
            for c in s.scalars(select(Contact))
        }
        activities = {
            (a.source, a.source_id): (a.contact_id, a.type, a.occurred_at, a.title, a.url)
            for a in s.scalars(select(Activity))
        }
        dead = {(d.stage, d.record_key, d.status, d.reason) for d in s.scalars(select(DeadLetter))}
    return {"contacts": contacts, "activities": activities, "dead_letters": dead,
            "bookmark_keys": set(store.bookmarks())}


def assert_matches_ground_truth(store: Store, sb: Sandbox) -> None:
    assert sb.dataset is not None
    assert pull_differences(store, sb.dataset) == []
