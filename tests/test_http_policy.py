"""The shared HTTP policy: limiters, classification, retries, and every library going through it.

httpx calls are mocked with respx underneath `PolicyTransport`; requests calls with a
requests-mock adapter underneath `PolicyAdapter`; hubspot-api-client (urllib3) talks to a tiny
local server. All waiting goes through `FrozenClock`, so nothing really sleeps and the waits are
asserted from `clock.slept`.
"""

from __future__ import annotations

import json
import threading
import traceback
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from random import Random
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import hubspot
import pytest
import requests
import requests_mock
import respx
import urllib3
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest

from connector.clock import FrozenClock
from connector.errors import (
    AccessRefused,
    AuthError,
    FatalError,
    HandshakeError,
    QuotaExhausted,
    RateLimited,
    RecordRejected,
    RequestFailed,
    RetriableError,
    ServerError,
    TransportError,
)
from connector.http import (
    DESCRIBE,
    LIMITER,
    WEBHOOK,
    ConcurrencyLimiter,
    HttpPolicy,
    LimiterBusy,
    RollingWindowLimiter,
    SessionExpired,
    make_httpx_client,
    make_requests_session,
    parse_retry_after,
    redact,
    webhook_settings,
)
from connector.hubspot.policy import hubspot_limits, hubspot_policy
from connector.hubspot.sdk import api_request, call_sdk, make_hubspot_client
from connector.salesforce.policy import salesforce_policy

START = datetime(2026, 11, 2, 15, 30, tzinfo=UTC)  # a Monday, 10:30 in New York
HS = "https://api.hubapi.test"
SF = "https://acme.my.salesforce.test"
CONTACTS = f"{HS}/crm/v3/objects/contacts"
TOKEN = "pat-na1-0d4c1e2f-SECRET-TOKEN-7a9b"
SESSION = "00D5g000001AbCd!AQ4AQ.SECRETSESSIONID.xyz"
LEGACY_KEY = "legacy-key-SECRET"
PAGE = {"results": [{"id": "1", "properties": {"email": "ada@example.com"}}]}


def hubspot_error(status: int, message: str, **extra: Any) -> dict[str, Any]:
    """A HubSpot error body as the API documents it."""
    return {"status": "error", "message": message, "correlationId": "c-1", **extra}


def rate_limit_body(policy_name: str) -> dict[str, Any]:
    """HubSpot's documented 429 body."""
    return hubspot_error(
        429,
        "You have reached your ten secondly limit."
        if policy_name != "DAILY"
        else "You have reached your daily limit.",
        errorType="RATE_LIMIT",
        policyName=policy_name,
    )


@pytest.fixture
def frozen() -> FrozenClock:
    return FrozenClock(START)


@pytest.fixture
def hs_policy(frozen: FrozenClock) -> HttpPolicy:
    return hubspot_policy(
        "professional", clock=frozen, random=Random(7), timezone="America/New_York"
    )


@pytest.fixture
def sf_policy(frozen: FrozenClock) -> HttpPolicy:
    return salesforce_policy(clock=frozen, random=Random(7))


@pytest.fixture
def hs_client(hs_policy: HttpPolicy) -> Iterator[httpx.Client]:
    with make_httpx_client(hs_policy, HS, {"Authorization": f"Bearer {TOKEN}"}) as client:
        yield client


def sf_session(policy: HttpPolicy, adapter: requests_mock.Adapter) -> requests.Session:
    session = make_requests_session(policy, inner=adapter)
    session.headers["Authorization"] = f"Bearer {SESSION}"
    return session


# --- retrying a 429 with Retry-After ---------------------------------------------------------


@respx.mock
def test_httpx_429_with_retry_after_waits_exactly_that_then_returns_data(
    hs_client: httpx.Client, frozen: FrozenClock
) -> None:
    route = respx.get(CONTACTS).mock(
        side_effect=[
            httpx.Response(
                429, headers={"Retry-After": "7"}, json=rate_limit_body("TEN_SECONDLY_ROLLING")
            ),
            httpx.Response(200, json=PAGE),
        ]
    )
    response = hs_client.get("/crm/v3/objects/contacts", params={"limit": 10})
    assert response.json() == PAGE
    assert route.call_count == 2
    assert frozen.slept == [7.0]
    assert frozen.now() == START + timedelta(seconds=7)


def test_requests_429_with_retry_after_waits_exactly_that_then_returns_data(
    sf_policy: HttpPolicy, frozen: FrozenClock
) -> None:
    adapter = requests_mock.Adapter()
    url = f"{SF}/services/data/v62.0/query"
    adapter.register_uri(
        "GET",
        url,
        [
            {"status_code": 429, "headers": {"Retry-After": "7"}, "text": "slow down"},
            {"status_code": 200, "json": {"totalSize": 1, "records": [{"Id": "00Q1"}]}},
        ],
    )
    response = sf_session(sf_policy, adapter).get(url, params={"q": "SELECT Id FROM Lead"})
    assert response.json()["records"] == [{"Id": "00Q1"}]
    assert adapter.call_count == 2
    assert frozen.slept == [7.0]


