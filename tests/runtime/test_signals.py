"""SIGINT and SIGTERM during each of pull, score and push end the run cleanly: the process exits
130/143 within 10 s of the signal, the run is recorded `interrupted`, and a re-run leaves the
same data as an undisturbed run; a SIGKILLed run is recorded `abandoned` by the next.

The sandboxes run in this process and outlive the stage, which runs as a
`handshake sync <stage>` subprocess. The signal is sent while the sandbox holds one chosen
call of the stage (so the stage is provably mid-work): with SIGINT the held call answers
within the stop timeout (the batch in flight finishes and commits, the run stops at its next
checkpoint); with SIGTERM it hangs past it (the run is cut short in the call). The re-run and
the undisturbed run run in this process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from connector.clock import FrozenClock
from connector.config import Config
from connector.pull import pull
from connector.runtime import open_store, run_pull_stage, run_push_stage, run_score_stage
from connector.runtime.stages import SCORE_WRITEBACK_PENDING
from connector.sandbox import Fault, FaultPlan, Sandbox
from connector.store import Store, SyncRun
from tests.pull.helpers import (
    assert_matches_ground_truth,
    context,
    sandbox_env,
    snapshot,
    unthrottle,
)
from tests.push.helpers import LEAD_UPSERT, Scored, config_for, copy_store, leads, org, tasks

ROOT = Path(__file__).resolve().parents[2]
STOP_WITHIN = 10.0  # the bound, from the signal to the process's exit
REACH_WITHIN = 120.0  # a safety net only: each held call is reached in a few seconds
ANSWERS = 2.0  # a held call answering well within the stop timeout (8 s by default)
HANGS = 30.0  # a held call outlasting the stop timeout: the run must cut it short

# (signal, how long the sandbox holds the call in flight when the signal arrives)
SIGNALS = [pytest.param(signal.SIGINT, ANSWERS, id="SIGINT-batch-finishes"),
           pytest.param(signal.SIGTERM, HANGS, id="SIGTERM-call-hangs")]
# The call each stage is stopped in: (pattern, how many such calls pass first), on the system
# the stage talks to: a page-view page of the pull (its 5th portal-wide page), the score's
# first write-back batch to HubSpot, the push's Lead upsert to Salesforce.
PAGE_VIEWS = r"^GET /events/v3/events"
SCORE_WRITEBACK = r"^POST /crm/v3/objects/contacts/batch/update$"
HELD = {"pull": (PAGE_VIEWS, 4), "score": (SCORE_WRITEBACK, 0), "push": (LEAD_UPSERT, 0)}
# Score write-back properties and what the write-back moves: the score run's end state.
SCORE_PROPERTIES = ("handshake_", "lifecyclestage")


# --- the stage as a subprocess ----------------------------------------------------------------


def start_stage(sb: Sandbox, stage: str, config: Config) -> subprocess.Popen[str]:
    """`handshake sync <stage> -c FILE` against the sandbox."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **sandbox_env(sb)}
    return subprocess.Popen([sys.executable, "-m", "connector.cli", "sync", stage, "-c",
                             str(config.source)], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_for(proc: subprocess.Popen[str], reached: Callable[[], bool]) -> None:
    """Return once `reached()` holds, failing if the stage ends first."""
    deadline = time.monotonic() + REACH_WITHIN
    while not reached():
        if proc.poll() is not None:
            _, err = proc.communicate()
            pytest.fail(f"the stage ended (exit {proc.returncode}) before the held call: {err}")
        assert time.monotonic() < deadline, "the held call was never reached"
        time.sleep(0.005)


def hold_and_signal(sb: Sandbox, plan: FaultPlan, stage: str, config: Config,
                    signum: int, hold: float, *, kind: str = "stall_after",
                    ) -> tuple[int, float, str]:
    """Run the stage, hold its chosen call `hold` seconds (by default applied, its answer
    held; "drop": before it is applied), send `signum` while the call is in flight; returns
    the exit code, the seconds from the signal to the exit, and stderr."""
    pattern, passing = HELD[stage]
    plan.script.pop(pattern, None)
    plan.schedule(pattern, *([None] * passing), Fault(kind, hold))
    proc = start_stage(sb, stage, config)
    wait_for(proc, lambda: not plan.script[pattern])  # the held call has arrived
    sent = time.monotonic()
    proc.send_signal(signum)
    try:
        proc.wait(timeout=STOP_WITHIN + 30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    elapsed = time.monotonic() - sent
    _, err = proc.communicate()
    return proc.returncode, elapsed, err


def assert_stopped_cleanly(code: int, elapsed: float, err: str, signum: int) -> None:
    name = signal.Signals(signum).name
    assert code == 128 + signum, err
    assert elapsed < STOP_WITHIN, f"exit {elapsed:.1f} s after {name}"
    assert f"stopped by {name}" in err
    assert "Traceback" not in err


def only_run(config: Config, stage: str) -> SyncRun:
    """The one recorded run of `stage` in the config's store."""
    store = Store(config.state.database_url)
    try:
        runs = store.runs(stage=stage)
    finally:
        store.close()
    assert len(runs) == 1, [(r.stage, r.status) for r in runs]
    return runs[0]


def assert_interrupted(config: Config, stage: str, signum: int) -> str:
    run = only_run(config, stage)
    assert run.status == "interrupted"
    assert run.error == f"stopped by {signal.Signals(signum).name}"
    assert run.finished_at is not None
    return run.id


def pending(config: Config, system: str, target: str) -> set[str]:
    """The ledger keys of writes to `target` claimed but not settled (sent or not)."""
    store = Store(config.state.database_url)
    try:
        return {e.key for e in store.pending_writes(system) if e.target == target}
    finally:
        store.close()


def run_status(config: Config, run_id: str) -> str | None:
    store = Store(config.state.database_url)
    try:
        run = store.get_run(run_id)
        return run.status if run is not None else None
    finally:
        store.close()


# --- fixtures: one pulled and scored store, copied into fresh sandboxes ------------------------


@dataclass(frozen=True)
class Base:
    """One sandbox of `contacts` and `seed` started at `start`, pulled (`pulled`) and pulled
    then scored (`scored`): where a score run and a push run start."""

    pulled: Scored
    scored: Scored


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Base:
    folder = tmp_path_factory.mktemp("base")
    start = datetime.now(UTC).replace(second=0, microsecond=0)
    with Sandbox(contacts=300, seed=17, start=start, workdir=folder / "sb") as sb:
        unthrottle(sb)
        sb.clock.advance(timedelta(hours=1))
        config = config_for(sb, folder, folder / "scored.db")
        store = open_store(config)
        pull(context(config, store))
        store.close()  # a WAL database is whole on disk once closed
        copy_store(folder / "scored.db", folder / "pulled.db")
        now = sb.clock.now()
        assert run_score_stage(config, clock=FrozenClock(now)).status == "ok"
    scored = Scored(300, 17, start, folder / "scored.db", now)
    return Base(pulled=replace(scored, database=folder / "pulled.db"), scored=scored)


@pytest.fixture(scope="module")
def pull_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Sandbox, Path,
                                                                               dict[str, Any]]]:
    """A sandbox small enough that a pull stays inside HubSpot's burst limit, and what an
    undisturbed pull of it stores."""
    folder = tmp_path_factory.mktemp("pull")
    with Sandbox(contacts=120, seed=9, workdir=folder / "sb") as sb:
        unthrottle(sb)
        sb.clock.advance(timedelta(hours=1))
        calm = config_for(sb, folder, folder / "calm.db")
        assert run_pull_stage(calm).status == "ok"
        store = Store(calm.state.database_url)
        calm_snapshot = snapshot(store)
        store.close()
        yield sb, folder, calm_snapshot


