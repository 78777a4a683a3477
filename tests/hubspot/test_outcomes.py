"""Outcomes to HubSpot: the pure planner, then the writer against the served HubSpot sandbox
(which checks every request against the official specs and applies HubSpot's lifecycle rule)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from connector.errors import FatalError
from connector.hubspot.client import HubSpotClient
from connector.hubspot.outcomes import (
    OutcomePlan,
    OutcomeSettings,
    OutcomeWriter,
    PulledBackLead,
    outcome_property_definitions,
    plan_outcome,
)
from connector.hubspot.policy import hubspot_policy
from connector.sandbox.base import SandboxClock
from connector.sandbox.hubspot import HubSpotSandbox
from connector.store import Store
from tests.sandbox.hs_fixtures import NOW, TOKEN, tiny_dataset, validate_request

S = OutcomeSettings()
STATUS_MAP = {"Open - Not Contacted": "NEW", "Working - Contacted": "IN_PROGRESS",
              "Closed - Converted": "OPEN_DEAL", "Closed - Not Converted": "UNQUALIFIED"}
ACCEPTED = ("Working - Contacted",)
TOUCH = NOW - timedelta(days=2)
RECYCLED_AT = NOW - timedelta(hours=3)


def plan(lead: PulledBackLead, current: dict[str, Any]) -> OutcomePlan | None:
    return plan_outcome(lead, current, S, status_map=STATUS_MAP, accepted=ACCEPTED)


def recycled(cid: str, count: int = 1) -> PulledBackLead:
    return PulledBackLead(cid, status="Closed - Not Converted", closed=True, reason="No budget",
                          last_sales_touch_at=TOUCH, recycled=True,
                          recycle_reason="closed_not_converted", recycled_at=RECYCLED_AT,
                          recycle_count=count)


# ---------------------------------------------------------------------- the planner


def test_the_stage_moves_forward_only_to_the_sales_stages() -> None:
    working = PulledBackLead("1", status="Working - Contacted", last_sales_touch_at=TOUCH)
    first = plan(working, {"lifecyclestage": "marketingqualifiedlead"})
    assert first is not None and first.move_back_to is None and not first.join_list
    assert first.properties == {
        "lifecyclestage": "salesqualifiedlead", "hs_lead_status": "IN_PROGRESS",
        S.outcome.hubspot_property: "working",
        S.last_sales_touch.hubspot_property: "2026-10-31T12:00:00.000Z"}
    opportunity = PulledBackLead("1", status="Closed - Converted", converted=True,
                                 opportunity_stage="Prospecting", opportunity_amount=12500.0)
    second = plan(opportunity, {"lifecyclestage": "salesqualifiedlead"})
    assert second is not None and second.properties["lifecyclestage"] == "opportunity"
    assert second.properties[S.opportunity_amount.hubspot_property] == "12500"
    won = PulledBackLead("1", converted=True, opportunity_stage="Closed Won",
                         opportunity_won=True)
    third = plan(won, {"lifecyclestage": "opportunity"})
    assert third is not None and third.properties["lifecyclestage"] == "customer"
    assert third.properties[S.outcome.hubspot_property] == "won"
    # never backward: a contact already past the target keeps its stage
    behind = plan(working, {"lifecyclestage": "customer"})
    assert behind is not None and "lifecyclestage" not in behind.properties
    # a stage the settings do not list is left alone
    custom = plan(working, {"lifecyclestage": "partner_stage"})
    assert custom is not None and "lifecyclestage" not in custom.properties


def test_only_what_differs_is_planned_and_nothing_when_hubspot_holds_it() -> None:
    lead = PulledBackLead("1", status="Working - Contacted", last_sales_touch_at=TOUCH,
                          opportunity_amount=99.5)
    current = {"lifecyclestage": "salesqualifiedlead", "hs_lead_status": "IN_PROGRESS",
               S.outcome.hubspot_property: "working",
               S.last_sales_touch.hubspot_property: "2026-10-31T12:00:00Z",  # same instant
               S.opportunity_amount.hubspot_property: "99.50"}
    assert plan(lead, current) is None
    moved = plan(lead, {**current, "hs_lead_status": "NEW"})
    assert moved is not None and moved.properties == {"hs_lead_status": "IN_PROGRESS"}
    # an unmapped status writes no hs_lead_status
    odd = plan(PulledBackLead("1", status="Nurture"), {})
    assert odd is not None and "hs_lead_status" not in odd.properties


def test_a_new_recycle_moves_back_by_clear_then_set_and_joins_the_list() -> None:
    first = plan(recycled("1"), {"lifecyclestage": "opportunity"})
    assert first is not None
    assert first.move_back_to == "lead" and first.join_list
    assert "lifecyclestage" not in first.properties  # the move sets it
    assert first.properties[S.recycle_count.hubspot_property] == "1"
    assert first.properties[S.recycle_reason.hubspot_property] == "closed_not_converted"
    assert first.properties[S.recycled_at.hubspot_property] == "2026-11-02T09:00:00.000Z"
    assert first.properties[S.outcome.hubspot_property] == "recycled"
    # once HubSpot shows this recycle, it is not new: no move, no list, no forward move either
    shown = {"lifecyclestage": "lead", **first.properties}
    assert plan(recycled("1"), shown) is None
    # a contact below the recycle stage (or without one) is set in one request
    low = plan(recycled("1"), {"lifecyclestage": "subscriber"})
    assert low is not None and low.move_back_to is None
    assert low.properties["lifecyclestage"] == "lead" and low.join_list
    # the second recycle of the same contact is new again
    again = plan(recycled("1", count=2), shown)
    assert again is not None and again.move_back_to is None and again.join_list
    assert again.properties[S.recycle_count.hubspot_property] == "2"


def test_a_customer_is_never_moved_back() -> None:
    at_customer = plan(recycled("1"), {"lifecyclestage": "customer"})
    assert at_customer is not None
    assert at_customer.move_back_to is None and not at_customer.join_list
    assert "lifecyclestage" not in at_customer.properties
    assert S.recycle_count.hubspot_property not in at_customer.properties
    assert at_customer.properties[S.outcome.hubspot_property] == "closed"
    # past customer too, and a won lead whatever HubSpot shows
    assert plan(recycled("1"), {"lifecyclestage": "evangelist"}) == at_customer
    won = plan(PulledBackLead("1", opportunity_won=True, recycled=True, recycle_count=1),
               {"lifecyclestage": "opportunity"})
    assert won is not None and won.properties["lifecyclestage"] == "customer"
    assert not won.join_list and won.move_back_to is None


def test_property_names_are_configurable() -> None:
    custom = OutcomeSettings.model_validate(
        {"outcome": {"hubspot_property": "acme_outcome", "label": "Outcome"}})
    lead = PulledBackLead("1", status="Working - Contacted")
    planned = plan_outcome(lead, {}, custom, status_map=STATUS_MAP, accepted=ACCEPTED)
    assert planned is not None and planned.properties["acme_outcome"] == "working"
    names = [d["name"] for d in outcome_property_definitions(custom)]
    assert "acme_outcome" in names and S.outcome.hubspot_property not in names
    with pytest.raises(ValueError):
        OutcomeSettings.model_validate({"outcome": {"hubspot_property": "Bad Name",
                                                    "label": "x"}})


# ---------------------------------------------------------------------- against the sandbox


class Recording(httpx.BaseTransport):
    """Passes requests to the network, keeping each one's method, path and JSON body."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.sent: list[tuple[str, str, Any]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        self.sent.append((request.method, request.url.path, body))
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