@respx.mock
def test_retry_after_as_http_date_is_honoured(hs_client: httpx.Client, frozen: FrozenClock) -> None:
    when = (START + timedelta(seconds=12)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    respx.get(CONTACTS).mock(
        side_effect=[
            httpx.Response(503, headers={"Retry-After": when}),
            httpx.Response(200, json=PAGE),
        ]
    )
    assert hs_client.get("/crm/v3/objects/contacts").json() == PAGE
    assert frozen.slept == [12.0]


@respx.mock
def test_ten_second_window_429_without_retry_after_waits_for_the_window(
    hs_client: httpx.Client, hs_policy: HttpPolicy, frozen: FrozenClock
) -> None:
    respx.get(CONTACTS).mock(
        side_effect=[
            httpx.Response(
                429,
                headers={"X-HubSpot-RateLimit-Interval-Milliseconds": "10000"},
                json=rate_limit_body("TEN_SECONDLY_ROLLING"),
            ),
            httpx.Response(429, json=rate_limit_body("TEN_SECONDLY_ROLLING")),
            httpx.Response(200, json=PAGE),
        ]
    )
    assert hs_client.get("/crm/v3/objects/contacts").json() == PAGE
    # first from the interval header, then from the policy name alone
    assert frozen.slept == [10.0, 10.0]


def test_retry_after_beyond_the_bound_gives_up_at_once(frozen: FrozenClock) -> None:
    policy = hubspot_policy(clock=frozen, max_retry_after=60.0)
    calls: list[int] = []

    def send() -> httpx.Response:
        calls.append(1)
        return httpx.Response(
            429,
            headers={"Retry-After": "3600"},
            json=rate_limit_body("TEN_SECONDLY_ROLLING"),
            request=httpx.Request("GET", CONTACTS),
        )

    with pytest.raises(RateLimited) as caught:
        policy.execute(send, describe="list contacts")
    assert caught.value.retry_after == 3600.0
    assert len(calls) == 1
    assert frozen.slept == []


# --- giving up on a 400 at once ----------------------------------------------------------------


@respx.mock
def test_httpx_400_fails_at_once_with_the_remote_message(
    hs_client: httpx.Client, frozen: FrozenClock
) -> None:
    body = hubspot_error(400, "Property values were not valid", category="VALIDATION_ERROR")
    route = respx.post(f"{CONTACTS}/batch/create").mock(return_value=httpx.Response(400, json=body))
    with pytest.raises(RequestFailed) as caught:
        hs_client.post(
            "/crm/v3/objects/contacts/batch/create",
            json={"inputs": []},
            extensions={DESCRIBE: "create contacts"},
        )
    err = caught.value
    assert route.call_count == 1
    assert frozen.slept == []
    assert err.status == 400
    assert err.system == "hubspot"
    assert err.body == body
    assert "Property values were not valid" in str(err)
    assert "VALIDATION_ERROR" in str(err)
    assert "POST /crm/v3/objects/contacts/batch/create" in str(err)
    assert "create contacts" in str(err)


def test_requests_400_fails_at_once_with_the_remote_message(
    sf_policy: HttpPolicy, frozen: FrozenClock
) -> None:
    adapter = requests_mock.Adapter()
    url = f"{SF}/services/data/v62.0/query"
    adapter.register_uri(
        "GET",
        url,
        status_code=400,
        json=[{"message": "unexpected token: FORM", "errorCode": "MALFORMED_QUERY"}],
    )
    with pytest.raises(RequestFailed) as caught:
        sf_session(sf_policy, adapter).get(url, params={"q": "SELECT Id FORM Lead"})
    assert adapter.call_count == 1
    assert frozen.slept == []
    assert caught.value.status == 400
    assert "unexpected token: FORM" in str(caught.value)
    assert "MALFORMED_QUERY" in str(caught.value)
    assert "GET /services/data/v62.0/query" in str(caught.value)
    assert "SELECT" not in str(caught.value)  # no query string in messages


# --- HubSpot DAILY 429: stop until the reset ---------------------------------------------------


@respx.mock
def test_daily_429_stops_the_stream_until_midnight_in_the_account_time_zone(
    hs_client: httpx.Client, hs_policy: HttpPolicy, frozen: FrozenClock
) -> None:
    route = respx.get(CONTACTS).mock(
        return_value=httpx.Response(429, json=rate_limit_body("DAILY"))
    )
    with pytest.raises(QuotaExhausted) as caught:
        hs_client.get("/crm/v3/objects/contacts")
    assert route.call_count == 1
    assert frozen.slept == []
    new_york = ZoneInfo("America/New_York")
    assert caught.value.resets_at == datetime(2026, 11, 3, 0, 0, tzinfo=new_york)
    assert caught.value.resets_at == datetime(2026, 11, 3, 5, 0, tzinfo=UTC)
    assert "daily limit" in str(caught.value)

    # until the reset nothing is sent at all
    with pytest.raises(QuotaExhausted):
        hs_client.get("/crm/v3/objects/contacts")
    assert route.call_count == 1
    assert hs_policy.exhausted_until == caught.value.resets_at

    frozen.set(datetime(2026, 11, 3, 5, 0, 1, tzinfo=UTC))
    route.mock(return_value=httpx.Response(200, json=PAGE))
    assert hs_client.get("/crm/v3/objects/contacts").json() == PAGE
    assert route.call_count == 2


def test_requests_daily_429_stops_at_once(hs_policy: HttpPolicy, frozen: FrozenClock) -> None:
    adapter = requests_mock.Adapter()
    adapter.register_uri("GET", CONTACTS, status_code=429, json=rate_limit_body("DAILY"))
    session = sf_session(hs_policy, adapter)
    with pytest.raises(QuotaExhausted) as caught:
        session.get(CONTACTS)
    assert adapter.call_count == 1
    assert frozen.slept == []
    assert caught.value.resets_at == datetime(2026, 11, 3, 5, 0, tzinfo=UTC)
    with pytest.raises(QuotaExhausted):
        session.get(CONTACTS)
    assert adapter.call_count == 1  # nothing is sent until the reset


def test_daily_reset_time_zone_is_a_parameter(frozen: FrozenClock) -> None:
    policy = hubspot_policy(clock=frozen, timezone="UTC")
    with pytest.raises(QuotaExhausted) as caught:
        policy.execute(
            lambda: httpx.Response(
                429, json=rate_limit_body("DAILY"), request=httpx.Request("GET", CONTACTS)
            )
        )
    assert caught.value.resets_at == datetime(2026, 11, 3, 0, 0, tzinfo=UTC)


def test_salesforce_request_limit_exceeded_is_quota_exhausted_at_once(
    sf_policy: HttpPolicy, frozen: FrozenClock
) -> None:
    adapter = requests_mock.Adapter()
    url = f"{SF}/services/data/v62.0/sobjects/Lead"
    adapter.register_uri(
        "POST",
        url,
        status_code=403,
        json=[{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}],
    )
    with pytest.raises(QuotaExhausted) as caught:
        sf_session(sf_policy, adapter).post(url, json={"LastName": "Lovelace"})
    assert adapter.call_count == 1
    assert caught.value.resets_at == START + timedelta(hours=1)
    assert "TotalRequests" in str(caught.value)


def test_salesforce_concurrency_limit_exceeded_is_retried(
    sf_policy: HttpPolicy, frozen: FrozenClock
) -> None:
    adapter = requests_mock.Adapter()
    url = f"{SF}/services/data/v62.0/sobjects/Lead"
    adapter.register_uri(
        "POST",
        url,
        [
            {
                "status_code": 403,
                "json": [
                    {
                        "message": "ConcurrentPerOrgLongTxn Limit exceeded.",
                        "errorCode": "REQUEST_LIMIT_EXCEEDED",
                    }
                ],
            },
            {"status_code": 201, "json": {"id": "00Q1", "success": True, "errors": []}},
        ],
    )
    response = sf_session(sf_policy, adapter).post(url, json={"LastName": "Lovelace"})
    assert response.json()["id"] == "00Q1"
    assert adapter.call_count == 2
    assert len(frozen.slept) == 1 and 1.0 <= frozen.slept[0] < 2.0


def test_own_share_of_the_daily_allocation_stops_further_calls(frozen: FrozenClock) -> None:
    policy = salesforce_policy(clock=frozen, daily_share=0.8)
    adapter = requests_mock.Adapter()
    url = f"{SF}/services/data/v62.0/query"
    adapter.register_uri(
        "GET",
        url,
        [
            {"json": {"records": []}, "headers": {"Sforce-Limit-Info": "api-usage=11999/15000"}},
            {"json": {"records": []}, "headers": {"Sforce-Limit-Info": "api-usage=12000/15000"}},
        ],
    )
    session = sf_session(policy, adapter)
    session.get(url)
    assert policy.daily_usage == (11999, 15000)
    session.get(url)  # this answer is used; it says our 80 % are spent
    with pytest.raises(QuotaExhausted) as caught:
        session.get(url)
    assert adapter.call_count == 2
    assert caught.value.resets_at == START + timedelta(hours=1)
    assert "12000 of 15000" in str(caught.value)


@respx.mock
def test_hubspot_daily_headers_count_towards_the_share(frozen: FrozenClock) -> None:
    policy = hubspot_policy(clock=frozen, daily_share=0.5, timezone="UTC")
    respx.get(CONTACTS).mock(
        return_value=httpx.Response(
            200,
            json=PAGE,
            headers={
                "X-HubSpot-RateLimit-Daily": "650000",
                "X-HubSpot-RateLimit-Daily-Remaining": "300000",
            },
        )
    )
    with make_httpx_client(policy, HS) as client:
        client.get("/crm/v3/objects/contacts")
        assert policy.daily_usage == (350000, 650000)
        with pytest.raises(QuotaExhausted) as caught:
            client.get("/crm/v3/objects/contacts")
    assert caught.value.resets_at == datetime(2026, 11, 3, tzinfo=UTC)


def test_each_dialect_reads_only_its_own_usage_headers(frozen: FrozenClock) -> None:
    hubspot_headers = {
        "X-HubSpot-RateLimit-Daily": "1000",
        "X-HubSpot-RateLimit-Daily-Remaining": "10",
    }
    salesforce_headers = {"Sforce-Limit-Info": "api-usage=990/1000"}
    sf = salesforce_policy(clock=frozen, daily_share=0.5)
    hs = hubspot_policy(clock=frozen, daily_share=0.5)
    webhook = HttpPolicy(webhook_settings(daily_share=0.5), WEBHOOK, clock=frozen)
    sf.execute(lambda: httpx.Response(200, headers=hubspot_headers))
    hs.execute(lambda: httpx.Response(200, headers=salesforce_headers))
    webhook.execute(lambda: httpx.Response(200, headers={**hubspot_headers, **salesforce_headers}))
    assert (sf.daily_usage, hs.daily_usage, webhook.daily_usage) == (None, None, None)
    sf.execute(lambda: httpx.Response(200, headers=salesforce_headers))
    assert sf.daily_usage == (990, 1000) and sf.exhausted_until is not None


def test_a_simple_salesforce_error_goes_through_the_salesforce_table(frozen: FrozenClock) -> None:
    """An SDK call made outside a policy session raises simple-salesforce's own errors; the
    Salesforce dialect reads the answer they carry."""
    policy = salesforce_policy(clock=frozen, max_attempts=1)
    url = f"{SF}/services/data/v62.0/query"

    def refused(status: int, body: list[dict[str, str]]) -> Callable[[], None]:
        def send() -> None:
            raise SalesforceMalformedRequest(url, status, "query", json.dumps(body).encode())

        return send

    malformed = [{"errorCode": "MALFORMED_QUERY", "message": "unexpected token: FORM"}]
    with pytest.raises(RequestFailed) as caught:
        policy.execute(refused(400, malformed), describe="query Leads")
    assert caught.value.status == 400
    assert "MALFORMED_QUERY" in str(caught.value) and "/services/data/v62.0/query" in str(
        caught.value
    )
    spent = [{"errorCode": "REQUEST_LIMIT_EXCEEDED", "message": "TotalRequests Limit exceeded."}]
    with pytest.raises(QuotaExhausted):
        policy.execute(refused(403, spent), describe="query Leads")


@respx.mock
def test_a_post_body_is_sent_again_on_retry(hs_client: httpx.Client) -> None:
    route = respx.post(f"{CONTACTS}/batch/upsert").mock(
        side_effect=[httpx.Response(504), httpx.Response(200, json={"status": "COMPLETE"})]
    )
    payload = {"inputs": [{"id": "ada@example.com", "idProperty": "email", "properties": {}}]}
    response = hs_client.post("/crm/v3/objects/contacts/batch/upsert", json=payload)
    assert response.json() == {"status": "COMPLETE"}
    bodies = [json.loads(call.request.content) for call in route.calls]
    assert bodies == [payload, payload]


# --- 5xx, drops and timeouts then success; giving up after max attempts ----------------------


@respx.mock
def test_httpx_5xx_then_success_backs_off_exponentially_with_jitter(
    hs_client: httpx.Client, frozen: FrozenClock
) -> None:
    route = respx.get(CONTACTS).mock(
        side_effect=[httpx.Response(502), httpx.Response(500), httpx.Response(200, json=PAGE)]
    )
    assert hs_client.get("/crm/v3/objects/contacts").json() == PAGE
    assert route.call_count == 3
    first, second = frozen.slept
    assert 1.0 <= first < 2.0  # base 1 s + up to 1 s jitter
    assert 2.0 <= second < 3.0  # doubled


def test_requests_5xx_then_success(sf_policy: HttpPolicy, frozen: FrozenClock) -> None:
    adapter = requests_mock.Adapter()
    url = f"{SF}/services/data/v62.0/query"
    adapter.register_uri(
        "GET",
        url,
        [
            {"status_code": 503, "text": "Server Unavailable"},
            {"status_code": 200, "json": {"totalSize": 0, "records": []}},
        ],
    )
    assert sf_session(sf_policy, adapter).get(url).json() == {"totalSize": 0, "records": []}
    assert adapter.call_count == 2
    assert len(frozen.slept) == 1


@respx.mock
def test_httpx_dropped_connection_and_timeout_then_success(
    hs_client: httpx.Client, frozen: FrozenClock
) -> None:
    route = respx.get(CONTACTS).mock(
        side_effect=[
            httpx.RemoteProtocolError("Server disconnected without sending a response."),
            httpx.ReadTimeout("timed out"),
            httpx.Response(200, json=PAGE),
        ]
    )
    assert hs_client.get("/crm/v3/objects/contacts").json() == PAGE
    assert route.call_count == 3
    assert len(frozen.slept) == 2


def test_requests_dropped_connection_and_timeout_then_success(
    sf_policy: HttpPolicy, frozen: FrozenClock
) -> None:
    adapter = requests_mock.Adapter()
    url = f"{SF}/services/data/v62.0/query"
    adapter.register_uri(
        "GET",
        url,
        [
            {"exc": requests.exceptions.ConnectionError("Connection aborted.")},
            {"exc": requests.exceptions.ReadTimeout("read timed out")},
            {"status_code": 200, "json": {"totalSize": 0, "records": []}},
        ],
    )
    assert sf_session(sf_policy, adapter).get(url).json()["totalSize"] == 0
    assert adapter.call_count == 3
    assert len(frozen.slept) == 2


@respx.mock
def test_httpx_gives_up_after_max_attempts_with_the_last_status(frozen: FrozenClock) -> None:
    policy = hubspot_policy(clock=frozen, random=Random(1), max_attempts=3)
    route = respx.get(CONTACTS).mock(
        side_effect=[httpx.Response(500), httpx.Response(502), httpx.Response(503)]
    )
    with make_httpx_client(policy, HS) as client, pytest.raises(ServerError) as caught:
        client.get("/crm/v3/objects/contacts")
    assert isinstance(caught.value, RetriableError)
    assert caught.value.status == 503
    assert route.call_count == 3
    assert len(frozen.slept) == 2


def test_requests_gives_up_after_max_attempts_on_timeouts(frozen: FrozenClock) -> None:
    policy = salesforce_policy(clock=frozen, max_attempts=2)
    adapter = requests_mock.Adapter()
    url = f"{SF}/services/data/v62.0/limits"
    adapter.register_uri("GET", url, exc=requests.exceptions.ConnectTimeout("connect timed out"))
    with pytest.raises(TransportError) as caught:
        sf_session(policy, adapter).get(url)
    assert adapter.call_count == 2
    assert "ConnectTimeout: connect timed out" in str(caught.value)


def test_an_error_decided_underneath_is_not_retried_again(frozen: FrozenClock) -> None:
    policy = salesforce_policy(clock=frozen, max_attempts=2)
    adapter = requests_mock.Adapter()
    url = f"{SF}/services/data/v62.0/query"
    adapter.register_uri("GET", url, status_code=500, text="boom")
    session = sf_session(policy, adapter)
    with pytest.raises(ServerError):
        policy.execute(lambda: session.get(url), describe="outer")
    assert adapter.call_count == 2  # the adapter's two attempts, not 2 x 2


def test_programming_errors_propagate_untouched(hs_policy: HttpPolicy) -> None:
    calls: list[int] = []

    def send() -> None:
        calls.append(1)
        raise KeyError("bug")

    with pytest.raises(KeyError):
        hs_policy.execute(send)
    assert calls == [1]


# --- classification tables ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (
            401,
            hubspot_error(
                401, "Authentication credentials not found", category="INVALID_AUTHENTICATION"
            ),
            AuthError,
        ),
        (
            403,
            hubspot_error(
                403, "This app hasn't been granted all required scopes", category="MISSING_SCOPES"
            ),
            AccessRefused,  # an AuthError a stream may answer by limiting itself
        ),
        (404, hubspot_error(404, "Resource not found", category="OBJECT_NOT_FOUND"), RequestFailed),
        (
            409,
            hubspot_error(409, "Contact already exists. Existing ID: 51", category="CONFLICT"),
            RecordRejected,
        ),
        (405, hubspot_error(405, "Method not allowed"), RequestFailed),
    ],
)
def test_hubspot_table_maps_statuses_to_tiers(
    hs_policy: HttpPolicy, status: int, body: dict[str, Any], expected: type[HandshakeError]
) -> None:
    calls: list[int] = []

    def send() -> httpx.Response:
        calls.append(1)
        return httpx.Response(status, json=body, request=httpx.Request("GET", CONTACTS))

    with pytest.raises(expected) as caught:
        hs_policy.execute(send, describe="read contact")
    assert type(caught.value) is expected
    assert calls == [1]
    assert body["message"] in str(caught.value)


