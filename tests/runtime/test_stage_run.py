"""`stage_run` records every ending: ok, degraded (records parked for an admin), stopped
(quota), failed (also while building the pieces), interrupted, and runs a dead process left
running become `abandoned` when the next run of their lease starts. On each backend."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from connector.config import Config, load_config
from connector.control import guarded
from connector.errors import (
    Actor,
    AuthError,
    ExitCode,
    LeaseLost,
    QuotaExhausted,
    StopRequested,
)
from connector.runtime import stage_run
from connector.store import Store
from tests.runtime.helpers import BACKENDS, database_url

ENV = {"HANDSHAKE_HUBSPOT_TOKEN": "pat-test", "HANDSHAKE_SF_USERNAME": "u@example.test",
       "HANDSHAKE_SF_PASSWORD": "pw", "HANDSHAKE_SF_SECURITY_TOKEN": "tok"}


@pytest.fixture(params=BACKENDS)
def config(request: pytest.FixtureRequest, tmp_path: Path) -> Config:
    with database_url(request.param, tmp_path) as url:
        path = tmp_path / "handshake.toml"
        path.write_text(f"""
[hubspot]
base_url = "http://127.0.0.1:1"
[salesforce]
instance_url = "https://127.0.0.1:2"
[state]
database_url = "{url}"
[runtime]
lease_wait_seconds = 0
""")
        yield load_config(path, ENV)


def status_of(config: Config, run_id: str) -> tuple[str, str | None]:
    store = Store(config.state.database_url)
    try:
        run = store.get_run(run_id)
        assert run is not None
        return run.status, run.error
    finally:
        store.close()


def test_a_run_that_finishes_is_ok(config: Config) -> None:
    with stage_run(config, "push") as run:
        run.result.counts["leads.created"] = 3
    assert run.result.status == "ok" and run.result.exit_code == ExitCode.OK
    assert status_of(config, run.run_id) == ("ok", None)


def test_records_parked_for_an_admin_make_it_degraded_with_the_reason_counts(
        config: Config) -> None:
    with stage_run(config, "push") as run:
        for n in range(3):
            run.store.dead_letter(stage="push", system="salesforce", record_key=str(n),
                                  reason="no such field", actor=Actor.ADMIN,
                                  error_code="INVALID_FIELD")
        run.store.dead_letter(stage="push", system="salesforce", record_key="9",
                              reason="bad phone", actor=Actor.DATA, error_code="FIELD_CUSTOM")
    assert run.result.status == "degraded" and run.result.exit_code == ExitCode.DEGRADED
    assert run.result.parked == {"INVALID_FIELD": 3}
    assert status_of(config, run.run_id)[0] == "degraded"


def test_a_spent_quota_stops_the_run_cleanly(config: Config) -> None:
    with stage_run(config, "pull") as run:
        raise QuotaExhausted("daily limit reached", system="hubspot")
    assert run.result.status == "stopped" and run.result.exit_code == ExitCode.QUOTA
    assert status_of(config, run.run_id)[0] == "stopped"


def test_a_failure_while_building_the_pieces_is_recorded_failed(config: Config) -> None:
    with pytest.raises(AuthError), stage_run(config, "push") as run:
        raise AuthError("login refused", system="salesforce")  # as a login before any work
    assert status_of(config, run.run_id)[0] == "failed"


def test_a_stop_request_is_recorded_interrupted_and_the_owned_pieces_closed(
        config: Config) -> None:
    closed: list[str] = []

    class Client:
        def close(self) -> None:
            closed.append("client")

    with pytest.raises(StopRequested), stage_run(config, "score") as run:
        run.own(Client())
        raise StopRequested(signum=15)
    assert closed == ["client"]
    assert status_of(config, run.run_id) == ("interrupted", "stopped by SIGTERM")
    with stage_run(config, "score") as again:  # the lease was given back
        pass
    assert again.result.status == "ok"


def test_runs_left_running_by_a_dead_process_become_abandoned(config: Config) -> None:
    store = Store(config.state.database_url)
    store.migrate()
    store.start_run("backfill-pull", run_id="dead-run", instance="gone:1:1")
    store.start_run("push", run_id="other-stage", instance="gone:1:1")
    store.close()
    with stage_run(config, "pull") as run:
        pass
    assert status_of(config, "dead-run")[0] == "abandoned"
    assert status_of(config, "other-stage")[0] == "running"  # another lease's business
    assert status_of(config, run.run_id)[0] == "ok"


def _runs(config: Config) -> list[tuple[str, str]]:
    store = Store(config.state.database_url)
    try:
        return [(r.stage, r.status) for r in store.runs(limit=100)]
    finally:
        store.close()


def test_a_daemon_paused_after_its_last_check_records_no_run_once_its_leadership_is_taken(
        config: Config) -> None:
    """A daemon's guard passes (its last check is recent: the process was paused right after
    it, SIGSTOP or a lost network), but another daemon took the leader lease meanwhile: the run
    is refused in the transaction that would record it, and nothing is written."""
    store = Store(config.state.database_url)
    store.migrate()
    try:
        old = store.take_lease("leader", "host:1:1#old", ttl_seconds=0.001)
        assert old == 1
        time.sleep(0.01)
        assert store.take_lease("leader", "host:2:1#new", ttl_seconds=60) == 2
    finally:
        store.close()
    with (guarded(lambda: None, lambda: ("leader", "host:1:1#old", 1)),
          pytest.raises(LeaseLost, match="no longer the active one"),
          stage_run(config, "score")):
        raise AssertionError("the body of a refused run ran")
    assert _runs(config) == []
    store = Store(config.state.database_url)
    try:  # the stage lease it took is given back at once
        assert store.take_lease("score", "next-run", ttl_seconds=60) == 2
    finally:
        store.close()


def test_a_daemon_still_leading_records_its_run(config: Config) -> None:
    store = Store(config.state.database_url)
    store.migrate()
    try:
        assert store.take_lease("leader", "host:1:1#lead", ttl_seconds=60) == 1
    finally:
        store.close()
    with (guarded(lambda: None, lambda: ("leader", "host:1:1#lead", 1)),
          stage_run(config, "score") as run):
        pass
    assert run.result.status == "ok"
    assert _runs(config) == [("score", "ok")]


def test_a_run_whose_stage_lease_changed_hands_before_it_was_recorded_writes_nothing(
        config: Config) -> None:
    store = Store(config.state.database_url)
    store.migrate()
    try:
        store.start_run("push", run_id="dead-run", instance="elsewhere:1:1")
        assert store.take_lease("push", "run-a", ttl_seconds=60) == 1
        assert store.take_lease("push", "run-b", ttl_seconds=60) is None
        store.release_lease("push", "run-a")
        assert store.take_lease("push", "run-b", ttl_seconds=60) == 2
        assert store.begin_run("push", trigger="manual", instance="x", run_id="run-a",
                               fences=[("push", "run-a", 1)], abandon=["push"],
                               reason="gone") is None
        assert [(r.id, r.status) for r in store.runs(limit=10)] == [("dead-run", "running")]
        assert store.begin_run("push", trigger="manual", instance="x", run_id="run-b",
                               fences=[("push", "run-b", 2)], abandon=["push"],
                               reason="gone") == ["dead-run"]
        assert {(r.id, r.status) for r in store.runs(limit=10)} == {
            ("dead-run", "abandoned"), ("run-b", "running")}
    finally:
        store.close()
