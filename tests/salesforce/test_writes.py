"""sObject Collections writes: upsert by external id with created/updated flags (200 a
collection, 5 collections a composite call), create and update, headers, and each refused
record classified while the others succeed."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest

from connector.errors import Actor, RequestFailed
from connector.salesforce import SalesforceClient, SalesforceRecordRejected
from connector.sandbox import Fault, Sandbox

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
        "Company": "Writes Inc",
        "Email": f"{key}@writes.test",
        **fields,
    }


def test_upsert_of_450_leads_takes_1_call_with_created_then_updated_flags(
    sandbox: Sandbox, client: SalesforceClient
) -> None:
    records = [_lead(f"up-{n:03d}") for n in range(450)]
    usage = sandbox.salesforce.api_usage()
    first = client.upsert("Lead", records)
    # three collections of 200, 200 and 50 in one composite call: one API call
    assert client.write_calls == 1 == math.ceil(len(records) / 1000)
    assert sandbox.salesforce.api_usage() == usage + 1
    assert [r.index for r in first] == list(range(450))
    assert [r.key for r in first] == [r["Handshake_Id__c"] for r in records]
    assert all(r.success and r.created is True and r.rejection is None for r in first)
    assert len({r.id for r in first}) == 450
    stored = {
        x["Handshake_Id__c"]: x
        for x in sandbox.salesforce.state.records("Lead")
        if str(x.get("Handshake_Id__c") or "").startswith("up-")
    }
    assert {r.key: r.id for r in first} == {k: v["Id"] for k, v in stored.items()}

    again = client.upsert("Lead", [{**r, "Title": "Director"} for r in records])
    assert client.write_calls == 2
    assert all(r.success and r.created is False for r in again)
    assert [r.id for r in again] == [r.id for r in first]
    titles = {
        x["Title"]
        for x in sandbox.salesforce.state.records("Lead")
        if str(x.get("Handshake_Id__c") or "").startswith("up-")
    }
    assert titles == {"Director"}


def test_upsert_batches_yield_one_list_per_collection(client: SalesforceClient) -> None:
    records = [_lead(f"bt-{n:04d}") for n in range(1201)]
    sizes, calls = [], []
    for batch in client.upsert_batches("Lead", records):
        sizes.append(len(batch))
        calls.append(client.write_calls)  # yielded before the next call is made
    assert sizes == [200] * 6 + [1]
    assert calls == [1] * 5 + [2] * 2  # 1,000 records a composite call


def test_refused_records_are_classified_while_the_others_succeed(
    sandbox: Sandbox, client: SalesforceClient
) -> None:
    state = sandbox.salesforce.state
    contact = state.load_record("Contact", {"LastName": "Dup", "Email": "dup@writes.test"})
    lead = state.load_record(
        "Lead", {"LastName": "Dup", "Company": "D", "Email": "dup@writes.test"}
    )
    records = [
        _lead("cls-ok-1"),
        _lead("cls-missing", LastName=None, Company=""),
        _lead("cls-long", Company="C" * 300),
        _lead("cls-email", Email="not an email"),
        _lead("cls-picklist", Status="Bogus Status"),
        _lead("cls-dup", Email="DUP@writes.test"),
        _lead("cls-inactive", OwnerId=INACTIVE_REP),
        _lead("cls-ok-2"),
    ]
    results = client.upsert("Lead", records, auto_assign=False)
    assert client.write_calls == 1
    by_key = {r.key: r for r in results}
    assert [r.key for r in results if r.success] == ["cls-ok-1", "cls-ok-2"]
    assert all(r.created for r in results if r.success)

    def rejected(key: str) -> SalesforceRecordRejected:
        rejection = by_key[key].rejection
        assert rejection is not None and not by_key[key].success
        return rejection

    missing = rejected("cls-missing")
    assert (missing.code, missing.actor) == ("REQUIRED_FIELD_MISSING", Actor.DATA)
    assert set(missing.fields) == {"LastName", "Company"}
    long = rejected("cls-long")
    assert (long.code, long.actor, long.fields) == ("STRING_TOO_LONG", Actor.ADMIN, ("Company",))
    assert "truncate" in long.fix
    email = rejected("cls-email")
    assert (email.code, email.actor, email.fields) == (
        "INVALID_EMAIL_ADDRESS",
        Actor.DATA,
        ("Email",),
    )
    picklist = rejected("cls-picklist")
    assert (picklist.code, picklist.actor, picklist.fields) == (
        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
        Actor.ADMIN,
        ("Status",),
    )
    dup = rejected("cls-dup")
    assert (dup.code, dup.actor) == ("DUPLICATES_DETECTED", Actor.DATA)
    assert {(d.sobject, d.id) for d in by_key["cls-dup"].duplicates} == {
        ("Lead", lead),
        ("Contact", contact),
    }
    inactive = rejected("cls-inactive")
    assert (inactive.code, inactive.actor) == ("INACTIVE_OWNER_OR_USER", Actor.ADMIN)
    for r in results:
        if r.rejection is not None:
            assert r.rejection.record_key == r.key
            assert r.key in str(r.rejection) and " — fix: " in str(r.rejection)
            assert r.rejection.system == "salesforce"
            assert r.rejection.details["codes"] == [e.code for e in r.rejection.errors]
    keys = {x.get("Handshake_Id__c") for x in sandbox.salesforce.state.records("Lead")}
    assert {"cls-ok-1", "cls-ok-2"} <= keys
    assert not {k for k in keys if k and k.startswith("cls-") and "ok" not in k}


def test_allow_duplicates_saves_past_the_duplicate_rule(
    sandbox: Sandbox, client: SalesforceClient
) -> None:
    sandbox.salesforce.state.load_record(
        "Contact", {"LastName": "Twin", "Email": "twin@writes.test"}
    )
    refused = client.upsert("Lead", [_lead("twin-1", Email="twin@writes.test")])
    assert refused[0].rejection is not None and refused[0].duplicates
    saved = client.upsert(
        "Lead", [_lead("twin-1", Email="twin@writes.test")], allow_duplicates=True
    )
    assert saved[0].success and saved[0].created


def test_auto_assign_false_keeps_handshake_owners(
    sandbox: Sandbox, client: SalesforceClient
) -> None:
    kept = client.upsert(
        "Lead", [_lead("own-1", Country="US", OwnerId=EMEA_REP)], auto_assign=False
    )
    ruled = client.upsert("Lead", [_lead("own-2", Country="Germany", OwnerId=NA_REP)])
    state = sandbox.salesforce.state
    assert state.get("Lead", kept[0].id or "")["OwnerId"] == EMEA_REP
    # without the header the org's assignment rule decides: Germany goes to an EMEA rep
    owner = state.get("Lead", ruled[0].id or "")["OwnerId"]
    assert owner != NA_REP
    assert state.get("User", owner)["Territory__c"].startswith("EMEA")


def test_tasks_are_created_and_leads_updated_through_collections(
    sandbox: Sandbox, client: SalesforceClient
) -> None:
    [lead] = client.upsert("Lead", [_lead("task-1")])
    assert lead.id is not None
    tasks = [
        {
            "WhoId": lead.id,
            "Subject": f"Handshake: step {n}",
            "ActivityDate": "2026-11-03",
            "Status": "Not Started",
            "OwnerId": NA_REP,
        }
        for n in range(3)
    ]
    tasks.append({**tasks[0], "WhoId": "00Qnotanid"})
    created = client.create("Task", tasks)
    assert [r.success for r in created] == [True, True, True, False]
    assert all(r.id and r.id.startswith("00T") for r in created[:3])
    bad = created[3].rejection
    assert bad is not None and (bad.code, bad.actor) == ("MALFORMED_ID", Actor.DATA)
    stored = [t for t in sandbox.salesforce.state.records("Task") if t["WhoId"] == lead.id]
    assert sorted(t["Subject"] for t in stored) == [f"Handshake: step {n}" for n in range(3)]

    updated = client.update("Lead", [{"Id": lead.id, "Title": "VP"}], auto_assign=False)
    assert updated[0].success and updated[0].key == lead.id
    assert sandbox.salesforce.state.get("Lead", lead.id)["Title"] == "VP"
    assert client.write_calls == 3


def test_a_converted_lead_cannot_be_updated_and_says_so(
    sandbox: Sandbox, client: SalesforceClient
) -> None:
    [lead] = client.upsert("Lead", [_lead("conv-1")])
    assert lead.id is not None
    sandbox.salesforce.state.convert_lead(lead.id, create_opportunity=False)
    [result] = client.update("Lead", [{"Id": lead.id, "Title": "late"}])
    assert result.rejection is not None
    assert result.rejection.code == "CANNOT_UPDATE_CONVERTED_LEAD"
    assert "re-match" in result.rejection.fix


def test_throttled_and_failed_calls_are_retried_under_the_policy(
    sandbox: Sandbox, client: SalesforceClient
) -> None:
    sandbox.salesforce.faults.schedule(
        r"PATCH /services/data/v62\.0/composite/sobjects/Lead/Handshake_Id__c",
        Fault("503"),
        Fault("429"),
    )
    try:
        results = client.upsert("Lead", [_lead("retry-1"), _lead("retry-2")])
    finally:
        sandbox.salesforce.faults.clear()
    assert [r.success for r in results] == [True, True]
    assert client.write_calls == 1  # one logical call, sent three times
    clock = client.policy.clock
    assert isinstance(clock, SandboxTime) and len(clock.slept) == 2  # two back-offs
    stored = [
        x
        for x in sandbox.salesforce.state.records("Lead")
        if x.get("Handshake_Id__c") in ("retry-1", "retry-2")
    ]
    assert len(stored) == 2


def test_a_refused_call_raises_the_policy_error_without_the_session(
    client: SalesforceClient,
) -> None:
    with pytest.raises(RequestFailed) as err:
        client.upsert("Lead", [_lead("bad-field")], external_id_field="LastName")
    text = f"{err.value} {err.value.body}"
    assert "INVALID_FIELD" in text and err.value.status == 400
    assert client.sf.session_id not in text


def test_a_connection_dropped_mid_body_is_retried(
    sandbox: Sandbox, client: SalesforceClient
) -> None:
    sandbox.salesforce.faults.schedule(r"GET /services/data/v62\.0/query", Fault("drop"))
    sandbox.salesforce.faults.schedule(
        r"PATCH /services/data/v62\.0/composite/sobjects/Lead/Handshake_Id__c", Fault("drop")
    )
    try:
        found = client.match_emails(["drop-1@writes.test"])
        results = client.upsert("Lead", [_lead("drop-1")])
    finally:
        sandbox.salesforce.faults.clear()
    assert not found.open_leads and not found.contacts
    assert results[0].success and results[0].created
    assert client.calls == 3
    clock = client.policy.clock
    assert isinstance(clock, SandboxTime) and len(clock.slept) == 2


def test_a_record_naming_a_field_the_describe_lacks_is_refused_alone(
    sandbox: Sandbox, client: SalesforceClient
) -> None:
    # Salesforce refuses a whole collection call over one unknown column; once the describe
    # is read, the client refuses that record itself and sends the others.
    client.fields("Lead")
    records = [_lead("col-ok-1"), _lead("col-typo", MobilPhone="+1 415 555 0100"),
               _lead("col-ok-2")]
    results = client.upsert("Lead", records, auto_assign=False)
    assert client.write_calls == 1
    assert [r.success for r in results] == [True, False, True]
    typo = results[1].rejection
    assert typo is not None and (typo.code, typo.actor, typo.fields) == (
        "INVALID_FIELD", Actor.ADMIN, ("MobilPhone",))
    assert "No such column 'MobilPhone' on sobject of type Lead" in str(typo)
    keys = {x.get("Handshake_Id__c") for x in sandbox.salesforce.state.records("Lead")}
    assert {"col-ok-1", "col-ok-2"} <= keys and "col-typo" not in keys
    only_bad = client.upsert("Lead", [_lead("col-typo", MobilPhone="1")], auto_assign=False)
    assert client.write_calls == 1 and only_bad[0].rejection is not None  # nothing was sent