@pytest.mark.parametrize(
    ("status", "errors", "expected"),
    [
        (
            400,
            [{"message": "Use one of these records?", "errorCode": "DUPLICATES_DETECTED"}],
            RecordRejected,
        ),
        (400, [{"message": "bad field", "errorCode": "INVALID_FIELD"}], RequestFailed),
        (
            401,
            [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}],
            SessionExpired,
        ),
        (403, [{"message": "insufficient access", "errorCode": "INSUFFICIENT_ACCESS"}], AuthError),
        (
            404,
            [{"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"}],
            RequestFailed,
        ),
    ],
)
def test_salesforce_table_maps_error_codes_to_tiers(
    sf_policy: HttpPolicy, status: int, errors: list[dict[str, str]], expected: type[HandshakeError]
) -> None:
    adapter = requests_mock.Adapter()
    url = f"{SF}/services/data/v62.0/sobjects/Lead"
    adapter.register_uri("POST", url, status_code=status, json=errors)
    with pytest.raises(expected) as caught:
        sf_session(sf_policy, adapter).post(url, json={})
    assert type(caught.value) is expected
    assert adapter.call_count == 1
    assert errors[0]["errorCode"] in str(caught.value)


def test_accepted_statuses_are_handed_back(hs_client: httpx.Client) -> None:
    with respx.mock:
        respx.get(f"{CONTACTS}/9").mock(return_value=httpx.Response(404, json={"message": "gone"}))
        response = hs_client.get(
            "/crm/v3/objects/contacts/9", extensions={"handshake.accept": (404,)}
        )
    assert response.status_code == 404


