"""Shapes: every emulated HubSpot route exists in an official spec, every request we send fits
the spec's request schema, every answer fits the spec's response schema for that path, method
and status. Legacy endpoints (absent from the specs) are checked against their documented fields."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.routing import Route

from connector.sandbox.base import SandboxClock, ServedApp
from connector.sandbox.hubspot import HubSpotSandbox, RateLimits
from tests.sandbox.hs_fixtures import (
    FORM_GUID,
    NOW,
    TOKEN,
    WEBINAR_ID,
    spec_path_exists,
    tiny_dataset,
    validate_request,
    validate_response,
    validate_schema,
)

CONTACTS_V3 = "crm-contacts-v3.json"
CONTACTS_DATED = "crm-contacts-2026-03.json"
SPEC_BY_PREFIX = (
    ("/crm/v3/objects/contacts", CONTACTS_V3),
    ("/crm/objects/2026-03/contacts", CONTACTS_DATED),
    ("/crm/v3/properties", "crm-properties-v3.json"),
    ("/crm/v3/owners", "crm-owners-v3.json"),
    ("/crm/v3/lists", "crm-lists-v3.json"),
    ("/events/v3", "events-v3.json"),
    ("/marketing/v3/forms", "marketing-forms-v3.json"),
    ("/marketing/v3/marketing-events", "marketing-events-v3.json"),
    ("/marketing/marketing-events", "marketing-events-v3.json"),
)
LEGACY = ("/email/public/v1/events", "/form-integrations/v1/submissions/forms/{formGuid}")


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[HubSpotSandbox, ServedApp, httpx.Client]]:
    sandbox = HubSpotSandbox(
        SandboxClock(NOW, frozen=True),
        rate_limits=RateLimits(window_max=10_000, search_per_second=10_000),
    )
    sandbox.load(tiny_dataset())
    srv = sandbox.serve()
    with httpx.Client(base_url=srv.base_url, headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        # list 1, which the list cases read and change, whatever order the cases run in
        made = http.post("/crm/v3/lists", json={"name": "Fixture list", "objectTypeId": "0-1",
                                                "processingType": "MANUAL"})
        assert made.status_code == 200 and made.json()["list"]["listId"] == "1", made.text
        yield sandbox, srv, http
    srv.stop()


def _spec_for(path: str) -> str:
    for prefix, spec in SPEC_BY_PREFIX:
        if path.startswith(prefix):
            return spec
    raise AssertionError(f"no spec covers {path}")


def test_every_emulated_route_is_in_an_official_spec() -> None:
    sandbox = HubSpotSandbox(SandboxClock(NOW))
    checked = 0
    for route in sandbox.router.routes:
        assert isinstance(route, Route)
        if route.path.startswith("/__sandbox__") or route.path in LEGACY:
            continue
        for method in route.methods or ():
            if method == "HEAD":
                continue
            assert spec_path_exists(_spec_for(route.path), route.path, method), (
                f"{method} {route.path}"
            )
            checked += 1
    assert checked >= 40


SEARCH_BODY = {
    "filterGroups": [
        {"filters": [{"propertyName": "lifecyclestage", "operator": "IN", "values": ["lead"]}]}
    ],
    "sorts": ["createdate"],
    "properties": ["email"],
    "limit": 2,
    "after": "0",
}

# (spec file, spec path, method, concrete path, query params, JSON body, expected status)
CASES: list[tuple[str, str, str, str, dict[str, Any] | None, Any, int]] = [
    (
        CONTACTS_V3,
        "/crm/v3/objects/contacts",
        "get",
        "/crm/v3/objects/contacts",
        {
            "limit": 2,
            "properties": "email,lifecyclestage",
            "propertiesWithHistory": "lifecyclestage",
        },
        None,
        200,
    ),
    (
        CONTACTS_V3,
        "/crm/v3/objects/contacts/{contactId}",
        "get",
        "/crm/v3/objects/contacts/101",
        None,
        None,
        200,
    ),
    (
        CONTACTS_V3,
        "/crm/v3/objects/contacts/{contactId}",
        "get",
        "/crm/v3/objects/contacts/103",
        {"archived": "true"},
        None,
        200,
    ),
    (
        CONTACTS_V3,
        "/crm/v3/objects/contacts/search",
        "post",
        "/crm/v3/objects/contacts/search",
        None,
        SEARCH_BODY,
        200,
    ),
    (
        CONTACTS_V3,
        "/crm/v3/objects/contacts/batch/read",
        "post",
        "/crm/v3/objects/contacts/batch/read",
        None,
        {"inputs": [{"id": "101"}], "properties": ["email"], "propertiesWithHistory": ["email"]},
        200,
    ),
    (
        CONTACTS_V3,
        "/crm/v3/objects/contacts/batch/read",
        "post",
        "/crm/v3/objects/contacts/batch/read",
        None,
        {
            "inputs": [{"id": "101"}, {"id": "999"}],
            "properties": ["email"],
            "propertiesWithHistory": [],
        },
        207,
    ),
    (
        CONTACTS_V3,
        "/crm/v3/objects/contacts/batch/update",
        "post",
        "/crm/v3/objects/contacts/batch/update",
        None,
        {"inputs": [{"id": "102", "properties": {"jobtitle": "Analyst"}}]},
        200,
    ),
    (
        CONTACTS_V3,
        "/crm/v3/objects/contacts/batch/upsert",
        "post",
        "/crm/v3/objects/contacts/batch/upsert",
        None,
        {
            "inputs": [
                {
                    "id": "shape@example.org",
                    "idProperty": "email",
                    "properties": {"firstname": "Shape"},
                }
            ]
        },
        200,
    ),
    (
        CONTACTS_V3,
        "/crm/v3/objects/contacts/batch/create",
        "post",
        "/crm/v3/objects/contacts/batch/create",
        None,
        {"inputs": [{"properties": {"email": "made@example.org"}, "associations": []}]},
        201,
    ),
    (
        CONTACTS_V3,
        "/crm/v3/objects/contacts",
        "post",
        "/crm/v3/objects/contacts",
        None,
        {"properties": {"email": "single@example.org"}, "associations": []},
        201,
    ),
    (
        CONTACTS_V3,
        "/crm/v3/objects/contacts/{contactId}",
        "patch",
        "/crm/v3/objects/contacts/105",
        None,
        {"properties": {"jobtitle": "Head of Growth"}},
        200,
    ),
    (
        CONTACTS_V3,
        "/crm/v3/objects/contacts/merge",
        "post",
        "/crm/v3/objects/contacts/merge",
        None,
        {"primaryObjectId": "120", "objectIdToMerge": "121"},
        200,
    ),
    (
        CONTACTS_DATED,
        "/crm/objects/2026-03/contacts",
        "get",
        "/crm/objects/2026-03/contacts",
        {"limit": 2},
        None,
        200,
    ),
    (
        CONTACTS_DATED,
        "/crm/objects/2026-03/contacts/search",
        "post",
        "/crm/objects/2026-03/contacts/search",
        None,
        SEARCH_BODY,
        200,
    ),
    (
        CONTACTS_DATED,
        "/crm/objects/2026-03/contacts/{contactId}",
        "get",
        "/crm/objects/2026-03/contacts/101",
        None,
        None,
        200,
    ),
    (
        "crm-properties-v3.json",
        "/crm/v3/properties/{objectType}",
        "get",
        "/crm/v3/properties/contacts",
        None,
        None,
        200,
    ),
    (
        "crm-properties-v3.json",
        "/crm/v3/properties/{objectType}/{propertyName}",
        "get",
        "/crm/v3/properties/contacts/lifecyclestage",
        None,
        None,
        200,
    ),
    (
        "crm-properties-v3.json",
        "/crm/v3/properties/{objectType}",
        "post",
        "/crm/v3/properties/contacts",
        None,
        {
            "name": "shape_prop",
            "label": "Shape",
            "type": "enumeration",
            "fieldType": "select",
            "groupName": "contactinformation",
            "options": [{"label": "A", "value": "a", "hidden": False, "displayOrder": 0}],
        },
        201,
    ),
    (
        "crm-properties-v3.json",
        "/crm/v3/properties/{objectType}/groups",
        "get",
        "/crm/v3/properties/contacts/groups",
        None,
        None,
        200,
    ),
    ("crm-owners-v3.json", "/crm/v3/owners", "get", "/crm/v3/owners", {"limit": 2}, None, 200),
    (
        "crm-owners-v3.json",
        "/crm/v3/owners/{ownerId}",
        "get",
        "/crm/v3/owners/9001",
        None,
        None,
        200,
    ),
    (
        "crm-lists-v3.json",
        "/crm/v3/lists",
        "post",
        "/crm/v3/lists",
        None,
        {"name": "Shape list", "objectTypeId": "0-1", "processingType": "MANUAL"},
        200,
    ),
    ("crm-lists-v3.json", "/crm/v3/lists/{listId}", "get", "/crm/v3/lists/1", None, None, 200),
    (
        "crm-lists-v3.json",
        "/crm/v3/lists/{listId}/memberships/add",
        "put",
        "/crm/v3/lists/1/memberships/add",
        None,
        ["101", "102"],
        200,
    ),
    (
        "crm-lists-v3.json",
        "/crm/v3/lists/{listId}/memberships/remove",
        "put",
        "/crm/v3/lists/1/memberships/remove",
        None,
        ["102"],
        200,
    ),
    (
        "crm-lists-v3.json",
        "/crm/v3/lists/{listId}/memberships",
        "get",
        "/crm/v3/lists/1/memberships",
        {"limit": 1},
        None,
        200,
    ),
    (
        "crm-lists-v3.json",
        "/crm/v3/lists/records/{objectTypeId}/{recordId}/memberships",
        "get",
        "/crm/v3/lists/records/0-1/101/memberships",
        None,
        None,
        200,
    ),
    (
        "events-v3.json",
        "/events/v3/events",
        "get",
        "/events/v3/events",
        {"objectType": "contact", "objectId": "101", "eventType": "e_visited_page", "limit": 2},
        None,
        200,
    ),
    (
        "events-v3.json",
        "/events/v3/events/event-types",
        "get",
        "/events/v3/events/event-types",
        None,
        None,
        200,
    ),
    (
        "marketing-forms-v3.json",
        "/marketing/v3/forms",
        "get",
        "/marketing/v3/forms",
        {"limit": 1},
        None,
        200,
    ),
    (
        "marketing-forms-v3.json",
        "/marketing/v3/forms/{formId}",
        "get",
        f"/marketing/v3/forms/{FORM_GUID}",
        None,
        None,
        200,
    ),
    (
        "marketing-events-v3.json",
        "/marketing/marketing-events/v3",
        "get",
        "/marketing/marketing-events/v3",
        None,
        None,
        200,
    ),
    (
        "marketing-events-v3.json",
        "/marketing/v3/marketing-events/{objectId}",
        "get",
        f"/marketing/v3/marketing-events/{WEBINAR_ID}",
        None,
        None,
        200,
    ),
    (
        "marketing-events-v3.json",
        "/marketing/v3/marketing-events/participations/contacts/{contactIdentifier}/breakdown",
        "get",
        "/marketing/v3/marketing-events/participations/contacts/101/breakdown",
        {"limit": 1},
        None,
        200,
    ),
    (
        "marketing-events-v3.json",
        "/marketing/v3/marketing-events/participations/{marketingEventId}/breakdown",
        "get",
        f"/marketing/v3/marketing-events/participations/{WEBINAR_ID}/breakdown",
        None,
        None,
        200,
    ),
    (
        "marketing-events-v3.json",
        "/marketing/v3/marketing-events/participations/{marketingEventId}",
        "get",
        f"/marketing/v3/marketing-events/participations/{WEBINAR_ID}",
        None,
        None,
        200,
    ),
    (
        "marketing-events-v3.json",
        "/marketing/v3/marketing-events/participations/{externalAccountId}/{externalEventId}/breakdown",
        "get",
        "/marketing/v3/marketing-events/participations/1160452/web-2026-10/breakdown",
        None,
        None,
        200,
    ),
    (
        "marketing-events-v3.json",
        "/marketing/v3/marketing-events/participations/{externalAccountId}/{externalEventId}",
        "get",
        "/marketing/v3/marketing-events/participations/1160452/web-2026-10",
        None,
        None,
        200,
    ),
]


@pytest.mark.parametrize(
    ("spec", "template", "method", "path", "params", "body", "status"),
    CASES,
    ids=[f"{c[2].upper()} {c[3]} {c[6]}" for c in CASES],
)
def test_request_and_response_fit_the_spec(
    served: tuple[HubSpotSandbox, ServedApp, httpx.Client],
    spec: str,
    template: str,
    method: str,
    path: str,
    params: dict[str, Any] | None,
    body: Any,
    status: int,
) -> None:
    _, _, http = served
    if body is not None:
        validate_request(spec, template, method, body)
    answer = http.request(method.upper(), path, params=params, json=body)
    assert answer.status_code == status, answer.text
    validate_response(spec, template, method, status, answer.json())


def test_error_bodies_fit_the_error_schema(
    served: tuple[HubSpotSandbox, ServedApp, httpx.Client],
) -> None:
    _, _, http = served
    too_many = http.post(
        "/crm/v3/objects/contacts/batch/read",
        json={"inputs": [{"id": str(i)} for i in range(101)], "properties": []},
    )
    missing = http.get("/crm/v3/objects/contacts/424242")
    bad_search = http.post("/crm/v3/objects/contacts/search", json={"limit": 500})
    for answer, status in ((too_many, 400), (missing, 404), (bad_search, 400)):
        assert answer.status_code == status
        validate_schema(CONTACTS_V3, "Error", answer.json())
        assert answer.json()["status"] == "error"


def test_legacy_email_events_carry_documented_fields(
    served: tuple[HubSpotSandbox, ServedApp, httpx.Client],
) -> None:
    # https://developers.hubspot.com/docs/api-reference/legacy/email-analytics-v1/guide and
    # https://developers.hubspot.com/docs/api-reference/legacy/email-analytics-v1/events/get-email-public-v1-events
    _, _, http = served
    body = http.get("/email/public/v1/events", params={"limit": 10}).json()
    assert set(body) == {"events", "hasMore", "offset"}
    assert isinstance(body["hasMore"], bool) and isinstance(body["offset"], str)
    for event in body["events"]:
        for name, kind in (
            ("id", str),
            ("created", int),
            ("type", str),
            ("recipient", str),
            ("portalId", int),
            ("appId", int),
            ("appName", str),
            ("emailCampaignId", int),
        ):
            assert isinstance(event[name], kind), name
        assert set(event["sentBy"]) == {"id", "created"}
    click = next(e for e in body["events"] if e["type"] == "CLICK")
    assert click["url"].startswith("https://")
    sent = next(e for e in body["events"] if e["type"] == "SENT")
    assert sent["subject"]


def test_legacy_form_submissions_carry_documented_fields(
    served: tuple[HubSpotSandbox, ServedApp, httpx.Client],
) -> None:
    # https://developers.hubspot.com/docs/api-reference/legacy/marketing/forms/v1/get-form-integrations-v1-submissions-forms-form_guid
    _, _, http = served
    body = http.get(
        f"/form-integrations/v1/submissions/forms/{FORM_GUID}", params={"limit": 1}
    ).json()
    assert set(body) == {"results", "paging"}
    assert set(body["paging"]["next"]) == {"after", "link"}
    sub = body["results"][0]
    assert set(sub) == {"conversionId", "submittedAt", "values", "pageUrl"}
    assert isinstance(sub["submittedAt"], int)
    assert all(set(v) == {"name", "value"} for v in sub["values"])
