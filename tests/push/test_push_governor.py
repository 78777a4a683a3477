"""The allocation governor at push level: a push stops cleanly at Handshake's share of the
org's daily API allocation, and the next cycle (24 hours on) finishes the hand-off with nothing
written twice."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from pathlib import Path

from connector.runtime import run_push_stage
from connector.store import Store
from tests.push.helpers import pull_and_score, sandbox_org
from tests.salesforce.conftest import SandboxTime

ALLOCATION = 36
SHARE = 0.25  # 9 calls in any 24 hours: enough to read and start writing, not to finish


def test_push_stops_at_the_share_and_the_next_cycle_finishes_without_duplicates(
        tmp_path: Path) -> None:
    with sandbox_org(tmp_path, 400, daily_allocation=ALLOCATION) as (sb, config):
        config = config.model_copy(update={"salesforce": config.salesforce.model_copy(
            update={"daily_allocation_share": SHARE})})
        clock = SandboxTime(sb)
        pull_and_score(config)

        first = run_push_stage(config, clock=clock)
        assert first.status == "stopped"
        assert "25%" in (first.error or "")
        assert sb.salesforce.api_usage() <= ALLOCATION * SHARE

        # the same day, a new cycle sends nothing at all
        usage = sb.salesforce.api_usage()
        again = run_push_stage(config, clock=clock)
        assert again.status == "stopped" and sb.salesforce.api_usage() == usage

        state = sb.salesforce.state
        for day in range(1, 8):  # each day's share moves the hand-off on; it ends
            sb.clock.advance(timedelta(hours=24, minutes=1))
            result = run_push_stage(config, clock=clock)
            assert sb.salesforce.api_usage() <= ALLOCATION * SHARE
            if result.status == "ok":
                break
        assert result.status == "ok", f"not finished after {day} days"

        store = Store(config.state.database_url)
        mqls = {c.hubspot_id for c in store.iter_contacts()
                if (s := store.latest_scores([c.hubspot_id]).get(c.hubspot_id)) and s.is_mql
                and c.email}
        ours = Counter(r["Handshake_Id__c"] for r in state.records("Lead")
                       if r.get("Handshake_Id__c"))
        linked = {hid: link for hid in mqls if (link := store.linked(hid)) is not None}
        assert set(linked) == mqls  # every MQL stands in Salesforce
        assert all(n == 1 for n in ours.values())  # no Lead twice
        assert set(ours) == {h for h, link in linked.items() if link.sf_object == "Lead"}
        handoffs = Counter(t["WhoId"] for t in state.records("Task")
                           if t["Subject"].startswith("Handshake hand-off"))
        assert set(handoffs) == {link.sf_id for link in linked.values()}
        assert set(handoffs.values()) == {1}  # one hand-off Task each, none twice
        assert [e.key for e in store.ledger_entries("sf:", status="pending")] == []