# --- Salesforce session refresh --------------------------------------------------------------


def test_expired_session_is_refreshed_once_then_the_request_is_resent(frozen: FrozenClock) -> None:
    refreshed: list[int] = []

    def refresh() -> dict[str, str]:
        refreshed.append(1)
        return {"Authorization": "Bearer 00D5g000001AbCd!NEWSESSION"}

    policy = salesforce_policy(clock=frozen, on_session_expired=refresh)
    adapter = requests_mock.Adapter()
    url = f"{SF}/services/data/v62.0/query"
    adapter.register_uri(
        "GET",
        url,
        [
            {
                "status_code": 401,
                "json": [
                    {"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}
                ],
            },
            {"status_code": 200, "json": {"totalSize": 0, "records": []}},
        ],
    )
    assert sf_session(policy, adapter).get(url).json()["totalSize"] == 0
    assert refreshed == [1]
    assert adapter.request_history[1].headers["Authorization"].endswith("NEWSESSION")
    assert frozen.slept == []


def test_a_session_still_expired_after_one_refresh_fails(frozen: FrozenClock) -> None:
    refreshed: list[int] = []
    policy = salesforce_policy(
        clock=frozen, on_session_expired=lambda: refreshed.append(1) or None
    )
    adapter = requests_mock.Adapter()
    url = f"{SF}/services/data/v62.0/query"
    adapter.register_uri(
        "GET",
        url,
        status_code=401,
        json=[{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}],
    )
    with pytest.raises(SessionExpired) as caught:
        sf_session(policy, adapter).get(url)
    assert isinstance(caught.value, AuthError) and isinstance(caught.value, FatalError)
    assert refreshed == [1]
    assert adapter.call_count == 2


def test_simple_salesforce_goes_through_the_policy(
    sf_policy: HttpPolicy, frozen: FrozenClock
) -> None:
    adapter = requests_mock.Adapter()
    adapter.register_uri(
        "GET",
        requests_mock.ANY,
        [
            {"status_code": 503, "text": "Server Unavailable"},
            {
                "status_code": 200,
                "json": {"totalSize": 1, "done": True, "records": [{"Id": "00Q1"}]},
            },
        ],
    )
    session = make_requests_session(sf_policy, inner=adapter)
    sf = Salesforce(session=session, session_id=SESSION, instance_url=SF, version="62.0")
    result = sf.query("SELECT Id FROM Lead")
    assert result["records"] == [{"Id": "00Q1"}]
    assert adapter.call_count == 2
    assert "/services/data/v62.0/query" in adapter.last_request.url
    assert len(frozen.slept) == 1


# --- limiters ----------------------------------------------------------------------------------


def test_rolling_window_blocks_the_191st_call_in_ten_seconds(frozen: FrozenClock) -> None:
    limiter = RollingWindowLimiter(190, 10.0, clock=frozen, safety_margin=1.0)
    for _ in range(190):
        assert limiter.try_acquire()
    assert not limiter.try_acquire()
    assert limiter.in_window() == 190
    assert frozen.slept == []

    waited = limiter.acquire()  # the 191st
    assert waited == 10.0
    assert frozen.slept == [10.0]
    assert frozen.monotonic() == 10.0


def test_rolling_window_slides(frozen: FrozenClock) -> None:
    limiter = RollingWindowLimiter(3, 10.0, clock=frozen)
    limiter.acquire()
    frozen.advance(4)
    limiter.acquire()
    limiter.acquire()
    assert limiter.acquire() == 6.0  # the first call leaves the window at t=10
    assert limiter.acquire() == 4.0  # the second at t=14


def test_safety_margin_and_tier_table(frozen: FrozenClock) -> None:
    assert hubspot_limits("professional").burst == 190
    assert hubspot_limits("starter").daily == 250_000
    assert hubspot_limits("enterprise").daily == 1_000_000
    assert hubspot_limits("professional", capacity_packs=2).burst == 250
    assert hubspot_limits("professional", capacity_packs=2).daily == 2_625_000
    policy = hubspot_policy("professional", clock=frozen)
    burst = policy.limiter("burst")
    assert isinstance(burst, RollingWindowLimiter)
    assert burst.capacity == 171  # 90 % of 190
    search = policy.limiter("search")
    assert isinstance(search, RollingWindowLimiter)
    assert (search.capacity, search.window) == (4, 1.0)  # 90 % of five a second


def test_policy_takes_the_search_limiter_for_search_calls(frozen: FrozenClock) -> None:
    policy = hubspot_policy(clock=frozen, safety_margin=1.0)
    with respx.mock, make_httpx_client(policy, HS) as client:
        respx.post(f"{CONTACTS}/search").mock(return_value=httpx.Response(200, json=PAGE))
        for _ in range(6):
            client.post("/crm/v3/objects/contacts/search", json={}, extensions={LIMITER: "search"})
    assert frozen.slept == [1.0]  # the sixth search in one second waits for the next


def test_429_pauses_the_limiter_for_every_caller(frozen: FrozenClock) -> None:
    policy = hubspot_policy(clock=frozen)
    burst = policy.limiter("burst")
    assert isinstance(burst, RollingWindowLimiter)
    with respx.mock, make_httpx_client(policy, HS) as client:
        respx.get(CONTACTS).mock(
            side_effect=[
                httpx.Response(
                    429, headers={"Retry-After": "3"}, json=rate_limit_body("TEN_SECONDLY_ROLLING")
                ),
                httpx.Response(200, json=PAGE),
            ]
        )
        client.get("/crm/v3/objects/contacts")
    assert frozen.slept == [3.0]  # the limiter's pause and the retry wait are the same 3 s


def test_concurrency_limiter_caps_requests_in_flight() -> None:
    limiter = ConcurrencyLimiter(2, acquire_timeout=30.0)
    release = threading.Event()
    two_in = threading.Barrier(3)
    done: list[int] = []

    def worker(i: int) -> None:
        with limiter.hold():
            if i < 2:
                two_in.wait()
            release.wait(30)
            done.append(i)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(5)]
    for thread in threads[:2]:
        thread.start()
    two_in.wait()  # both first workers hold a slot
    for thread in threads[2:]:
        thread.start()
    assert limiter.in_flight == 2
    release.set()
    for thread in threads:
        thread.join(30)
    assert sorted(done) == [0, 1, 2, 3, 4]
    assert limiter.peak == 2
    assert limiter.in_flight == 0


