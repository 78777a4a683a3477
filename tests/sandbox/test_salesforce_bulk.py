"""Bulk API 2.0 ingest in the emulated org: the job lifecycle, results files, the same record
rules as sObject Collections, the shared batch allocation, and the API's error answers."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

import pytest

from connector.sandbox.base import TLSFiles
from connector.sandbox.salesforce import settings

from .sf_fixtures import USER_NA, SFEnv, make_env, sf_env, sf_tls

__all__ = ["sf_env", "sf_tls"]

HEADER = "Handshake_Id__c,LastName,Company,Email,Country"
ROWS = [
    "hs-1,Lovelace,Analytical Engines,ada@engines.test,US",
    "hs-2,,No Name Ltd,noname@x.test,US",  # REQUIRED_FIELD_MISSING
    "hs-3,Hopper,Navy,grace@navy.test,Germany",
    "hs-4,Doe,Acme,jane@acme.test,US",  # an existing Contact's email: duplicate rule
    'hs-5,"Stone, Jr.",Quarry,bad-email,UK',  # INVALID_EMAIL_ADDRESS
]


def _csv(*rows: str, header: str = HEADER, ending: str = "\n") -> bytes:
    return ending.join([header, *rows, ""]).encode()


def _rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def _job(env: SFEnv, **body: Any) -> dict[str, Any]:
    answer = env.call("POST", "/jobs/ingest", json={"object": "Lead", "contentType": "CSV",
                                                     "operation": "upsert",
                                                     "externalIdFieldName": "Handshake_Id__c",
                                                     "lineEnding": "LF", **body})
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def _upload(env: SFEnv, job_id: str, data: bytes) -> Any:
    return env.call("PUT", f"/jobs/ingest/{job_id}/batches", data=data,
                    headers={"Content-Type": "text/csv"})


def _close(env: SFEnv, job_id: str, state: str = "UploadComplete") -> Any:
    return env.call("PATCH", f"/jobs/ingest/{job_id}", json={"state": state})


def _run(env: SFEnv, data: bytes, **body: Any) -> dict[str, Any]:
    """Create, upload, close and poll once; the job's final info."""
    job = _job(env, **body)
    assert _upload(env, job["id"], data).status_code == 201
    assert _close(env, job["id"]).status_code == 200
    answer = env.call("GET", f"/jobs/ingest/{job['id']}")
    assert answer.status_code == 200
    return dict(answer.json())


def _results(env: SFEnv, job_id: str, kind: str) -> list[dict[str, str]]:
    answer = env.call("GET", f"/jobs/ingest/{job_id}/{kind}")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/csv")
    return _rows(answer.text)


def test_upsert_job_lifecycle_and_results_files(sf_env: SFEnv) -> None:
    job = _job(sf_env)
    assert job["state"] == "Open" and job["id"].startswith("750")
    assert job["contentUrl"] == f"services/data/v62.0/jobs/ingest/{job['id']}/batches"
    assert (job["operation"], job["object"], job["contentType"]) == ("upsert", "Lead", "CSV")
    assert _upload(sf_env, job["id"], _csv(*ROWS)).status_code == 201
    closed = _close(sf_env, job["id"]).json()
    assert closed["state"] == "UploadComplete" and "contentUrl" not in closed
    info = sf_env.call("GET", f"/jobs/ingest/{job['id']}").json()
    assert info["state"] == "JobComplete"
    assert (info["numberRecordsProcessed"], info["numberRecordsFailed"]) == (5, 3)
    assert info["jobType"] == "V2Ingest"

    ok = _results(sf_env, job["id"], "successfulResults")
    assert list(ok[0]) == ["sf__Id", "sf__Created", *HEADER.split(",")]
    assert {r["Handshake_Id__c"]: r["sf__Created"] for r in ok} == {"hs-1": "true", "hs-3": "true"}
    leads = {r["Handshake_Id__c"]: r for r in sf_env.sandbox.state.records("Lead")}
    assert all(leads[r["Handshake_Id__c"]]["Id"] == r["sf__Id"] for r in ok)

    failed = {r["Handshake_Id__c"]: r for r in _results(sf_env, job["id"], "failedResults")}
    assert list(next(iter(failed.values()))) == ["sf__Id", "sf__Error", *HEADER.split(",")]
    assert failed["hs-2"]["sf__Error"] == (
        "REQUIRED_FIELD_MISSING:Required fields are missing: [LastName]:LastName --")
    assert failed["hs-4"]["sf__Error"].startswith("DUPLICATES_DETECTED:Use one of these records?")
    assert failed["hs-5"]["sf__Error"].startswith("INVALID_EMAIL_ADDRESS:")
    assert failed["hs-5"]["LastName"] == "Stone, Jr."  # the uploaded columns come back as sent
    assert all(r["sf__Id"] == "" for r in failed.values())
    unprocessed = sf_env.call("GET", f"/jobs/ingest/{job['id']}/unprocessedrecords")
    assert unprocessed.text.strip() == ",".join(f'"{h}"' for h in HEADER.split(","))

    # the same rows again update what exists: sf__Created false, the same ids
    again = _run(sf_env, _csv(ROWS[0], ROWS[2]))
    second = _results(sf_env, again["id"], "successfulResults")
    assert {r["sf__Created"] for r in second} == {"false"}
    assert {r["sf__Id"] for r in second} == {r["sf__Id"] for r in ok}


