"""The streams on their own, against a scripted Salesforce: pages stored as they come, a stop
between pages keeping what came before, the bookmark committed with the last page, the
vocabulary read from the org only when a change needs it, echoes kept out."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from connector.clock import FrozenClock
from connector.control import clear_stop, request_stop
from connector.errors import StopRequested
from connector.pullback import PullbackContext, bookmark_name, pull_back
from connector.pullback.ports import ChangePage, ChangeQuery, Deleted, DeletedCheck
from connector.store import Store

AT = datetime(2026, 11, 2, 9, tzinfo=UTC)
HANDSHAKE = "005000000000001AAA"
REP = "005000000000002AAA"
LEAD = "00Q000000000001AAA"


@dataclass(frozen=True)
class Vocabulary:
    converted_statuses: frozenset[str] = frozenset({"Qualified"})
    closed_stages: frozenset[str] = frozenset({"Signed", "Gone"})
    won_stages: frozenset[str] = frozenset({"Signed"})
    closed_task_statuses: frozenset[str] = frozenset({"Done", "Skipped"})
    lead_statuses: frozenset[str] = frozenset({"New", "Working", "Qualified"})
    stages: frozenset[str] = frozenset({"Talking", "Signed", "Gone"})
    task_statuses: frozenset[str] = frozenset({"Open", "Done", "Skipped"})


@dataclass
class ScriptedReads:
    """Each call answers the next page of every query waiting (5 at most), as composite calls
    do; deleted checks answer that nothing was deleted."""

    org: ScriptedOrg
    waiting: list[tuple[ChangeQuery, int]] = field(default_factory=list)
    checks: list[DeletedCheck] = field(default_factory=list)

    @property
    def pending(self) -> bool:
        return bool(self.waiting or self.checks)

    def add(self, query: ChangeQuery) -> None:
        self.org.asked.append((query.sobject, query.since))
        self.waiting.append((query, 0))

    def check_deleted(self, check: DeletedCheck) -> None:
        self.checks.append(check)

    def call(self) -> Iterator[ChangePage | Deleted]:
        self.org.calls += 1
        now, self.waiting = self.waiting[:5], self.waiting[5:]
        checks, self.checks = self.checks, []
        yield from (Deleted(c.sobject) for c in checks)
        for query, n in now:
            pages = self.org.pages.get(query.sobject, [[]])
            if self.org.stop_after is not None and query.sobject == "Task" \
                    and n == self.org.stop_after:
                request_stop()
            last = n + 1 >= len(pages)
            if not last:
                self.waiting.append((query, n + 1))
            yield ChangePage(query.tag, [r for r in pages[n] if _wanted(query, r)], last)


def _wanted(query: ChangeQuery, row: dict[str, Any]) -> bool:
    if any(row.get(k) in query.ids for k in query.keys):
        return row.get("SystemModstamp", "") >= _soql(query.ids_since)
    return query.since is not None and row.get("SystemModstamp", "") >= _soql(query.since)


@dataclass
class ScriptedOrg:
    """Answers reads from scripted pages per object; stops after `stop_after` pages of Tasks
    when asked; counts what it was asked."""

    pages: dict[str, list[list[dict[str, Any]]]]
    stop_after: int | None = None
    user_id: str | None = HANDSHAKE
    calls: int = 0
    vocabulary_reads: int = 0
    asked: list[tuple[str, datetime | None]] = field(default_factory=list)

    def sales_vocabulary(self) -> Vocabulary:
        self.vocabulary_reads += 1
        self.calls += 1
        return Vocabulary()

    def forget_vocabulary(self) -> None:
        pass

    def reads(self) -> ScriptedReads:
        return ScriptedReads(self)


def _soql(since: datetime | None) -> str:
    return "" if since is None else since.strftime("%Y-%m-%dT%H:%M:%S")


def _time(minutes: int) -> str:
    return (AT + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def task(n: int, *, status: str = "Done", by: str = REP, minutes: int | None = None) -> dict[
        str, Any]:
    when = _time(n if minutes is None else minutes)
    return {"Id": f"00T0000000000{n:02d}AAA", "WhoId": LEAD, "Status": status,
            "TaskSubtype": "Call", "CallDisposition": "Connected", "OwnerId": REP,
            "CompletedDateTime": when, "LastModifiedDate": when, "SystemModstamp": when,
            "CreatedById": by, "LastModifiedById": by, "IsDeleted": False}


def lead(minutes: int, status: str, *, by: str = REP) -> dict[str, Any]:
    return {"Id": LEAD, "Status": status, "OwnerId": REP, "IsConverted": False,
            "LastModifiedDate": _time(minutes), "SystemModstamp": _time(minutes),
            "LastModifiedById": by}


@pytest.fixture(autouse=True)
def _no_stop() -> Iterator[None]:
    clear_stop()
    yield
    clear_stop()


def context(store: Store, org: ScriptedOrg) -> PullbackContext:
    store.clock = FrozenClock(AT - timedelta(hours=1))  # the hand-offs before the changes
    return PullbackContext(store=store, sf=org, clock=FrozenClock(AT + timedelta(days=1)))  # type: ignore[arg-type]


def test_a_stop_between_pages_keeps_the_pages_before_and_not_the_bookmark(store: Store) -> None:
    store.link("101", "Lead", LEAD)
    pages = [[task(1), task(2)], [task(3)], [task(4, status="Open")]]
    org = ScriptedOrg({"Lead": [[lead(0, "New", by=HANDSHAKE)]], "Task": pages}, stop_after=1)
    with pytest.raises(StopRequested):
        pull_back(context(store, org))
    assert [o.source_id for o in store.outcomes()] == [task(1)["Id"], task(2)["Id"]]
    assert store.get_bookmark(bookmark_name("Task")) is None
    clear_stop()
    org = ScriptedOrg({"Task": pages})
    pull_back(context(store, org))
    assert [o.source_id for o in store.outcomes()] == [task(n)["Id"] for n in (1, 2, 3)]
    assert store.get_bookmark(bookmark_name("Task")) == (AT + timedelta(minutes=4)).isoformat()


def test_status_changes_by_people_are_outcomes_handshake_writes_are_not(store: Store) -> None:
    store.link("101", "Lead", LEAD)
    pull_back(context(store, ScriptedOrg({"Lead": [[lead(0, "New", by=HANDSHAKE)]]})))
    org = ScriptedOrg({"Lead": [[lead(5, "Working")]],
                       "Task": [[task(6), task(7, by=HANDSHAKE)]]})
    ctx = context(store, org)
    pull_back(ctx)
    org = ScriptedOrg({"Lead": [[lead(9, "New", by=HANDSHAKE)]]})
    pull_back(context(store, org))
    kinds = [(o.kind, o.status) for o in store.outcomes()]
    assert kinds == [("status", "Working"), ("attempt", "Done")]
    assert store.handoff_states()["101"].status == "New"
    assert store.handoff_states()["101"].last_touch_at == AT + timedelta(minutes=6)


def test_nothing_changed_reads_no_vocabulary_and_only_from_the_bookmark(store: Store) -> None:
    store.link("101", "Lead", LEAD)
    script = {"Lead": [[lead(0, "New", by=HANDSHAKE), lead(5, "Working")]],
              "Task": [[task(6)]]}
    pull_back(context(store, ScriptedOrg(script)))
    again = ScriptedOrg(script)
    ctx = context(store, again)
    pull_back(ctx)
    assert again.vocabulary_reads == 0  # rows of the lookback only: already applied
    assert sum(v for k, v in ctx.counts.items() if k.endswith(".outcomes")) == 0
    lookback = timedelta(minutes=10)
    assert ("Lead", AT + timedelta(minutes=5) - lookback) in again.asked
    assert ("Task", AT + timedelta(minutes=6) - lookback) in again.asked
    assert again.calls == 1  # every object's query in one call


def test_a_conversion_brings_its_contact_and_opportunity_into_the_same_run(store: Store) -> None:
    store.link("101", "Lead", LEAD)
    store.link("202", "Contact", "003000000000009AAA", how="matched")
    pull_back(context(store, ScriptedOrg({"Lead": [[lead(0, "New", by=HANDSHAKE)]]})))
    converted = {**lead(5, "Qualified"), "IsConverted": True,
                 "ConvertedContactId": "003000000000001AAA",
                 "ConvertedAccountId": "001000000000001AAA",
                 "ConvertedOpportunityId": "006000000000001AAA", "ConvertedDate": "2026-11-02"}
    opportunity = {"Id": "006000000000001AAA", "StageName": "Signed", "Amount": 1200,
                   "CloseDate": "2026-11-03", "OwnerId": REP, "LastModifiedById": REP,
                   "LastModifiedDate": _time(8), "SystemModstamp": _time(8)}
    on_opportunity = {**task(9), "WhoId": None, "WhatId": "006000000000001AAA"}
    on_contact = {**task(10), "WhoId": "003000000000009AAA"}
    org = ScriptedOrg({"Lead": [[converted]], "Opportunity": [[opportunity]],
                       "Task": [[on_opportunity, on_contact]]})
    pull_back(context(store, org))
    outcomes = {(o.hubspot_id, o.kind, o.sf_id) for o in store.outcomes()}
    assert outcomes == {("101", "converted", LEAD), ("101", "won", "006000000000001AAA"),
                        ("101", "attempt", on_opportunity["Id"]),
                        ("202", "attempt", on_contact["Id"])}
    # the conversion says the status it came from (what the SLA reads as the status at the
    # hand-off when the conversion is the first change after it)
    assert [o.details["from"] for o in store.outcomes(kind="converted")] == ["New"]
    state = store.handoff_states()["101"]
    assert (state.is_converted, state.stage, state.is_won, state.amount) == (
        True, "Signed", True, 1200.0)
    # the run's Opportunity and Task queries, read after the Lead's rows, have what the
    # conversion made: no second call for them
    assert org.calls - org.vocabulary_reads == 1


def test_the_vocabulary_is_kept_and_read_again_only_for_a_value_it_lacks(store: Store) -> None:
    store.link("101", "Lead", LEAD)
    pull_back(context(store, ScriptedOrg({"Lead": [[lead(0, "New", by=HANDSHAKE)]]})))
    first = ScriptedOrg({"Task": [[task(1)]]})
    pull_back(context(store, first))
    assert first.vocabulary_reads == 1  # a change needs it: read, and kept in the store
    again = ScriptedOrg({"Task": [[task(2, status="Skipped")]]})
    pull_back(context(store, again))
    assert again.vocabulary_reads == 0
    odd = ScriptedOrg({"Task": [[task(3, status="Parked")], [task(4, status="Parked")]]})
    pull_back(context(store, odd))
    assert odd.vocabulary_reads == 1  # once a run, however many rows carry it
    later = ScriptedOrg({"Task": [[task(5, status="Parked")]]})
    pull_back(context(store, later))
    assert later.vocabulary_reads == 0  # the org does not list it: remembered as unknown
    assert [o.source_id for o in store.outcomes()] == [task(1)["Id"], task(2)["Id"]]


def test_a_conversion_on_a_later_lead_page_is_read_by_id(store: Store) -> None:
    store.link("101", "Lead", LEAD)
    store.link("303", "Lead", "00Q000000000003AAA")
    pull_back(context(store, ScriptedOrg({"Lead": [[lead(0, "New", by=HANDSHAKE)]]})))
    other = {**lead(4, "Working"), "Id": "00Q000000000003AAA"}
    converted = {**lead(5, "Qualified"), "IsConverted": True,
                 "ConvertedContactId": "003000000000001AAA",
                 "ConvertedOpportunityId": "006000000000001AAA", "ConvertedDate": "2026-11-02"}
    opportunity = {"Id": "006000000000001AAA", "StageName": "Signed", "Amount": 10,
                   "CloseDate": "2026-11-03", "OwnerId": REP, "LastModifiedById": REP,
                   "LastModifiedDate": _time(8), "SystemModstamp": _time(8)}
    # the Opportunity's page is applied before the Lead's second page names it
    org = ScriptedOrg({"Lead": [[other], [converted]], "Opportunity": [[opportunity]]})
    pull_back(context(store, org))
    assert ("Opportunity", None) in org.asked  # read again, by id, whole
    assert {(o.kind, o.sf_id) for o in store.outcomes()} >= {
        ("converted", LEAD), ("won", "006000000000001AAA")}
