"""With 20% of Salesforce calls failing (429-style limits, 5xx, connections dropped before and
after the org applied the write) the push leaves Salesforce exactly as an undisturbed run does:
the same Leads, one hand-off Task per handed-off record, the same activity Tasks, nothing twice."""

from __future__ import annotations

from pathlib import Path

import pytest

from connector.sandbox import Fault, FaultPlan
from connector.runtime import run_push_stage
from tests.push.helpers import (
    InstantClock,
    LEAD_UPSERT,
    TASK_CREATE,
    Scored,
    leads,
    org,
    parked,
    score_once,
    sla_timers,
    tasks,
    writes,
)

CONTACTS = 500


def twenty_percent(seed: int) -> FaultPlan:
    """One call in five fails: 4% each of the over-limit 403, 500, 503, a connection dropped
    before the org handled the call, and one dropped after the org applied it."""
    return FaultPlan(p429=0.04, p500=0.04, p503=0.04, p_drop=0.04, p_drop_after=0.04, seed=seed)


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory) -> Scored:
    return score_once(tmp_path_factory.mktemp("scored"), contacts=CONTACTS, seed=23)


@pytest.mark.parametrize("mode", ["digest", "each"])
def test_twenty_percent_faults_leave_salesforce_as_an_undisturbed_run(
        scored: Scored, tmp_path: Path, mode: str) -> None:
    clock = InstantClock(scored.now)  # both runs at one instant; retry waits take no time
    with org(scored, tmp_path, "calm", activity_tasks=mode) as (sb, config, db):
        calm = run_push_stage(config, clock=clock)
        assert calm.status == "ok"
        calm_leads, calm_tasks, calm_parked = leads(sb), tasks(sb), parked(db)
        calm_timers = sla_timers(db)
    assert calm_leads and set(calm_tasks.values()) == {1}
    handoffs = [t for t in calm_tasks if t[1] == "handoff"]
    assert len(handoffs) == len({t[0] for t in handoffs}) == calm.counts["tasks.handoff"] > 20

    plan = twenty_percent(seed=5)
    # Whatever the dice say, each write route meets both dangerous cases: the first Task create
    # fails before the org sees it, the second is applied and its answer lost; the Lead upsert
    # is applied and lost, then fails with a 500.
    plan.schedule(TASK_CREATE, Fault("500"), Fault("drop_after"))
    plan.schedule(LEAD_UPSERT, Fault("drop_after"), Fault("500"))
    with org(scored, tmp_path, "faulty", activity_tasks=mode, faults=plan) as (sb, config, db):
        result = run_push_stage(config, clock=clock)
        assert result.status == "ok", result.error
        assert clock.slept and clock.now() == scored.now  # it waited, and planned at one instant
        assert leads(sb) == calm_leads
        assert tasks(sb) == calm_tasks
        assert parked(db) == calm_parked  # the same records refused, for the same reasons
        assert sla_timers(db) == calm_timers and set(calm_timers.values()) == {1}
        # the Tasks found after a lost answer count as written by this run, as in the calm one,
        # and a Lead whose creation answer was lost still counts as created
        assert {k: v for k, v in writes(result.counts).items()
                if k.startswith(("tasks.", "leads."))} == {
            k: v for k, v in writes(calm.counts).items() if k.startswith(("tasks.", "leads."))}
        # the Task create applied before its answer was lost was found, not sent again
        assert result.counts["tasks.reconciled"] >= 1
        served = sb.salesforce.stats.snapshot()["by_route_status"]  # type: ignore[union-attr]
        failed = sum(n for route, n in served.items() if not route.endswith(" 200"))
        assert failed >= 4 and any(route.endswith(" 0") for route in served)

        again = run_push_stage(config, clock=clock)
        assert again.status == "ok", again.error
        assert writes(again.counts) == {}
        assert tasks(sb) == calm_tasks and leads(sb) == calm_leads