def _collections(env: SFEnv, rows: list[str]) -> list[dict[str, Any]]:
    records = [{"attributes": {"type": "Lead"},
                **{k: v for k, v in row.items() if v != ""}}
               for row in csv.DictReader(io.StringIO("\n".join([HEADER, *rows])))]
    answer = env.call("PATCH", "/composite/sobjects/Lead/Handshake_Id__c",
                      json={"allOrNone": False, "records": records})
    assert answer.status_code == 200
    return list(answer.json())


@pytest.fixture
def second_env(sf_tls: TLSFiles) -> Iterator[SFEnv]:
    env = make_env(sf_tls)
    try:
        yield env
    finally:
        env.close()


def test_bulk_and_collections_give_the_same_records_and_errors(
        sf_env: SFEnv, second_env: SFEnv) -> None:
    bulk = _run(sf_env, _csv(*ROWS))
    failed = {r["Handshake_Id__c"]: r["sf__Error"].split(":", 1)[0]
              for r in _results(sf_env, bulk["id"], "failedResults")}
    answers = _collections(second_env, ROWS)
    by_key = {row.split(",", 1)[0]: a for row, a in zip(ROWS, answers, strict=True)}
    assert {k: a["errors"][0]["statusCode"] for k, a in by_key.items() if not a["success"]} \
        == failed

    def leads(env: SFEnv) -> dict[str, tuple[Any, ...]]:
        return {r["Handshake_Id__c"]: (r["LastName"], r["Company"], r["Email"], r["Country"],
                                       r["Status"], r["OwnerId"])
                for r in env.sandbox.state.records("Lead") if r["Handshake_Id__c"]}

    # collections ran the assignment rule (Sforce-Auto-Assign defaults to TRUE); bulk runs it
    # only when the job names the rule, so owners differ until it does
    assert {k: v[:5] for k, v in leads(sf_env).items()} == \
        {k: v[:5] for k, v in leads(second_env).items()}


def test_assignment_rule_runs_only_when_the_job_names_it(sf_env: SFEnv) -> None:
    rule = sf_env.call("GET", "/query", params={
        "q": "SELECT Id FROM AssignmentRule WHERE SobjectType = 'Lead' AND Active = true"})
    rule_id = rule.json()["records"][0]["Id"]
    _run(sf_env, _csv("hs-10,Ames,Co,ames@co.test,US"), assignmentRuleId=rule_id)
    _run(sf_env, _csv("hs-11,Bell,Co,bell@co.test,US"))
    owners = {r["Handshake_Id__c"]: r["OwnerId"] for r in sf_env.sandbox.state.records("Lead")}
    assert owners["hs-10"] == USER_NA  # the territory rule: US goes to the NA reps in turn
    assert owners["hs-11"] == sf_env.sandbox.state.integration_user_id
    bad = sf_env.call("POST", "/jobs/ingest", json={
        "object": "Lead", "operation": "insert", "assignmentRuleId": USER_NA})
    assert bad.status_code == 400 and bad.json()[0]["errorCode"] == "INVALIDJOB"


