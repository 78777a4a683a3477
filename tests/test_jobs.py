"""The scheduled jobs are thin: each builds its stage from a config file and runs it once."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from connector.sandbox import Sandbox
from connector.store import Store
from jobs import pull as pull_job
from jobs import pullback as pullback_job
from jobs import push as push_job
from jobs import score as score_job
from tests.pull.helpers import sandbox_env, unthrottle
from tests.push.test_push_sandbox import push_toml


def test_pull_score_push_pullback_jobs_run_a_cycle_from_a_config_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with Sandbox(contacts=200, seed=42, workdir=tmp_path / "sb") as sb:
        unthrottle(sb)
        sb.clock.advance(timedelta(hours=1))
        cfg = tmp_path / "handshake.toml"
        cfg.write_text(push_toml(sb, tmp_path / "state.db"))
        for name, value in sandbox_env(sb).items():
            monkeypatch.setenv(name, value)
        jobs = (pull_job, score_job, push_job, pullback_job)
        results = [job.run(str(cfg)) for job in jobs]
        assert [r.status for r in results] == ["ok", "ok", "ok", "ok"]
        store = Store(f"sqlite:///{tmp_path / 'state.db'}")
        runs = [store.get_run(r.run_id) for r in results]
        assert [(r.stage, r.trigger) for r in runs if r] == [
            ("pull", "schedule"), ("score", "schedule"), ("push", "schedule"),
            ("pullback", "schedule")]
        linked = [c for c in store.iter_contacts() if store.linked(c.hubspot_id)]
        assert linked  # the cycle handed MQLs to Salesforce
        # the pull-back read each hand-off's state back
        assert set(store.handoff_states()) == {c.hubspot_id for c in linked}
