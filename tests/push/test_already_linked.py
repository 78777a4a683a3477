"""An MQL whose email matches a Salesforce record another HubSpot contact already stands for is
parked for data (merge in HubSpot), never linked twice, and the rest of the push goes on."""

from __future__ import annotations

from pathlib import Path

from connector.errors import Actor
from connector.runtime import run_push_stage
from connector.store import Store
from connector.runtime import open_store
from tests.push.helpers import pull_and_score, sandbox_org


def test_a_record_another_contact_stands_for_is_parked_not_linked_twice(tmp_path: Path) -> None:
    with sandbox_org(tmp_path, 800) as (sb, config):
        state = sb.salesforce.state
        ready = {e.lower() for e in sb.dataset.ground_truth.sales_ready}
        lead = next(r for r in state.records("Lead")
                    if (r.get("Email") or "").lower() in ready and not r["IsConverted"])
        store = open_store(config)
        store.link("990001", "Lead", lead["Id"], how="duplicate_rule")  # an earlier hand-off
        pull_and_score(config)
        result = run_push_stage(config)
        assert result.status == "ok"
        store = Store(config.state.database_url)
        assert store.hubspot_id_for(lead["Id"]) == "990001"
        letters = store.dead_letters(stage="push")
        assert len(letters) == 1
        assert letters[0].actor == Actor.DATA and letters[0].error_code == "ALREADY_LINKED"
        assert "990001" in letters[0].reason and "merge" in letters[0].reason
        assert result.counts["leads.created"] > 20  # the others went on