def test_concurrency_limiter_bounded_wait() -> None:
    limiter = ConcurrencyLimiter(1, acquire_timeout=0.01)
    with limiter.hold(), pytest.raises(LimiterBusy), limiter.hold():
        pass  # pragma: no cover - never entered


def test_salesforce_policy_holds_the_concurrency_limiter_during_requests(
    frozen: FrozenClock,
) -> None:
    policy = salesforce_policy(clock=frozen, max_concurrent=1)
    limiter = policy.limiter("concurrency")
    assert isinstance(limiter, ConcurrencyLimiter)
    seen: list[int] = []
    policy.execute(lambda: seen.append(limiter.in_flight))
    assert seen == [1]
    assert limiter.in_flight == 0


# --- hubspot-api-client: SDK retries off, timeouts on ----------------------------------------


class _Server:
    """A tiny local HTTP server; `behaviour` decides each answer and `hits` counts requests."""

    def __init__(self) -> None:
        self.hits: list[tuple[str, str, dict[str, str]]] = []
        self.behaviour: Callable[[BaseHTTPRequestHandler], None] = lambda h: None
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                outer.hits.append((self.command, self.path, dict(self.headers)))
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                outer.behaviour(self)

            do_GET = do_POST = do_PATCH = _any

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def answer(
    status: int, body: Any, headers: dict[str, str] | None = None
) -> Callable[[BaseHTTPRequestHandler], None]:
    def respond(handler: BaseHTTPRequestHandler) -> None:
        data = json.dumps(body).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(data)

    return respond


