"""Marketing activity in the HubSpot sandbox (legacy email events and form submissions, forms,
web analytics page views, webinar participations) and the properties, owners and lists APIs,
over real HTTP: the SDK where it has a client, httpx for the legacy endpoints."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import httpx
import hubspot
import pytest
from hubspot.crm.lists import ListCreateRequest
from hubspot.crm.properties import PropertyCreate
from hubspot.crm.properties.exceptions import ApiException as PropertiesApiException

from connector.sandbox.base import SandboxClock, ServedApp
from connector.sandbox.hubspot import HubSpotSandbox, RateLimits
from tests.sandbox.hs_fixtures import FORM_GUID, NOW, TOKEN, WEBINAR_ID, tiny_dataset


@pytest.fixture
def sandbox() -> HubSpotSandbox:
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
    return hubspot.Client.create(access_token=TOKEN, host=served.base_url)


@pytest.fixture
def http(served: ServedApp) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served.base_url, headers={"Authorization": f"Bearer {TOKEN}"}) as c:
        yield c


def _ms(days_ago: float) -> int:
    return int((NOW - timedelta(days=days_ago)).timestamp() * 1000)


# ---------------------------------------------------------------------- legacy email events


def test_email_events_filter_and_page_by_offset(http: httpx.Client) -> None:
    everything = http.get("/email/public/v1/events", params={"limit": 1000}).json()
    assert [e["id"] for e in everything["events"]] == ["e0", "e1", "e2", "e3", "e4", "e9"]
    assert everything["hasMore"] is False
    clicks = http.get("/email/public/v1/events", params={"eventType": "CLICK"}).json()["events"]
    assert [e["url"] for e in clicks] == ["https://example.com/webinar"]
    window = http.get(
        "/email/public/v1/events",
        params={
            "startTimestamp": _ms(5) + 1,
            "endTimestamp": _ms(4.5),
            "recipient": "person0@example0.com",
        },
    ).json()
    assert [e["type"] for e in window["events"]] == ["DELIVERED", "OPEN", "CLICK", "OPEN"]
    pages, offset = [], None
    while True:
        params = {"limit": 2, **({"offset": offset} if offset else {})}
        page = http.get("/email/public/v1/events", params=params).json()
        pages.append([e["id"] for e in page["events"]])
        if not page["hasMore"]:
            break
        offset = page["offset"]
    assert pages == [["e0", "e1"], ["e2", "e3"], ["e4", "e9"]]


def test_email_open_moves_contact_counter(sandbox: HubSpotSandbox, http: httpx.Client) -> None:
    before = sandbox.state.contacts["102"].updated_at
    sandbox.clock.advance(timedelta(minutes=5))
    sandbox.state.add_email_event("person1@example1.com", "OPEN", email_campaign_id=43)
    rec = sandbox.state.contacts["102"]
    assert rec.props["hs_email_last_open_date"] == "2026-11-02T12:05:00.000Z"
    assert rec.updated_at > before
    bounce = http.get("/email/public/v1/events", params={"eventType": "BOUNCE"}).json()["events"][0]
    assert bounce["category"] == "HARD_BOUNCE"


# ---------------------------------------------------------------------- forms and submissions


def test_forms_through_sdk(client: hubspot.Client) -> None:
    page = client.marketing.forms.forms_api.get_page()
    assert [f.id for f in page.results] == [FORM_GUID, "0b0c4d4e-0000-4000-8000-000000000002"]
    fields = [g.fields[0].name for g in page.results[0].field_groups]
    assert fields == ["email", "firstname", "budget"]


def test_form_submissions_newest_first_paged_by_after(
    sandbox: HubSpotSandbox, http: httpx.Client
) -> None:
    sandbox.state.add_form_submission(
        FORM_GUID,
        {"email": "person9@example0.com", "budget": "lt10k"},
        page_url="https://example.com/whitepaper",
    )
    first = http.get(
        f"/form-integrations/v1/submissions/forms/{FORM_GUID}", params={"limit": 2}
    ).json()
    assert [s["submittedAt"] for s in first["results"]] == [int(NOW.timestamp() * 1000), _ms(8)]
    assert first["results"][0]["values"] == [
        {"name": "email", "value": "person9@example0.com"},
        {"name": "budget", "value": "lt10k"},
    ]
    nxt = http.get(
        f"/form-integrations/v1/submissions/forms/{FORM_GUID}",
        params={"limit": 2, "after": first["paging"]["next"]["after"]},
    ).json()
    assert [s["submittedAt"] for s in nxt["results"]] == [_ms(9), _ms(10)]
    assert "paging" not in nxt
    too_many = http.get(
        f"/form-integrations/v1/submissions/forms/{FORM_GUID}", params={"limit": 51}
    )
    assert too_many.status_code == 400
    assert sandbox.state.contacts["110"].props["num_conversion_events"] == "1"
    assert http.get("/form-integrations/v1/submissions/forms/nope").status_code == 404


# ---------------------------------------------------------------------- web analytics


def test_page_views_through_sdk_and_counters_consistent(
    client: hubspot.Client, sandbox: HubSpotSandbox
) -> None:
    events = client.events.events_api.get_page(
        object_type="contact", object_id=101, event_type="e_visited_page", limit=3
    )
    assert [e.properties["hs_url"] for e in events.results] == [
        "https://example.com/page4",
        "https://example.com/page3",
        "https://example.com/page2",
    ]
    rest = client.events.events_api.get_page(
        object_type="contact",
        object_id=101,
        event_type="e_visited_page",
        limit=3,
        after=events.paging.next.after,
    )
    assert len(rest.results) == 2 and rest.paging is None
    rec = sandbox.state.contacts["101"]
    assert rec.props["hs_analytics_num_page_views"] == "5"
    assert rec.props["hs_analytics_num_visits"] == "2"
    assert rec.props["hs_analytics_last_visit_timestamp"] == "2026-10-30T12:20:00.000Z"


def test_new_page_view_moves_counters_and_window_filters(
    sandbox: HubSpotSandbox, http: httpx.Client
) -> None:
    sandbox.clock.advance(timedelta(hours=2))
    sandbox.state.add_page_view("102", "https://example.com/pricing", title="Pricing")
    sandbox.state.add_page_view(
        "102",
        "https://example.com/demo",
        title="Demo",
        at=sandbox.clock.now() + timedelta(minutes=10),
    )
    rec = sandbox.state.contacts["102"]
    assert (rec.props["hs_analytics_num_page_views"], rec.props["hs_analytics_num_visits"]) == (
        "2",
        "1",
    )
    assert rec.props["lastmodifieddate"] == "2026-11-02T14:00:00.000Z"
    answer = http.get(
        "/events/v3/events",
        params={
            "objectType": "contact",
            "objectId": "102",
            "eventType": "e_visited_page",
            "occurredAfter": "2026-11-02T14:05:00Z",
            "sort": "ASCENDING",
        },
    ).json()
    assert [e["properties"]["hs_url"] for e in answer["results"]] == ["https://example.com/demo"]
    assert (
        http.get(
            "/events/v3/events",
            params={"objectType": "contact", "objectId": "102", "eventType": "e_form_submission"},
        ).json()["results"]
        == []
    )
    by_email = http.get(
        "/events/v3/events",
        params={"objectType": "contact", "objectProperty.email": "person1@example1.com"},
    )
    assert len(by_email.json()["results"]) == 2


# ---------------------------------------------------------------------- marketing events


def test_participations_by_contact_through_sdk(client: hubspot.Client) -> None:
    api = client.marketing.events.retrieve_participant_state_api
    mine = api.get_participations_breakdown_by_contact_id("101")
    assert mine.total == 2
    assert sorted(p.properties.attendance_state for p in mine.results) == ["ATTENDED", "REGISTERED"]
    assert mine.results[0].associations.marketing_event.marketing_event_id == WEBINAR_ID
    by_email = api.get_participations_breakdown_by_contact_id(
        "person1@example1.com", state="NO_SHOW"
    )
    assert [p.associations.contact.contact_id for p in by_email.results] == ["102"]


def test_participations_by_event_paged_and_counted(
    sandbox: HubSpotSandbox, http: httpx.Client
) -> None:
    sandbox.state.add_participation(WEBINAR_ID, "110", "REGISTERED")
    base = f"/marketing/v3/marketing-events/participations/{WEBINAR_ID}"
    first = http.get(f"{base}/breakdown", params={"limit": 3}).json()
    assert first["total"] == 5 and len(first["results"]) == 3
    second = http.get(
        f"{base}/breakdown", params={"limit": 3, "after": first["paging"]["next"]["after"]}
    ).json()
    assert len(second["results"]) == 2
    counters = http.get(base).json()
    assert counters == {"registered": 3, "attended": 1, "cancelled": 0, "noShows": 1}
    external = http.get(
        "/marketing/v3/marketing-events/participations/1160452/web-2026-10/breakdown",
        params={"state": "ATTENDED"},
    ).json()
    assert [p["associations"]["contact"]["contactId"] for p in external["results"]] == ["101"]
    event = http.get(f"/marketing/v3/marketing-events/{WEBINAR_ID}").json()
    assert event["eventName"] == "October webinar" and event["attendees"] == 1
    with pytest.raises(Exception, match="Unknown attendance state"):
        sandbox.state.add_participation(WEBINAR_ID, "110", "MAYBE")


# ---------------------------------------------------------------------- properties, owners, lists


def test_properties_through_sdk(client: hubspot.Client) -> None:
    api = client.crm.properties.core_api
    every = {p.name: p for p in api.get_all("contacts").results}
    stages = [o.value for o in every["lifecyclestage"].options]
    assert stages[:3] == ["subscriber", "lead", "marketingqualifiedlead"]
    assert "CONNECTED" in [o.value for o in every["hs_lead_status"].options]
    created = api.create(
        "contacts",
        PropertyCreate(
            name="handshake_score",
            label="Handshake score",
            type="number",
            field_type="number",
            group_name="contactinformation",
        ),
    )
    assert created.name == "handshake_score" and created.hubspot_defined is False
    assert api.get_by_name("contacts", "handshake_score").type == "number"
    with pytest.raises(PropertiesApiException) as err:
        api.create(
            "contacts",
            PropertyCreate(
                name="handshake_score",
                label="again",
                type="number",
                field_type="number",
                group_name="contactinformation",
            ),
        )
    assert err.value.status == 409


def test_custom_property_is_writable_and_searchable(
    sandbox: HubSpotSandbox, http: httpx.Client
) -> None:
    http.post(
        "/crm/v3/properties/contacts",
        json={
            "name": "handshake_score",
            "label": "Score",
            "type": "number",
            "fieldType": "number",
            "groupName": "contactinformation",
        },
    )
    assert (
        http.patch(
            "/crm/v3/objects/contacts/101", json={"properties": {"handshake_score": "87"}}
        ).status_code
        == 200
    )
    body = {
        "filterGroups": [
            {"filters": [{"propertyName": "handshake_score", "operator": "GT", "value": "80"}]}
        ]
    }
    assert [
        c["id"] for c in http.post("/crm/v3/objects/contacts/search", json=body).json()["results"]
    ] == ["101"]


def test_owners_through_sdk(client: hubspot.Client) -> None:
    first = client.crm.owners.owners_api.get_page(limit=2)
    rest = client.crm.owners.owners_api.get_page(limit=2, after=first.paging.next.after)
    assert [o.email for o in first.results + rest.results] == [
        "rep0@corp.example",
        "rep1@corp.example",
        "rep2@corp.example",
    ]
    assert client.crm.owners.owners_api.get_by_id(9002).user_id == 7002


def test_list_memberships_through_sdk(client: hubspot.Client, sandbox: HubSpotSandbox) -> None:
    created = client.crm.lists.lists_api.create(
        ListCreateRequest(name="MQL hand-off", object_type_id="0-1", processing_type="MANUAL")
    )
    list_id = created.list.list_id
    added = client.crm.lists.memberships_api.add(list_id, ["101", "102", "104", "999"])
    assert sorted(added.records_ids_added) == ["101", "102", "105"]
    assert added.record_ids_missing == ["999"]
    removed = client.crm.lists.memberships_api.remove(list_id, ["102"])
    assert removed.record_ids_removed == ["102"]
    page = client.crm.lists.memberships_api.get_page(list_id, limit=1)
    assert [m.record_id for m in page.results] == ["101"]
    nxt = client.crm.lists.memberships_api.get_page(list_id, limit=1, after=page.paging.next.after)
    assert [m.record_id for m in nxt.results] == ["105"]
    assert sandbox.state.get_list(list_id).members.keys() == {"101", "105"}


def test_dynamic_lists_refuse_manual_memberships(http: httpx.Client) -> None:
    made = http.post(
        "/crm/v3/lists", json={"name": "Active", "objectTypeId": "0-1", "processingType": "DYNAMIC"}
    ).json()
    answer = http.put(f"/crm/v3/lists/{made['list']['listId']}/memberships/add", json=["101"])
    assert answer.status_code == 400 and "MANUAL or SNAPSHOT" in answer.json()["message"]


def test_form_submission_creates_or_updates_the_contact(sandbox: HubSpotSandbox) -> None:
    state = sandbox.state
    sub = state.add_form_submission(
        FORM_GUID, {"email": "brand.new@example.org", "firstname": "Brand", "budget": "gte10k"}
    )
    rec = state.find_by_email("brand.new@example.org")
    assert rec is not None and sub["_contact_id"] == rec.id
    assert rec.props["lifecyclestage"] == "lead"
    assert rec.props["firstname"] == "Brand"
    assert rec.props["num_conversion_events"] == "1"
    assert "budget" not in rec.props  # not a contact property of this portal
    sandbox.clock.advance(timedelta(minutes=1))
    state.add_form_submission(FORM_GUID, {"email": "person1@example1.com", "firstname": "Renamed"})
    known = state.contacts["102"]
    assert known.props["firstname"] == "Renamed"
    assert known.props["lastmodifieddate"] == "2026-11-02T12:01:00.000Z"
    assert known.props["lifecyclestage"] == "lead"  # a form never moves a stage back


def test_cursors_do_not_shift_when_new_activity_arrives(
    sandbox: HubSpotSandbox, http: httpx.Client
) -> None:
    url = f"/form-integrations/v1/submissions/forms/{FORM_GUID}"
    first = http.get(url, params={"limit": 2}).json()
    sandbox.state.add_form_submission(FORM_GUID, {"email": "late@example.org"})
    rest = http.get(url, params={"limit": 2, "after": first["paging"]["next"]["after"]}).json()
    served = [s["submittedAt"] for s in first["results"] + rest["results"]]
    assert served == [_ms(8), _ms(9), _ms(10)]  # the late one belongs to a fresh read
    views = {"objectType": "contact", "objectId": "101", "eventType": "e_visited_page", "limit": 2}
    page = http.get("/events/v3/events", params=views).json()
    sandbox.state.add_page_view("101", "https://example.com/new")
    nxt = http.get("/events/v3/events", params={**views, "after": page["paging"]["next"]["after"]})
    urls = [e["properties"]["hs_url"] for e in page["results"] + nxt.json()["results"]]
    assert urls == [f"https://example.com/page{i}" for i in (4, 3, 2, 1)]
    assert http.get("/events/v3/events", params={**views, "after": "%%%"}).status_code == 400


def test_unsubscribe_sets_email_optout(sandbox: HubSpotSandbox, http: httpx.Client) -> None:
    assert "hs_email_optout" not in sandbox.state.contacts["103"].props
    sandbox.state.add_email_event(
        "person4@example1.com",
        "STATUSCHANGE",
        source="SOURCE_RECIPIENT",
        portalSubscriptionStatus="UNSUBSCRIBED",
        subscriptions=[{"id": 1, "status": "UNSUBSCRIBED"}],
    )
    body = http.get("/crm/v3/objects/contacts/105", params={"properties": "hs_email_optout"})
    assert body.json()["properties"]["hs_email_optout"] == "true"
    optout = http.get("/crm/v3/properties/contacts/hs_email_optout").json()
    assert optout["type"] == "bool"
    assert [o["value"] for o in optout["options"]] == ["true", "false"]


def test_email_event_type_filter_is_case_sensitive(http: httpx.Client) -> None:
    opens = http.get("/email/public/v1/events", params={"eventType": "OPEN"}).json()["events"]
    assert [e["id"] for e in opens] == ["e2", "e4"]
    assert http.get("/email/public/v1/events", params={"eventType": "open"}).json()["events"] == []


# ---------------------------------------------------------------------- events API, portal-wide


def test_portal_wide_page_views_sorted_windowed_and_paged_across_one_instant(
    sandbox: HubSpotSandbox, http: httpx.Client
) -> None:
    at = sandbox.clock.now() + timedelta(minutes=5)
    for n in range(5):  # five views of two contacts in one millisecond
        sandbox.state.add_page_view(("101", "102")[n % 2], f"https://example.com/same/{n}", at=at)
    query = {"objectType": "contact", "eventType": "e_visited_page", "sort": "occurredAt",
             "limit": 2}
    seen: list[dict[str, object]] = []
    after: str | None = None
    while True:
        body = http.get("/events/v3/events", params={**query, **({"after": after} if after
                                                                  else {})}).json()
        seen.extend(body["results"])
        after = (body.get("paging") or {}).get("next", {}).get("after")
        if not after:
            break
    every = [p for views in sandbox.state.page_views.values() for p in views]
    assert sorted(str(e["id"]) for e in seen) == sorted(p.id for p in every)  # each once
    assert {str(e["objectId"]) for e in seen} >= {"101", "102"}  # every contact's views
    times = [str(e["occurredAt"]) for e in seen]
    assert times == sorted(times)  # oldest first
    window = {**query, "limit": 100, "occurredAfter": at.isoformat().replace("+00:00", "Z"),
              "occurredBefore": at.isoformat().replace("+00:00", "Z")}
    assert len(http.get("/events/v3/events", params=window).json()["results"]) == 5
    too_many = http.get("/events/v3/events", params={**query, "limit": 1001})
    assert too_many.status_code == 400
    assert too_many.json()["category"] == "VALIDATION_ERROR"


def test_an_account_without_the_events_api_gets_403_missing_scopes(
    sandbox: HubSpotSandbox, http: httpx.Client
) -> None:
    sandbox.set_events_api(False)
    refused = http.get("/events/v3/events", params={"objectType": "contact",
                                                    "eventType": "e_visited_page"})
    assert refused.status_code == 403
    assert refused.json()["category"] == "MISSING_SCOPES"
    # the rest of the portal answers as before
    assert http.get("/email/public/v1/events", params={"limit": 1}).status_code == 200
    sandbox.set_events_api(True)
    assert http.get("/events/v3/events", params={"objectType": "contact"}).status_code == 200
