"""Outcomes to HubSpot and dead-lead recycling against the sandbox: after a push, the sales-team
simulator works the hand-offs for days while the pull-back runs every few simulated hours; the
leads it recycles are exactly the ground truth's dead leads (closed not converted, opportunity
lost), each stands in HubSpot as a `lead` with its reason, time, count and list membership and
in Salesforce with the status and queue sla.toml names; customers never; a second pull-back
writes nothing in either system."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from connector.cli.main import app
from connector.config import PullbackSettings
from connector.runtime import open_store, run_push_stage, run_score_stage
from connector.sandbox.salesforce import settings as sfs
from connector.scoring import Engine, load_model
from connector.store import SalesOutcome
from tests.pull.helpers import sandbox_env
from tests.pullback.test_pullback_sandbox import PROFILE, REASON_FIELD, SandboxTime, Worked
from tests.push.helpers import pull_and_score, sandbox_org
from tests.push.test_push_sandbox import push_toml

DAYS = 4
QUEUE = sfs.UNASSIGNED_QUEUE_NAME
# never_accepted needs the SLA step's verdict (another step): off here, so the ground truth's
# dead leads are those sales closed or lost
SLA_TOML = f"""
[recycling]
owner_queue = "{QUEUE}"
never_accepted = false
untouched_days = 90
interest = "decay"
decay_to_percent = 50
"""


@pytest.fixture(scope="module")
def worked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worked]:
    folder = tmp_path_factory.mktemp("recycling")
    sla = folder / "sla.toml"
    sla.write_text(SLA_TOML)
    with sandbox_org(folder, 400) as (sb, config):
        config = config.model_copy(update={
            "pullback": PullbackSettings(lead_reason_field=REASON_FIELD),
            "mappings": config.mappings.model_copy(update={"sla": str(sla)})})
        pull_and_score(config)
        assert run_push_stage(config).counts["leads.created"] > 10
        state = Worked(sb, config, SandboxTime(sb))
        state.runs.append(state.pull_back())
        simulator = sb.simulator(profile=PROFILE)
        for _ in range(DAYS * 6):
            state.truth.extend(simulator.run(4, step_hours=1))
            state.runs.append(state.pull_back())
        yield state


def _recycled(worked: Worked) -> list[SalesOutcome]:
    return [o for o in worked.outcomes() if o.kind == "recycled"]


def _dead_leads(worked: Worked) -> set[str]:
    """The ground truth's dead leads among the hand-offs: closed not converted, or lost."""
    ours = worked.handed_off_leads()
    return {e["lead_id"] for e in worked.truth if e.get("lead_id") in ours and "error" not in e
            and (e["action"] == "disqualify"
                 or (e["action"] == "close_opportunity" and e["stage"] == "Closed Lost"))}


def _won_leads(worked: Worked) -> set[str]:
    return {e["lead_id"] for e in worked.truth if e["action"] == "close_opportunity"
            and e["stage"] == "Closed Won"}


def test_recycled_set_is_the_ground_truths_dead_leads(worked: Worked) -> None:
    dead = _dead_leads(worked)
    assert dead, "the simulator closed or lost none of the hand-offs"
    recycled = _recycled(worked)
    assert Counter(o.sf_id for o in recycled) == Counter(dead)  # each once
    assert {o.details["reason"] for o in recycled} == {"closed_not_converted",
                                                       "opportunity_lost"}
    truth_reasons = {e["lead_id"]: e["reason"] for e in worked.truth
                     if e["action"] == "disqualify"}
    for outcome in recycled:
        if outcome.details["reason"] == "closed_not_converted":
            assert outcome.reason == truth_reasons[outcome.sf_id]
        assert outcome.details["count"] == 1


def test_no_customer_is_recycled(worked: Worked) -> None:
    won = _won_leads(worked)
    assert won, "no opportunity was won in the simulated days"
    assert not won & {o.sf_id for o in _recycled(worked)}
    contacts = worked.sb.hubspot.state.contacts  # type: ignore[union-attr]
    by_lead = {o.sf_id: o.hubspot_id for o in worked.outcomes() if o.kind == "converted"}
    for lead_id in won:
        props = contacts[str(by_lead[lead_id])].props
        assert props.get("lifecyclestage") == "customer"
        assert props.get("handshake_sales_outcome") == "won"
        assert not props.get("handshake_recycle_count")


def test_each_recycled_contact_in_hubspot(worked: Worked) -> None:
    state = worked.sb.hubspot.state  # type: ignore[union-attr]
    [reengage] = [lst for lst in state.lists.values()
                  if lst.name == "Handshake re-engagement"]
    recycled = _recycled(worked)
    for outcome in recycled:
        props = state.contacts[str(outcome.hubspot_id)].props
        assert props.get("lifecyclestage") == "lead"
        assert props.get("handshake_recycle_reason") == outcome.reason
        assert props.get("handshake_recycle_count") in ("1", 1)
        assert props.get("handshake_recycled_at")
        assert props.get("handshake_sales_outcome") == "recycled"
        assert props.get("hs_lead_status") == "OPEN"
    assert set(reengage.members) == {str(o.hubspot_id) for o in recycled}