def test_insert_and_update_operations_and_null_values(sf_env: SFEnv) -> None:
    inserted = _run(sf_env, _csv("Lee,Co,lee@co.test,Leeds", header="LastName,Company,Email,City"),
                    operation="insert", externalIdFieldName=None)
    row = _results(sf_env, inserted["id"], "successfulResults")[0]
    assert row["sf__Created"] == "true"
    lead_id = row["sf__Id"]
    # an empty value leaves the field alone; #N/A clears it
    _run(sf_env, _csv(f"{lead_id},Leigh,,#N/A", header="Id,LastName,Company,City"),
         operation="update", externalIdFieldName=None)
    lead = sf_env.sandbox.state.get("Lead", lead_id)
    assert lead is not None
    assert (lead["LastName"], lead["Company"], lead["City"]) == ("Leigh", "Co", None)
    missing = _run(sf_env, _csv("00Q5g0000000zzzAAA,X", header="Id,LastName"),
                   operation="update", externalIdFieldName=None)
    error = _results(sf_env, missing["id"], "failedResults")[0]["sf__Error"]
    assert error.startswith(("INVALID_CROSS_REFERENCE_KEY", "MALFORMED_ID"))


def test_a_value_of_the_wrong_type_fails_its_record_with_the_column(sf_env: SFEnv) -> None:
    info = _run(sf_env, _csv("hs-20,Lee,Co,many", "hs-21,Kim,Co,12",
                             header="Handshake_Id__c,LastName,Company,NumberOfEmployees"))
    assert (info["numberRecordsProcessed"], info["numberRecordsFailed"]) == (2, 1)
    failed = _results(sf_env, info["id"], "failedResults")
    assert failed[0]["sf__Error"] == ("INVALID_FIELD:Failed to deserialize field at col 4. Due "
                                      "to, 'many' is not a valid value for the type xsd:int:"
                                      "NumberOfEmployees --")


def test_a_header_naming_no_field_fails_the_whole_job(sf_env: SFEnv) -> None:
    info = _run(sf_env, _csv("hs-30,Lee,Co,CEO", header="Handshake_Id__c,LastName,Company,Titel"))
    assert info["state"] == "Failed"
    assert info["errorMessage"] == "InvalidBatch : Field name not found : Titel"
    assert info["numberRecordsProcessed"] == 0
    assert _rows(sf_env.call("GET", f"/jobs/ingest/{info['id']}/unprocessedrecords").text) == [
        {"Handshake_Id__c": "hs-30", "LastName": "Lee", "Company": "Co", "Titel": "CEO"}]
    assert _results(sf_env, info["id"], "failedResults") == []


def test_line_ending_must_match_the_job(sf_env: SFEnv) -> None:
    info = _run(sf_env, _csv(ROWS[0], ending="\r\n"))
    assert info["state"] == "Failed" and "LineEnding is invalid" in info["errorMessage"]
    crlf = _run(sf_env, _csv(ROWS[0], ending="\r\n"), lineEnding="CRLF")
    assert crlf["state"] == "JobComplete" and crlf["numberRecordsFailed"] == 0
    ok = sf_env.call("GET", f"/jobs/ingest/{crlf['id']}/successfulResults")
    assert ok.text.endswith("\r\n")


def test_status_polls_answer_in_progress_then_complete(sf_env: SFEnv) -> None:
    sf_env.sandbox.bulk_in_progress_polls = 2
    job = _job(sf_env)
    _upload(sf_env, job["id"], _csv(ROWS[0]))
    _close(sf_env, job["id"])
    early = sf_env.call("GET", f"/jobs/ingest/{job['id']}/successfulResults")
    assert early.status_code == 409 and early.json()[0]["errorCode"] == "INVALIDJOBSTATE"
    states = [sf_env.call("GET", f"/jobs/ingest/{job['id']}").json()["state"] for _ in range(3)]
    assert states == ["InProgress", "InProgress", "JobComplete"]
    assert sf_env.sandbox.state.find("Lead", Handshake_Id__c="hs-1")


def test_calls_and_batches_are_counted(sf_env: SFEnv) -> None:
    usage = sf_env.sandbox.api_usage()
    _run(sf_env, _csv(*ROWS))
    assert sf_env.sandbox.api_usage() == usage + 4  # create, upload, close, status
    limits = sf_env.call("GET", "/limits").json()["DailyBulkApiBatches"]
    assert limits == {"Max": 15000, "Remaining": 14999}
    stats = sf_env.sessions[0].get(f"{sf_env.base_url}/__sandbox__/stats").json()
    assert stats["bulk"] == {"jobs": 1, "jobs_by_state": {"JobComplete": 1},
                             "records_processed": 5, "batches_used": 1}
    routes = stats["requests"]["by_route"]
    assert routes["/services/data/vXX.X/jobs/ingest/{job_id}/batches"] == 1


