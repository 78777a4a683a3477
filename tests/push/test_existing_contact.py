"""An MQL whose email is already a Salesforce Contact never becomes a Lead: by default its owner
gets the hand-off Task on the Contact; `[push] existing_contact = "ignore"` writes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from connector.runtime import run_push_stage
from connector.store import Store
from tests.push.helpers import pull_and_score, sandbox_org


@pytest.mark.parametrize("setting", ["notify", "ignore"])
def test_an_mql_that_is_a_contact_gets_no_lead(setting: str, tmp_path: Path) -> None:
    with sandbox_org(tmp_path, 300) as (sb, config):
        state = sb.salesforce.state
        taken = {(r.get("Email") or "").lower() for o in ("Lead", "Contact")
                 for r in state.records(o)}
        email = next(e for e in sb.dataset.ground_truth.sales_ready if e.lower() not in taken)
        owner = next(u["Id"] for u in state.records("User") if u["IsActive"]
                     and u["Id"] != state.integration_user_id)
        contact = state.load_record("Contact", {"LastName": "Known", "Email": email,
                                                "OwnerId": owner})
        config = config.model_copy(update={"push": config.push.model_copy(
            update={"existing_contact": setting})})
        pull_and_score(config)
        result = run_push_stage(config)
        assert [r for r in state.records("Lead") if (r.get("Email") or "").lower()
                == email.lower()] == []
        on_contact = [t for t in state.records("Task") if t["WhoId"] == contact]
        store = Store(config.state.database_url)
        hid = next(c.hubspot_id for c in store.iter_contacts() if c.email == email)
        if setting == "notify":
            handoff = [t for t in on_contact if t["Subject"].startswith("Handshake hand-off")]
            assert len(handoff) == 1 and handoff[0]["OwnerId"] == owner
            assert store.linked(hid).sf_id == contact  # type: ignore[union-attr]
        else:
            assert on_contact == []
            assert store.linked(hid) is None
            assert result.counts["leads.skipped_contact"] == 1
        assert result.counts["leads.created"] > 5  # the others went on
