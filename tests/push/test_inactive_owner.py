"""A matched open Lead whose owner is no longer an active user is re-routed, and its hand-off
Task goes to the new owner (Salesforce refuses a Task owned by an inactive user)."""

from __future__ import annotations

from pathlib import Path

from connector.runtime import run_push_stage
from connector.store import Store
from tests.push.helpers import pull_and_score, sandbox_org


def test_an_open_lead_of_an_inactive_owner_is_rerouted_with_its_handoff_task(
        tmp_path: Path) -> None:
    with sandbox_org(tmp_path, 800) as (sb, config):
        state = sb.salesforce.state
        gt = sb.dataset.ground_truth
        ready = {e.lower() for e in gt.sales_ready}
        lead = next(r for r in state.records("Lead")
                    if (r.get("Email") or "").lower() in ready and not r["IsConverted"]
                    and str(r["OwnerId"]).startswith("005"))
        gone = lead["OwnerId"]
        # users are not writable over the API: the org's admin deactivates the rep
        for user in state.raw_records("User"):
            if user["Id"] == gone:
                user["IsActive"] = False
        pull_and_score(config)
        result = run_push_stage(config)
        assert result.counts.get("tasks.dead_letters", 0) == 0
        after = next(r for r in state.records("Lead") if r["Id"] == lead["Id"])
        active = {u["Id"] for u in state.records("User") if u["IsActive"]}
        assert after["OwnerId"] != gone and after["OwnerId"] in active
        handoff = [t for t in state.records("Task") if t["WhoId"] == lead["Id"]
                   and t["Subject"].startswith("Handshake hand-off")]
        assert len(handoff) == 1 and handoff[0]["OwnerId"] == after["OwnerId"]
        assert "inactive" in handoff[0]["Subject"]
        assert Store(config.state.database_url).dead_letters(stage="push") == []
