"""Builds the pieces a command or job needs from the configuration."""

from __future__ import annotations

import time
from datetime import timedelta

import httpx

from connector.clock import Clock, SystemClock
from connector.config import Config
from connector.errors import StoreError
from connector.hubspot.client import HubSpotClient
from connector.progress import NullProgress, ProgressSink
from connector.pull import PullContext, needed_properties
from connector.store import Store

__all__ = ["lift_pacing", "open_store", "pull_context"]


MIGRATE_ATTEMPTS = 6


def open_store(config: Config, clock: Clock | None = None) -> Store:
    """The state store, its schema upgraded in place to the newest revision. Runs of several
    stages may start together on a new database: when another process's upgrade collides with
    ours, ours waits for it and checks the result instead of failing."""
    store = Store(config.state.database_url, clock=clock or SystemClock())
    for attempt in range(1, MIGRATE_ATTEMPTS + 1):
        try:
            store.migrate()
            break
        except StoreError:
            time.sleep(0.2 * attempt)
            if store.schema_revision() == store.head_revision():
                break
            if attempt == MIGRATE_ATTEMPTS:
                store.close()
                raise
    return store


def pull_context(
    config: Config, store: Store, *, clock: Clock | None = None, run_id: str | None = None,
    progress: ProgressSink | None = None, dry_run: bool = False,
    transport: httpx.BaseTransport | None = None,
) -> PullContext:
    clock = clock or SystemClock()
    client = HubSpotClient.from_config(config, clock=clock, transport=transport)
    return PullContext(
        store=store, client=client, clock=clock, properties=needed_properties(config),
        lookback=timedelta(minutes=config.schedule.lookback_minutes), run_id=run_id,
        progress=progress or NullProgress(), dry_run=dry_run,
    )


def lift_pacing(ctx: PullContext) -> PullContext:
    """Lift the HubSpot client's own pacing (burst and search limiters), for the demo and the
    benchmarks against a sandbox whose limits are lifted too: calls are still counted, and
    HubSpot's pace is computed from them instead of waited for."""
    policy = ctx.client.policy
    for name, window in (("burst", 10.0), ("search", 1.0)):
        policy.limiters[name] = type(policy.limiters[name])(  # type: ignore[call-arg]
            10**9, window, clock=policy.clock, name=name)
    return ctx
