"""Request bodies against the official specs' request schemas: the sandbox refuses what the
schema refuses (required fields, types, enumerations, nested objects and arrays, through
`$ref`s) with HubSpot's 400 VALIDATION_ERROR, applies nothing of a refused request, and its
vendored schemas are exactly what the generator makes of the specs' copies in tests/fixtures."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from connector.sandbox.base import SandboxClock
from connector.sandbox.hubspot import HubSpotSandbox, RateLimits
from connector.sandbox.hubspot.bodies import request_validator
from tests.sandbox.hs_fixtures import NOW, SPECS, TOKEN, tiny_dataset, validate_schema

V3 = "/crm/v3/objects/contacts"
DATED = "/crm/objects/2026-03/contacts"
PROPS = "/crm/v3/properties/contacts"
LISTS = "/crm/v3/lists"
GRADE = {
    "name": "grade",
    "label": "Grade",
    "type": "enumeration",
    "fieldType": "select",
    "groupName": "contactinformation",
}


@pytest.fixture
def sandbox() -> HubSpotSandbox:
    sb = HubSpotSandbox(
        SandboxClock(NOW, frozen=True),
        rate_limits=RateLimits(window_max=10_000, search_per_second=10_000),
    )
    sb.load(tiny_dataset())
    return sb


@pytest.fixture
def http(sandbox: HubSpotSandbox) -> Iterator[httpx.Client]:
    srv = sandbox.serve()
    with httpx.Client(base_url=srv.base_url, headers={"Authorization": f"Bearer {TOKEN}"}) as c:
        yield c
    srv.stop()


def _refused(answer: httpx.Response) -> list[dict[str, Any]]:
    """The answer's ErrorDetails, after checking it is HubSpot's 400 VALIDATION_ERROR."""
    assert answer.status_code == 400, answer.text
    body = answer.json()
    validate_schema("crm-contacts-v3.json", "Error", body)
    assert body["status"] == "error"
    assert body["category"] == "VALIDATION_ERROR"
    assert body["correlationId"]
    assert body["message"].startswith("Invalid input JSON at ")
    errors: list[dict[str, Any]] = body["errors"]
    for detail in errors:
        validate_schema("crm-contacts-v3.json", "ErrorDetail", detail)
    return errors


def test_options_without_hidden_are_refused_naming_each_field(
    sandbox: HubSpotSandbox, http: httpx.Client
) -> None:
    # the shape Handshake sent before: options without `hidden`, which OptionInput requires
    options = [{"label": g, "value": g, "displayOrder": i} for i, g in enumerate("ABCDF")]
    answer = http.post(PROPS, json={**GRADE, "options": options})
    errors = _refused(answer)
    assert [e["in"] for e in errors] == [f"options[{i}].hidden" for i in range(5)]
    assert {e["code"] for e in errors} == {"REQUIRED_FIELD"}
    assert errors[0]["message"] == (
        "Cannot build OptionInput, some of required attributes are not set [hidden]"
    )
    assert "options[0].hidden" in answer.json()["message"]
    assert "grade" not in sandbox.state.properties
    assert http.get(f"{PROPS}/grade").status_code == 404
    fixed = [{**o, "hidden": False} for o in options]
    made = http.post(PROPS, json={**GRADE, "options": fixed})
    assert made.status_code == 201, made.text
    assert [o["value"] for o in made.json()["options"]] == list("ABCDF")


# (case, method, path, body, field named by the first error, its code)
REFUSALS: list[tuple[str, str, str, Any, str, str]] = [
    # contacts batch
    (
        "batch update id not a string",
        "POST",
        f"{V3}/batch/update",
        {"inputs": [{"id": 102, "properties": {"jobtitle": "Analyst"}}]},
        "inputs[0].id",
        "INVALID_TYPE",
    ),
    (
        "batch update input without id",
        "POST",
        f"{V3}/batch/update",
        {"inputs": [{"id": "101", "properties": {}}, {"properties": {"jobtitle": "Analyst"}}]},
        "inputs[1].id",
        "REQUIRED_FIELD",
    ),
    (
        "batch upsert property value not a string",
        "POST",
        f"{V3}/batch/upsert",
        {"inputs": [{"id": "a@example.org", "idProperty": "email", "properties": {"score": 5}}]},
        "inputs[0].properties.score",
        "INVALID_TYPE",
    ),
    (
        "batch read without propertiesWithHistory",
        "POST",
        f"{V3}/batch/read",
        {"inputs": [{"id": "101"}], "properties": ["email"]},
        "propertiesWithHistory",
        "REQUIRED_FIELD",
    ),
    (
        "batch create association category unknown",
        "POST",
        f"{V3}/batch/create",
        {
            "inputs": [
                {
                    "properties": {"email": "new@example.org"},
                    "associations": [
                        {
                            "to": {"id": "1"},
                            "types": [{"associationCategory": "MINE", "associationTypeId": 1}],
                        }
                    ],
                }
            ]
        },
        "inputs[0].associations[0].types[0].associationCategory",
        "INVALID_ENUM_VALUE",
    ),
    (
        "dated batch update without inputs",
        "POST",
        f"{DATED}/batch/update",
        {"input": []},
        "inputs",
        "REQUIRED_FIELD",
    ),
    # properties
    (
        "property field type unknown",
        "POST",
        PROPS,
        {**GRADE, "fieldType": "dropdown", "options": []},
        "fieldType",
        "INVALID_ENUM_VALUE",
    ),
    ("property group name null", "POST", PROPS, {**GRADE, "groupName": None}, "groupName",
     "INVALID_TYPE"),
    ("property without label", "POST", PROPS, {k: v for k, v in GRADE.items() if k != "label"},
     "label", "REQUIRED_FIELD"),
    (
        "property option hidden not a boolean",
        "POST",
        PROPS,
        {**GRADE, "options": [{"label": "A", "value": "A", "hidden": "no"}]},
        "options[0].hidden",
        "INVALID_TYPE",
    ),
    (
        "property group without label",
        "POST",
        f"{PROPS}/groups",
        {"name": "handshake"},
        "label",
        "REQUIRED_FIELD",
    ),
    # lists
    (
        "list without processing type",
        "POST",
        LISTS,
        {"name": "MQLs", "objectTypeId": "0-1"},
        "processingType",
        "REQUIRED_FIELD",
    ),
    (
        "list name not a string",
        "POST",
        LISTS,
        {"name": 7, "objectTypeId": "0-1", "processingType": "MANUAL"},
        "name",
        "INVALID_TYPE",
    ),
    (
        "list filter branch of no known shape",
        "POST",
        LISTS,
        {
            "name": "Filtered",
            "objectTypeId": "0-1",
            "processingType": "DYNAMIC",
            "filterBranch": {"filterBranchType": "SOMETIMES", "filters": []},
        },
        "filterBranch",
        "INVALID_VALUE",
    ),
    ("membership add not an array", "PUT", f"{LISTS}/1/memberships/add", {"ids": ["101"]},
     "body", "INVALID_TYPE"),
    (
        "membership ids not strings",
        "PUT",
        f"{LISTS}/1/memberships/add-and-remove",
        {"recordIdsToAdd": [101], "recordIdsToRemove": []},
        "recordIdsToAdd[0]",
        "INVALID_TYPE",
    ),
    # search
    (
        "search operator unknown",
        "POST",
        f"{V3}/search",
        {"filterGroups": [{"filters": [{"propertyName": "email", "operator": "EQUALS"}]}]},
        "filterGroups[0].filters[0].operator",
        "INVALID_ENUM_VALUE",
    ),
    (
        "search filter without property",
        "POST",
        f"{DATED}/search",
        {"filterGroups": [{"filters": [{"operator": "HAS_PROPERTY"}]}]},
        "filterGroups[0].filters[0].propertyName",
        "REQUIRED_FIELD",
    ),
    ("search limit not a number", "POST", f"{V3}/search", {"limit": "ten"}, "limit",
     "INVALID_TYPE"),
    (
        "search sort direction unknown",
        "POST",
        f"{V3}/search",
        {"sorts": [{"propertyName": "createdate", "direction": "UP"}]},
        "sorts[0]",
        "INVALID_VALUE",
    ),
    # single-record writes
    ("update properties not an object", "PATCH", f"{V3}/101", {"properties": ["jobtitle"]},
     "properties", "INVALID_TYPE"),
    ("merge without the merged id", "POST", f"{V3}/merge", {"primaryObjectId": "106"},
     "objectIdToMerge", "REQUIRED_FIELD"),
    ("body not JSON object", "POST", f"{V3}/search", ["email"], "body", "INVALID_TYPE"),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "field", "code"),
    [case[1:] for case in REFUSALS],
    ids=[case[0] for case in REFUSALS],
)
def test_bodies_the_spec_refuses_get_a_validation_error(
    http: httpx.Client, method: str, path: str, body: Any, field: str, code: str
) -> None:
    errors = _refused(http.request(method, path, json=body))
    assert (errors[0]["in"], errors[0]["code"]) == (field, code)
    if code == "REQUIRED_FIELD":
        assert field.rsplit(".", 1)[-1] in errors[0]["message"]


def test_bodies_the_spec_accepts_are_served(http: httpx.Client) -> None:
    """What the guides document alongside the spec: an empty search, sort objects, a create
    without associations; and every problem of one body is listed, not just the first."""
    assert http.post(f"{V3}/search", json={}).status_code == 200
    sort = {"sorts": [{"propertyName": "createdate", "direction": "DESCENDING"}], "limit": 1}
    assert http.post(f"{V3}/search", json=sort).status_code == 200
    made = http.post(V3, json={"properties": {"email": "solo@example.org"}})
    assert made.status_code == 201, made.text
    errors = _refused(http.post(PROPS, json={"name": "x", "type": "nonsense"}))
    assert {(e["in"], e["code"]) for e in errors} == {
        ("fieldType", "REQUIRED_FIELD"),
        ("groupName", "REQUIRED_FIELD"),
        ("label", "REQUIRED_FIELD"),
        ("type", "INVALID_ENUM_VALUE"),
    }


def test_a_refused_batch_changes_nothing(sandbox: HubSpotSandbox, http: httpx.Client) -> None:
    inputs = [
        {"id": "101", "properties": {"jobtitle": "Chief"}},
        {"id": "102", "properties": {"jobtitle": None}},
    ]
    errors = _refused(http.post(f"{V3}/batch/update", json={"inputs": inputs}))
    assert errors == [
        {
            "message": "Cannot deserialize value of type `string` from null value",
            "in": "inputs[1].properties.jobtitle",
            "code": "INVALID_TYPE",
        }
    ]
    assert sandbox.state.contacts["101"].props["jobtitle"] == "Engineer"
    assert sandbox.stats.by_status[400] == 1


def test_refusals_do_not_echo_values_a_client_sent(http: httpx.Client) -> None:
    body = {"inputs": [{"id": "101", "properties": {"email": ["ada@example.org"]}}]}
    answer = http.post(f"{V3}/batch/update", json=body)
    _refused(answer)
    assert "ada@example.org" not in answer.text


def test_validators_are_compiled_once_per_operation() -> None:
    first = request_validator("POST", "/crm/v3/properties/{objectType}")
    assert first is not None
    assert request_validator("POST", "/crm/v3/properties/{objectType}") is first
    assert request_validator("GET", "/crm/v3/properties/{objectType}") is None
    assert request_validator("POST", "/form-integrations/v1/submissions/forms/{formGuid}") is None


def test_every_served_body_route_is_checked() -> None:
    sandbox = HubSpotSandbox(SandboxClock(NOW))
    unchecked = []
    for route in sandbox.router.routes:
        methods = set(getattr(route, "methods", None) or ()) - {"GET", "HEAD", "DELETE"}
        for method in methods:
            path = getattr(route, "path", "")
            if request_validator(method, path) is None:
                unchecked.append(f"{method} {path}")
            elif getattr(route, "endpoint", None).__name__ != "checked":
                unchecked.append(f"{method} {path} (not wrapped)")
    assert unchecked == []


def test_vendored_schemas_are_what_the_generator_makes_of_the_specs() -> None:
    generate = importlib.import_module("connector.sandbox.hubspot.specs.generate")
    expected = generate.render(generate.generate(SPECS))
    assert generate.OUTPUT.read_text(encoding="utf-8") == expected, (
        "run python connector/sandbox/hubspot/specs/generate.py"
    )