@dataclass
class Portal:
    sandbox: HubSpotSandbox
    client: HubSpotClient
    wire: Recording
    store: Store

    def stage(self, cid: str) -> str | None:
        return self.sandbox.state.contacts[cid].props.get("lifecyclestage")

    def current(self, cid: str) -> dict[str, Any]:
        return dict(self.sandbox.state.contacts[cid].props)

    def writes(self) -> list[tuple[str, str, Any]]:
        return [c for c in self.wire.sent if c[0] != "GET"]


@pytest.fixture
def portal(tmp_path: Path) -> Iterator[Portal]:
    sandbox = HubSpotSandbox(SandboxClock(NOW, frozen=True))
    sandbox.load(tiny_dataset(contacts=260))
    store = Store(f"sqlite:///{tmp_path / 'outcomes.db'}")
    store.migrate()
    with sandbox.serve() as srv:
        wire = Recording()
        client = HubSpotClient(srv.base_url, TOKEN, hubspot_policy(), transport=wire)
        yield Portal(sandbox, client, wire, store)
        client.close()
    store.close()


def push(portal: Portal, leads: list[PulledBackLead], *,
         seen: dict[str, dict[str, Any]] | None = None) -> dict[str, int]:
    """Plan against what HubSpot holds now, or against `seen` (properties read before an
    earlier run, as a store not yet refreshed holds them), and send."""
    plans = [p for lead in leads
             if (p := plan(lead, (seen or {}).get(lead.contact_id)
                           or portal.current(lead.contact_id))) is not None]
    writer = OutcomeWriter(portal.client, portal.store, S)
    return dict(writer.push(plans))


