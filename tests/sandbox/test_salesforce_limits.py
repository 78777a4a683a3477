"""Every limit of the emulated org answers as the real API does (over HTTPS)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from connector.sandbox.base import Fault, TLSFiles

from .sf_fixtures import LEAD_ID, SFEnv, make_env, sf_env, sf_tls

__all__ = ["sf_env", "sf_tls"]


def _leads(n: int) -> list[dict[str, object]]:
    return [
        {
            "attributes": {"type": "Lead"},
            "LastName": f"N{i}",
            "Company": "Lim",
            "Handshake_Id__c": f"lim-{i}",
        }
        for i in range(n)
    ]


@pytest.mark.parametrize(
    "method,path",
    [
        ("POST", "/composite/sobjects"),
        ("PATCH", "/composite/sobjects"),
        ("PATCH", "/composite/sobjects/Lead/Handshake_Id__c"),
    ],
)
def test_the_201st_collection_record_refuses_the_whole_request(
    sf_env: SFEnv, method: str, path: str
) -> None:
    before = sf_env.sandbox.state.counts()["Lead"]
    answer = sf_env.call(method, path, json={"allOrNone": False, "records": _leads(201)})
    assert answer.status_code == 400
    assert answer.json() == [
        {
            "message": "record limit reached. cannot submit more than 200 records into this call",
            "errorCode": "EXCEEDED_ID_LIMIT",
        }
    ]
    assert sf_env.sandbox.state.counts()["Lead"] == before


def test_200_collection_records_are_accepted(sf_env: SFEnv) -> None:
    answer = sf_env.call("POST", "/composite/sobjects", json={"records": _leads(200)})
    assert answer.status_code == 200
    assert len(answer.json()) == 200 and all(r["success"] for r in answer.json())


def test_delete_collection_limit(sf_env: SFEnv) -> None:
    ids = ",".join([LEAD_ID] * 201)
    answer = sf_env.call("DELETE", "/composite/sobjects", params={"ids": ids})
    assert answer.status_code == 400 and answer.json()[0]["errorCode"] == "EXCEEDED_ID_LIMIT"
    assert sf_env.sandbox.state.get("Lead", LEAD_ID) is not None


def test_spent_daily_allocation_gives_403_until_the_rolling_window_frees_calls(
    sf_tls: TLSFiles,
) -> None:
    env = make_env(sf_tls, daily_allocation=3)
    try:
        for n in range(1, 4):
            ok = env.call("GET", "/limits")
            assert ok.status_code == 200
            assert ok.headers["Sforce-Limit-Info"] == f"api-usage={n}/3"
        refused = env.call("GET", "/query", params={"q": "SELECT Id FROM Lead"})
        assert refused.status_code == 403
        assert refused.json() == [
            {"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}
        ]
        assert refused.headers["Sforce-Limit-Info"] == "api-usage=3/3"
        env.clock.advance(timedelta(hours=23, minutes=59))
        assert env.call("GET", "/limits").status_code == 403
        env.clock.advance(timedelta(minutes=2))  # the first calls leave the 24 h window
        again = env.call("GET", "/limits")
        assert again.status_code == 200
        assert again.json()["DailyApiRequests"] == {"Max": 3, "Remaining": 2}
    finally:
        env.close()


def test_expired_session_answers_401_invalid_session_id(sf_env: SFEnv) -> None:
    old = sf_env.sandbox.session_id
    assert sf_env.call("GET", "/limits", token=old).status_code == 200
    sf_env.sandbox.expire_sessions()
    answer = sf_env.call("GET", "/limits", token=old)
    assert answer.status_code == 401
    assert answer.json() == [
        {"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}
    ]
    assert sf_env.call("GET", "/limits").status_code == 200  # the new fixed session works
    assert sf_env.sandbox.api_usage() == 2  # refused calls are not counted


def test_login_sessions_time_out_after_inactivity(sf_env: SFEnv) -> None:
    token = sf_env.sandbox.issue_session()
    assert sf_env.call("GET", "/limits", token=token).status_code == 200
    sf_env.clock.advance(timedelta(seconds=7199))
    assert sf_env.call("GET", "/limits", token=token).status_code == 200  # use renews it
    sf_env.clock.advance(timedelta(seconds=7201))
    assert sf_env.call("GET", "/limits", token=token).status_code == 401


def test_missing_or_foreign_token_is_401(sf_env: SFEnv) -> None:
    answer = sf_env.session().get(sf_env.url("/limits"))
    assert answer.status_code == 401
    assert answer.json()[0]["errorCode"] == "INVALID_SESSION_ID"
    assert sf_env.call("GET", "/limits", token="00Dxx!bogus").status_code == 401


@pytest.mark.parametrize(
    "literal",
    [
        "2026-01-31T10:00:00.123456Z",  # Python isoformat() with microseconds
        "2026-01-31T10:00:00.123456+00:00",
        "2026-01-31T10:00:00",  # naive
    ],
)
def test_malformed_soql_datetimes(sf_env: SFEnv, literal: str) -> None:
    answer = sf_env.call(
        "GET", "/query", params={"q": f"SELECT Id FROM Lead WHERE SystemModstamp > {literal}"}
    )
    assert answer.status_code == 400
    body = answer.json()
    assert body[0]["errorCode"] == "MALFORMED_QUERY"
    assert "ERROR at Row:1:Column:" in body[0]["message"]


@pytest.mark.parametrize(
    "literal",
    [
        "2026-01-31T10:00:00Z",
        "2026-01-31T10:00:00.123Z",
        "2026-01-31T10:00:00+02:00",
        "2026-01-31T10:00:00-05:00",
    ],
)
def test_valid_soql_datetimes(sf_env: SFEnv, literal: str) -> None:
    answer = sf_env.call(
        "GET", "/query", params={"q": f"SELECT Id FROM Lead WHERE CreatedDate > {literal}"}
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["totalSize"] == 1  # the loaded lead, created 2026-02-01


def test_injected_throttle_renders_as_salesforce_over_concurrency(sf_env: SFEnv) -> None:
    sf_env.sandbox.faults.schedule(r"GET .*/limits", Fault("429"), Fault("500"), Fault("503"))
    throttled = sf_env.call("GET", "/limits")
    assert throttled.status_code == 403
    assert throttled.json() == [
        {
            "message": "ConcurrentPerOrgLongTxn Limit exceeded.",
            "errorCode": "REQUEST_LIMIT_EXCEEDED",
        }
    ]
    crashed = sf_env.call("GET", "/limits")
    assert crashed.status_code == 500 and crashed.json()[0]["errorCode"] == "UNKNOWN_EXCEPTION"
    down = sf_env.call("GET", "/limits")
    assert down.status_code == 503 and down.json()[0]["errorCode"] == "SERVER_UNAVAILABLE"
    assert sf_env.call("GET", "/limits").status_code == 200


def test_injected_throttle_can_render_as_server_unavailable(sf_env: SFEnv) -> None:
    sf_env.sandbox.throttle_style = "unavailable"
    sf_env.sandbox.faults.schedule(r"GET .*/limits", Fault("429"))
    answer = sf_env.call("GET", "/limits")
    assert answer.status_code == 503
    assert answer.json() == [
        {"message": "Server temporarily unavailable", "errorCode": "SERVER_UNAVAILABLE"}
    ]


def test_invalid_query_locator(sf_env: SFEnv) -> None:
    answer = sf_env.call("GET", "/query/01g5g0000000099AAA-2000")
    assert answer.status_code == 400
    assert answer.json() == [
        {"message": "invalid query locator", "errorCode": "INVALID_QUERY_LOCATOR"}
    ]


def test_query_locator_expires_after_15_idle_minutes(sf_env: SFEnv) -> None:
    for n in range(250):
        sf_env.sandbox.state.insert("Lead", {"LastName": f"P{n}", "Company": "Page"})
    first = sf_env.call(
        "GET",
        "/query",
        params={"q": "SELECT Id FROM Lead"},
        headers={"Sforce-Query-Options": "batchSize=200"},
    ).json()
    sf_env.clock.advance(timedelta(minutes=16))
    later = sf_env.session().get(
        sf_env.base_url + first["nextRecordsUrl"],
        headers={"Authorization": f"Bearer {sf_env.sandbox.session_id}"},
    )
    assert later.status_code == 400 and later.json()[0]["errorCode"] == "INVALID_QUERY_LOCATOR"
    assert sf_env.sandbox.rest.open_cursors() == 0
    sf_env.call(
        "GET",
        "/query",
        params={"q": "SELECT Id FROM Lead"},
        headers={"Sforce-Query-Options": "batchSize=200"},
    )
    sf_env.clock.advance(timedelta(minutes=16))
    sf_env.call(
        "GET",
        "/query",
        params={"q": "SELECT Id FROM Lead"},
        headers={"Sforce-Query-Options": "batchSize=200"},
    )
    assert sf_env.sandbox.rest.open_cursors() == 1  # the abandoned one was pruned


def test_updated_window_is_30_days_and_deleted_15(sf_env: SFEnv) -> None:
    fresh = sf_env.sandbox.state.insert("Lead", {"LastName": "Fresh", "Company": "F"})
    sf_env.clock.advance(timedelta(minutes=2))
    now = sf_env.clock.now()
    fmt = "%Y-%m-%dT%H:%M:%S+00:00"
    ok = sf_env.call(
        "GET",
        "/sobjects/Lead/updated/",
        params={"start": (now - timedelta(days=29)).strftime(fmt), "end": now.strftime(fmt)},
    )
    assert ok.status_code == 200 and ok.json()["ids"] == [fresh]  # LEAD_ID changed 29+ days ago
    old = sf_env.call(
        "GET",
        "/sobjects/Lead/updated/",
        params={"start": (now - timedelta(days=31)).strftime(fmt), "end": now.strftime(fmt)},
    )
    assert old.status_code == 400 and old.json()[0]["errorCode"] == "INVALID_REPLICATION_DATE"
    deleted_old = sf_env.call(
        "GET",
        "/sobjects/Lead/deleted/",
        params={"start": (now - timedelta(days=16)).strftime(fmt), "end": now.strftime(fmt)},
    )
    assert deleted_old.status_code == 400
    assert deleted_old.json()[0]["errorCode"] == "INVALID_REPLICATION_DATE"


def test_soql_offset_cap(sf_env: SFEnv) -> None:
    answer = sf_env.call("GET", "/query", params={"q": "SELECT Id FROM Lead LIMIT 5 OFFSET 2001"})
    assert answer.status_code == 400
    assert answer.json()[0]["errorCode"] == "NUMBER_OUTSIDE_VALID_RANGE"


def test_versions_below_50_are_not_served(sf_env: SFEnv) -> None:
    answer = sf_env.session().get(
        sf_env.url("/limits", version="49.0"),
        headers={"Authorization": f"Bearer {sf_env.sandbox.session_id}"},
    )
    assert answer.status_code == 404 and answer.json()[0]["errorCode"] == "NOT_FOUND"
