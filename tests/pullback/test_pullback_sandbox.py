"""The pull-back against the sandbox: after a push, the sales-team simulator works the
hand-offs for days while the pull-back runs every two simulated hours (as a schedule would);
what the simulator's ground truth says the reps did is then in the store, exactly, and
nothing Handshake wrote itself comes back as an outcome."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from connector.config import Config, PullbackSettings
from connector.pullback import STREAMS, bookmark_name
from connector.runtime import StageResult, open_store, run_pullback_stage, run_push_stage
from connector.sandbox import Sandbox
from connector.store import SalesOutcome
from tests.pull.helpers import sandbox_env
from tests.push.helpers import pull_and_score, sandbox_org
from tests.push.test_push_sandbox import push_toml

DAYS = 5
# opportunities close within days, so their outcome falls inside the simulated days
PROFILE = {"close_after_days": (0.5, 2.5)}
REASON_FIELD = "Reason_Not_Converted__c"


class SandboxTime:
    """The connector's clock on the sandbox's time (the simulator moves it days ahead)."""

    def __init__(self, sb: Sandbox) -> None:
        self.sb = sb

    def now(self) -> datetime:
        return self.sb.clock.now()

    def sleep(self, seconds: float) -> None:
        time.sleep(min(seconds, 0.05))

    def monotonic(self) -> float:
        return time.monotonic()


@dataclass
class Worked:
    sb: Sandbox
    config: Config
    clock: SandboxTime
    runs: list[StageResult] = field(default_factory=list)
    truth: list[dict[str, Any]] = field(default_factory=list)

    def pull_back(self, **kwargs: Any) -> StageResult:
        result = run_pullback_stage(self.config, clock=self.clock, **kwargs)
        assert result.status == "ok", result.error
        return result

    def outcomes(self) -> list[SalesOutcome]:
        store = open_store(self.config)
        try:
            return store.outcomes()
        finally:
            store.close()

    def handed_off_leads(self) -> set[str]:
        store = open_store(self.config)
        try:
            return {link.sf_id for link in store.handoffs() if link.sf_object == "Lead"}
        finally:
            store.close()


@pytest.fixture(scope="module")
def worked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worked]:
    folder = tmp_path_factory.mktemp("pullback")
    with sandbox_org(folder, 600) as (sb, config):
        config = config.model_copy(
            update={"pullback": PullbackSettings(lead_reason_field=REASON_FIELD)})
        pull_and_score(config)
        pushed = run_push_stage(config)
        assert pushed.counts["leads.created"] > 20
        state = Worked(sb, config, SandboxTime(sb))
        state.runs.append(state.pull_back())  # the hand-offs as Handshake left them
        simulator = sb.simulator(profile=PROFILE)
        for _ in range(DAYS * 12):
            state.truth.extend(simulator.run(2, step_hours=1))
            state.runs.append(state.pull_back())
        yield state


def _ours(worked: Worked) -> list[dict[str, Any]]:
    """The ground truth's entries for the Leads Handshake handed off."""
    leads = worked.handed_off_leads()
    entries = [e for e in worked.truth if e.get("lead_id") in leads and "error" not in e]
    assert entries, "the simulator worked none of the hand-offs"
    return entries


def test_every_logged_call_and_email_is_an_attempt(worked: Worked) -> None:
    truth = {e["task_id"]: e["action"] for e in _ours(worked) if e["action"] in ("call", "email")}
    attempts = {o.source_id: o for o in worked.outcomes() if o.kind == "attempt"}
    assert {k: o.details["channel"] for k, o in attempts.items()} == truth
    by_task = {e["task_id"]: e for e in _ours(worked) if "task_id" in e}
    for task_id, outcome in attempts.items():
        assert outcome.sf_object == "Task"
        assert outcome.owner_id == by_task[task_id]["owner_id"]
        if by_task[task_id]["action"] == "call":
            assert outcome.details["call_result"] == by_task[task_id]["outcome"]


def test_every_status_change_and_conversion_is_an_outcome(worked: Worked) -> None:
    truth = Counter((e["lead_id"], e["status"], e.get("reason")) for e in _ours(worked)
                    if e.get("status"))
    assert any(status == "Closed - Converted" for _, status, _ in truth)
    assert any(reason for _, _, reason in truth)
    changes = Counter((o.sf_id, o.status, o.reason) for o in worked.outcomes()
                      if o.kind in ("status", "converted"))
    assert changes == truth
    converted = {o.sf_id: o.details for o in worked.outcomes() if o.kind == "converted"}
    for entry in _ours(worked):
        if entry["action"] == "convert":
            details = converted[entry["lead_id"]]
            assert details["contact_id"] == entry["contact_id"]
            assert details["opportunity_id"] == entry["opportunity_id"]


