"""The pull stores the same on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from connector.pull import pull
from connector.sandbox import Sandbox
from connector.store import Store
from tests.pull.helpers import assert_matches_ground_truth, context, sandbox_config, unthrottle


def test_pull_on_each_backend(store: Store, tmp_path: Path) -> None:
    with Sandbox(contacts=150, seed=17) as sb:
        unthrottle(sb)
        sb.clock.advance(timedelta(hours=1))
        config = sandbox_config(sb, tmp_path / "unused.db")
        pull(context(config, store))
        assert_matches_ground_truth(store, sb)
        again = pull(context(config, store))
        assert not any(v for k, v in again.items() if k.endswith((".new", ".updated")))
