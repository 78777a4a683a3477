"""Reads of the emulated org as composite subrequests (what the pull-back sends): queries,
queryAll and their next pages count against the 5 query operations of a call, the deleted
resource does not; each answers as its direct call does; the whole call counts once. The
deleted resource's window (resources_getdeleted.htm, SOAP getDeleted()): more than a minute
long, at most 15 days back, not before the delete log's purge; else INVALID_REPLICATION_DATE.
Merged Leads are deleted with MasterRecordId, their activities moved to the master."""

from __future__ import annotations

from datetime import UTC, timedelta
from typing import Any
from urllib.parse import urlencode

import requests

from .sf_fixtures import SFEnv, sf_env, sf_tls

__all__ = ["sf_env", "sf_tls"]

V = "/services/data/v62.0"


def _composite(env: SFEnv, urls: list[str]) -> requests.Response:
    subs = [{"method": "GET", "url": url, "referenceId": f"r{n}"} for n, url in enumerate(urls)]
    return env.call("POST", "/composite", json={"allOrNone": False, "compositeRequest": subs})


def _query(soql: str, resource: str = "query") -> str:
    return f"{V}/{resource}/?{urlencode({'q': soql})}"


def _deleted(env: SFEnv, sobject: str, *, back: timedelta,
             span: timedelta | None = None) -> str:
    end = env.clock.now().astimezone(UTC)
    start = end - back
    if span is not None:
        end = start + span
    fmt = "%Y-%m-%dT%H:%M:%S+00:00"
    return f"{V}/sobjects/{sobject}/deleted/?" + urlencode(
        {"start": start.strftime(fmt), "end": end.strftime(fmt)})


def _leads(env: SFEnv, n: int) -> list[str]:
    state = env.sandbox.state
    return [state.insert("Lead", {"LastName": f"R{i}", "Company": "Rep Co",
                                  "Email": f"r{i}@replication.test"}) for i in range(n)]


def test_reads_answer_as_direct_calls_in_one_api_call(sf_env: SFEnv) -> None:
    lead, other = _leads(sf_env, 2)
    sf_env.clock.advance(timedelta(minutes=5))
    sf_env.sandbox.state.delete("Lead", other)
    sf_env.clock.advance(timedelta(minutes=2))  # the resource covers whole minutes gone by
    urls = [_query("SELECT Id, Status FROM Lead ORDER BY Id"),
            _query(f"SELECT Id, IsDeleted FROM Lead WHERE Id = '{other}'", "queryAll"),
            _query("SELECT Id FROM OpportunityStage"),
            _query("SELECT Id FROM TaskStatus"),
            _query("SELECT Id FROM Event"),
            _deleted(sf_env, "Lead", back=timedelta(hours=1)),
            _deleted(sf_env, "Contact", back=timedelta(hours=1)),
            _deleted(sf_env, "Opportunity", back=timedelta(hours=1))]
    before = sf_env.sandbox.api_usage()
    answer = _composite(sf_env, urls)
    assert answer.status_code == 200
    assert sf_env.sandbox.api_usage() == before + 1
    subs = answer.json()["compositeResponse"]
    assert [s["httpStatusCode"] for s in subs] == [200] * len(urls)
    for url, sub in zip(urls, subs, strict=True):
        direct = sf_env.call("GET", url.removeprefix(V))
        assert sub["body"] == direct.json()
    assert [r["Id"] for r in subs[1]["body"]["records"]] == [other]
    assert [d["id"] for d in subs[5]["body"]["deletedRecords"]] == [other]
    assert lead not in {r["Id"] for r in subs[1]["body"]["records"]}


def test_a_sixth_query_operation_refuses_the_call(sf_env: SFEnv) -> None:
    _leads(sf_env, 3)
    first = sf_env.call("GET", "/query", params={"q": "SELECT Id FROM Lead"},
                        headers={"Sforce-Query-Options": "batchSize=200"}).json()
    queries = [_query("SELECT Id FROM Lead")] * 4
    more = first.get("nextRecordsUrl")
    urls = queries + [more or _query("SELECT Id FROM Contact"),
                      _query("SELECT Id FROM Task", "queryAll")]
    answer = _composite(sf_env, urls + [_deleted(sf_env, "Lead", back=timedelta(hours=1))])
    assert answer.status_code == 400
    [error] = answer.json()
    assert error["errorCode"] == "LIMIT_EXCEEDED" and "has 6" in error["message"]
    # five of them, with deleted checks beside them (not query operations), are one call
    ok = _composite(sf_env, urls[:5] + [_deleted(sf_env, s, back=timedelta(hours=1))
                                        for s in ("Lead", "Contact", "Opportunity")])
    assert ok.status_code == 200


def test_the_deleted_window_answers_invalid_replication_date(sf_env: SFEnv) -> None:
    def code(url: str) -> tuple[int, Any]:
        sub = _composite(sf_env, [url]).json()["compositeResponse"][0]
        body = sub["body"]
        return sub["httpStatusCode"], body[0]["errorCode"] if isinstance(body, list) else None

    assert code(_deleted(sf_env, "Lead", back=timedelta(days=14)))[0] == 200
    assert code(_deleted(sf_env, "Lead", back=timedelta(days=16))) == (
        400, "INVALID_REPLICATION_DATE")
    assert code(_deleted(sf_env, "Lead", back=timedelta(hours=1),
                         span=timedelta(minutes=1))) == (400, "INVALID_REPLICATION_DATE")
    [gone] = _leads(sf_env, 1)
    sf_env.sandbox.state.delete("Lead", gone)
    sf_env.clock.advance(timedelta(minutes=5))
    sf_env.sandbox.state.purge_recycle_bin()
    assert code(_deleted(sf_env, "Lead", back=timedelta(hours=1))) == (
        400, "INVALID_REPLICATION_DATE")
    sf_env.clock.advance(timedelta(minutes=5))
    assert code(_deleted(sf_env, "Lead", back=timedelta(minutes=4)))[0] == 200
    found = sf_env.call("GET", "/queryAll", params={
        "q": f"SELECT Id FROM Lead WHERE Id = '{gone}'"}).json()
    assert found["records"] == []  # purged: not even queryAll sees it


def test_a_merged_lead_is_deleted_with_its_master_and_its_tasks_move(sf_env: SFEnv) -> None:
    master, loser = _leads(sf_env, 2)
    state = sf_env.sandbox.state
    task = state.insert("Task", {"WhoId": loser, "Subject": "Call", "Status": "Completed"})
    sf_env.clock.advance(timedelta(minutes=5))
    state.merge("Lead", master, [loser])
    sf_env.clock.advance(timedelta(minutes=2))
    row = sf_env.call("GET", "/queryAll", params={
        "q": f"SELECT Id, IsDeleted, MasterRecordId FROM Lead WHERE Id = '{loser}'"}
    ).json()["records"][0]
    assert (row["IsDeleted"], row["MasterRecordId"]) == (True, master)
    assert state.get("Task", task)["WhoId"] == master
    listed = sf_env.call("GET", _deleted(sf_env, "Lead", back=timedelta(hours=1))
                         .removeprefix(V)).json()
    assert [d["id"] for d in listed["deletedRecords"]] == [loser]