@dataclass(frozen=True)
class CalmPush:
    """What an undisturbed push writes."""

    leads: dict[str, dict[str, Any]]
    tasks: Counter[tuple[Any, ...]]
    created: int  # Leads it creates (the rest of its Leads existed: matched and updated)


@pytest.fixture(scope="module")
def calm_push(base: Base, tmp_path_factory: pytest.TempPathFactory) -> CalmPush:
    with org(base.scored, tmp_path_factory.mktemp("calm-push"), "calm") as (sb, config, _):
        result = run_push_stage(config)
        assert result.status == "ok"
        return CalmPush(leads(sb), tasks(sb, with_handoff_text=False),
                        result.counts["leads.created"])


def score_properties(sb: Sandbox) -> dict[str, dict[str, str]]:
    """What the score write-back left on each HubSpot contact."""
    assert sb.hubspot is not None
    return {cid: {k: v for k, v in rec.props.items() if k.startswith(SCORE_PROPERTIES)}
            for cid, rec in sb.hubspot.state.contacts.items()}


def differences(got: dict[str, dict[str, str]],
                want: dict[str, dict[str, str]]) -> dict[str, dict[str, tuple[Any, Any]]]:
    """Per contact, the properties that differ: (got, wanted)."""
    return {cid: {k: (props.get(k), want[cid].get(k)) for k in {*props, *want[cid]}
                  if props.get(k) != want[cid].get(k)}
            for cid, props in got.items() if props != want.get(cid)}


