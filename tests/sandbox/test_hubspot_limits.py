"""Auth, rate limits, injected faults and the /__sandbox__ endpoints of the HubSpot sandbox,
answered the way the real API answers them (status, body, X-HubSpot-RateLimit-* headers)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import timedelta

import httpx
import hubspot
import pytest
from hubspot.crm.contacts.exceptions import ApiException

from connector.sandbox.base import Fault, FaultPlan, SandboxClock, ServedApp
from connector.sandbox.hubspot import TIERS, HubSpotSandbox, RateLimits
from tests.sandbox.hs_fixtures import NOW, TOKEN, tiny_dataset

V3 = "/crm/v3/objects/contacts"
RATE_HEADERS = (
    "X-HubSpot-RateLimit-Daily",
    "X-HubSpot-RateLimit-Daily-Remaining",
    "X-HubSpot-RateLimit-Interval-Milliseconds",
    "X-HubSpot-RateLimit-Max",
    "X-HubSpot-RateLimit-Remaining",
)


def _settled(check: Callable[[], bool]) -> bool:
    """SandboxMiddleware records a request after its response is sent: wait for it to land."""
    deadline = time.monotonic() + 5
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def _serve(sandbox: HubSpotSandbox) -> Iterator[tuple[HubSpotSandbox, ServedApp, httpx.Client]]:
    sandbox.load(tiny_dataset(10))
    srv = sandbox.serve()
    with httpx.Client(base_url=srv.base_url, headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        yield sandbox, srv, http
    srv.stop()


@pytest.fixture
def small() -> Iterator[tuple[HubSpotSandbox, ServedApp, httpx.Client]]:
    """A sandbox whose window allows 5 requests per 10 s, 2 searches per second, 50 a day."""
    limits = RateLimits(window_max=5, window_seconds=10, daily=50, search_per_second=2)
    yield from _serve(HubSpotSandbox(SandboxClock(NOW, frozen=True), rate_limits=limits))


def test_tiers_carry_the_documented_limits() -> None:
    assert (TIERS["free"].window_max, TIERS["free"].daily) == (100, 250_000)
    assert (TIERS["starter"].window_max, TIERS["starter"].daily) == (100, 250_000)
    assert (TIERS["professional"].window_max, TIERS["professional"].daily) == (190, 625_000)
    assert (TIERS["enterprise"].window_max, TIERS["enterprise"].daily) == (190, 1_000_000)
    assert TIERS["capacity_pack"].window_max == 250
    sandbox = HubSpotSandbox(SandboxClock(NOW), tier="starter")
    assert sandbox.limiter.limits == TIERS["starter"]
    with pytest.raises(ValueError):
        HubSpotSandbox(SandboxClock(NOW), tier="platinum")


def test_missing_or_bad_token_is_401_with_hubspot_body(
    small: tuple[HubSpotSandbox, ServedApp, httpx.Client],
) -> None:
    _, srv, _ = small
    for headers in ({}, {"Authorization": "Bearer pat-wrong"}, {"Authorization": "Basic abc"}):
        answer = httpx.get(srv.base_url + V3, headers=headers)
        assert answer.status_code == 401
        body = answer.json()
        assert body["status"] == "error"
        assert body["category"] == "INVALID_AUTHENTICATION"
        assert body["message"].startswith("Authentication credentials not found")
        assert body["correlationId"]
    client = hubspot.Client.create(access_token="pat-wrong", host=srv.base_url)
    with pytest.raises(ApiException) as err:
        client.crm.contacts.basic_api.get_page()
    assert err.value.status == 401


def test_headers_count_down_and_burst_over_window_is_429(
    small: tuple[HubSpotSandbox, ServedApp, httpx.Client],
) -> None:
    _, _, http = small
    remaining = []
    for _ in range(5):
        answer = http.get(V3)
        assert answer.status_code == 200
        assert all(h in answer.headers for h in RATE_HEADERS)
        assert answer.headers["X-HubSpot-RateLimit-Max"] == "5"
        assert answer.headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "10000"
        assert answer.headers["X-HubSpot-RateLimit-Daily"] == "50"
        remaining.append(int(answer.headers["X-HubSpot-RateLimit-Remaining"]))
    assert remaining == [4, 3, 2, 1, 0]
    over = http.get(V3)
    assert over.status_code == 429
    body = over.json()
    assert body["status"] == "error"
    assert body["errorType"] == "RATE_LIMIT"
    assert body["policyName"] == "TEN_SECONDLY_ROLLING"
    assert body["message"] == "You have reached your ten_secondly_rolling limit."
    assert body["correlationId"]
    assert over.headers["X-HubSpot-RateLimit-Remaining"] == "0"


def test_sdk_sees_the_429(small: tuple[HubSpotSandbox, ServedApp, httpx.Client]) -> None:
    sandbox, srv, _ = small
    client = hubspot.Client.create(access_token=TOKEN, host=srv.base_url)
    for _ in range(5):
        client.crm.contacts.basic_api.get_page(limit=1)
    with pytest.raises(ApiException) as err:
        client.crm.contacts.basic_api.get_page(limit=1)
    assert err.value.status == 429
    assert "TEN_SECONDLY_ROLLING" in err.value.body
    assert _settled(lambda: sandbox.stats.by_status[429] == 1)


def test_search_has_its_own_per_second_limit_and_no_headers(
    small: tuple[HubSpotSandbox, ServedApp, httpx.Client],
) -> None:
    _, _, http = small
    first = http.post(f"{V3}/search", json={})
    second = http.post(f"{V3}/search", json={})
    assert first.status_code == second.status_code == 200
    assert not any(h.lower().startswith("x-hubspot-ratelimit") for h in first.headers)
    third = http.post(f"{V3}/search", json={})
    assert third.status_code == 429
    assert third.json()["policyName"] == "SECONDLY"
    assert third.json()["errorType"] == "RATE_LIMIT"
    # the window still has room for a plain read
    assert http.get(V3).status_code == 200


def test_daily_budget_spent_is_429_daily_until_midnight(
    small: tuple[HubSpotSandbox, ServedApp, httpx.Client],
) -> None:
    sandbox, _, http = small
    sandbox.limiter.spend_daily(TOKEN, 49)
    last = http.get(V3)
    assert last.status_code == 200
    assert last.headers["X-HubSpot-RateLimit-Daily-Remaining"] == "0"
    spent = http.get(V3)
    assert spent.status_code == 429
    assert spent.json()["policyName"] == "DAILY"
    assert spent.json()["message"] == "You have reached your daily limit."
    # next day of the sandbox clock: the budget is back
    sandbox.clock.set(NOW.replace(hour=0) + timedelta(days=1))
    assert http.get(V3).status_code == 200


def test_limits_are_per_token() -> None:
    limits = RateLimits(window_max=2, daily=100, search_per_second=5)
    sandbox = HubSpotSandbox(
        SandboxClock(NOW, frozen=True), rate_limits=limits, access_tokens=(TOKEN, "pat-other")
    )
    for _, srv, http in _serve(sandbox):
        assert [http.get(V3).status_code for _ in range(3)] == [200, 200, 429]
        other = httpx.get(srv.base_url + V3, headers={"Authorization": "Bearer pat-other"})
        assert other.status_code == 200
        sandbox.set_rate_limits(RateLimits(window_max=100, daily=100))
        assert http.get(V3).status_code == 200


def test_injected_faults_use_hubspot_bodies() -> None:
    faults = FaultPlan()
    faults.schedule(
        r"GET /crm/v3/objects/contacts$", Fault("429"), Fault("500"), Fault("503"), None
    )
    sandbox = HubSpotSandbox(SandboxClock(NOW, frozen=True), faults=faults)
    for _, _, http in _serve(sandbox):
        r429 = http.get(V3)
        assert r429.status_code == 429
        assert r429.json()["policyName"] == "TEN_SECONDLY_ROLLING"
        assert r429.json()["errorType"] == "RATE_LIMIT"
        assert "X-HubSpot-RateLimit-Max" in r429.headers
        r500 = http.get(V3)
        assert r500.status_code == 500 and r500.json()["status"] == "error"
        r503 = http.get(V3)
        assert r503.status_code == 503 and r503.json()["status"] == "error"
        assert http.get(V3).status_code == 200
        assert sandbox.stats.by_route_status[f"{V3} 429"] == 1


def test_sandbox_endpoints_need_no_auth_and_are_never_limited(
    small: tuple[HubSpotSandbox, ServedApp, httpx.Client],
) -> None:
    sandbox, srv, http = small
    for _ in range(6):
        http.get(V3)
    assert _settled(lambda: sandbox.stats.total == 6)
    sandbox.faults.p500 = 1.0
    for _ in range(10):
        stats = httpx.get(srv.base_url + "/__sandbox__/stats")
        assert stats.status_code == 200
    body = stats.json()
    assert body["records"]["contacts"] == 8  # 10 seeded, 103 archived, 104 merged
    assert body["records"]["contacts_archived"] == 1
    assert body["requests"]["by_status"] == {"200": 5, "429": 1}
    contacts = httpx.get(srv.base_url + "/__sandbox__/records/contacts").json()
    assert [c["id"] for c in contacts] == [str(i) for i in range(101, 111)]
    for obj in (
        "email_events",
        "form_submissions",
        "page_views",
        "participations",
        "lists",
        "properties",
        "owners",
    ):
        assert httpx.get(f"{srv.base_url}/__sandbox__/records/{obj}").status_code == 200
    assert httpx.get(srv.base_url + "/__sandbox__/records/nothing").status_code == 404


def test_trailing_slash_paths_answer_like_the_sdk_expects(
    small: tuple[HubSpotSandbox, ServedApp, httpx.Client],
) -> None:
    sandbox, _, http = small
    assert http.get("/crm/v3/owners/").status_code == 200
    assert _settled(lambda: sandbox.stats.by_route["/crm/v3/owners"] == 1)


def test_injected_429_on_search_looks_like_the_search_limit() -> None:
    faults = FaultPlan()
    faults.schedule(r"POST /crm/v3/objects/contacts/search", Fault("429"))
    sandbox = HubSpotSandbox(SandboxClock(NOW, frozen=True), faults=faults)
    for _, _, http in _serve(sandbox):
        answer = http.post(f"{V3}/search", json={})
        assert answer.status_code == 429
        assert answer.json()["policyName"] == "SECONDLY"
        assert not any(h.lower().startswith("x-hubspot-ratelimit") for h in answer.headers)
        assert http.post(f"{V3}/search", json={}).status_code == 200


def test_date_header_is_the_sandbox_clock_on_every_answer() -> None:
    faults = FaultPlan()
    faults.schedule(r"GET /crm/v3/owners$", Fault("503"))
    sandbox = HubSpotSandbox(SandboxClock(NOW, frozen=True), faults=faults)
    for _, srv, http in _serve(sandbox):
        sandbox.clock.advance(timedelta(days=3, hours=1))
        answers = [
            http.get(V3),
            http.get("/crm/v3/owners"),
            httpx.get(srv.base_url + V3),
            httpx.get(srv.base_url + "/__sandbox__/stats"),
        ]
        assert [a.status_code for a in answers] == [200, 503, 401, 200]
        for answer in answers:
            assert answer.headers.get_list("date") == ["Thu, 05 Nov 2026 13:00:00 GMT"]


def test_overlong_request_target_is_414(
    small: tuple[HubSpotSandbox, ServedApp, httpx.Client],
) -> None:
    _, _, http = small
    names = ",".join(f"custom_property_{i:04d}" for i in range(400))  # about 8.8 KB
    too_long = http.get(V3, params={"properties": names})
    assert too_long.status_code == 414
    assert "414 Request-URI Too Large" in too_long.text
    fits = http.get(V3, params={"properties": names[:6000]})
    assert fits.status_code == 200