def test_outcome_properties_pass_the_official_schema_and_are_created_once(
    portal: Portal,
) -> None:
    for definition in outcome_property_definitions(S):
        validate_request("crm-properties-v3.json", "/crm/v3/properties/{objectType}", "post",
                         definition)
    writer = OutcomeWriter(portal.client, portal.store, S)
    created = writer.ensure_properties()
    assert created == [d["name"] for d in outcome_property_definitions(S)]
    outcome = portal.sandbox.state.properties[S.outcome.hubspot_property]
    assert [o["value"] for o in outcome["options"]][:2] == ["open", "working"]
    assert all(o["hidden"] is False for o in outcome["options"])
    assert writer.ensure_properties() == []
    assert portal.client.property_options("hs_lead_status")[:3] == ["NEW", "OPEN",
                                                                      "IN_PROGRESS"]
    assert portal.sandbox.stats.by_status.get(400, 0) == 0


def test_a_contact_moves_forward_stage_by_stage(portal: Portal) -> None:
    cid = "109"  # a marketingqualifiedlead in the tiny dataset
    assert portal.stage(cid) == "marketingqualifiedlead"
    steps = [
        (PulledBackLead(cid, status="Working - Contacted", last_sales_touch_at=TOUCH),
         "salesqualifiedlead"),
        (PulledBackLead(cid, status="Closed - Converted", converted=True,
                        last_sales_touch_at=TOUCH, opportunity_stage="Prospecting",
                        opportunity_amount=5000.0), "opportunity"),
        (PulledBackLead(cid, status="Closed - Converted", converted=True,
                        last_sales_touch_at=TOUCH, opportunity_stage="Closed Won",
                        opportunity_amount=5000.0, opportunity_won=True), "customer"),
    ]
    for lead, stage in steps:
        counts = push(portal, [lead])
        assert counts["contacts.updated"] == 1
        assert portal.stage(cid) == stage
    props = portal.current(cid)
    assert props["hs_lead_status"] == "OPEN_DEAL"
    assert props[S.outcome.hubspot_property] == "won"
    assert float(props[S.opportunity_amount.hubspot_property]) == 5000.0
    assert portal.sandbox.stats.by_status.get(400, 0) == 0


def test_a_recycled_contact_goes_back_to_lead_by_clear_then_set(portal: Portal) -> None:
    cid = "108"
    portal.sandbox.state.update_contact(cid, {"lifecyclestage": "opportunity"})
    # proof the rule holds: one backward set answers 200 and changes nothing
    portal.client.update_contacts([(cid, {"lifecyclestage": "lead"})])
    assert portal.stage(cid) == "opportunity"
    portal.wire.sent.clear()
    counts = push(portal, [recycled(cid)])
    assert counts["contacts.moved_back"] == 1 and counts["list.added"] == 1
    assert portal.stage(cid) == "lead"
    updates = [b for m, p, b in portal.writes() if p.endswith("/batch/update")]
    assert updates == [
        {"inputs": [{"id": cid, "properties": {"lifecyclestage": ""}}]},
        {"inputs": [{"id": cid, "properties": {**updates[1]["inputs"][0]["properties"],
                                               "lifecyclestage": "lead"}}]},
    ]
    props = portal.current(cid)
    assert props[S.recycle_reason.hubspot_property] == "closed_not_converted"
    assert props[S.recycle_count.hubspot_property] == "1"
    assert props[S.recycled_at.hubspot_property].startswith("2026-11-02T09:00:00")
    [lst] = portal.sandbox.state.lists.values()
    assert lst.name == S.reengagement_list and lst.processing_type == "MANUAL"
    assert set(lst.members) == {cid}


