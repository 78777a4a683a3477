"""The whole loop run twice in a row (pull, score, push, pull-back, then the four again with
nothing changed in either system) writes nothing the second time, to HubSpot or to Salesforce,
and stores no new outcome nor ledger entry: what the pull-back wrote to HubSpot (outcomes,
lifecycle, recycling) comes back through the next pull and must not make the score or the push
write again (no ping-pong), and what the SLA step and recycling wrote to Salesforce comes back
through the next pull-back and must not count as sales work."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from connector.config import Config, PullbackSettings
from connector.runtime import (
    StageResult,
    open_store,
    run_pull_stage,
    run_pullback_stage,
    run_push_stage,
    run_score_stage,
)
from connector.sandbox import Sandbox
from tests.pullback.test_pullback_sandbox import PROFILE, REASON_FIELD, SandboxTime
from tests.push.helpers import pull_and_score, sandbox_org

DAYS = 4
# Requests that write nothing although not GETs: searches, batch reads, the SOAP login and
# the OAuth token; a composite call writes what its subrequests write.
READS = ("/search", "batch/read", "/Soap/", "/oauth2/token")
COMPOSITE = "POST /services/data/vXX.X/composite"


def write_counts(stats: Any) -> Counter[str]:
    """The write requests either sandbox served so far ("METHOD route", whatever their
    answer): a composite call counted by its subrequests that are no GET."""
    out = Counter({route: n for route, n in stats.by_method_route.items()
                   if not route.startswith("GET ") and route != COMPOSITE
                   and not any(r in route for r in READS)})
    for sub, n in stats.subrequests_by_route.items():
        if not sub.startswith("GET "):
            out["composite: " + sub.rsplit(" ", 1)[0]] += n
    return out


def writes(stats: Any, before: Counter[str]) -> Counter[str]:
    """The write requests served since `before` (a `write_counts`)."""
    return write_counts(stats) - before


@dataclass
class Loop:
    sb: Sandbox
    config: Config
    clock: SandboxTime
    truth: list[dict[str, Any]] = field(default_factory=list)

    def cycle(self) -> dict[str, StageResult]:
        """Pull, score, push and pull-back once, each through the stage runtime."""
        out = {"pull": run_pull_stage(self.config, clock=self.clock),
               "score": run_score_stage(self.config, clock=self.clock),
               "push": run_push_stage(self.config, clock=self.clock),
               "pullback": run_pullback_stage(self.config, clock=self.clock)}
        for stage, result in out.items():
            assert result.status == "ok", (stage, result.error)
        return out

    def stored(self) -> tuple[int, int, int, int]:
        """Outcomes, write-ledger entries, SLA breaches and SLA timers in the store (scores may
        grow: a contact Handshake wrote to is scored again once it is pulled back, and its
        unchanged values are not written)."""
        store = open_store(self.config)
        try:
            return (len(store.outcomes()), len(store.ledger_entries("")),
                    len(store.sla_breaches()), len(store.sla_timers()))
        finally:
            store.close()

    def counters(self) -> tuple[Counter[str], Counter[str]]:
        return (write_counts(self.sb.hubspot.stats),  # type: ignore[union-attr]
                write_counts(self.sb.salesforce.stats))  # type: ignore[union-attr]


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loop]:
    folder = tmp_path_factory.mktemp("cycle")
    with sandbox_org(folder, 500, seed=7) as (sb, config):
        config = config.model_copy(
            update={"pullback": PullbackSettings(lead_reason_field=REASON_FIELD)})
        pull_and_score(config)
        state = Loop(sb, config, SandboxTime(sb))
        assert run_push_stage(config, clock=state.clock).counts["leads.created"] > 10
        simulator = sb.simulator(profile=PROFILE)
        for _ in range(DAYS * 6):  # sales work; the loop runs every 4 simulated hours
            state.truth.extend(simulator.run(4, step_hours=1))
            state.cycle()
        yield state


def test_the_loop_worked_something(loop: Loop) -> None:
    """The days before gave the loop something to echo: outcomes, recycles, SLA writes."""
    store = open_store(loop.config)
    try:
        kinds = Counter(o.kind for o in store.outcomes())
        ledger = Counter(":".join(e.key.split(":")[:3]) for e in store.ledger_entries(""))
    finally:
        store.close()
    assert kinds["recycled"] and kinds["attempt"] and kinds["status"], kinds
    assert any(k.startswith("hubspot:outcome:") for k in ledger), ledger
    assert any(k.startswith("hubspot:reengage:") for k in ledger), ledger
    assert ledger["sf:task:sla"] and any(k.startswith("salesforce:") for k in ledger), ledger


def test_a_second_cycle_writes_nothing_in_either_system(loop: Loop) -> None:
    loop.cycle()  # whatever the last simulated hours left, and its echo
    hs_before, sf_before = loop.counters()
    stored = loop.stored()
    again = loop.cycle()
    hs_stats, sf_stats = loop.sb.hubspot.stats, loop.sb.salesforce.stats  # type: ignore[union-attr]
    assert writes(hs_stats, hs_before) == Counter()
    assert writes(sf_stats, sf_before) == Counter()
    assert loop.stored() == stored
    assert again["score"].counts.get("hubspot.requests", 0) == 0
    assert again["pullback"].counts["hubspot.outcomes.requests"] == 0
    assert again["pullback"].counts["recycle.decided"] == 0


def test_the_pullbacks_hubspot_writes_do_not_echo_to_salesforce(loop: Loop) -> None:
    """Sales work more; the pull-back writes outcomes and recycles to HubSpot; the next pull
    reads them back (they moved each contact's lastmodifieddate), and the score and push that
    follow write nothing to Salesforce for them; a cycle after that writes nothing at all."""
    simulator = loop.sb.simulator(profile=PROFILE)
    loop.truth.extend(simulator.run(48, step_hours=1))
    hs_before, _ = loop.counters()
    worked = run_pullback_stage(loop.config, clock=loop.clock)
    assert worked.status == "ok", worked.error
    assert worked.counts["hubspot.outcomes.requests"] > 0  # something to echo
    assert writes(loop.sb.hubspot.stats, hs_before)  # type: ignore[union-attr]
    _, sf_before = loop.counters()
    pulled = run_pull_stage(loop.config, clock=loop.clock)
    assert pulled.status == "ok", pulled.error
    assert run_score_stage(loop.config, clock=loop.clock).status == "ok"
    pushed = run_push_stage(loop.config, clock=loop.clock)
    assert pushed.status == "ok", pushed.error
    assert writes(loop.sb.salesforce.stats, sf_before) == Counter()  # type: ignore[union-attr]
    loop.cycle()
    hs_before, sf_before = loop.counters()
    stored = loop.stored()
    loop.cycle()
    assert writes(loop.sb.hubspot.stats, hs_before) == Counter()  # type: ignore[union-attr]
    assert writes(loop.sb.salesforce.stats, sf_before) == Counter()  # type: ignore[union-attr]
    assert loop.stored() == stored