def test_every_opportunity_outcome_is_won_or_lost(worked: Worked) -> None:
    truth = {e["opportunity_id"]: "won" if e["stage"] == "Closed Won" else "lost"
             for e in _ours(worked) if e["action"] == "close_opportunity"}
    assert truth, "no opportunity closed in the simulated days"
    closed = {o.sf_id: o.kind for o in worked.outcomes() if o.kind in ("won", "lost")}
    assert closed == truth
    store = open_store(worked.config)
    try:
        states = {s.opportunity_id: s for s in store.handoff_states().values()
                  if s.opportunity_id}
    finally:
        store.close()
    assert {o: ("won" if states[o].is_won else "lost") for o in truth if states[o].is_closed} \
        == truth


def test_handshake_writes_never_come_back(worked: Worked) -> None:
    state = worked.sb.salesforce.state  # type: ignore[union-attr]
    integration = state.integration_user_id
    ours = {t["Id"] for t in state.records("Task") if t["CreatedById"] == integration}
    assert ours, "the push wrote no Tasks"
    assert not ours & {o.source_id for o in worked.outcomes()}
    # a Handshake write to a Lead (as recycling will make) moves the state, not the outcomes
    open_lead = next(r for r in state.records("Lead") if r["Id"] in worked.handed_off_leads()
                     and not r["IsConverted"])
    state.update("Lead", open_lead["Id"], {"Status": "Open - Not Contacted"},
                 as_user_id=integration)
    before = len(worked.outcomes())
    result = worked.pull_back()
    assert len(worked.outcomes()) == before
    assert result.counts["Lead.handshake_writes"] == 1
    store = open_store(worked.config)
    try:
        states = {s.lead_id: s for s in store.handoff_states().values()}
    finally:
        store.close()
    assert states[open_lead["Id"]].status == "Open - Not Contacted"


def test_nothing_changed_stores_nothing_in_one_call_per_object(worked: Worked) -> None:
    worked.pull_back()
    before = len(worked.outcomes())
    again = worked.pull_back()
    assert len(worked.outcomes()) == before
    assert sum(v for k, v in again.counts.items() if k.endswith(".outcomes")) == 0
    assert again.counts["salesforce.calls"] <= len(STREAMS)


def test_reading_everything_again_duplicates_nothing(worked: Worked) -> None:
    before = sorted(o.source_id for o in worked.outcomes())
    store = open_store(worked.config)
    try:
        for stream in STREAMS:
            store.delete_bookmark(bookmark_name(stream.sobject))
    finally:
        store.close()
    worked.pull_back()
    after = sorted(o.source_id for o in worked.outcomes())
    assert after == before
    assert len(set(after)) == len(after)


def test_dry_run_stores_nothing(worked: Worked) -> None:
    simulator = worked.sb.simulator(profile=PROFILE)
    worked.truth.extend(simulator.run(24, step_hours=1))
    before = len(worked.outcomes())
    dry = worked.pull_back(dry_run=True)
    assert len(worked.outcomes()) == before
    would = sum(v for k, v in dry.counts.items() if k.endswith(".would_store"))
    real = worked.pull_back()
    # recycling decisions (leads never accepted in their SLA window) are stored outcomes too
    decided = real.counts["recycle.decided"] + real.counts["recycle.disqualified"]
    assert sum(v for k, v in real.counts.items() if k.endswith(".outcomes")) + decided == would


def test_sync_pullback_dry_run_from_the_command_line_stores_nothing(worked: Worked,
                                                                     tmp_path: Path) -> None:
    simulator = worked.sb.simulator(profile=PROFILE)
    worked.truth.extend(simulator.run(24, step_hours=1))
    database = Path(worked.config.state.database_url.removeprefix("sqlite:///"))
    cfg = tmp_path / "h.toml"
    cfg.write_text(push_toml(worked.sb, database)
                   + f'[pullback]\nlead_reason_field = "{REASON_FIELD}"\n')
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "COLUMNS": "200",
           **sandbox_env(worked.sb)}
    before = len(worked.outcomes())
    result = subprocess.run([sys.executable, "-m", "connector.cli", "sync", "pullback",
                             "--dry-run", "-c", str(cfg)], check=False, capture_output=True,
                            text=True, env=env, cwd=Path(__file__).resolve().parents[2],
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert "pullback (dry run: nothing stored) ok" in result.stdout
    assert len(worked.outcomes()) == before
    real = worked.pull_back()
    assert sum(v for k, v in real.counts.items() if k.endswith(".outcomes")) > 0