def test_the_list_is_created_once_and_a_second_run_sends_nothing(portal: Portal) -> None:
    leads = [recycled("106"), recycled("107"),
             PulledBackLead("110", status="Working - Contacted", last_sales_touch_at=TOUCH)]
    portal.sandbox.state.update_contact("107", {"lifecyclestage": "salesqualifiedlead"})
    before = {lead.contact_id: portal.current(lead.contact_id) for lead in leads}
    first = push(portal, leads)
    assert first["list.added"] == 2
    creates = [c for c in portal.writes() if c[:2] == ("POST", "/crm/v3/lists")]
    assert len(creates) == 1
    calls = portal.sandbox.stats.total
    assert push(portal, leads) == {}  # HubSpot holds it all: nothing planned
    again = push(portal, leads, seen=before)  # stale properties: the ledger knows
    assert again == {"contact.unchanged": 3, "list.unchanged": 2}
    assert portal.sandbox.stats.total == calls
    # a later run, with a new writer, finds the list by name instead of creating another
    assert push(portal, [recycled("111")])["list.added"] == 1
    assert len(portal.sandbox.state.lists) == 1
    assert len([c for c in portal.writes() if c[:2] == ("POST", "/crm/v3/lists")]) == 1
    [lst] = portal.sandbox.state.lists.values()
    assert set(lst.members) == {"106", "107", "111"}


def test_batches_stay_within_100(portal: Portal) -> None:
    ids = [str(i) for i in range(106, 356)]  # 250 live contacts
    for cid in ids:
        portal.sandbox.state.update_contact(cid, {"lifecyclestage": "opportunity"})
    counts = push(portal, [recycled(cid) for cid in ids])
    assert counts["contacts.moved_back"] == 250 and counts["list.added"] == 250
    updates = [len(b["inputs"]) for m, p, b in portal.writes() if p.endswith("/batch/update")]
    adds = [len(b) for m, p, b in portal.writes() if p.endswith("/memberships/add")]
    assert updates == [100, 100, 100, 100, 50, 50]  # clear then set, per batch
    assert adds == [100, 100, 50]
    assert {portal.stage(cid) for cid in ids} == {"lead"}
    assert portal.sandbox.stats.by_status.get(400, 0) == 0


def test_a_dynamic_list_of_that_name_stops_the_run_with_the_fix(portal: Portal) -> None:
    made = portal.client.request("POST", "/crm/v3/lists", json={
        "name": S.reengagement_list, "objectTypeId": "0-1", "processingType": "DYNAMIC"})
    assert made[0]["list"]["processingType"] == "DYNAMIC"
    with pytest.raises(FatalError) as caught:
        push(portal, [recycled("106")])
    assert "MANUAL or SNAPSHOT" in str(caught.value)
    assert caught.value.fix is not None and "rename" in caught.value.fix
    assert portal.sandbox.state.contacts["106"].props.get(S.recycle_count.hubspot_property) is None


def test_a_status_map_value_hubspot_does_not_offer_is_refused(portal: Portal) -> None:
    writer = OutcomeWriter(portal.client, portal.store, S)
    writer.check_status_map(STATUS_MAP)
    with pytest.raises(FatalError) as caught:
        writer.check_status_map({**STATUS_MAP, "Nurture": "NURTURING"})
    assert "NURTURING" in str(caught.value) and "hs_lead_status" in str(caught.value)


def test_utc_times_are_written_as_hubspot_datetimes() -> None:
    lead = PulledBackLead("1", last_sales_touch_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
    planned = plan(lead, {})
    assert planned is not None
    assert planned.properties[S.last_sales_touch.hubspot_property] == "2026-01-02T03:04:05.000Z"


def test_a_list_another_instance_created_meanwhile_is_used_not_duplicated(
    portal: Portal, monkeypatch: pytest.MonkeyPatch,
) -> None:
    theirs = portal.sandbox.state.create_list(S.reengagement_list.upper(), "MANUAL", "0-1")
    real = portal.client.find_list
    looks: list[str] = []

    def late_find(name: str) -> dict[str, Any] | None:
        looks.append(name)
        return None if len(looks) == 1 else real(name)  # the first look ran before theirs

    monkeypatch.setattr(portal.client, "find_list", late_find)
    assert portal.client.manual_list(S.reengagement_list) == theirs.list_id
    assert len(portal.sandbox.state.lists) == 1 and len(looks) == 2