def drop(handler: BaseHTTPRequestHandler) -> None:
    handler.close_connection = True  # no answer at all: the client sees a dropped connection


@pytest.fixture
def server() -> Iterator[_Server]:
    srv = _Server()
    yield srv
    srv.close()


def test_sdk_one_call_is_one_http_request_on_a_500(server: _Server, frozen: FrozenClock) -> None:
    server.behaviour = answer(500, hubspot_error(500, "internal error"))
    policy = hubspot_policy(clock=frozen, max_attempts=1)
    client = make_hubspot_client(policy, TOKEN, host=server.url)
    with pytest.raises(ServerError) as caught:
        call_sdk(policy, client.crm.contacts.basic_api.get_page, limit=10, describe="list contacts")
    assert len(server.hits) == 1
    assert caught.value.status == 500
    assert "internal error" in str(caught.value)


def test_sdk_dropped_connection_is_not_retried_by_urllib3(
    server: _Server, frozen: FrozenClock
) -> None:
    server.behaviour = drop
    policy = hubspot_policy(clock=frozen, max_attempts=1)
    client = make_hubspot_client(policy, TOKEN, host=server.url)
    with pytest.raises(TransportError):
        call_sdk(policy, client.crm.contacts.basic_api.get_page, limit=10)
    assert len(server.hits) == 1


def test_sdk_default_retries_would_retry_a_dropped_connection(server: _Server) -> None:
    # the contrast that makes the two tests above meaningful: the SDK alone retries by itself
    server.behaviour = drop
    client = hubspot.Client.create(access_token=TOKEN, host=server.url)
    with pytest.raises(urllib3.exceptions.MaxRetryError):
        client.crm.contacts.basic_api.get_page(limit=10)
    assert len(server.hits) == 4


