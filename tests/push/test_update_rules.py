"""An open Lead found by email is updated field by field as fields.toml's sync rules say,
against its current values: a blank or a stand-in never replaces a value,
`salesforce_unless_blank` only fills blanks, `salesforce` never overwrites, `hubspot` wins."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from connector.runtime import run_push_stage
from tests.push.helpers import pull_and_score, sandbox_org


def test_an_open_lead_keeps_what_the_sync_rules_protect(tmp_path: Path) -> None:
    with sandbox_org(tmp_path, 800) as (sb, config):
        state = sb.salesforce.state
        ready = {e.lower() for e in sb.dataset.ground_truth.sales_ready}
        lead = next(r for r in state.records("Lead")
                    if (r.get("Email") or "").lower() in ready and not r["IsConverted"])
        contact = next(c for c in sb.dataset.contacts
                       if (c.properties.get("email") or "").lower() == lead["Email"].lower())
        state.update("Lead", lead["Id"], {"Company": "Acme Original", "NumberOfEmployees": None,
                                          "Title": "Old title", "LeadSource": "Trade Show"})
        sb.clock.advance(timedelta(minutes=5))
        sb.hubspot.state.touch_contacts([contact.id], {
            "company": "", "numemployees": "250", "jobtitle": "New title",
            "hs_analytics_source": "ORGANIC_SEARCH"})
        sb.clock.advance(timedelta(hours=1))
        pull_and_score(config)
        preview = run_push_stage(config, dry_run=True)
        [shown] = [p for p in preview.planned if p["contact"] == contact.id]
        assert shown["action"] == "update"
        shown_fields = set(shown["values"])
        assert {"Title", "NumberOfEmployees", "Handshake_Id__c"} <= shown_fields
        assert not {"Company", "LeadSource", "Email"} & shown_fields  # protected or the same
        assert state.get("Lead", lead["Id"])["Title"] == "Old title"  # nothing written

        result = run_push_stage(config)
        after = state.get("Lead", lead["Id"])
        assert after["Company"] == "Acme Original"  # a blank HubSpot company is no change
        assert after["NumberOfEmployees"] == 250  # salesforce_unless_blank fills the blank
        assert after["Title"] == "New title"  # HubSpot wins
        assert after["LeadSource"] == "Trade Show"  # salesforce: never overwritten
        assert after["Handshake_Id__c"] == contact.id
        assert result.counts["leads.updated"] >= 1

        # nothing changed since: no write at all for it
        again = run_push_stage(config)
        assert again.counts.get("leads.updated", 0) == 0
