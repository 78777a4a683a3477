"""Capacity caps count each rep's open Leads in Salesforce; when every member is full the
Lead goes to the fallback queue (resolved to its Group id)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from connector.runtime import run_push_stage
from tests.push.helpers import pull_and_score, sandbox_org

ROUTING = """
mode = "handshake"
prefer_hubspot_owner = false
closed_statuses = ["Closed - Not Converted"]

[teams.Solo]
members = [{{ user = "{a}", capacity = {cap_a} }}, {{ user = "{b}", capacity = {cap_b} }}]

[[rules]]
name = "Everybody"
team = "Solo"

[fallback]
queue = "Unassigned Leads"
"""


def test_reps_at_capacity_are_skipped_and_the_rest_go_to_the_fallback_queue(
        tmp_path: Path) -> None:
    with sandbox_org(tmp_path, 400) as (sb, config):
        state = sb.salesforce.state
        users = [u for u in state.records("User") if u.get("Email") and u.get("IsActive")]
        a, b = users[1], users[2]
        # both already hold open Leads (from the dataset and these); b's closed ones do not count
        for n in range(3):
            state.load_record("Lead", {"LastName": f"Held {n}", "Company": "Cap",
                                       "OwnerId": a["Id"], "Status": "Working - Contacted"})
        state.load_record("Lead", {"LastName": "Held b", "Company": "Cap", "OwnerId": b["Id"],
                                   "Status": "Open - Not Contacted"})
        for n in range(5):
            state.load_record("Lead", {"LastName": f"Closed {n}", "Company": "Cap",
                                       "OwnerId": b["Id"], "Status": "Closed - Not Converted"})
        before = {r["Id"] for r in state.records("Lead")}
        routing = tmp_path / "routing.toml"
        def open_leads(user: dict) -> int:
            return sum(1 for r in state.records("Lead") if r["OwnerId"] == user["Id"]
                       and not r["IsConverted"] and r["Status"] != "Closed - Not Converted")

        # a is full; b has room for exactly two more (its closed Leads do not count)
        routing.write_text(ROUTING.format(a=a["Email"], b=b["Email"], cap_a=open_leads(a),
                                          cap_b=open_leads(b) + 2))
        config = config.model_copy(update={"mappings": config.mappings.model_copy(
            update={"routing": str(routing)})})
        pull_and_score(config)
        result = run_push_stage(config)
        created = result.counts["leads.created"]
        assert created > 5
        ours = [r for r in state.records("Lead") if r["Id"] not in before]
        assert len(ours) == created
        owners = Counter(r["OwnerId"] for r in ours)
        queue = next(g["Id"] for g in state.records("Group") if g["Name"] == "Unassigned Leads")
        assert owners == {b["Id"]: 2, queue: len(ours) - 2}
