"""What the pull-back reads: the org's status vocabularies, and records changed since a
bookmark, oldest first, by id or by WhoId/WhatId, archived and deleted activities through
queryAll, in as few calls as the URI limit allows."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from connector.salesforce import SalesforceClient
from connector.salesforce import settings as ss
from connector.salesforce.records import ChangePage, ChangeQuery, Deleted, DeletedCheck
from connector.sandbox import Sandbox

from .conftest import make_client


@pytest.fixture
def client(sandbox: Sandbox) -> Iterator[SalesforceClient]:
    with make_client(sandbox) as c:
        yield c


def test_vocabulary_is_read_from_the_org(sandbox: Sandbox, client: SalesforceClient) -> None:
    state = sandbox.salesforce.state
    # an org that renamed its won stage and added a second closed Task status
    state.set_value_record("OpportunityStage", "Closed Won",
                           {"MasterLabel": "Signed", "ApiName": "Signed"})
    state.set_value_record("TaskStatus", "Deferred", {"IsClosed": True})
    before = client.calls
    try:
        vocab = client.sales_vocabulary()
    finally:
        state.set_value_record("OpportunityStage", "Signed",
                               {"MasterLabel": "Closed Won", "ApiName": "Closed Won"})
        state.set_value_record("TaskStatus", "Deferred", {"IsClosed": False})
    assert vocab.won_stages == {"Signed"}
    assert vocab.closed_stages == {"Signed", "Closed Lost"}
    assert vocab.closed_task_statuses == {"Completed", "Deferred"}
    assert vocab.converted_statuses == {"Closed - Converted"}
    assert client.calls == before + 1  # the three value objects in one composite call
    assert {"Signed", "Closed Lost"} < vocab.stages and "Deferred" in vocab.task_statuses
    calls = client.calls
    client.sales_vocabulary()
    assert client.calls == calls  # read once per run


def test_changes_since_a_bookmark_oldest_first_deleted_through_query_all(
    sandbox: Sandbox, client: SalesforceClient
) -> None:
    state = sandbox.salesforce.state
    lead = state.insert("Lead", {"LastName": "Pb", "Company": "Pb Co", "Email": "pb@pb.test"})
    other = state.insert("Lead", {"LastName": "Px", "Company": "Px Co", "Email": "px@pb.test"})
    first = state.insert("Task", {"WhoId": lead, "Subject": "Call", "Status": "Completed"})
    sandbox.clock.advance(timedelta(minutes=5))
    bookmark = sandbox.clock.now()
    second = state.insert("Task", {"WhoId": lead, "Subject": "Email", "Status": "Completed"})
    state.insert("Task", {"WhoId": other, "Subject": "Call", "Status": "Completed"})
    sandbox.clock.advance(timedelta(minutes=1))
    gone = state.insert("Task", {"WhoId": lead, "Subject": "Call", "Status": "Completed"})
    state.delete("Task", gone)
    fields = ss.PULLBACK_FIELDS[ss.TASK]
    pages = list(client.modified_since(ss.TASK, fields, ids=[lead], keys=("WhoId", "WhatId"),
                                       since=bookmark, include_deleted=True))
    rows = [r for page in pages for r in page]
    assert [r["Id"] for r in rows] == [second, gone]
    assert [r["IsDeleted"] for r in rows] == [False, True]
    stamps = [r["SystemModstamp"] for r in rows]
    assert stamps == sorted(stamps)
    everything = [r["Id"] for page in client.modified_since(
        ss.TASK, fields, ids=[lead], keys=("WhoId", "WhatId"), since=None) for r in page]
    assert everything == [first, second]  # a plain query skips the deleted one


def test_many_ids_take_as_few_queries_as_the_uri_allows(
    sandbox: Sandbox, client: SalesforceClient
) -> None:
    ids = [f"00Q5g00000{n:08d}" for n in range(2000)]
    chunks = list(client._chunks("SELECT Id FROM Task WHERE ", ids, tail=" ORDER BY Id",
                                 repeats=2))
    assert sum(len(c) for c in chunks) == 2000
    assert 1 < len(chunks) < 12
    before = client.calls
    pages = list(client.modified_since(ss.LEAD, ("Id",), ids=ids, since=sandbox.clock.now()))
    assert pages and all(page == [] for page in pages)
    assert client.calls - before == len(pages) <= 6  # one query a chunk, nothing found


def test_reads_pack_into_the_fewest_composite_calls(
    sandbox: Sandbox, client: SalesforceClient
) -> None:
    state = sandbox.salesforce.state
    since = sandbox.clock.now()
    sandbox.clock.advance(timedelta(minutes=1))
    made = [state.insert("Lead", {"LastName": f"Many{n}", "Company": "Many Co"})
            for n in range(4100)]
    reads = client.reads()
    reads.add(ChangeQuery("Lead", ss.LEAD, ("Id",), since=since))  # 3 pages of 2,000
    for sobject in ("LeadStatus", "TaskStatus", "OpportunityStage", "User", "Event", "Task"):
        reads.add_soql(sobject, f"SELECT Id FROM {sobject}")
    reads.check_deleted(DeletedCheck(ss.LEAD, since - timedelta(hours=1),
                                     sandbox.clock.now()))
    before = client.calls
    answers: list[ChangePage | Deleted] = []
    while reads.pending:
        answers.extend(reads.call())
    # 9 query operations, 5 a call, the Lead's 3 pages one after another: 3 calls
    assert client.calls - before == reads.calls == 3
    assert reads.query_ops == 9
    lead_rows = [r["Id"] for a in answers if isinstance(a, ChangePage) and a.tag == "Lead"
                 for r in a.rows]
    assert len(lead_rows) == len(set(lead_rows)) and set(lead_rows) == set(made)
    assert [a.last for a in answers if isinstance(a, ChangePage) and a.tag == "Lead"] == [
        False, False, True]
    assert [a for a in answers if isinstance(a, Deleted)] == [
        Deleted(ss.LEAD, (), answers[0].latest_covered)]  # type: ignore[union-attr]