def scored_contacts(sb: Sandbox) -> set[str]:
    """The HubSpot contacts a score write-back reached."""
    return {cid for cid, props in score_properties(sb).items() if "handshake_score" in props}


# --- the six stops ------------------------------------------------------------------------------


@pytest.mark.parametrize(("signum", "hold"), SIGNALS)
def test_pull_stops_cleanly_and_a_rerun_stores_what_an_undisturbed_pull_does(
        pull_sandbox: tuple[Sandbox, Path, dict[str, Any]], signum: int, hold: float) -> None:
    sb, folder, calm = pull_sandbox
    assert sb.hubspot is not None
    config = config_for(sb, folder, folder / f"{signal.Signals(signum).name}.db")

    code, elapsed, err = hold_and_signal(sb, sb.hubspot.faults, "pull", config, signum, hold)

    assert_stopped_cleanly(code, elapsed, err, signum)
    stopped = assert_interrupted(config, "pull", signum)
    store = Store(config.state.database_url)
    partial = snapshot(store)
    store.close()
    assert partial["contacts"] and partial != calm  # it stopped mid-pull, with work done

    rerun = run_pull_stage(config)
    assert rerun.status == "ok", rerun.error
    assert run_status(config, stopped) == "interrupted"  # not mistaken for an abandoned run
    store = Store(config.state.database_url)
    try:
        assert snapshot(store) == calm
        assert_matches_ground_truth(store, sb)
    finally:
        store.close()


@pytest.mark.parametrize(("signum", "hold"), SIGNALS)
def test_score_stops_cleanly_and_a_rerun_writes_back_what_an_undisturbed_score_does(
        base: Base, tmp_path: Path, signum: int, hold: float) -> None:
    with org(base.pulled, tmp_path, "stopped") as (sb, config, _db):
        assert sb.hubspot is not None
        code, elapsed, err = hold_and_signal(sb, sb.hubspot.faults, "score", config, signum,
                                             hold)

        assert_stopped_cleanly(code, elapsed, err, signum)
        stopped = assert_interrupted(config, "score", signum)
        store = Store(config.state.database_url)
        try:
            assert store.get_bookmark(SCORE_WRITEBACK_PENDING) == stopped
            scored_at = {s.scored_at for s in store.latest_scores(
                [c.hubspot_id for c in store.iter_contacts()]).values()}
        finally:
            store.close()
        written = scored_contacts(sb)
        assert written, "the held write-back batch was applied"
        unsettled = {f"hubspot:score:{c}" for c in written} & pending(config, "hubspot",
                                                                       "contact")
        # the batch in flight settled before the stop, or the stop cut it short unsettled
        assert len(unsettled) == (0 if hold == ANSWERS else len(written))

        # Scores decay and MQL dates are scoring times: the re-run and the undisturbed run
        # score at the instant the stopped run did, so both write what it would have.
        (instant,) = scored_at
        now = FrozenClock(instant if instant.tzinfo else instant.replace(tzinfo=UTC))
        rerun = run_score_stage(config, clock=now)
        assert rerun.status == "ok", rerun.error
        assert run_status(config, stopped) == "interrupted"
        store = Store(config.state.database_url)
        try:
            assert store.get_bookmark(SCORE_WRITEBACK_PENDING) is None
        finally:
            store.close()
        after_rerun = score_properties(sb)

    with org(base.pulled, tmp_path, "calm") as (sb, config, _db):
        assert run_score_stage(config, clock=now).status == "ok"
        calm, everyone = score_properties(sb), scored_contacts(sb)
    assert len(written) < len(everyone), "the run stopped before writing everyone"
    assert after_rerun.keys() == calm.keys()
    assert differences(after_rerun, calm) == {}


