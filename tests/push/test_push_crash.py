"""The push killed with SIGKILL at three points (Leads applied but not recorded; Leads recorded,
Tasks claimed but not sent; Tasks applied but not recorded) and run again leaves Salesforce as
an undisturbed run does: no Lead or Task twice, nothing missing. The sandbox runs in this
process and outlives every kill; only the pusher (a `handshake sync push` subprocess) dies;
the run that finishes the job runs in this process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from connector.push.tasks import BATCH as TASK_BATCH
from connector.sandbox import Fault, Sandbox
from connector.runtime import run_push_stage
from connector.store import Store
from tests.pull.helpers import sandbox_env
from tests.push.helpers import (
    LEAD_UPSERT,
    TASK_CREATE,
    Scored,
    leads,
    org,
    score_once,
    tasks,
    writes,
)

ROOT = Path(__file__).resolve().parents[2]
WAIT_SECONDS = 120.0  # a safety net only: each point is reached in about a second
HOLD = 300.0  # the held call outlives the pusher by far


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory) -> Scored:
    # enough MQLs that "each" mode writes more than 1,000 Tasks: two create calls
    return score_once(tmp_path_factory.mktemp("scored"), contacts=600, seed=31)


def start_push(sb: Sandbox, config_file: str) -> subprocess.Popen[bytes]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **sandbox_env(sb)}
    return subprocess.Popen([sys.executable, "-m", "connector.cli", "sync", "push", "-c",
                             config_file], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


def kill_when(proc: subprocess.Popen[bytes], reached: Callable[[], bool]) -> None:
    """SIGKILL the pusher as soon as `reached()` holds (it must still be running then)."""
    import time

    deadline = time.monotonic() + WAIT_SECONDS
    while not reached():
        if proc.poll() is not None:
            pytest.fail(f"the push ended before the kill point: {proc.stderr.read()!r}")  # type: ignore[union-attr]
        assert time.monotonic() < deadline, "the kill point was never reached"
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL


@pytest.mark.parametrize("mode", ["digest", "each"])
def test_sigkill_at_three_points_then_rerun_equals_an_undisturbed_run(
        scored: Scored, tmp_path: Path, mode: str) -> None:
    with org(scored, tmp_path, "calm", activity_tasks=mode) as (sb, config, _db):
        assert run_push_stage(config).status == "ok"
        calm_leads, calm_tasks = leads(sb), tasks(sb, with_handoff_text=False)
    total = sum(calm_tasks.values())
    assert calm_leads and set(calm_tasks.values()) == {1}

    with org(scored, tmp_path, "crashy", activity_tasks=mode) as (sb, config, db):
        state, plan = sb.salesforce.state, sb.salesforce.faults  # type: ignore[union-attr]

        def ours() -> int:
            return sum(1 for r in state.records("Lead") if r.get("Handshake_Id__c"))

        # 1. during the Lead upserts: the org applied them, the answer is held, the pusher dies
        plan.schedule(LEAD_UPSERT, Fault("stall_after", HOLD))
        kill_when(start_push(sb, config.source), lambda: ours() > 0)
        assert state.records("Task") == []

        # 2. between Leads and Tasks: the Leads are recorded, the Task create hangs unapplied
        plan.schedule(TASK_CREATE, Fault("drop", HOLD))
        kill_when(start_push(sb, config.source), lambda: not plan.script[TASK_CREATE])
        assert state.records("Task") == []

        # 3. during the Task creates: a create call is applied, its answer held (in "each" mode
        # the second call, after a first one of 1,000 Tasks went through and was recorded)
        calls = [None, Fault("stall_after", HOLD)] if mode == "each" else [
            Fault("stall_after", HOLD)]
        assert total > TASK_BATCH or mode == "digest"
        plan.schedule(TASK_CREATE, *calls)
        kill_when(start_push(sb, config.source), lambda: len(state.records("Task")) >= total)
        assert not plan.script[TASK_CREATE]  # the held call was the last of the run

        last = run_push_stage(config)
        assert last.status == "ok", last.error
        assert last.counts["tasks.reconciled"] >= 1  # found in Salesforce, not written again
        assert leads(sb) == calm_leads
        assert tasks(sb, with_handoff_text=False) == calm_tasks

        # running again writes nothing, and the store opened one SLA timer per hand-off
        assert writes(run_push_stage(config).counts) == {}
        assert tasks(sb, with_handoff_text=False) == calm_tasks
        store = Store(f"sqlite:///{db}")
        timers = Counter(t.hubspot_id for t in store.sla_timers())
        assert set(timers.values()) == {1}
        assert len(timers) == sum(1 for t in calm_tasks if t[1] == "handoff")
        assert store.pending_writes("salesforce") == []
        store.close()
