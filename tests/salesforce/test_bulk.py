"""Bulk API 2.0 upserts give the same per-record results as collection upserts: same
records in Salesforce, same rejections and who must act, duplicates named, calls counted."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from connector.errors import Actor
from connector.salesforce import SalesforceClient, WriteResult
from connector.salesforce.bulk import csv_value, parse_result_error
from connector.sandbox import Fault, Sandbox
from connector.sandbox.salesforce import settings as sandbox_settings

from .conftest import SandboxTime, make_client

EMEA_REP = "005Hs0000000005IAA"
NA_REP = "005Hs0000000001IAA"
INACTIVE_REP = "005Hs0000000004IAA"


@pytest.fixture
def client(sandbox: Sandbox) -> Iterator[SalesforceClient]:
    with make_client(sandbox) as c:
        yield c


def _lead(key: str, **fields: object) -> dict[str, object]:
    return {
        "Handshake_Id__c": key,
        "LastName": f"Last {key}",
        "Company": "Bulk Inc",
        "Email": f"{key}@bulk.test",
        **fields,
    }


def _mixed(prefix: str) -> list[dict[str, object]]:
    """Good records and one of each kind of refusal."""
    return [
        _lead(f"{prefix}-ok-1", Country="US"),
        _lead(f"{prefix}-missing", LastName=None, Company=""),
        _lead(f"{prefix}-long", Company="C" * 300),
        _lead(f"{prefix}-email", Email="not an email"),
        _lead(f"{prefix}-picklist", Status="Bogus Status"),
        _lead(f"{prefix}-dup", Email="DUPB@bulk.test"),
        _lead(f"{prefix}-inactive", OwnerId=INACTIVE_REP),
        _lead(f"{prefix}-ok-2", Title="CTO, Europe", Description='He said "hi"\nthen left'),
    ]


def _outcome(result: WriteResult, prefix: str) -> tuple[Any, ...]:
    rejection = result.rejection
    if rejection is None:
        return (result.success, result.created)
    return (
        result.success,
        rejection.code,
        rejection.actor,
        rejection.fields,
        rejection.retriable,
        str(rejection).replace(prefix, "<key>"),
        {(d.sobject, d.id) for d in result.duplicates},
    )


def test_bulk_results_equal_collection_results(sandbox: Sandbox, client: SalesforceClient) -> None:
    state = sandbox.salesforce.state
    contact = state.load_record("Contact", {"LastName": "Dup", "Email": "dupb@bulk.test"})
    lead = state.load_record("Lead", {"LastName": "Dup", "Company": "D", "Email": "dupb@bulk.test"})
    by_collections = client.upsert("Lead", _mixed("col"), auto_assign=False)
    writes, queries = client.write_calls, client.calls_by_kind["query"]
    by_bulk = client.bulk_upsert("Lead", _mixed("blk"), auto_assign=False)

    assert client.write_calls == writes  # no collection call
    # create, upload, close, one status read, successful and failed results
    assert client.calls_by_kind["bulk"] == 6
    assert client.calls_by_kind["query"] - queries == 2  # the duplicate's matches, by email
    assert [r.index for r in by_bulk] == list(range(8))
    assert [r.key for r in by_bulk] == [r["Handshake_Id__c"] for r in _mixed("blk")]
    assert [_outcome(r, "blk") for r in by_bulk] == [_outcome(r, "col") for r in by_collections]
    assert {(d.sobject, d.id) for d in by_bulk[5].duplicates} == {("Lead", lead),
                                                                   ("Contact", contact)}
    assert by_bulk[5].duplicates[0].sobject == by_collections[5].duplicates[0].sobject

    stored = {r["Handshake_Id__c"]: r for r in state.records("Lead")}
    for ours, theirs in (("blk-ok-1", "col-ok-1"), ("blk-ok-2", "col-ok-2")):
        fields = ("LastName", "Company", "Title", "Description", "Country", "OwnerId", "Status")
        assert {f: stored[ours][f] for f in fields if f != "LastName"} == \
            {f: stored[theirs][f] for f in fields if f != "LastName"}
        assert [r.id for r in by_bulk if r.key == ours] == [stored[ours]["Id"]]
    assert not [k for k in stored if str(k).startswith("blk-") and "-ok-" not in str(k)]


def test_a_second_bulk_upsert_updates_and_clears_nulls(
        sandbox: Sandbox, client: SalesforceClient) -> None:
    first = client.bulk_upsert("Lead", [_lead("upd-1", Title="VP"), _lead("upd-2")],
                               auto_assign=False)
    assert [r.created for r in first] == [True, True]
    again = client.bulk_upsert("Lead", [_lead("upd-1", Title=None), _lead("upd-2", Title="")],
                               auto_assign=False)
    assert [(r.success, r.created) for r in again] == [(True, False), (True, False)]
    assert [r.id for r in again] == [r.id for r in first]
    titles = [sandbox.salesforce.state.get("Lead", r.id or "")["Title"] for r in again]
    assert titles == [None, None]


def test_auto_assign_names_the_orgs_lead_assignment_rule(
        sandbox: Sandbox, client: SalesforceClient) -> None:
    kept, = client.bulk_upsert("Lead", [_lead("own-b1", Country="US", OwnerId=EMEA_REP)],
                               auto_assign=False)
    ruled, = client.bulk_upsert("Lead", [_lead("own-b2", Country="Germany", OwnerId=NA_REP)])
    state = sandbox.salesforce.state
    assert state.get("Lead", kept.id or "")["OwnerId"] == EMEA_REP
    owner = state.get("Lead", ruled.id or "")["OwnerId"]
    assert state.get("User", owner)["Territory__c"].startswith("EMEA")
    jobs = sandbox.salesforce.bulk.jobs()
    assert jobs[-1].assignment_rule_id == state.lead_assignment_rule_id
    assert jobs[-2].assignment_rule_id is None


def test_a_field_the_object_lacks_refuses_only_the_records_carrying_it(
        sandbox: Sandbox, client: SalesforceClient) -> None:
    """As collections do. Before the describe is read the column fails the job, which is
    sent again without it; after, such records are refused unsent."""
    def records(prefix: str) -> list[dict[str, object]]:
        return [_lead(f"{prefix}-1", Titel="CEO"), _lead(f"{prefix}-2"),
                _lead(f"{prefix}-3", Titel=None)]

    jobs = sandbox.salesforce.bulk.jobs
    unread = client.bulk_upsert("Lead", records("nfu"), auto_assign=False)
    assert [j.state for j in jobs()[-2:]] == ["Failed", "JobComplete"]
    client.fields("Lead")
    before = len(jobs())
    read = client.bulk_upsert("Lead", records("nfr"), auto_assign=False)
    assert len(jobs()) == before + 1 and jobs()[-1].state == "JobComplete"
    by_collections = client.upsert("Lead", records("nfc"), auto_assign=False)
    for results, prefix in ((unread, "nfu"), (read, "nfr")):
        assert [_outcome(r, prefix) for r in results] == \
            [_outcome(r, "nfc") for r in by_collections]
    assert [r.success for r in read] == [False, True, False]
    refused = read[0].rejection
    assert refused is not None
    assert (refused.code, refused.actor, refused.fields) == ("INVALID_FIELD", Actor.ADMIN,
                                                             ("Titel",))


def test_status_is_read_with_a_doubling_wait(sandbox: Sandbox, client: SalesforceClient) -> None:
    sandbox.salesforce.bulk_in_progress_polls = 3
    try:
        results = client.bulk_upsert("Lead", [_lead("poll-1")], auto_assign=False)
    finally:
        sandbox.salesforce.bulk_in_progress_polls = 0
    assert results[0].success
    clock = client.policy.clock
    assert isinstance(clock, SandboxTime) and clock.slept == [1.0, 2.0, 4.0]


def test_an_upload_retried_after_a_failure_is_sent_whole(
        sandbox: Sandbox, client: SalesforceClient) -> None:
    sandbox.salesforce.faults.schedule(r"PUT .*/jobs/ingest/\w+/batches", Fault("503"))
    try:
        results = client.bulk_upsert("Lead", [_lead(f"rt-{n}") for n in range(30)],
                                     auto_assign=False)
    finally:
        sandbox.salesforce.faults.clear()
    assert all(r.success and r.created for r in results)
    keys = [r["Handshake_Id__c"] for r in sandbox.salesforce.state.records("Lead")]
    assert sorted(k for k in keys if str(k).startswith("rt-")) == sorted(f"rt-{n}"
                                                                        for n in range(30))


def test_an_upload_received_twice_goes_into_a_new_job(
        sandbox: Sandbox, client: SalesforceClient, monkeypatch: pytest.MonkeyPatch) -> None:
    send = client.rest_call
    doubled: list[str] = []

    def twice(kind: str, what: str, method: str, path: str, **kwargs: Any) -> Any:
        answer = send(kind, what, method, path, **kwargs)
        if method == "PUT" and not doubled:  # as if the first answer was lost and re-sent
            doubled.append(path)
            answer = send(kind, what, method, path, **kwargs)
        return answer

    monkeypatch.setattr(client, "rest_call", twice)
    results = client.bulk_upsert("Lead", [_lead("tw-1"), _lead("tw-2")], auto_assign=False)
    assert all(r.success and r.created for r in results)
    jobs = sandbox.salesforce.bulk.jobs()
    assert [j.state for j in jobs[-2:]] == ["Aborted", "JobComplete"]
    keys = [r["Handshake_Id__c"] for r in sandbox.salesforce.state.records("Lead")]
    assert sorted(k for k in keys if str(k).startswith("tw-")) == ["tw-1", "tw-2"]


def test_records_past_the_batch_allocation_come_back_retriable(
        sandbox: Sandbox, client: SalesforceClient, monkeypatch: pytest.MonkeyPatch) -> None:
    bulk = sandbox.salesforce.bulk
    monkeypatch.setattr(sandbox_settings, "BULK_BATCH_RECORDS", 2)
    monkeypatch.setattr(bulk, "batch_allocation", bulk.batches_used() + 1)
    results = client.bulk_upsert("Lead", [_lead(f"bq-{n}") for n in range(3)],
                                 auto_assign=False)
    assert [r.success for r in results] == [True, True, False]
    left = results[2].rejection
    assert left is not None
    assert (left.code, left.actor, left.retriable) == ("BULK_RECORD_UNPROCESSED", Actor.WAIT, True)
    assert "ExceededQuota" in left.message


def test_csv_values_and_result_errors() -> None:
    assert [csv_value(v) for v in (None, "", True, 12, "a,b")] == ["#N/A", "#N/A", "true", "12",
                                                                   "a,b"]
    assert parse_result_error(
        "REQUIRED_FIELD_MISSING:Required fields are missing: [LastName, Company]:"
        "LastName,Company -- INVALID_EMAIL_ADDRESS:Email: invalid email address: x y:Email --"
    ) == [
        {"statusCode": "REQUIRED_FIELD_MISSING",
         "message": "Required fields are missing: [LastName, Company]",
         "fields": ["LastName", "Company"]},
        {"statusCode": "INVALID_EMAIL_ADDRESS", "message": "Email: invalid email address: x y",
         "fields": ["Email"]},
    ]
    assert parse_result_error("DUPLICATES_DETECTED:Use one of these records?: --") == [
        {"statusCode": "DUPLICATES_DETECTED", "message": "Use one of these records?",
         "fields": []}]
