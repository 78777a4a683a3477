"""Contacts in the HubSpot sandbox, driven over real HTTP by hubspot-api-client 12 (unchanged,
pointed at the sandbox with `host=`) and by httpx where the SDK hides the raw answer."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import httpx
import hubspot
import pytest
from hubspot.crm.contacts import (
    BatchInputSimplePublicObjectBatchInput,
    BatchInputSimplePublicObjectBatchInputUpsert,
    BatchReadInputSimplePublicObjectId,
    PublicObjectSearchRequest,
    SimplePublicObjectInput,
)
from hubspot.crm.contacts.exceptions import ApiException

from connector.sandbox.base import SandboxClock, ServedApp
from connector.sandbox.hubspot import HubSpotSandbox, RateLimits
from tests.sandbox.hs_fixtures import NOW, TOKEN, tiny_dataset

V3 = "/crm/v3/objects/contacts"
DATED = "/crm/objects/2026-03/contacts"


@pytest.fixture
def sandbox() -> HubSpotSandbox:
    # generous limits: these tests are about behaviour; test_hubspot_limits covers the limits
    sb = HubSpotSandbox(
        SandboxClock(NOW, frozen=True),
        rate_limits=RateLimits(window_max=10_000, search_per_second=10_000),
    )
    sb.load(tiny_dataset())
    return sb


@pytest.fixture
def served(sandbox: HubSpotSandbox) -> Iterator[ServedApp]:
    srv = sandbox.serve()
    yield srv
    srv.stop()


@pytest.fixture
def client(served: ServedApp) -> hubspot.Client:
    # host= is all the SDK needs: every API's Configuration takes it as the base URL
    return hubspot.Client.create(access_token=TOKEN, host=served.base_url)


@pytest.fixture
def http(served: ServedApp) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served.base_url, headers={"Authorization": f"Bearer {TOKEN}"}) as c:
        yield c


def _search(client: hubspot.Client, **kwargs: object) -> object:
    body = {
        "filter_groups": [],
        "sorts": [],
        "properties": ["email"],
        "limit": 10,
        "after": "0",
        **kwargs,
    }
    return client.crm.contacts.search_api.do_search(PublicObjectSearchRequest(**body))


# ---------------------------------------------------------------------- SDK, unchanged


def test_get_page_walks_every_live_contact_once(client: hubspot.Client) -> None:
    seen: list[str] = []
    after = None
    while True:
        page = client.crm.contacts.basic_api.get_page(limit=7, after=after, properties=["email"])
        seen += [c.id for c in page.results]
        assert all(
            set(c.properties) >= {"email", "createdate", "lastmodifieddate", "hs_object_id"}
            for c in page.results
        )
        if page.paging is None:
            break
        after = page.paging.next.after
    # 30 seeded, 103 archived, 104 merged away
    assert seen == [str(i) for i in range(101, 131) if i not in (103, 104)]


def test_get_by_id_and_by_email(client: hubspot.Client) -> None:
    api = client.crm.contacts.basic_api
    by_id = api.get_by_id("110", properties=["email", "jobtitle"])
    assert by_id.properties["email"] == "person9@example0.com"
    assert by_id.properties["jobtitle"] == "VP Marketing"
    by_email = api.get_by_id("person9@example0.com", id_property="email")
    assert by_email.id == "110"
    with pytest.raises(ApiException) as err:
        api.get_by_id("999999")
    assert err.value.status == 404


def test_default_properties_and_iso_timestamps(http: httpx.Client) -> None:
    body = http.get(f"{V3}/101").json()
    assert set(body["properties"]) == {
        "createdate",
        "email",
        "firstname",
        "hs_object_id",
        "lastmodifieddate",
        "lastname",
    }
    assert body["properties"]["lastmodifieddate"] == "2026-10-03T12:00:00.000Z"
    assert body["updatedAt"] == "2026-10-03T12:00:00.000Z"
    assert all(isinstance(v, str) for v in body["properties"].values())
    unset = http.get(f"{V3}/102", params={"properties": "hs_lead_status,nosuchproperty"}).json()
    assert unset["properties"]["hs_lead_status"] is None
    assert "nosuchproperty" not in unset["properties"]


def test_search_filters_sort_and_paging_through_sdk(client: hubspot.Client) -> None:
    filters = [{"filters": [{"propertyName": "lifecyclestage", "operator": "EQ", "value": "lead"}]}]
    sorts = [{"propertyName": "lastmodifieddate", "direction": "DESCENDING"}]
    first = _search(client, filter_groups=filters, sorts=sorts, limit=4)
    ids = [c.id for c in first.results]
    rest = _search(
        client, filter_groups=filters, sorts=sorts, limit=4, after=first.paging.next.after
    )
    ids += [c.id for c in rest.results]
    # i % 3 == 1 -> lead; newest lastmodifieddate first; 104 is merged away
    expected = [str(101 + i) for i in range(29, -1, -1) if i % 3 == 1 and 101 + i != 104]
    assert first.total == len(expected)
    assert ids == expected[:8]


def test_batch_read_update_upsert_through_sdk(
    client: hubspot.Client, sandbox: HubSpotSandbox
) -> None:
    batch = client.crm.contacts.batch_api
    read = batch.read(
        BatchReadInputSimplePublicObjectId(
            inputs=[{"id": "101"}, {"id": "102"}], properties=["email"], properties_with_history=[]
        )
    )
    assert sorted(r.id for r in read.results) == ["101", "102"]

    updated = batch.update(
        BatchInputSimplePublicObjectBatchInput(
            inputs=[{"id": "101", "properties": {"jobtitle": "CMO"}}]
        )
    )
    assert updated.results[0].properties["jobtitle"] == "CMO"
    assert sandbox.state.contacts["101"].props["jobtitle"] == "CMO"

    upserted = batch.upsert(
        BatchInputSimplePublicObjectBatchInputUpsert(
            inputs=[
                {
                    "id": "person1@example1.com",
                    "idProperty": "email",
                    "properties": {"firstname": "Uno"},
                },
                {
                    "id": "newbie@example.org",
                    "idProperty": "email",
                    "properties": {"firstname": "New"},
                },
            ]
        )
    )
    by_email = {r.properties.get("email") or r.id: r for r in upserted.results}
    assert {r.new for r in upserted.results} == {True, False}
    new = next(r for r in upserted.results if r.new)
    assert sandbox.state.contacts[new.id].props["email"] == "newbie@example.org"
    assert sandbox.state.contacts["102"].props["firstname"] == "Uno"
    assert by_email


def test_patch_bumps_lastmodifieddate_to_clock(
    client: hubspot.Client, sandbox: HubSpotSandbox
) -> None:
    sandbox.clock.advance(timedelta(hours=1))
    out = client.crm.contacts.basic_api.update(
        "101", SimplePublicObjectInput(properties={"jobtitle": "CEO"})
    )
    assert out.properties["lastmodifieddate"] == "2026-11-02T13:00:00.000Z"
    assert out.properties["jobtitle"] == "CEO"


def test_dated_paths_behave_like_v3(http: httpx.Client) -> None:
    v3 = http.get(V3, params={"limit": 3, "properties": "email"}).json()
    dated = http.get(DATED, params={"limit": 3, "properties": "email"}).json()
    assert [c["id"] for c in v3["results"]] == [c["id"] for c in dated["results"]]
    search = http.post(f"{DATED}/search", json={"filterGroups": [], "limit": 2}).json()
    assert search["total"] == 28


# ---------------------------------------------------------------------- limits


def test_batch_of_101_inputs_is_a_validation_error(
    client: hubspot.Client, http: httpx.Client
) -> None:
    inputs = [{"id": str(101 + i)} for i in range(101)]
    raw = http.post(
        f"{V3}/batch/read",
        json={"inputs": inputs, "properties": ["email"], "propertiesWithHistory": []},
    )
    assert raw.status_code == 400
    body = raw.json()
    assert body["status"] == "error"
    assert body["category"] == "VALIDATION_ERROR"
    assert body["message"].startswith("The maximum number of inputs supported in a batch is 100")
    assert body["correlationId"]
    with pytest.raises(ApiException) as err:
        client.crm.contacts.batch_api.update(
            BatchInputSimplePublicObjectBatchInput(
                inputs=[{"id": str(101 + i), "properties": {"jobtitle": "x"}} for i in range(101)]
            )
        )
    assert err.value.status == 400
    ok = http.post(
        f"{V3}/batch/read",
        json={"inputs": inputs[:100], "properties": ["email"], "propertiesWithHistory": []},
    )
    assert ok.status_code == 207  # 103 is archived, 131.. do not exist; 104 answers as 105
    assert ok.json()["errors"][0]["context"]["ids"] == ["103"] + [str(i) for i in range(131, 201)]
    assert [r["id"] for r in ok.json()["results"]] == [
        str(i) for i in range(101, 131) if i not in (103, 104)
    ]


def test_batch_read_with_history_caps_at_50(http: httpx.Client) -> None:
    inputs = [{"id": str(101 + i)} for i in range(51)]
    body = {"properties": [], "propertiesWithHistory": ["lifecyclestage"]}
    raw = http.post(f"{V3}/batch/read", json={"inputs": inputs, **body})
    assert raw.status_code == 400
    assert "property histories is 50" in raw.json()["message"]
    ok = http.post(f"{V3}/batch/read", json={"inputs": inputs[:2], **body})
    history = ok.json()["results"][0]["propertiesWithHistory"]["lifecyclestage"]
    assert history[0]["value"] in ("subscriber", "lead") and history[0]["sourceType"]


def test_search_paging_past_10000_is_a_400(sandbox: HubSpotSandbox, http: httpx.Client) -> None:
    for i in range(10_050 - 28):
        sandbox.state.create_contact({"email": f"bulk{i}@example.net"})
    page = http.post(f"{V3}/search", json={"limit": 200, "after": "9800"}).json()
    assert page["total"] == 10_050
    assert len(page["results"]) == 200
    assert page["paging"]["next"]["after"] == "10000"
    over = http.post(f"{V3}/search", json={"limit": 200, "after": "10000"})
    assert over.status_code == 400
    assert over.json()["category"] == "VALIDATION_ERROR"
    assert http.post(f"{V3}/search", json={"limit": 201}).status_code == 400


def test_search_limits_on_filter_groups(http: httpx.Client) -> None:
    group = {"filters": [{"propertyName": "email", "operator": "HAS_PROPERTY"}]}
    assert http.post(f"{V3}/search", json={"filterGroups": [group] * 5}).status_code == 200
    assert http.post(f"{V3}/search", json={"filterGroups": [group] * 6}).status_code == 400
    big = {"filters": group["filters"] * 11}
    assert http.post(f"{V3}/search", json={"filterGroups": [big]}).status_code == 400
    two_sorts = ["createdate", "lastmodifieddate"]
    assert http.post(f"{V3}/search", json={"sorts": two_sorts}).status_code == 400


# ---------------------------------------------------------------------- search semantics


def _ids(http: httpx.Client, filters: list[dict[str, object]], **extra: object) -> list[str]:
    body = {"filterGroups": [{"filters": filters}], "limit": 200, **extra}
    answer = http.post(f"{V3}/search", json=body)
    assert answer.status_code == 200, answer.text
    return [c["id"] for c in answer.json()["results"]]


def test_search_operators(http: httpx.Client) -> None:
    assert _ids(
        http, [{"propertyName": "email", "operator": "EQ", "value": "PERSON5@example2.com"}]
    ) == ["106"]
    assert len(_ids(http, [{"propertyName": "hs_lead_status", "operator": "HAS_PROPERTY"}])) == 8
    assert "101" not in _ids(
        http, [{"propertyName": "hs_lead_status", "operator": "NOT_HAS_PROPERTY"}]
    )
    assert _ids(
        http, [{"propertyName": "firstname", "operator": "IN", "values": ["first1", "first2"]}]
    ) == ["102"]
    assert "102" not in _ids(
        http, [{"propertyName": "firstname", "operator": "NOT_IN", "values": ["first1"]}]
    )
    assert _ids(
        http, [{"propertyName": "email", "operator": "CONTAINS_TOKEN", "value": "person1*"}]
    )[:2] == ["102", "111"]
    assert "102" not in _ids(
        http, [{"propertyName": "jobtitle", "operator": "NOT_CONTAINS_TOKEN", "value": "vp"}]
    )
    assert _ids(
        http,
        [
            {
                "propertyName": "hs_object_id",
                "operator": "BETWEEN",
                "value": "105",
                "highValue": "107",
            }
        ],
    ) == ["105", "106", "107"]
    assert _ids(http, [{"propertyName": "hs_object_id", "operator": "LT", "value": "103"}]) == [
        "101",
        "102",
    ]
    assert _ids(http, [{"propertyName": "hs_object_id", "operator": "GTE", "value": "129"}]) == [
        "129",
        "130",
    ]
    assert "101" not in _ids(
        http, [{"propertyName": "firstname", "operator": "NEQ", "value": "First0"}]
    )
    # datetime filters take epoch milliseconds or ISO text alike
    cutoff_ms = str(int((NOW - timedelta(days=30) + timedelta(minutes=27)).timestamp() * 1000))
    assert _ids(
        http, [{"propertyName": "lastmodifieddate", "operator": "GTE", "value": cutoff_ms}]
    ) == ["128", "129", "130"]
    assert _ids(
        http,
        [{"propertyName": "lastmodifieddate", "operator": "GT", "value": "2026-10-03T12:27:30Z"}],
    ) == ["129", "130"]


def test_filter_groups_are_or_of_ands(http: httpx.Client) -> None:
    body = {
        "filterGroups": [
            {"filters": [{"propertyName": "firstname", "operator": "EQ", "value": "First0"}]},
            {
                "filters": [
                    {"propertyName": "firstname", "operator": "EQ", "value": "First6"},
                    {"propertyName": "company", "operator": "EQ", "value": "Company 1"},
                ]
            },
            {
                "filters": [
                    {"propertyName": "firstname", "operator": "EQ", "value": "First7"},
                    {"propertyName": "company", "operator": "EQ", "value": "Company 0"},
                ]
            },
        ]
    }
    answer = http.post(f"{V3}/search", json=body).json()
    assert [c["id"] for c in answer["results"]] == ["101", "107"]


def test_equal_sort_values_page_in_stable_id_order(
    sandbox: HubSpotSandbox, http: httpx.Client
) -> None:
    same = sandbox.clock.now()
    ids = [str(i) for i in range(130, 110, -1)]
    sandbox.state.touch_contacts(ids, at=same)
    filters = [
        {
            "propertyName": "lastmodifieddate",
            "operator": "GTE",
            "value": str(int(same.timestamp() * 1000)),
        }
    ]
    seen: list[str] = []
    after = "0"
    while True:
        body = {
            "filterGroups": [{"filters": filters}],
            "sorts": [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}],
            "limit": 6,
            "after": after,
        }
        page = http.post(f"{V3}/search", json=body).json()
        seen += [c["id"] for c in page["results"]]
        if "paging" not in page:
            break
        after = page["paging"]["next"]["after"]
    assert seen == sorted(ids, key=int)


def test_search_sees_updates_between_pages(sandbox: HubSpotSandbox, http: httpx.Client) -> None:
    body = {
        "filterGroups": [
            {"filters": [{"propertyName": "jobtitle", "operator": "EQ", "value": "Engineer"}]}
        ],
        "limit": 5,
    }
    before = http.post(f"{V3}/search", json=body).json()["total"]
    sandbox.state.update_contact("101", {"jobtitle": "Director"})
    assert http.post(f"{V3}/search", json=body).json()["total"] == before - 1


# ---------------------------------------------------------------------- lifecycle, merge, archive


def test_lifecycle_only_moves_forward_and_clear_then_set_goes_back(
    client: hubspot.Client, http: httpx.Client
) -> None:
    api = client.crm.contacts.basic_api
    assert (
        api.get_by_id("108", properties=["lifecyclestage"]).properties["lifecyclestage"] == "lead"
    )
    api.update(
        "108", SimplePublicObjectInput(properties={"lifecyclestage": "marketingqualifiedlead"})
    )
    back = api.update("108", SimplePublicObjectInput(properties={"lifecyclestage": "lead"}))
    assert back.properties["lifecyclestage"] == "marketingqualifiedlead"  # ignored silently, 200
    found = _ids(
        http,
        [{"propertyName": "lifecyclestage", "operator": "EQ", "value": "marketingqualifiedlead"}],
    )
    assert "108" in found
    api.update("108", SimplePublicObjectInput(properties={"lifecyclestage": ""}))
    moved = api.update("108", SimplePublicObjectInput(properties={"lifecyclestage": "lead"}))
    assert moved.properties["lifecyclestage"] == "lead"
    assert "108" in _ids(
        http, [{"propertyName": "lifecyclestage", "operator": "EQ", "value": "lead"}]
    )
    bad = http.patch(f"{V3}/108", json={"properties": {"lifecyclestage": "wizard"}})
    assert bad.status_code == 400 and "INVALID_OPTION" in bad.text


def test_merged_contact_answers_with_survivor(http: httpx.Client, sandbox: HubSpotSandbox) -> None:
    body = http.get(f"{V3}/104", params={"properties": "hs_merged_object_ids,email"}).json()
    assert body["id"] == "105"
    assert body["properties"]["hs_merged_object_ids"] == "104"
    merged = http.post(f"{V3}/merge", json={"primaryObjectId": "106", "objectIdToMerge": "107"})
    assert merged.status_code == 200 and merged.json()["id"] == "106"
    assert http.get(f"{V3}/107").json()["id"] == "106"
    assert "107" not in [c["id"] for c in http.get(V3, params={"limit": 100}).json()["results"]]
    assert sandbox.state.contacts["106"].props["hs_additional_emails"] == "person6@example0.com"


def test_archived_contacts_only_with_archived_true(http: httpx.Client) -> None:
    assert http.get(f"{V3}/103").status_code == 404
    assert http.get(f"{V3}/103", params={"archived": "true"}).json()["archived"] is True
    archived = http.get(V3, params={"archived": "true"}).json()["results"]
    assert [c["id"] for c in archived] == ["103"]
    assert archived[0]["archivedAt"]
    assert http.delete(f"{V3}/110").status_code == 204
    assert [c["id"] for c in http.get(V3, params={"archived": "true"}).json()["results"]] == [
        "103",
        "110",
    ]
    assert "110" not in _ids(http, [{"propertyName": "hs_object_id", "operator": "HAS_PROPERTY"}])


def test_writes_are_validated(http: httpx.Client) -> None:
    unknown = http.patch(f"{V3}/101", json={"properties": {"favourite_colour": "blue"}})
    assert unknown.status_code == 400 and "PROPERTY_DOESNT_EXIST" in unknown.json()["message"]
    dup = http.post(V3, json={"properties": {"email": "PERSON5@example2.com"}})
    assert dup.status_code == 409
    assert dup.json()["message"] == "Contact already exists. Existing ID: 106"
    created = http.post(
        V3, json={"properties": {"email": "fresh@example.org", "lifecyclestage": "lead"}}
    )
    assert created.status_code == 201
    assert created.json()["properties"]["lifecyclestage"] == "lead"


def test_forced_update_moves_stage_back_like_a_ui_user(sandbox: HubSpotSandbox) -> None:
    state = sandbox.state
    state.update_contact("109", {"lifecyclestage": "lead"})
    assert state.contacts["109"].props["lifecyclestage"] == "marketingqualifiedlead"
    state.update_contact("109", {"lifecyclestage": "lead"}, force=True)
    assert state.contacts["109"].props["lifecyclestage"] == "lead"


def test_free_text_query_matches_token_prefixes(http: httpx.Client) -> None:
    body = {"query": "first2", "limit": 50, "sorts": ["hs_object_id"]}
    ids = [c["id"] for c in http.post(f"{V3}/search", json=body).json()["results"]]
    # First20..First29; First2 is contact 103, which is archived
    assert ids == [str(i) for i in range(121, 131)]
    both = {"query": "first2 example0", "limit": 50}
    emails = [
        c["properties"]["email"] for c in http.post(f"{V3}/search", json=both).json()["results"]
    ]
    assert emails and all(e.endswith("@example0.com") for e in emails)


def test_batch_update_with_duplicate_ids_is_rejected_whole(
    http: httpx.Client, sandbox: HubSpotSandbox
) -> None:
    inputs = [
        {"id": "101", "properties": {"jobtitle": "A"}},
        {"id": "101", "properties": {"jobtitle": "B"}},
    ]
    answer = http.post(f"{V3}/batch/update", json={"inputs": inputs})
    assert answer.status_code == 400
    assert "Duplicate IDs" in answer.json()["message"]
    assert sandbox.state.contacts["101"].props["jobtitle"] == "Engineer"