def test_sdk_calls_retry_under_the_policy_then_return_the_model(
    server: _Server, frozen: FrozenClock
) -> None:
    answers = iter(
        [
            answer(429, rate_limit_body("TEN_SECONDLY_ROLLING"), {"Retry-After": "2"}),
            answer(
                200,
                {
                    "results": [
                        {
                            "id": "51",
                            "properties": {"email": "ada@example.com"},
                            "createdAt": "2026-10-01T00:00:00Z",
                            "updatedAt": "2026-10-02T00:00:00Z",
                            "archived": False,
                        }
                    ]
                },
            ),
        ]
    )
    server.behaviour = lambda handler: next(answers)(handler)
    policy = hubspot_policy(clock=frozen)
    client = make_hubspot_client(policy, TOKEN, host=server.url)
    page = call_sdk(policy, client.crm.contacts.basic_api.get_page, limit=10)
    assert [c.id for c in page.results] == ["51"]
    assert page.results[0].properties["email"] == "ada@example.com"
    assert frozen.slept == [2.0]
    assert len(server.hits) == 2
    assert server.hits[0][2]["Authorization"] == f"Bearer {TOKEN}"


def test_sdk_generic_api_request_goes_through_the_policy(frozen: FrozenClock) -> None:
    policy = hubspot_policy(clock=frozen)
    client = make_hubspot_client(policy, TOKEN, host=HS)
    adapter = requests_mock.Adapter()
    events = f"{HS}/email/public/v1/events"
    adapter.register_uri(
        "GET",
        events,
        [{"status_code": 502}, {"json": {"events": [], "hasMore": False, "offset": "x"}}],
    )
    session = make_requests_session(policy, inner=adapter)
    response = api_request(
        policy,
        client,
        {"method": "GET", "path": "/email/public/v1/events", "qs": {"limit": 1000}},
        session=session,
    )
    assert response.json()["hasMore"] is False
    assert adapter.call_count == 2
    assert adapter.last_request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert adapter.last_request.qs == {"limit": ["1000"]}
    assert adapter.last_request.timeout == (10.0, 60.0)


def test_sdk_daily_429_is_quota_exhausted(server: _Server, frozen: FrozenClock) -> None:
    server.behaviour = answer(429, rate_limit_body("DAILY"))
    policy = hubspot_policy(clock=frozen, timezone="Europe/Paris")
    client = make_hubspot_client(policy, TOKEN, host=server.url)
    with pytest.raises(QuotaExhausted) as caught:
        call_sdk(policy, client.crm.contacts.basic_api.get_page, limit=10)
    assert len(server.hits) == 1
    assert caught.value.resets_at == datetime(2026, 11, 3, 0, 0, tzinfo=ZoneInfo("Europe/Paris"))


def test_sdk_requests_carry_the_policy_timeouts(frozen: FrozenClock) -> None:
    policy = hubspot_policy(clock=frozen, connect_timeout=3.0, read_timeout=20.0)
    client = make_hubspot_client(policy, TOKEN, host="http://127.0.0.1:9")
    api = client.crm.contacts.basic_api
    seen: dict[str, Any] = {}

    def record(method: str, url: str, **kwargs: Any) -> Any:
        seen.update(kwargs)
        raise urllib3.exceptions.NewConnectionError(None, "refused")  # type: ignore[arg-type]

    api.api_client.rest_client.pool_manager.request = record
    with pytest.raises(TransportError):
        policy.execute(lambda: api.get_page(limit=1))
    timeout = seen["timeout"]
    assert isinstance(timeout, urllib3.Timeout)
    assert (timeout.connect_timeout, timeout.read_timeout) == (3.0, 20.0)
    assert api.api_client.configuration.retries.total == 0


def test_httpx_and_requests_clients_carry_timeouts(
    hs_policy: HttpPolicy, sf_policy: HttpPolicy
) -> None:
    with make_httpx_client(hs_policy, HS) as client:
        assert client.timeout == httpx.Timeout(connect=10.0, read=60.0, write=60.0, pool=30.0)
    adapter = requests_mock.Adapter()
    adapter.register_uri("GET", f"{SF}/x", json={})
    sf_session(sf_policy, adapter).get(f"{SF}/x")
    assert adapter.last_request.timeout == (10.0, 60.0)


# --- secrets never leak ------------------------------------------------------------------------


def _everything_about(err: BaseException) -> str:
    return "\n".join([str(err), repr(err), "".join(traceback.format_exception(err))])


@respx.mock
def test_tokens_never_appear_in_httpx_errors(hs_client: httpx.Client) -> None:
    respx.get(CONTACTS).mock(
        return_value=httpx.Response(
            401,
            json=hubspot_error(
                401,
                f"Authentication credentials not found. Authorization: Bearer {TOKEN}",
                category="INVALID_AUTHENTICATION",
            ),
        )
    )
    with pytest.raises(AuthError) as caught:
        hs_client.get("/crm/v3/objects/contacts", params={"hapikey": LEGACY_KEY})
    text = _everything_about(caught.value)
    assert TOKEN not in text
    assert LEGACY_KEY not in text
    assert "Authentication credentials not found" in text


def test_tokens_never_appear_in_sdk_errors(server: _Server, frozen: FrozenClock) -> None:
    server.behaviour = answer(400, hubspot_error(400, f"bad request for token {TOKEN}"))
    policy = hubspot_policy(clock=frozen)
    client = make_hubspot_client(policy, TOKEN, host=server.url)
    with pytest.raises(RequestFailed) as caught:
        call_sdk(policy, client.crm.contacts.basic_api.get_page, limit=10)
    assert TOKEN not in _everything_about(caught.value)
    assert "bad request for token ***" in str(caught.value)