def test_each_recycled_lead_in_salesforce_and_its_score(worked: Worked) -> None:
    sf = worked.sb.salesforce.state  # type: ignore[union-attr]
    leads = {r["Id"]: r for r in sf.records("Lead")}
    queue = sf.queue_id
    store = open_store(worked.config)
    try:
        for outcome in _recycled(worked):
            lead = leads[outcome.sf_id]
            if not lead["IsConverted"]:
                assert lead["Status"] == "Open - Not Contacted"
                assert lead["OwnerId"] == queue
            score = store.latest_score(str(outcome.hubspot_id))
            assert score is not None and not score.is_mql
            assert score.explanation["recycled"] == outcome.details["reason"]
            assert score.interest == round(score.explanation["interest_before"] * 0.5, 2)
    finally:
        store.close()


def _writes(by_route: Counter[str]) -> Counter[str]:
    reads = ("query", "batch/read", "search", "/Soap/")  # the login is no write
    return Counter({route: n for route, n in by_route.items()
                    if not any(r in route for r in reads)})


def test_second_pullback_writes_nothing(worked: Worked) -> None:
    worked.pull_back()  # whatever the last simulated hours left
    hs_stats = worked.sb.hubspot.stats  # type: ignore[union-attr]
    sf_stats = worked.sb.salesforce.stats  # type: ignore[union-attr]
    hs_before, sf_before = Counter(hs_stats.by_route), Counter(sf_stats.by_route)
    subs_before = Counter(sf_stats.subrequests_by_route)
    result = worked.pull_back()
    assert _writes(Counter(hs_stats.by_route) - hs_before) == Counter()
    # the pull-back's reads go in composite calls: a composite is a write only if one of
    # its subrequests is
    subs = Counter(sf_stats.subrequests_by_route) - subs_before
    assert [route for route in subs if not route.startswith("GET ")] == []
    sf_writes = _writes(Counter(sf_stats.by_route) - sf_before)
    assert sf_writes - Counter({"/services/data/vXX.X/composite": sf_writes.get(
        "/services/data/vXX.X/composite", 0)}) == Counter()
    assert result.counts["hubspot.outcomes.requests"] == 0
    assert result.counts["recycle.decided"] == 0


def test_dry_run_writes_nothing(worked: Worked) -> None:
    sf = worked.sb.salesforce.state  # type: ignore[union-attr]
    target = next(r for r in sf.records("Lead") if r["Id"] in worked.handed_off_leads()
                  and not r["IsConverted"] and r["Status"] == "Working - Contacted")
    owner = target["OwnerId"]
    sf.update("Lead", target["Id"], {"Status": "Closed - Not Converted",
                                     REASON_FIELD: "No Budget"}, as_user_id=owner)
    hs_stats = worked.sb.hubspot.stats  # type: ignore[union-attr]
    before = Counter(hs_stats.by_route)
    recycled = len(_recycled(worked))
    result = worked.pull_back(dry_run=True)
    assert result.counts["recycle.would_store"] == 1
    assert result.counts["salesforce.recycle.would_write"] == 1
    assert result.counts["hubspot.outcomes.would_write"] >= 1
    assert _writes(Counter(hs_stats.by_route) - before) == Counter()
    assert len(_recycled(worked)) == recycled
    assert sf.get("Lead", target["Id"])["OwnerId"] == owner
    # the real run then recycles it, once
    assert worked.pull_back().counts["recycle.decided"] == 1
    assert worked.pull_back().counts["recycle.decided"] == 0


def test_recycled_command_lists_without_emails(worked: Worked, tmp_path: Path) -> None:
    db = Path(worked.config.state.database_url.split("///", 1)[1])
    config_file = tmp_path / "handshake.toml"
    config_file.write_text(push_toml(worked.sb, db))
    runner = CliRunner()
    result = runner.invoke(app, ["recycled", "--json", "--config", str(config_file)],
                           env=sandbox_env(worked.sb))
    assert result.exit_code == 0, result.output
    rows: list[dict[str, Any]] = json.loads(result.output)
    assert {r["hubspot_id"] for r in rows} == {str(o.hubspot_id) for o in _recycled(worked)}
    assert all(r["count"] >= 1 and r["reason"] and r["recycled_at"] for r in rows)
    assert "@" not in result.output
    later = runner.invoke(app, ["recycled", "--json", "--since", "2999-01-01",
                                "--config", str(config_file)], env=sandbox_env(worked.sb))
    assert later.exit_code == 0, later.output
    assert json.loads(later.output) == []
    text = runner.invoke(app, ["recycled", "--config", str(config_file)],
                         env=sandbox_env(worked.sb))
    assert f"{len(rows)} recycled lead(s)" in text.output and "@" not in text.output


def test_score_stage_keeps_only_the_recycled_share(worked: Worked) -> None:
    now = worked.clock.now()
    scored = run_score_stage(worked.config, everyone=True, write_back=False, clock=worked.clock)
    assert scored.status == "ok", scored.error
    engine = Engine(load_model(worked.config.mapping_path("scoring")))
    store = open_store(worked.config)
    try:
        fulls = []
        for outcome in _recycled(worked):
            hid = str(outcome.hubspot_id)
            contact = store.get_contact(hid)
            assert contact is not None
            acts = store.activities_for_many([hid])[hid]
            at = outcome.occurred_at.replace(tzinfo=UTC)
            full = engine.score(contact, acts, now).interest
            kept = engine.score(contact, acts, now, (at, 0.5)).interest
            latest = store.latest_score(hid)
            assert latest is not None and latest.interest == kept
            assert kept == round(full * 0.5, 2)  # nothing earned since the recycle
            fulls.append(full)
        assert any(f > 0 for f in fulls), "no recycled contact had any interest to decay"
    finally:
        store.close()
