"""What the pull-back needs of the HubSpot sandbox: the lifecycle rule through batch updates,
manual lists found by name and their memberships, `hs_lead_status` as a property with options;
every answer checked against the official specs."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from connector.sandbox.base import SandboxClock
from connector.sandbox.hubspot import HubSpotSandbox
from tests.sandbox.hs_fixtures import NOW, TOKEN, tiny_dataset, validate_response

LISTS = "crm-lists-v3.json"
BATCH_UPDATE = "/crm/v3/objects/contacts/batch/update"


@pytest.fixture
def served() -> Iterator[tuple[HubSpotSandbox, httpx.Client]]:
    sandbox = HubSpotSandbox(SandboxClock(NOW, frozen=True))
    sandbox.load(tiny_dataset())
    with sandbox.serve() as srv, httpx.Client(
        base_url=srv.base_url, headers={"Authorization": f"Bearer {TOKEN}"}
    ) as http:
        yield sandbox, http


def _stage(sandbox: HubSpotSandbox, cid: str) -> str | None:
    return sandbox.state.contacts[cid].props.get("lifecyclestage")


def test_a_backward_batch_set_answers_200_and_changes_nothing(
    served: tuple[HubSpotSandbox, httpx.Client],
) -> None:
    sandbox, http = served
    ok = http.post(BATCH_UPDATE, json={"inputs": [
        {"id": "102", "properties": {"lifecyclestage": "opportunity"}}]})
    assert ok.status_code == 200 and _stage(sandbox, "102") == "opportunity"
    back = http.post(BATCH_UPDATE, json={"inputs": [
        {"id": "102", "properties": {"lifecyclestage": "lead"}}]})
    assert back.status_code == 200, back.text
    assert back.json()["results"][0]["properties"]["lifecyclestage"] == "opportunity"
    assert _stage(sandbox, "102") == "opportunity"


def test_clear_then_set_in_two_batch_requests_moves_the_stage_back(
    served: tuple[HubSpotSandbox, httpx.Client],
) -> None:
    sandbox, http = served
    for cid in ("102", "105"):
        sandbox.state.update_contact(cid, {"lifecyclestage": "customer"})
    ids = ["102", "105"]
    cleared = http.post(BATCH_UPDATE, json={"inputs": [
        {"id": i, "properties": {"lifecyclestage": ""}} for i in ids]})
    assert cleared.status_code == 200, cleared.text
    assert [_stage(sandbox, i) for i in ids] == [None, None]
    moved = http.post(BATCH_UPDATE, json={"inputs": [
        {"id": i, "properties": {"lifecyclestage": "lead"}} for i in ids]})
    assert moved.status_code == 200, moved.text
    assert [_stage(sandbox, i) for i in ids] == ["lead", "lead"]
    # each move back needs its own clearing request first
    sandbox.state.update_contact("102", {"lifecyclestage": "customer"})
    same = http.post(BATCH_UPDATE, json={"inputs": [
        {"id": "102", "properties": {"lifecyclestage": "lead"}}]})
    assert same.status_code == 200 and _stage(sandbox, "102") == "customer"


def test_a_manual_list_is_found_by_name_whatever_its_case(
    served: tuple[HubSpotSandbox, httpx.Client],
) -> None:
    _, http = served
    path = "/crm/v3/lists/object-type-id/{objectTypeId}/name/{listName}"
    missing = http.get("/crm/v3/lists/object-type-id/0-1/name/Re-engage")
    assert missing.status_code == 404
    assert missing.json()["category"] == "OBJECT_NOT_FOUND"
    made = http.post("/crm/v3/lists", json={"name": "Re-engage", "objectTypeId": "0-1",
                                            "processingType": "MANUAL"})
    assert made.status_code == 200, made.text
    found = http.get("/crm/v3/lists/object-type-id/0-1/name/re-ENGAGE")
    assert found.status_code == 200, found.text
    validate_response(LISTS, path, "get", 200, found.json())
    assert found.json()["list"]["listId"] == made.json()["list"]["listId"]
    assert found.json()["list"]["processingType"] == "MANUAL"
    twin = http.post("/crm/v3/lists", json={"name": "RE-ENGAGE", "objectTypeId": "0-1",
                                            "processingType": "MANUAL"})
    assert twin.status_code == 400
    assert twin.json()["subCategory"] == "ILS.LIST_NAME_ALREADY_EXISTS"


def test_memberships_add_reports_added_and_missing_and_ignores_members(
    served: tuple[HubSpotSandbox, httpx.Client],
) -> None:
    sandbox, http = served
    made = http.post("/crm/v3/lists", json={"name": "Recycled", "objectTypeId": "0-1",
                                            "processingType": "MANUAL"}).json()
    list_id = made["list"]["listId"]
    path = "/crm/v3/lists/{listId}/memberships/add"
    first = http.put(f"/crm/v3/lists/{list_id}/memberships/add", json=["101", "105", "9999"])
    assert first.status_code == 200, first.text
    validate_response(LISTS, path, "put", 200, first.json())
    assert first.json() == {"recordsIdsAdded": ["101", "105"], "recordIdsRemoved": [],
                            "recordIdsMissing": ["9999"]}
    again = http.put(f"/crm/v3/lists/{list_id}/memberships/add", json=["101", "106"])
    assert again.json()["recordsIdsAdded"] == ["106"]
    removed = http.put(f"/crm/v3/lists/{list_id}/memberships/remove", json=["105"])
    assert removed.json()["recordIdsRemoved"] == ["105"]
    assert set(sandbox.state.get_list(list_id).members) == {"101", "106"}


def test_hs_lead_status_is_an_enumeration_whose_options_are_enforced(
    served: tuple[HubSpotSandbox, httpx.Client],
) -> None:
    sandbox, http = served
    prop = http.get("/crm/v3/properties/contacts/hs_lead_status")
    assert prop.status_code == 200 and prop.json()["type"] == "enumeration"
    values = [o["value"] for o in prop.json()["options"]]
    assert {"NEW", "OPEN", "IN_PROGRESS", "UNQUALIFIED"} <= set(values)
    ok = http.post(BATCH_UPDATE, json={"inputs": [
        {"id": "101", "properties": {"hs_lead_status": "IN_PROGRESS"}}]})
    assert ok.status_code == 200
    bad = http.post(BATCH_UPDATE, json={"inputs": [
        {"id": "101", "properties": {"hs_lead_status": "WORKING"}}]})
    assert bad.status_code == 400 and "INVALID_OPTION" in bad.text
    assert sandbox.state.contacts["101"].props["hs_lead_status"] == "IN_PROGRESS"