def test_session_ids_never_appear_in_requests_errors(sf_policy: HttpPolicy) -> None:
    adapter = requests_mock.Adapter()
    url = f"{SF}/services/data/v62.0/query"
    adapter.register_uri(
        "GET", url, exc=requests.exceptions.ConnectionError(f"failed for {url}?sid={SESSION}")
    )
    policy = salesforce_policy(max_attempts=1)
    with pytest.raises(TransportError) as caught:
        sf_session(policy, adapter).get(url)
    text = _everything_about(caught.value)
    assert SESSION not in text
    assert "SECRETSESSIONID" not in text
    assert "ConnectionError: failed for" in text


def test_redact_masks_known_and_credential_shaped_values() -> None:
    text = f"Authorization: Bearer {TOKEN} sid {SESSION} url /x?hapikey=abc&limit=1 why?"
    masked = redact(text, [TOKEN])
    assert TOKEN not in masked and SESSION not in masked and "abc" not in masked
    assert masked.endswith("why?")


def test_parse_retry_after() -> None:
    now = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
    assert parse_retry_after("7", now) == 7.0
    assert parse_retry_after("Mon, 02 Nov 2026 12:00:30 GMT", now) == 30.0
    assert parse_retry_after("Mon, 02 Nov 2026 11:00:00 GMT", now) == 0.0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None


def test_requests_body_dropped_mid_read_is_retried(sf_policy: HttpPolicy, frozen: FrozenClock) -> None:
    import io

    import urllib3

    class Truncated(requests.adapters.BaseAdapter):
        """First answer dies mid-body (like a dropped connection); the second is whole."""

        def __init__(self) -> None:
            super().__init__()
            self.calls = 0

        def send(self, request: requests.PreparedRequest, **_: Any) -> requests.Response:
            self.calls += 1
            body = b'{"records": [{"Id": "00Q1"}]}'
            raw = urllib3.HTTPResponse(
                body=io.BytesIO(body[:10] if self.calls == 1 else body),
                headers={"Content-Length": str(len(body))}, status=200, preload_content=False,
                enforce_content_length=True,
            )
            response = requests.adapters.HTTPAdapter().build_response(request, raw)
            return response

        def close(self) -> None:
            return None

    inner = Truncated()
    session = make_requests_session(sf_policy, inner=inner)
    response = session.get(f"{SF}/services/data/v62.0/query")
    assert response.json() == {"records": [{"Id": "00Q1"}]}
    assert inner.calls == 2


def test_configured_ca_bundle_beats_the_environment(monkeypatch: pytest.MonkeyPatch, sf_policy: HttpPolicy) -> None:
    seen: list[Any] = []

    class Recorder(requests.adapters.BaseAdapter):
        def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
            seen.append(kwargs.get("verify"))
            response = requests.Response()
            response.status_code = 200
            response._content = b"{}"
            return response

        def close(self) -> None:
            return None

    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/somewhere-else.pem")
    session = make_requests_session(sf_policy, inner=Recorder(), verify="/opt/sandbox-ca.pem")
    session.get(f"{SF}/services/data/")
    assert seen == ["/opt/sandbox-ca.pem"]


def test_one_letter_secrets_do_not_garble_messages(frozen: FrozenClock) -> None:
    policy = hubspot_policy(clock=frozen, secrets=["t"])
    policy.add_secret("p")
    policy.add_secret("real-secret-value")
    assert policy.redact("Connection to host failed: real-secret-value") == (
        "Connection to host failed: ***")


# --- creates are sent once after they may have reached the server -------------------------


@pytest.mark.parametrize(
    "failure",
    [
        {"status_code": 500, "json": [{"message": "boom", "errorCode": "UNKNOWN_EXCEPTION"}]},
        {"status_code": 503, "json": [{"message": "down", "errorCode": "SERVER_UNAVAILABLE"}]},
        {"exc": requests.exceptions.ChunkedEncodingError("Connection broken: IncompleteRead")},
        {"exc": requests.exceptions.ReadTimeout("read timed out")},
    ],
)
def test_a_create_that_may_have_been_applied_is_not_sent_again(
    sf_policy: HttpPolicy, failure: dict[str, Any]
) -> None:
    adapter = requests_mock.Adapter()
    url = f"{SF}/services/data/v62.0/composite/sobjects"
    adapter.register_uri("POST", url, [failure, {"status_code": 200, "json": []}])
    with sf_policy.sent_once(), pytest.raises(RetriableError) as caught:
        sf_session(sf_policy, adapter).post(url, json={"records": []})
    assert adapter.call_count == 1
    assert "not sent again: the request may have been applied" in str(caught.value)
    # outside the block the same failure is retried as before
    adapter.register_uri("POST", url, [failure, {"status_code": 200, "json": []}])
    assert sf_session(sf_policy, adapter).post(url, json={"records": []}).status_code == 200
    assert adapter.call_count == 3


@pytest.mark.parametrize(
    "refusal",
    [
        {"status_code": 403, "json": [{"message": "ConcurrentPerOrgLongTxn Limit exceeded.",
                                       "errorCode": "REQUEST_LIMIT_EXCEEDED"}]},
        {"status_code": 429, "json": [{"message": "slow down", "errorCode": "RATE_LIMITED"}]},
        {"exc": requests.exceptions.ConnectTimeout("connect timed out")},
    ],
)
def test_a_create_refused_before_it_was_handled_is_sent_again(
    sf_policy: HttpPolicy, refusal: dict[str, Any]
) -> None:
    adapter = requests_mock.Adapter()
    url = f"{SF}/services/data/v62.0/composite/sobjects"
    adapter.register_uri("POST", url, [refusal, {"status_code": 200, "json": []}])
    with sf_policy.sent_once():
        response = sf_session(sf_policy, adapter).post(url, json={"records": []})
    assert response.status_code == 200
    assert adapter.call_count == 2
