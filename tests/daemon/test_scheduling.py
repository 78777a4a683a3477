"""The daemon's schedule, with stand-in stages: one job a stage with explicit ids; a stage that
fails is tried again with growing back-off and never stops the others; score and push run
right after a pull that changed something; the instance record shows the role, the next runs
and the last cycle; a stop gives the leadership up and records the instance stopped."""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import pytest

from connector.clock import Clock
from connector.config import Config, DaemonSettings, ScheduleSettings
from connector.control import current_guard, stop_requested
from connector.daemon import service
from connector.daemon.jobs import JOBS, StageJob
from connector.demo import sandbox_config
from connector.runtime import StageResult
from connector.runtime.lease import LEADER
from connector.store import Store

INTERVAL_S = 1.0


def _config(tmp_path: Path) -> Config:
    info = {"hubspot": {"base_url": "http://127.0.0.1:9", "access_token": "x"},
            "salesforce": {"instance_url": "https://127.0.0.1:9", "login_url":
                           "https://127.0.0.1:9", "ca_bundle": "", "username": "u",
                           "password": "p", "security_token": "t"}}
    config = sandbox_config(info, tmp_path / "state.db")
    minutes = INTERVAL_S / 60
    return config.model_copy(update={
        "schedule": ScheduleSettings(pull_interval_minutes=minutes, score_interval_minutes=minutes,
                                     push_interval_minutes=minutes,
                                     pullback_interval_minutes=minutes * 3,
                                     sla_interval_minutes=10, dlq_interval_minutes=10),
        "daemon": DaemonSettings(listen="127.0.0.1:0", leader_ttl_seconds=5)})


def test_a_failing_stage_backs_off_and_the_others_go_on(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    config = _config(tmp_path)
    ran: dict[str, list[float]] = defaultdict(list)
    began = time.monotonic()

    def stand_in(job_id: str, *, fail: bool = False, changed: bool = False) -> StageJob:
        def run(_config: Config, _clock: Clock | None) -> StageResult:
            ran[job_id].append(time.monotonic() - began)
            if fail:
                raise RuntimeError("the stand-in stage fails")
            result = StageResult(job_id, "ok")
            if changed and len(ran[job_id]) == 2:  # the second pull brings changes
                result.counts["contacts.new"] = 1
            return result
        return StageJob(job_id, JOBS[job_id].interval_key, run)

    monkeypatch.setattr(service, "JOBS", {
        "pull": stand_in("pull", changed=True), "score": stand_in("score", fail=True),
        "push": stand_in("push"), "pullback": stand_in("pullback"), "sla": stand_in("sla"),
        "dlq-retry": stand_in("dlq-retry")})
    monkeypatch.setattr(service, "RETRY_FIRST_SECONDS", 0.3)
    moved: list[tuple[str, float]] = []  # (job, seconds from now) of every reschedule
    reschedule = service.Daemon._reschedule

    def recording(self: service.Daemon, job_id: str, when: datetime) -> None:
        moved.append((job_id, (when - datetime.now(UTC)).total_seconds()))
        reschedule(self, job_id, when)

    monkeypatch.setattr(service.Daemon, "_reschedule", recording)
    daemon = service.Daemon(config)
    codes: list[int] = []
    thread = threading.Thread(target=lambda: codes.append(daemon.run()))
    thread.start()
    store = Store(config.state.database_url)
    try:
        deadline = time.monotonic() + 30
        while len(ran["pull"]) < 5 and time.monotonic() < deadline:
            time.sleep(0.1)
        record = json.loads(store.bookmarks("daemon.instance.").popitem()[1])
        # a one-off job (the webhooks' sync) runs once on the worker, under the leader guard
        guards: list[bool] = []

        def webhook_sync(_config: Config, _clock: Clock | None) -> StageResult:
            guards.append(current_guard() is not None)
            return StageResult("webhook", "ok")

        assert daemon.run_now("webhook", webhook_sync)
        deadline = time.monotonic() + 30
        while not guards and time.monotonic() < deadline:
            time.sleep(0.1)
        assert guards == [True]
    finally:
        store.close()
        daemon.stop()
        thread.join(30)
    assert not thread.is_alive()
    assert stop_requested() is None  # an embedded daemon's stop ends with it
    assert codes == [143]
    assert len(ran["pull"]) >= 5 and len(ran["push"]) >= 3, dict(ran)
    assert len(ran["pullback"]) >= 1 and len(ran["dlq-retry"]) == 1 and ran["sla"] == []
    # score failed every time, yet was tried again each time after a longer pause (capped at
    # its interval), and never stopped pull or push
    assert len(ran["score"]) >= 3, dict(ran)
    backoffs = [round(delay, 1) for job, delay in moved if job == "score" and delay > 0.05]
    assert backoffs[:3] == [0.3, 0.6, 1.0], moved
    assert set(backoffs[3:]) <= {1.0}
    # the pull that changed something brought score and push forward (unless one of them was
    # already waiting for the worker), once
    forward = [job for job, delay in moved if delay <= 0.05]
    assert forward and set(forward) <= {"score", "push"} and len(set(forward)) == len(forward)
    assert any(t >= ran["pull"][1] for t in ran["push"])
    # the record while it ran, and after
    assert record["role"] == "leader"
    assert set(record["next_runs"]) == {"pull", "score", "push", "pullback", "sla", "dlq-retry"}
    assert all(datetime.fromisoformat(v).tzinfo is not None for v in record["next_runs"].values())
    assert record["listen"].startswith("127.0.0.1:") and not record["listen"].endswith(":0")
    assert record["last_cycle"]["at"] is not None
    assert record["mappings"]["ok"] is True
    store = Store(config.state.database_url)
    try:
        final = json.loads(store.bookmarks("daemon.instance.").popitem()[1])
        assert final["role"] == "stopped"
        assert store.lease(LEADER).holder == ""  # type: ignore[union-attr]
        assert datetime.fromisoformat(final["seen_at"]) <= datetime.now(UTC)
    finally:
        store.close()


def test_run_now_needs_the_leadership(tmp_path: Path) -> None:
    daemon = service.Daemon(_config(tmp_path))
    assert not daemon.run_now("webhook", lambda _c, _k: None)
