"""A spent HubSpot daily quota stops the pull cleanly; the next day's run finishes the job."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from connector.sandbox import Sandbox
from connector.sandbox.hubspot.settings import RateLimits
from connector.runtime import run_pull_stage
from connector.store import Store
from tests.pull.helpers import assert_matches_ground_truth, sandbox_config


def test_daily_429_stops_the_run_then_the_next_run_completes(tmp_path: Path) -> None:
    with Sandbox(contacts=80, seed=13) as sb:
        hub = sb.hubspot
        assert hub is not None
        sb.clock.advance(timedelta(hours=1))
        hub.limiter.configure(RateLimits(window_max=10_000, daily=25, search_per_second=100))
        config = sandbox_config(sb, tmp_path / "s.db")

        first = run_pull_stage(config)
        assert first.status == "stopped"
        assert first.error is not None and "DAILY" in first.error
        served = hub.stats.snapshot()["by_status"]
        assert served.get("429") == 1  # stopped at the first DAILY answer: no retry storm
        store = Store(config.state.database_url)
        assert store.get_run(first.run_id).status == "stopped"  # type: ignore[union-attr]
        partial = store.count_contacts()
        assert 0 < partial

        hub.limiter.reset()  # midnight: a new day's budget, large enough this time
        hub.limiter.configure(RateLimits(window_max=10_000, daily=100_000, search_per_second=100))
        second = run_pull_stage(config)
        assert second.status == "ok"
        assert_matches_ground_truth(store, sb)
