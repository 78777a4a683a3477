"""What the pull-back costs in Salesforce calls, and how it follows deletions and merges,
against the sandbox: every object's query and the deleted-records checks go in one composite
call; a merged Lead moves its hand-off to the survivor; a deleted one is an outcome and stops
being followed; when Salesforce says the deleted window is gone, the records followed are read
again whole."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

from connector.config import Config, PullbackSettings
from connector.pullback import STREAMS
from connector.runtime import StageResult, open_store, run_pullback_stage, run_push_stage
from connector.sandbox import Sandbox
from connector.store import SalesOutcome
from tests.push.helpers import pull_and_score, sandbox_org

from .test_pullback_sandbox import REASON_FIELD, SandboxTime


@dataclass
class Org:
    sb: Sandbox
    config: Config
    clock: SandboxTime

    @property
    def state(self) -> Any:
        assert self.sb.salesforce is not None
        return self.sb.salesforce.state

    def pull_back(self) -> StageResult:
        result = run_pullback_stage(self.config, clock=self.clock)
        assert result.status == "ok", result.error
        return result

    def outcomes(self, kind: str) -> dict[str, SalesOutcome]:
        store = open_store(self.config)
        try:
            return {o.sf_id: o for o in store.outcomes(kind=kind)}
        finally:
            store.close()

    def open_leads(self) -> list[str]:
        """Handed-off Leads still open, in a stable order."""
        store = open_store(self.config)
        try:
            ours = {link.sf_id for link in store.handoffs() if link.sf_object == "Lead"}
        finally:
            store.close()
        return sorted(r["Id"] for r in self.state.records("Lead")
                      if r["Id"] in ours and not r["IsConverted"])

    def hubspot_of(self, lead_id: str) -> str:
        store = open_store(self.config)
        try:
            found = store.hubspot_id_for(lead_id)
        finally:
            store.close()
        assert found is not None
        return found


@pytest.fixture(scope="module")
def org(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Org]:
    folder = tmp_path_factory.mktemp("pullback-calls")
    with sandbox_org(folder, 300) as (sb, config):
        config = config.model_copy(
            update={"pullback": PullbackSettings(lead_reason_field=REASON_FIELD)})
        pull_and_score(config)
        pushed = run_push_stage(config)
        assert pushed.counts["leads.created"] > 5
        found = Org(sb, config, SandboxTime(sb))
        found.pull_back()  # the hand-offs as Handshake left them
        yield found


def _later(org: Org, minutes: int = 5) -> None:
    """Time passes (the deleted resource wants its window longer than a minute)."""
    org.sb.clock.advance(timedelta(minutes=minutes))


def test_nothing_changed_is_one_call_for_every_object(org: Org) -> None:
    _later(org)
    org.pull_back()
    _later(org)
    assert org.sb.salesforce is not None
    before = org.sb.salesforce.stats.snapshot()
    again = org.pull_back()
    assert again.counts["salesforce.pull.calls"] == 1
    assert len(STREAMS) == 4  # Lead, Opportunity, Task, Event: 4 objects in that one call
    assert sum(v for k, v in again.counts.items() if k.endswith(".outcomes")) == 0
    assert again.counts.get("vocabulary.read", 0) == 0  # kept in the store
    after = org.sb.salesforce.stats.snapshot()
    # that call carried every object's query and a deleted check for each object followed
    subrequests = {k: v - before["subrequests_by_route"].get(k, 0)
                   for k, v in after["subrequests_by_route"].items()}
    queries = sum(v for k, v in subrequests.items() if "/query" in k and k.endswith(" 200"))
    checks = sum(v for k, v in subrequests.items() if "/deleted" in k and k.endswith(" 200"))
    assert queries == 4
    assert checks >= 1  # one per object followed: Leads at least


def test_a_merged_lead_moves_its_handoff_to_the_survivor(org: Org) -> None:
    loser = org.open_leads()[0]
    # the survivor: a Lead the org had before Handshake's hand-offs
    theirs = set(org.open_leads()) | {loser}
    store = open_store(org.config)
    try:
        linked = {link.sf_id for link in store.handoffs()}
    finally:
        store.close()
    survivor = next(r["Id"] for r in org.state.records("Lead")
                    if r["Id"] not in theirs | linked and not r["IsConverted"])
    hubspot_id = org.hubspot_of(loser)
    org.state.merge("Lead", survivor, [loser])
    _later(org)
    result = org.pull_back()
    assert result.counts["Lead.merged"] == 1
    merged = org.outcomes("merged")[loser]
    assert (merged.hubspot_id, merged.details["into"]) == (hubspot_id, survivor)
    store = open_store(org.config)
    try:
        assert store.handoff_states()[hubspot_id].lead_id == survivor
        link = store.linked(hubspot_id)
    finally:
        store.close()
    assert link is not None and link.sf_id == survivor
    # a rep's later change on the survivor is this hand-off's outcome
    rep = next(u["Id"] for u in org.state.records("User")
               if u["IsActive"] and u["Id"] != org.state.integration_user_id)
    now = next(r["Status"] for r in org.state.records("Lead") if r["Id"] == survivor)
    status = "Working - Contacted" if now != "Working - Contacted" else "Open - Not Contacted"
    _later(org)
    org.state.update("Lead", survivor, {"Status": status}, as_user_id=rep)
    _later(org)
    org.pull_back()
    change = org.outcomes("status").get(survivor)
    assert change is not None and (change.hubspot_id, change.status) == (hubspot_id, status)


def test_a_deleted_lead_is_an_outcome_and_no_longer_followed(org: Org) -> None:
    gone = org.open_leads()[2]
    hubspot_id = org.hubspot_of(gone)
    org.state.delete("Lead", gone)
    _later(org)
    result = org.pull_back()
    assert result.counts["Lead.deleted"] == 1
    assert org.outcomes("deleted")[gone].hubspot_id == hubspot_id
    _later(org)
    again = org.pull_back()
    assert again.counts.get("Lead.deleted", 0) == 0
    assert again.counts["salesforce.pull.calls"] == 1


def test_a_window_gone_reads_the_records_followed_again(org: Org,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    deleted, purged = org.open_leads()[3:5]
    org.state.delete("Lead", deleted)
    org.state.delete("Lead", purged)
    org.state.purge_recycle_bin()  # the delete log is gone: `purged` is gone for good
    _later(org)
    with caplog.at_level(logging.INFO, logger="connector.pullback"):
        result = org.pull_back()
    assert result.counts["deleted.window_gone"] >= 1
    gone = org.outcomes("deleted")
    assert {deleted, purged} <= set(gone)
    said = [r for r in caplog.records if "no longer lists the records deleted" in r.message]
    assert len(said) == 1  # once a run, whatever the number of objects
    _later(org)
    assert org.pull_back().counts.get("deleted.window_gone", 0) == 0


def test_more_than_15_days_without_a_check_reads_everything_followed_again(org: Org) -> None:
    org.sb.clock.advance(timedelta(days=16))
    result = org.pull_back()
    assert result.counts["deleted.window_gone"] >= 1
    assert result.counts.get("Lead.deleted", 0) == 0  # nothing new was deleted
    _later(org)
    assert org.pull_back().counts.get("deleted.window_gone", 0) == 0
