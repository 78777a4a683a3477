"""Writes of more than 200 records go as composite calls of up to 5 collections (1,000
records, one API call): the same results as 200-record collection calls, a subrequest refused
as a whole raises as its direct call would once the others' results are out, and a create's
lost part stops the call before any of its results."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from connector.errors import Actor, RequestFailed, RetriableError
from connector.salesforce import SalesforceClient, WriteResult
from connector.sandbox import Sandbox

from .conftest import START, make_client

NA_REP = "005Hs0000000001IAA"


def _sf(sb: Sandbox) -> Any:
    """The sandbox's Salesforce org (always served here)."""
    assert sb.salesforce is not None
    return sb.salesforce


def _fresh() -> Sandbox:
    return Sandbox(contacts=5, seed=7, start=START, frozen_clock=True)


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with _fresh() as sb:
        yield sb


@pytest.fixture
def client(sandbox: Sandbox) -> Iterator[SalesforceClient]:
    with make_client(sandbox) as c:
        yield c


def _lead(key: str, **fields: object) -> dict[str, object]:
    return {"Handshake_Id__c": key, "LastName": f"Last {key}", "Company": "Composite Inc",
            "Email": f"{key}@composite.test", **fields}


def _mixed(n: int) -> list[dict[str, object]]:
    """`n` Leads, every 37th refused by Salesforce for a reason of its own."""
    bad = [{"LastName": None, "Company": ""}, {"Company": "C" * 300}, {"Email": "not an email"},
           {"Status": "Bogus Status"}]
    return [_lead(f"mx-{i:04d}", **(bad[(i // 37) % 4] if i % 37 == 5 else {}))
            for i in range(n)]


def _seen(results: list[WriteResult]) -> list[tuple[Any, ...]]:
    """What a caller reads from the results (ids included: both orgs mint them alike)."""
    return [
        (r.index, r.key, r.id, r.success, r.created,
         None if r.rejection is None else (r.rejection.code, r.rejection.fields,
                                           r.rejection.actor, str(r.rejection)))
        for r in results
    ]


def _org(sb: Sandbox) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k != "attributes"}
            for r in _sf(sb).state.records("Lead")]


def test_results_and_org_are_those_of_200_record_collection_calls() -> None:
    records = _mixed(1150)
    with _fresh() as plain_sb, _fresh() as composite_sb:
        with make_client(plain_sb) as plain:
            by_200 = [r for start in range(0, len(records), 200)
                      for r in plain.upsert("Lead", records[start:start + 200],
                                            auto_assign=False)]
            assert plain.write_calls == 6
        with make_client(composite_sb) as composite:
            together = composite.upsert("Lead", records, auto_assign=False)
            assert composite.write_calls == 2  # 1,000 + 150 records
        # the plain calls number their results from 0 each: shift them to the input's index
        by_200 = [WriteResult(n, r.key, r.id, r.success, r.created, r.rejection)
                  for n, r in enumerate(by_200)]
        assert _seen(together) == _seen(by_200)
        assert sum(not r.success for r in together) == 31
        assert _org(composite_sb) == _org(plain_sb)
        # 5 collections in one composite call; the last 150 alone go as a plain collection
        stats = _sf(composite_sb).stats.snapshot()
        assert stats["subrequests_by_route"] == {
            "PATCH /services/data/vXX.X/composite/sobjects/{sobject}/{field} 200": 5}
        assert {k: v for k, v in stats["by_route"].items() if "composite" in k} == {
            "/services/data/vXX.X/composite": 1,
            "/services/data/vXX.X/composite/sobjects/{sobject}/{field}": 1}


def test_1001_creates_take_2_calls_and_headers_reach_every_collection(
    sandbox: Sandbox, client: SalesforceClient
) -> None:
    [lead] = client.upsert("Lead", [_lead("who-1")])
    usage = _sf(sandbox).api_usage()
    tasks = [{"WhoId": lead.id, "Subject": f"Step {n}", "OwnerId": NA_REP} for n in range(1001)]
    created = client.create("Task", tasks)
    assert client.write_calls == 3 and _sf(sandbox).api_usage() == usage + 2
    assert [r.index for r in created] == list(range(1001))
    assert all(r.success and r.id and r.id.startswith("00T") for r in created)
    stored = _sf(sandbox).state.records("Task")
    assert sorted(t["Subject"] for t in stored) == sorted(f"Step {n}" for n in range(1001))

    # Sforce-Auto-Assign: FALSE goes with each subrequest: Germany stays with the NA rep
    owned = client.upsert("Lead", [_lead(f"own-{n}", Country="Germany", OwnerId=NA_REP)
                                   for n in range(250)], auto_assign=False)
    assert {_sf(sandbox).state.get("Lead", r.id)["OwnerId"] for r in owned} == {NA_REP}
    # and allowSave=true saves past the duplicate rule in every collection
    twins = client.upsert("Lead", [_lead(f"twin-{n}", Email=f"own-{n}@composite.test")
                                   for n in range(250)], allow_duplicates=True)
    assert all(r.success and r.created for r in twins)


def test_a_collection_refused_as_a_whole_raises_as_its_direct_call_after_the_others(
    sandbox: Sandbox, client: SalesforceClient
) -> None:
    records = [_lead(f"ref-{n:03d}") for n in range(450)]
    records[250] = _lead("ref-250", NumberOfEmployees="many")  # fails its whole collection
    with pytest.raises(RequestFailed) as direct:
        client.upsert("Lead", records[200:400])
    yielded: list[int] = []
    with pytest.raises(RequestFailed) as composite:
        for batch in client.upsert_batches("Lead", records):
            yielded.extend(r.index for r in batch)
    assert yielded == [*range(200), *range(400, 450)]  # Salesforce applied those
    assert (composite.value.status, composite.value.body) == (direct.value.status,
                                                              direct.value.body)
    assert composite.value.status == 400 and "many" in str(composite.value.body)
    assert "subrequest batch1" in str(composite.value)
    keys = {r.get("Handshake_Id__c") for r in _sf(sandbox).state.records("Lead")}
    assert {f"ref-{n:03d}" for n in [*range(200), *range(400, 450)]} <= keys
    assert not {f"ref-{n:03d}" for n in range(200, 400)} & keys
    assert client.write_calls == 2


def _second_part_fails(client: SalesforceClient) -> Callable[..., Any]:
    """The composite answer as Salesforce would give it had batch1 failed with a 503 after
    being applied (the org did apply it)."""
    real = client.sf.restful

    def restful(path: str, *args: Any, **kwargs: Any) -> Any:
        answer = real(path, *args, **kwargs)
        if path == "composite":
            part = answer["compositeResponse"][1]
            part["httpStatusCode"] = 503
            part["body"] = [{"errorCode": "SERVER_UNAVAILABLE",
                             "message": "Server temporarily unavailable"}]
        return answer

    return restful


def test_a_retriable_part_of_an_upsert_is_sent_again_alone(
    sandbox: Sandbox, client: SalesforceClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(client.sf, "restful", _second_part_fails(client))
    results = client.upsert("Lead", [_lead(f"re-{n:03d}") for n in range(450)])
    assert client.write_calls == 2  # the composite call, then batch1 alone
    assert all(r.success for r in results) and [r.index for r in results] == list(range(450))
    assert [r.created for r in results[200:400]] == [False] * 200  # applied the first time
    keys = [r.get("Handshake_Id__c") for r in _sf(sandbox).state.records("Lead")]
    assert sorted(k for k in keys if k and k.startswith("re-")) == [
        f"re-{n:03d}" for n in range(450)]


def test_a_create_whose_part_may_have_been_applied_raises_before_any_result(
    sandbox: Sandbox, client: SalesforceClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    [lead] = client.upsert("Lead", [_lead("once-1")])
    monkeypatch.setattr(client.sf, "restful", _second_part_fails(client))
    tasks = [{"WhoId": lead.id, "Subject": f"Once {n}"} for n in range(450)]
    yielded: list[list[WriteResult]] = []
    with pytest.raises(RetriableError) as err:
        yielded.extend(client.create_batches("Task", tasks))
    assert yielded == []  # the caller reconciles the whole call
    assert "not sent again" in str(err.value) and err.value.actor is Actor.WAIT
    assert client.write_calls == 2  # the upsert and the one composite call: nothing re-sent
    assert len(_sf(sandbox).state.records("Task")) == 450


def test_a_record_naming_an_unknown_column_is_refused_alone_inside_a_composite(
    sandbox: Sandbox, client: SalesforceClient
) -> None:
    client.fields("Lead")
    records = [_lead(f"col-{n:03d}") for n in range(450)]
    records[300] = _lead("col-300", MobilPhone="+1 415 555 0100")
    results = client.upsert("Lead", records)
    assert client.write_calls == 1
    assert [n for n, r in enumerate(results) if not r.success] == [300]
    typo = results[300].rejection
    assert typo is not None and (typo.code, typo.fields) == ("INVALID_FIELD", ("MobilPhone",))


def test_large_records_close_a_composite_call_before_its_body_grows_too_big(
    sandbox: Sandbox, client: SalesforceClient
) -> None:
    [lead] = client.upsert("Lead", [_lead("big-1")])
    usage = _sf(sandbox).api_usage()
    # 400 Tasks with 8,000-character descriptions: two collections of about 1.6 MB each, over
    # the 3 MB a composite call is allowed to carry together
    tasks = [{"WhoId": lead.id, "Subject": f"Big {n}", "Description": "x" * 8000}
             for n in range(400)]
    created = client.create("Task", tasks)
    assert all(r.success for r in created) and len(created) == 400
    assert _sf(sandbox).api_usage() == usage + 2
    small = [{"WhoId": lead.id, "Subject": f"Small {n}"} for n in range(400)]
    client.create("Task", small)
    assert _sf(sandbox).api_usage() == usage + 3  # small records: one composite call
