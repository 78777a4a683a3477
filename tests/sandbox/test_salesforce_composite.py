"""The Composite resource of the emulated org (resources_composite_composite_post.htm,
requests_composite.htm, resources_composite_subrequest_result.htm): subrequests run through
the routes their direct calls take, the whole request is one API call, the documented limits
refuse the request, and injected faults hit it as any call."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from connector.sandbox.base import Fault, TLSFiles

from .sf_fixtures import USER_EMEA, USER_NA, SFEnv, make_env, sf_env, sf_tls

__all__ = ["sf_env", "sf_tls"]

V = "/services/data/v62.0"
UPSERT = f"{V}/composite/sobjects/Lead/Handshake_Id__c"
COLLECTIONS = f"{V}/composite/sobjects"


def _lead(key: str, **fields: Any) -> dict[str, Any]:
    return {
        "attributes": {"type": "Lead"},
        "Handshake_Id__c": key,
        "LastName": f"Last {key}",
        "Company": "Composite Inc",
        **fields,
    }


def _sub(ref: str, method: str, url: str, body: Any = None, **headers: str) -> dict[str, Any]:
    sub: dict[str, Any] = {"method": method, "url": url, "referenceId": ref}
    if body is not None:
        sub["body"] = body
    if headers:
        sub["httpHeaders"] = {k.replace("_", "-"): v for k, v in headers.items()}
    return sub


def _composite(env: SFEnv, subs: list[dict[str, Any]], *, all_or_none: bool = False
               ) -> requests.Response:
    return env.call("POST", "/composite",
                    json={"allOrNone": all_or_none, "compositeRequest": subs})


# The same writes, sent as direct calls and as subrequests of one composite call.
WRITES: list[tuple[str, str, dict[str, Any]]] = [
    ("PATCH", UPSERT, {"allOrNone": False, "records": [
        _lead("same-1", Country="US"), _lead("same-2", LastName=None, Company=""),
        _lead("same-3", Email="not an email"), _lead("same-4", Company="C" * 300)]}),
    ("POST", COLLECTIONS, {"records": [
        {"attributes": {"type": "Task"}, "Subject": "Call", "WhoId": "00Qnotanid"},
        {"attributes": {"type": "Account"}, "Name": "Composite Account"}]}),
    ("PATCH", COLLECTIONS, {"records": [
        {"attributes": {"type": "Lead"}, "Title": "no id"}]}),
    ("PATCH", UPSERT, {"allOrNone": True, "records": [
        _lead("same-1", Title="VP"), _lead("same-5", Status="Bogus")]}),
]


def _org(env: SFEnv) -> dict[str, list[dict[str, Any]]]:
    state = env.sandbox.state
    return {name: state.records(name) for name in ("Lead", "Task", "Account")}


def test_subrequests_answer_and_write_exactly_as_the_direct_calls(sf_tls: TLSFiles) -> None:
    direct, composite = make_env(sf_tls), make_env(sf_tls)
    try:
        direct_bodies = []
        for method, url, body in WRITES:
            answer = direct.call(method, url[len(V):], json=body)
            direct_bodies.append((answer.status_code, answer.json()))
        answer = _composite(composite, [_sub(f"w{n}", method, url, body)
                                        for n, (method, url, body) in enumerate(WRITES)])
        assert answer.status_code == 200
        results = answer.json()["compositeResponse"]
        assert [(r["httpStatusCode"], r["body"]) for r in results] == direct_bodies
        assert [r["referenceId"] for r in results] == ["w0", "w1", "w2", "w3"]
        assert all(set(r) == {"body", "httpHeaders", "httpStatusCode", "referenceId"}
                   for r in results)
        assert _org(composite) == _org(direct)
        # the sObject Collections subrequest kept its own allOrNone: same-5 rolled same-1 back
        assert {r["Handshake_Id__c"]: r.get("Title") for r in _org(composite)["Lead"]
                if r.get("Handshake_Id__c")} == {"same-1": None}
    finally:
        direct.close()
        composite.close()


def test_a_composite_call_counts_once_and_its_subrequests_apart(sf_env: SFEnv) -> None:
    subs = [_sub(f"u{n}", "PATCH", UPSERT, {"records": [_lead(f"one-{n}-{i}")
                                                        for i in range(200)]})
            for n in range(5)]
    subs.append(_sub("get", "GET", f"{V}/sobjects/Lead/describe"))
    answer = _composite(sf_env, subs)
    assert answer.status_code == 200
    assert answer.headers["Sforce-Limit-Info"] == "api-usage=1/100000"
    assert sf_env.sandbox.api_usage() == 1
    assert [r["httpStatusCode"] for r in answer.json()["compositeResponse"]] == [200] * 6
    assert sum(1 for r in sf_env.sandbox.state.records("Lead")
               if str(r.get("Handshake_Id__c")).startswith("one-")) == 1000
    stats = sf_env.sandbox.stats.snapshot()
    assert stats["total"] == 1
    assert stats["by_route"] == {"/services/data/vXX.X/composite": 1}
    assert stats["subrequests_by_route"] == {
        "PATCH /services/data/vXX.X/composite/sobjects/{sobject}/{field} 200": 5,
        "GET /services/data/vXX.X/sobjects/{sobject}/describe 200": 1,
    }


@pytest.mark.parametrize("subs,message", [
    ([_sub(f"g{n}", "GET", f"{V}/sobjects/Lead/describe") for n in range(26)],
     "at most 25 subrequests; this one has 26"),
    ([_sub(f"u{n}", "PATCH", UPSERT, {"records": [_lead(f"heavy-{n}")]}) for n in range(5)]
     + [_sub("q", "GET", f"{V}/query?q=SELECT+Id+FROM+Lead")],
     "at most 5 sObject Collections or query subrequests; this one has 6"),
])
def test_too_many_subrequests_refuse_the_whole_request(
    sf_env: SFEnv, subs: list[dict[str, Any]], message: str
) -> None:
    before = sf_env.sandbox.state.counts()["Lead"]
    answer = _composite(sf_env, subs)
    assert answer.status_code == 400
    [error] = answer.json()
    assert error["errorCode"] == "LIMIT_EXCEEDED" and message in error["message"]
    assert sf_env.sandbox.state.counts()["Lead"] == before


def test_an_inherited_header_in_a_subrequest_refuses_the_request(sf_env: SFEnv) -> None:
    answer = _composite(sf_env, [_sub("a", "PATCH", UPSERT, {"records": [_lead("hdr-1")]},
                                      Content_Type="application/json")])
    assert answer.status_code == 400
    assert "Content-Type header is inherited" in answer.json()[0]["message"]
    assert not any(r.get("Handshake_Id__c") == "hdr-1"
                   for r in sf_env.sandbox.state.records("Lead"))


def test_subrequest_headers_reach_the_subrequest(sf_env: SFEnv) -> None:
    state = sf_env.sandbox.state
    answer = _composite(sf_env, [
        _sub("kept", "PATCH", UPSERT, {"records": [_lead("as-1", Country="Germany",
                                                         OwnerId=USER_NA)]},
             Sforce_Auto_Assign="FALSE"),
        _sub("ruled", "PATCH", UPSERT, {"records": [_lead("as-2", Country="Germany",
                                                          OwnerId=USER_NA)]}),
        _sub("dup", "PATCH", UPSERT, {"records": [_lead("as-3", Email="jane@acme.test")]},
             Sforce_Duplicate_Rule_Header="allowSave=true"),
        _sub("blocked", "PATCH", UPSERT, {"records": [_lead("as-4", Email="jane@acme.test")]}),
    ])
    kept, ruled, dup, blocked = (r["body"][0] for r in answer.json()["compositeResponse"])
    assert state.get("Lead", kept["id"])["OwnerId"] == USER_NA
    assert state.get("Lead", ruled["id"])["OwnerId"] == USER_EMEA  # the assignment rule ran
    assert dup["success"] is True
    assert blocked["success"] is False
    assert blocked["errors"][0]["statusCode"] == "DUPLICATES_DETECTED"


def test_a_failed_subrequest_leaves_the_others_or_halts_them_all(sf_env: SFEnv) -> None:
    state = sf_env.sandbox.state

    def keys() -> set[str]:
        return {str(r["Handshake_Id__c"]) for r in state.records("Lead")
                if str(r.get("Handshake_Id__c") or "").startswith("fail-")}

    subs = [
        _sub("before", "PATCH", UPSERT, {"records": [_lead("fail-1")]}),
        _sub("bad", "PATCH", f"{V}/composite/sobjects/Lead/LastName",
             {"records": [_lead("fail-2")]}),
        _sub("missing", "GET", f"{V}/jobs/ingest"),
        _sub("after", "PATCH", UPSERT, {"records": [_lead("fail-3")]}),
    ]
    answer = _composite(sf_env, subs).json()["compositeResponse"]
    assert [r["httpStatusCode"] for r in answer] == [200, 400, 404, 200]
    assert answer[1]["body"] == [{
        "message": "Field name provided, LastName is not an External ID or indexed field for Lead",
        "errorCode": "INVALID_FIELD",
    }]
    assert answer[2]["body"][0]["errorCode"] == "NOT_FOUND"  # not a composite resource
    assert keys() == {"fail-1", "fail-3"}

    subs = [_sub(s["referenceId"], s["method"], s["url"].replace("fail-", "halt-"),
                 {"records": [_lead(r["Handshake_Id__c"].replace("fail-", "all-"))
                              for r in s["body"]["records"]]})
            for s in (subs[0], subs[1], subs[3])]
    answer = _composite(sf_env, subs, all_or_none=True).json()["compositeResponse"]
    assert [r["httpStatusCode"] for r in answer] == [400, 400, 400]
    halted = [{"errorCode": "PROCESSING_HALTED", "message": "The transaction was rolled back "
               "since another operation in the same transaction failed."}]
    assert answer[0]["body"] == answer[2]["body"] == halted
    assert answer[1]["body"][0]["errorCode"] == "INVALID_FIELD"
    assert not any(str(r.get("Handshake_Id__c")).startswith("all-")
                   for r in state.records("Lead"))


def test_a_spent_allocation_refuses_the_composite_call(sf_tls: TLSFiles) -> None:
    env = make_env(sf_tls, daily_allocation=1)
    try:
        assert env.call("GET", "/limits").status_code == 200
        answer = _composite(env, [_sub("a", "PATCH", UPSERT, {"records": [_lead("quota-1")]})])
        assert answer.status_code == 403
        assert answer.json()[0]["errorCode"] == "REQUEST_LIMIT_EXCEEDED"
        assert not any(r.get("Handshake_Id__c") == "quota-1"
                       for r in env.sandbox.state.records("Lead"))
    finally:
        env.close()


def test_a_fault_scripted_for_a_subrequest_hits_the_composite_call(sf_env: SFEnv) -> None:
    # drop_after: every subrequest is applied, then the answer is lost
    sf_env.sandbox.faults.schedule(r"^PATCH /services/data/v[\d.]+/composite/sobjects/Lead/",
                                   Fault("drop_after"))
    subs = [_sub(f"u{n}", "PATCH", UPSERT, {"records": [_lead(f"drop-{n}")]}) for n in range(3)]
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        _composite(sf_env, subs)
    assert {str(r["Handshake_Id__c"]) for r in sf_env.sandbox.state.records("Lead")
            if str(r.get("Handshake_Id__c") or "").startswith("drop-")} == {
        "drop-0", "drop-1", "drop-2"}
    assert not sf_env.sandbox.faults.script[
        r"^PATCH /services/data/v[\d.]+/composite/sobjects/Lead/"]
    assert sf_env.sandbox.api_usage() == 1
    # a script for another resource leaves the composite call alone
    sf_env.sandbox.faults.schedule(r"^POST /services/data/v[\d.]+/composite/sobjects$",
                                   Fault("500"))
    again = _composite(sf_env, [_sub("u", "PATCH", UPSERT, {"records": [_lead("drop-9")]})])
    assert again.status_code == 200