def test_past_the_batch_allocation_the_rest_is_unprocessed(
        sf_tls: TLSFiles, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings, "BULK_BATCH_RECORDS", 2)
    env = make_env(sf_tls, bulk_batch_allocation=1)
    try:
        info = _run(env, _csv(ROWS[0], ROWS[2], "hs-6,Turing,Bletchley,alan@b.test,UK"))
        assert info["state"] == "Failed" and info["errorMessage"].startswith("ExceededQuota")
        assert info["numberRecordsProcessed"] == 2
        left = _rows(env.call("GET", f"/jobs/ingest/{info['id']}/unprocessedrecords").text)
        assert [r["Handshake_Id__c"] for r in left] == ["hs-6"]
        assert not env.sandbox.state.find("Lead", Handshake_Id__c="hs-6")
        assert env.call("GET", "/limits").json()["DailyBulkApiBatches"]["Remaining"] == 0
    finally:
        env.close()


def test_error_answers(sf_env: SFEnv) -> None:
    def error(answer: Any) -> tuple[int, str]:
        return answer.status_code, answer.json()[0]["errorCode"]

    assert error(sf_env.call("GET", "/jobs/ingest/7505g00000000ZZAAA")) == (404, "NOT_FOUND")
    assert error(sf_env.call("POST", "/jobs/ingest", json={
        "object": "Lead", "operation": "upsert"})) == (400, "INVALIDJOB")
    assert error(sf_env.call("POST", "/jobs/ingest", json={
        "object": "Lead", "operation": "upsert", "externalIdFieldName": "Email"})) \
        == (400, "INVALIDJOB")
    assert error(sf_env.call("POST", "/jobs/ingest", json={
        "object": "Nope", "operation": "insert"})) == (400, "INVALIDJOB")
    assert error(sf_env.call("POST", "/jobs/ingest", json={
        "object": "Lead", "operation": "insert", "lineEnding": "CR"})) \
        == (400, "JSON_PARSER_ERROR")

    twice = _job(sf_env)
    _upload(sf_env, twice["id"], _csv(ROWS[0]))
    _upload(sf_env, twice["id"], _csv(ROWS[2]))
    refused = _close(sf_env, twice["id"])
    assert error(refused) == (400, "INVALIDJOB")
    assert "make sure you only do 'PUT' once" in refused.json()[0]["message"]
    assert _close(sf_env, twice["id"], "Aborted").json()["state"] == "Aborted"
    assert error(_upload(sf_env, twice["id"], _csv(ROWS[0]))) == (409, "INVALIDJOBSTATE")
    assert error(_close(sf_env, twice["id"])) == (409, "INVALIDJOBSTATE")
    assert sf_env.call("GET", f"/jobs/ingest/{twice['id']}").json()["state"] == "Aborted"
    assert not sf_env.sandbox.state.find("Lead", Handshake_Id__c="hs-1")

    job = _job(sf_env)
    wrong_type = sf_env.call("PUT", f"/jobs/ingest/{job['id']}/batches", json={"a": 1})
    assert error(wrong_type) == (415, "UNSUPPORTED_MEDIA_TYPE")
    assert error(sf_env.call("DELETE", f"/jobs/ingest/{job['id']}")) == (409, "INVALIDJOBSTATE")
    _close(sf_env, job["id"], "Aborted")
    assert sf_env.call("DELETE", f"/jobs/ingest/{job['id']}").status_code == 204
    listed = sf_env.call("GET", "/jobs/ingest").json()
    assert [j["id"] for j in listed["records"]] == [twice["id"]] and listed["done"] is True


def test_rows_of_one_save_are_not_each_others_duplicates(
        sf_env: SFEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    twins = _csv("hs-40,Lee,Co,twin@co.test,US", "hs-41,Lee,Co,twin@co.test,US")
    one_save = _run(sf_env, twins)
    assert one_save["numberRecordsFailed"] == 0  # one save of up to 200 rows
    monkeypatch.setattr(settings, "BULK_SAVE_RECORDS", 1)
    apart = _run(sf_env, _csv("hs-42,Lee,Co,pair@co.test,US", "hs-43,Lee,Co,pair@co.test,US"))
    failed = _results(sf_env, apart["id"], "failedResults")
    assert [(r["Handshake_Id__c"], r["sf__Error"].split(":")[0]) for r in failed] == [
        ("hs-43", "DUPLICATES_DETECTED")]