@pytest.mark.parametrize(("signum", "hold"), SIGNALS)
def test_push_stops_cleanly_and_a_rerun_writes_what_an_undisturbed_push_does(
        base: Base, calm_push: CalmPush, tmp_path: Path, signum: int, hold: float) -> None:
    with org(base.scored, tmp_path, "stopped") as (sb, config, _db):
        assert sb.salesforce is not None
        code, elapsed, err = hold_and_signal(sb, sb.salesforce.faults, "push", config, signum,
                                             hold)

        assert_stopped_cleanly(code, elapsed, err, signum)
        stopped = assert_interrupted(config, "push", signum)
        applied = {f"sf:lead:{lead['Handshake_Id__c']}" for lead in leads(sb).values()}
        assert len(applied) == calm_push.created, "the held Lead upsert was applied"
        assert not sb.salesforce.state.records("Task"), "the run stopped before the Tasks"
        # the batch in flight settled before the stop, or the stop cut it short unsettled
        unsettled = applied & pending(config, "salesforce", "Lead")
        assert len(unsettled) == (0 if hold == ANSWERS else len(applied))

        rerun = run_push_stage(config)
        assert rerun.status == "ok", rerun.error
        assert run_status(config, stopped) == "interrupted"
        assert leads(sb) == calm_push.leads
        assert tasks(sb, with_handoff_text=False) == calm_push.tasks


def test_a_push_stopped_before_salesforce_applied_its_lead_creates_routes_them_once(
        base: Base, calm_push: CalmPush, tmp_path: Path) -> None:
    with org(base.scored, tmp_path, "unapplied") as (sb, config, _db):
        assert sb.salesforce is not None
        code, elapsed, err = hold_and_signal(sb, sb.salesforce.faults, "push", config,
                                             signal.SIGTERM, HANGS, kind="drop")
        assert_stopped_cleanly(code, elapsed, err, signal.SIGTERM)
        assert_interrupted(config, "push", signal.SIGTERM)
        assert leads(sb) == {}

        assert run_push_stage(config).status == "ok"
        assert tasks(sb, with_handoff_text=False) == calm_push.tasks
        assert leads(sb) == calm_push.leads


# --- a killed run --------------------------------------------------------------------------------


def test_a_sigkilled_push_is_recorded_abandoned_by_the_next_run(
        base: Base, calm_push: CalmPush, tmp_path: Path) -> None:
    with org(base.scored, tmp_path, "killed") as (sb, config, _db):
        assert sb.salesforce is not None
        sb.salesforce.faults.schedule(LEAD_UPSERT, Fault("stall_after", HANGS))
        proc = start_stage(sb, "push", config)
        # killed once Salesforce applied its Lead creates (their answer held): applied, not
        # recorded, as in tests/push/test_push_crash.py
        wait_for(proc, lambda: len(leads(sb)) == calm_push.created)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
        killed = only_run(config, "push")
        assert killed.status == "running"  # nothing could record how it ended

        # The dead process's lease is taken over at once: waiting out its expiry (60 s) would
        # outlast the wait (30 s) and end this run busy.
        rerun = run_push_stage(config)
        assert rerun.status == "ok", rerun.error
        assert run_status(config, killed.id) == "abandoned"
        assert run_status(config, rerun.run_id) == "ok"
        assert leads(sb) == calm_push.leads
        assert tasks(sb, with_handoff_text=False) == calm_push.tasks
