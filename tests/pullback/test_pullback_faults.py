"""The pull-back disturbed ends as an undisturbed one: with 20% of the calls to both APIs
failing (429-style limits, 5xx, connections dropped before and after the write was applied),
and killed with SIGKILL at four points (during the Salesforce pull streams; while an SLA alert
Task create is in flight; while a reassignment is in flight; during the outcomes and recycling
writes to HubSpot) then run again, Salesforce, HubSpot and the store hold what an undisturbed
pull-back leaves: no alert Task twice, no reassignment twice or noted twice, one recycle each
with its count, list memberships once.

Every org here is the same sandbox (seed, start) with a copy of one scored store, worked the
same way on a frozen sandbox clock: the push, a first pull-back, then days of sales work with
no pull-back, so the last pull-back has everything to do (outcomes, SLA alerts,
reassignments, recycles). The sandbox starts days in the past and is brought to the wall
clock at the end, so a `handshake sync pullback` subprocess (on the real clock) sees the
same day as the in-process runs; what depends on the instant of the last run (when a breach
was found, when a turn or a recycle started) is left out of the comparisons."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from connector.clock import FrozenClock
from connector.config import Config, PullbackSettings
from connector.pull import pull
from connector.pullback.sla_step import ALERT_PREFIX, REF_LABEL
from connector.runtime import (
    open_store,
    run_pullback_stage,
    run_push_stage,
    run_score_stage,
)
from connector.sandbox import Fault, FaultPlan, Sandbox
from tests.pull.helpers import context, sandbox_env, unthrottle
from tests.pullback.test_pullback_sandbox import PROFILE, REASON_FIELD, SandboxTime
from tests.push.helpers import config_for, copy_store

ROOT = Path(__file__).resolve().parents[2]
CONTACTS = 500
SEED = 23
DAYS_BACK = 4  # the sandbox starts this long before the wall clock
WORK_HOURS = 80  # sales work this long after the first pull-back
WAIT_SECONDS = 120.0  # a safety net only: each kill point is reached in seconds
HOLD = 300.0  # a held call outlives the killed pull-back by far

TASK_CREATE = r"^POST /services/data/v[\d.]+/composite/sobjects$"
RECORD_UPDATE = r"^PATCH /services/data/v[\d.]+/composite/sobjects$"
QUERY = r"^GET /services/data/v[\d.]+/query"
HS_UPDATE = r"^POST /crm/v3/objects/contacts/batch/update$"
HS_LIST_ADD = r"^PUT /crm/v3/lists/[^/]+/memberships/add$"
# HubSpot properties that move with every write, or tell the instant of the run: compared as
# set or not
VOLATILE_HS = ("lastmodifieddate", "hs_lastmodifieddate", "handshake_recycled_at")
STAMPED_HS = ("hs_lifecyclestage_", "hs_date_entered_", "hs_date_exited_", "hs_time_in_")
VOLATILE_SF = {"attributes", "Id", "CreatedDate", "LastModifiedDate", "SystemModstamp",
               "CompletedDateTime"}


@dataclass(frozen=True)
class Scored:
    start: datetime
    database: Path


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory) -> Scored:
    """One sandbox pulled and scored DAYS_BACK days before the wall clock."""
    folder = tmp_path_factory.mktemp("scored")
    start = (datetime.now(UTC) - timedelta(days=DAYS_BACK)).replace(second=0, microsecond=0)
    with Sandbox(contacts=CONTACTS, seed=SEED, start=start, workdir=folder / "sb",
                 frozen_clock=True) as sb:
        unthrottle(sb)
        sb.clock.advance(timedelta(hours=1))
        config = config_for(sb, folder, folder / "scored.db")
        pull(context(config, open_store(config)))
        clock = FrozenClock(sb.clock.now())
        # on a loaded machine (CI runs 4 workers on 2 cores) the write-back can run out of
        # retries and leave its ledger entries pending: the next score run settles them, as in
        # production; every org of the module starts from this settled store
        store = open_store(config)
        try:
            for _ in range(3):
                result = run_score_stage(config, clock=clock)
                if result.status == "ok" and not store.pending_writes():
                    break
            assert result.status == "ok", result.error
            assert [e.key for e in store.pending_writes()] == []
        finally:
            store.close()
    return Scored(start, folder / "scored.db")


@contextmanager
def worked_org(scored: Scored, folder: Path, name: str) -> Iterator[tuple[Sandbox, Config,
                                                                          FaultPlan, FaultPlan]]:
    """A fresh org of the scored sandbox, pushed, pulled back once and worked WORK_HOURS by
    sales, its clock then on the wall clock; with a fault plan for each API (nothing
    injected yet)."""
    folder.mkdir(parents=True, exist_ok=True)
    db = folder / f"{name}.db"
    copy_store(scored.database, db)
    hs_plan, sf_plan = FaultPlan(seed=3), FaultPlan(seed=4)
    with Sandbox(contacts=CONTACTS, seed=SEED, start=scored.start, frozen_clock=True,
                 workdir=folder / f"{name}-sb", hubspot_faults=hs_plan,
                 salesforce_faults=sf_plan) as sb:
        unthrottle(sb)
        sb.clock.advance(timedelta(hours=1))
        config = config_for(sb, folder, db)
        path = Path(str(config.source))
        path.write_text(path.read_text() + f'[pullback]\nlead_reason_field = "{REASON_FIELD}"\n')
        config = config.model_copy(
            update={"pullback": PullbackSettings(lead_reason_field=REASON_FIELD)})
        clock = SandboxTime(sb)
        assert run_push_stage(config, clock=clock).counts["leads.created"] > 20
        assert run_pullback_stage(config, clock=clock).status == "ok"
        sb.simulator(profile=PROFILE).run(WORK_HOURS, step_hours=2)
        now = datetime.now(UTC)
        assert sb.clock.now() < now
        sb.clock.frozen = False
        sb.clock.set(now)
        yield sb, config, hs_plan, sf_plan


# --- what the two systems and the store hold, without ids and run instants -----------------


def salesforce_state(sb: Sandbox) -> dict[str, Any]:
    state = sb.salesforce.state  # type: ignore[union-attr]
    leads = {r["Id"]: {k: v for k, v in r.items() if k not in VOLATILE_SF}
             for r in state.records("Lead")}
    # an alert Task is due the day of the run that wrote it
    tasks = Counter(tuple(sorted((k, str(v)) for k, v in t.items()
                                 if k not in VOLATILE_SF and k != "ActivityDate"))
                    for t in state.records("Task"))
    return {"leads": leads, "tasks": tasks}


def hubspot_state(sb: Sandbox) -> dict[str, Any]:
    state = sb.hubspot.state  # type: ignore[union-attr]
    contacts = {cid: {k: bool(v) if k.startswith(STAMPED_HS) or k in VOLATILE_HS else v
                      for k, v in c.props.items()}
                for cid, c in state.contacts.items()}
    lists = {lst.name: sorted(lst.members) for lst in state.lists.values()}
    return {"contacts": contacts, "lists": lists}


def store_state(config: Config) -> dict[str, Any]:
    store = open_store(config)
    try:
        outcomes = Counter(
            (o.sf_object, o.sf_id, o.kind, o.source_id, o.status, o.reason, o.hubspot_id,
             str(sorted((o.details or {}).items()))) for o in store.outcomes())
        breaches = Counter((b.key, b.kind, b.owner_id, getattr(b, "to_owner", None), b.met_at)
                           for b in store.sla_breaches())
        timers = Counter((t.hubspot_id, t.sf_id, t.owner_id, t.state, t.first_touch_at,
                          t.worked_at) for t in store.sla_timers())
        ledger = Counter((e.key, e.status) for e in store.ledger_entries(""))
        dead = Counter((d.stage, d.record_key) for d in store.dead_letters())
        pending = [e.key for e in store.pending_writes()]
    finally:
        store.close()
    return {"outcomes": outcomes, "breaches": breaches, "timers": timers, "ledger": ledger,
            "dead_letters": dead, "pending": pending}


def everything(sb: Sandbox, config: Config) -> dict[str, Any]:
    return {"salesforce": salesforce_state(sb), "hubspot": hubspot_state(sb),
            "store": store_state(config)}


def alert_refs(sb: Sandbox) -> Counter[str]:
    tasks = sb.salesforce.state.records("Task")  # type: ignore[union-attr]
    return Counter(str(t["Description"]).rsplit(REF_LABEL, 1)[1] for t in tasks
                   if REF_LABEL in str(t.get("Description") or ""))


@pytest.fixture(scope="module")
def calm(scored: Scored, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """What an undisturbed last pull-back leaves."""
    with worked_org(scored, tmp_path_factory.mktemp("calm"), "calm") as (sb, config, _, _):
        result = run_pullback_stage(config, clock=SandboxTime(sb))
        assert result.status == "ok", result.error
        state = everything(sb, config)
        state["counts"] = result.counts
    return state


def test_the_last_pullback_has_everything_to_do(calm: dict[str, Any]) -> None:
    counts = calm["counts"]
    assert counts["sla.alerts"] > 0 and counts["sla.reassignments"] > 0, counts
    assert counts["recycle.decided"] > 0 and counts["hubspot.outcomes.requests"] > 0, counts
    assert counts["salesforce.recycle.written"] > 0, counts
    assert any(k == "Handshake re-engagement" and v for k, v in calm["hubspot"]["lists"].items())
    assert calm["store"]["pending"] == []


def assert_same(state: dict[str, Any], calm: dict[str, Any]) -> None:
    assert state["salesforce"]["leads"] == calm["salesforce"]["leads"]
    assert state["salesforce"]["tasks"] == calm["salesforce"]["tasks"]
    ours, theirs = state["hubspot"]["contacts"], calm["hubspot"]["contacts"]
    assert ours.keys() == theirs.keys()
    differ = {cid: {k: (ours[cid].get(k), theirs[cid].get(k))
                    for k in ours[cid].keys() | theirs[cid].keys()
                    if ours[cid].get(k) != theirs[cid].get(k)}
              for cid in ours if ours[cid] != theirs[cid]}
    assert differ == {}
    assert state["hubspot"] == calm["hubspot"]
    for part in ("outcomes", "breaches", "timers", "ledger", "dead_letters", "pending"):
        assert state["store"][part] == calm["store"][part], part


def twenty_percent(plan: FaultPlan) -> None:
    """One call in five fails: 4% each of the over-limit answer, 500, 503, a connection
    dropped before the system handled the call, and one dropped after it applied it."""
    plan.p429 = plan.p500 = plan.p503 = plan.p_drop = plan.p_drop_after = 0.04


def test_twenty_percent_faults_in_both_apis_end_as_an_undisturbed_run(
        scored: Scored, calm: dict[str, Any], tmp_path: Path) -> None:
    with worked_org(scored, tmp_path, "faulty") as (sb, config, hs_plan, sf_plan):
        twenty_percent(hs_plan)
        twenty_percent(sf_plan)
        # whatever the dice say, the writes meet the dangerous cases: applied, answer lost
        sf_plan.schedule(TASK_CREATE, Fault("drop_after"))
        sf_plan.schedule(RECORD_UPDATE, Fault("drop_after"), Fault("drop_after"))
        hs_plan.schedule(HS_UPDATE, Fault("drop_after"), Fault("503"))
        hs_plan.schedule(HS_LIST_ADD, Fault("drop_after"))
        result = run_pullback_stage(config, clock=SandboxTime(sb))
        assert result.status == "ok", result.error
        assert not any(sf_plan.script.values()) and not any(hs_plan.script.values())
        assert result.counts["sla.alerts"] == calm["counts"]["sla.alerts"]  # found, not resent
        served = sb.salesforce.stats.snapshot()["by_route_status"]  # type: ignore[union-attr]
        assert sum(n for r, n in served.items() if not r.endswith(" 200")) >= 5
        hs_plan.clear()
        sf_plan.clear()
        assert max(alert_refs(sb).values()) == 1
        assert_same(everything(sb, config), calm)
        again = run_pullback_stage(config, clock=SandboxTime(sb))
        assert again.status == "ok", again.error
        assert_same(everything(sb, config), calm)


# --- SIGKILL -----------------------------------------------------------------------------------


def start_pullback(sb: Sandbox, config: Config) -> subprocess.Popen[bytes]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **sandbox_env(sb)}
    return subprocess.Popen([sys.executable, "-m", "connector.cli", "sync", "pullback", "-c",
                             str(config.source)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


def kill_when(proc: subprocess.Popen[bytes], reached: Callable[[], bool]) -> None:
    """SIGKILL the pull-back as soon as `reached()` holds (it must still be running)."""
    deadline = time.monotonic() + WAIT_SECONDS
    while not reached():
        if proc.poll() is not None:
            _, err = proc.communicate()
            pytest.fail(f"the pull-back ended (exit {proc.returncode}) before the kill point: "
                        f"{err.decode()[-2000:]}")
        assert time.monotonic() < deadline, "the kill point was never reached"
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL
    proc.communicate()


def test_sigkill_at_four_points_then_rerun_equals_an_undisturbed_run(
        scored: Scored, calm: dict[str, Any], tmp_path: Path) -> None:
    with worked_org(scored, tmp_path, "killed") as (sb, config, hs_plan, sf_plan):
        sf = sb.salesforce.state  # type: ignore[union-attr]
        hs = sb.hubspot.state  # type: ignore[union-attr]
        note = "Reassigned by Handshake"

        def noted() -> int:
            return sum(1 for r in sf.records("Lead") if note in str(r.get("Description") or ""))

        def hubspot_props() -> int:
            return hash(tuple(sorted(
                (cid, tuple(sorted((k, str(v)) for k, v in c.props.items()
                                   if k not in VOLATILE_HS and not k.startswith(STAMPED_HS))))
                for cid, c in hs.contacts.items())))

        def outcomes() -> int:
            store = open_store(config)
            try:
                return len(store.outcomes())
            finally:
                store.close()

        # 1. during the Salesforce pull streams (some pages stored): a query hangs unanswered
        stored = outcomes()
        sf_plan.schedule(QUERY, None, Fault("drop", HOLD))
        kill_when(start_pullback(sb, config), lambda: not sf_plan.script[QUERY])
        assert outcomes() > stored
        assert not alert_refs(sb) and noted() == 0
        sf_plan.clear()

        # 2. the first alert Task create is applied, its answer held
        sf_plan.schedule(TASK_CREATE, Fault("stall_after", HOLD))
        kill_when(start_pullback(sb, config), lambda: len(alert_refs(sb)) > 0)
        store = open_store(config)
        try:
            assert store.ledger_entries(ALERT_PREFIX, status="pending")
        finally:
            store.close()
        sf_plan.clear()

        # 3. the reassignments' update is applied, its answer held
        sf_plan.schedule(RECORD_UPDATE, Fault("stall_after", HOLD))
        kill_when(start_pullback(sb, config), lambda: noted() > 0)
        sf_plan.clear()

        # 4. the first contacts update to HubSpot (outcomes, a recycle's move back) is applied,
        # its answer held
        before = hubspot_props()
        hs_plan.schedule(HS_UPDATE, Fault("stall_after", HOLD))
        kill_when(start_pullback(sb, config), lambda: hubspot_props() != before)
        hs_plan.clear()

        last = run_pullback_stage(config)
        assert last.status == "ok", last.error
        assert max(alert_refs(sb).values()) == 1
        assert all(str(r.get("Description") or "").count(note) <= 1 for r in sf.records("Lead"))
        assert_same(everything(sb, config), calm)
        again = run_pullback_stage(config)
        assert again.status == "ok", again.error
        assert_same(everything(sb, config), calm)
