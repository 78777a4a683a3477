"""The SOQL engine on its own: grammar, literals, filters, ordering, errors."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from connector.sandbox.base import SandboxClock
from connector.sandbox.salesforce import RequestError, SalesforceState, soql

from .sf_fixtures import START


@pytest.fixture
def state() -> SalesforceState:
    clock = SandboxClock(START, frozen=True)
    org = SalesforceState(clock)
    rows = [
        ("Ann", "Alpha", "ann@a.test", 10, "US"),
        ("Bob", "Beta", "bob@b.test", None, "UK"),
        ("Cy", "O'Hara", "cy@c.test", 250, None),
        ("Di", "Delta_1", None, 40, "US"),
    ]
    for first, last, email, employees, country in rows:
        org.insert(
            "Lead",
            {
                "FirstName": first,
                "LastName": last,
                "Company": f"{last} Co",
                "Email": email,
                "NumberOfEmployees": employees,
                "Country": country,
            },
        )
        clock.advance(timedelta(days=1))
    return org


def _run(state: SalesforceState, text: str, deleted: bool = False) -> list[Any]:
    _, rows = soql.execute(state, soql.parse(text), include_deleted=deleted)
    return rows


def _names(state: SalesforceState, where: str, order: str = "ORDER BY FirstName") -> list[str]:
    return [
        r["FirstName"] for r in _run(state, f"SELECT FirstName FROM Lead WHERE {where} {order}")
    ]


def test_comparisons_and_boolean_logic(state: SalesforceState) -> None:
    assert _names(state, "NumberOfEmployees > 10") == ["Cy", "Di"]
    assert _names(state, "NumberOfEmployees >= 10 AND NumberOfEmployees <= 40") == ["Ann", "Di"]
    assert _names(state, "NumberOfEmployees < 40") == ["Ann"]  # null never compares
    assert _names(state, "Country = 'us' OR Country = 'UK'") == ["Ann", "Bob", "Di"]
    assert _names(state, "NOT Country = 'US'") == ["Bob", "Cy"]
    assert _names(state, "(Country = 'US' OR Email = null) AND NOT (FirstName = 'Ann')") == ["Di"]
    assert _names(state, "Country != 'US'") == ["Bob", "Cy"]
    assert _names(state, "Country <> null") == ["Ann", "Bob", "Di"]


def test_in_not_in_like_and_escapes(state: SalesforceState) -> None:
    assert _names(state, "FirstName IN ('Ann', 'Cy')") == ["Ann", "Cy"]
    assert _names(state, "FirstName NOT IN ('Ann', 'Cy')") == ["Bob", "Di"]
    assert _names(state, "LastName = 'O\\'Hara'") == ["Cy"]
    assert _names(state, "Email LIKE '%.test' AND LastName LIKE '_e%'") == ["Bob"]
    assert _names(state, "LastName LIKE 'delta\\_%'") == ["Di"]
    assert _names(state, "LastName LIKE 'Delta_'") == []  # "_" is one character only


def test_dates_datetimes_and_relative_literals(state: SalesforceState) -> None:
    assert _names(state, "CreatedDate >= 2026-03-03T09:00:00Z") == ["Bob", "Cy", "Di"]
    assert _names(state, "CreatedDate > 2026-03-03T10:00:00+02:00") == ["Bob", "Cy", "Di"]
    assert _names(state, "CreatedDate < 2026-03-03T04:00:00-05:00") == ["Ann"]
    # created 2026-03-02..05 at 09:00 UTC; the clock is now 2026-03-06 09:00 UTC
    assert _names(state, "CreatedDate = TODAY") == []
    assert _names(state, "CreatedDate = YESTERDAY") == ["Di"]
    assert _names(state, "CreatedDate = LAST_N_DAYS:2") == ["Cy", "Di"]
    assert _names(state, "CreatedDate = N_DAYS_AGO:3") == ["Bob"]
    assert _names(state, "CreatedDate < YESTERDAY") == ["Ann", "Bob", "Cy"]


def test_order_limit_offset_nulls(state: SalesforceState) -> None:
    base = "SELECT FirstName FROM Lead ORDER BY NumberOfEmployees"
    assert [r["FirstName"] for r in _run(state, base)] == ["Bob", "Ann", "Di", "Cy"]
    assert [r["FirstName"] for r in _run(state, base + " DESC")] == ["Cy", "Di", "Ann", "Bob"]
    assert [r["FirstName"] for r in _run(state, base + " ASC NULLS LAST")] == [
        "Ann",
        "Di",
        "Cy",
        "Bob",
    ]
    assert [r["FirstName"] for r in _run(state, base + " DESC NULLS FIRST LIMIT 2 OFFSET 1")] == [
        "Cy",
        "Di",
    ]
    two_keys = "SELECT FirstName FROM Lead ORDER BY Country DESC, FirstName DESC"
    assert [r["FirstName"] for r in _run(state, two_keys)] == ["Di", "Ann", "Bob", "Cy"]


def test_count_and_query_all(state: SalesforceState) -> None:
    lead = state.find("Lead", FirstName="Ann")[0]["Id"]
    state.delete("Lead", lead)
    assert soql.execute(state, soql.parse("SELECT COUNT() FROM Lead"), include_deleted=False) == (
        3,
        [],
    )
    assert soql.execute(state, soql.parse("select count() from lead"), include_deleted=True) == (
        4,
        [],
    )
    assert _names(state, "IsDeleted = true", "") == []
    assert [
        r["Id"] for r in _run(state, "SELECT Id FROM Lead WHERE IsDeleted = true", deleted=True)
    ] == [lead]


def test_field_names_are_case_insensitive_and_canonical(state: SalesforceState) -> None:
    row = _run(state, "select firstname, owner.name from LEAD where firstname = 'ann'")[0]
    assert row["FirstName"] == "Ann" and row["Owner"]["Name"] == "Unassigned Leads"


@pytest.mark.parametrize(
    "text,code",
    [
        ("SELECT Id FROM Lead WHERE CreatedDate > 2026-03-01T00:00:00.000001Z", "MALFORMED_QUERY"),
        ("SELECT Id FROM Lead WHERE CreatedDate > 2026-03-01T00:00:00", "MALFORMED_QUERY"),
        ("SELECT Id FROM Lead WHERE CreatedDate > 2026-03-01", "INVALID_FIELD"),
        ("SELECT Id FROM Lead WHERE CreatedDate > '2026-03-01T00:00:00Z'", "INVALID_FIELD"),
        ("SELECT Id FROM Lead WHERE", "MALFORMED_QUERY"),
        ("SELECT FROM Lead", "MALFORMED_QUERY"),
        ("SELECT Id FROM Lead LIMIT ten", "MALFORMED_QUERY"),
        ("SELECT Id FROM Lead WHERE Name = 'x' extra", "MALFORMED_QUERY"),
        ("SELECT Id FROM Lead WHERE Name ~ 'x'", "MALFORMED_QUERY"),
        ("SELECT Shoe FROM Lead", "INVALID_FIELD"),
        ("SELECT Shoe.Name FROM Lead", "INVALID_FIELD"),
        ("SELECT Id FROM Lead WHERE CreatedDate = LAST_N_WEEKS:2", "MALFORMED_QUERY"),
        ("SELECT Id FROM Nothing", "INVALID_TYPE"),
    ],
)
def test_errors(text: str, code: str) -> None:
    with pytest.raises(RequestError) as info:
        soql.parse(text)
    assert info.value.code == code and info.value.status == 400


def test_polymorphic_lookups_read_through_the_name_object(state: SalesforceState) -> None:
    lead = state.find("Lead", FirstName="Ann")[0]["Id"]
    state.insert("Task", {"Subject": "Call", "WhoId": lead, "Status": "Completed"})
    row = _run(
        state,
        "SELECT Who.Name, Who.Type, Who.Email, Owner.Name FROM Task "
        "WHERE Who.Type = 'Lead' AND Who.Email LIKE 'ann%'",
    )[0]
    assert row["Who"]["attributes"]["type"] == "Name"
    assert row["Who"]["Type"] == "Lead" and row["Who"]["Name"] == "Ann Alpha"
    assert row["Who"]["Email"] == "ann@a.test"
    assert row["Owner"]["attributes"]["type"] == "User"  # Task.OwnerId: User only
    owner = _run(state, "SELECT Owner.Type FROM Lead WHERE FirstName = 'Ann'")[0]
    assert owner["Owner"] == {"attributes": owner["Owner"]["attributes"], "Type": "Group"}
    assert _run(state, "SELECT Id FROM Task WHERE Who.Type = 'Contact'") == []
    with pytest.raises(RequestError) as info:
        soql.parse("SELECT Who.Company FROM Task")  # not a Name field
    assert info.value.code == "INVALID_FIELD"


def test_count_grouped_by_a_field_answers_aggregate_results(state: SalesforceState) -> None:
    rows = {r["Country"]: r for r in _run(state, "SELECT Country, COUNT(Id) FROM Lead GROUP BY Country")}
    assert set(rows) == {"US", "UK", None}
    assert all(r["attributes"] == {"type": "AggregateResult"} for r in rows.values())
    assert {k: r["expr0"] for k, r in rows.items()} == {"US": 2, "UK": 1, None: 1}
    # COUNT(field) counts non-null values; an alias names the column
    assert _run(state, "SELECT COUNT(Email) n FROM Lead") == [
        {"attributes": {"type": "AggregateResult"}, "n": 3}]
    assert _run(state, "SELECT COUNT(Id) FROM Lead WHERE Country = 'US'")[0]["expr0"] == 2
    with pytest.raises(RequestError, match="grouped or aggregated"):
        soql.parse("SELECT Country, LastName, COUNT(Id) FROM Lead GROUP BY Country")


def test_stage_and_task_status_values_say_what_closes_and_wins(state: SalesforceState) -> None:
    stages = _run(state, "SELECT MasterLabel, IsClosed, IsWon FROM OpportunityStage "
                         "ORDER BY SortOrder")
    closed = {r["MasterLabel"]: r["IsWon"] for r in stages if r["IsClosed"]}
    assert closed == {"Closed Won": True, "Closed Lost": False}
    statuses = _run(state, "SELECT MasterLabel FROM TaskStatus WHERE IsClosed = true")
    assert [r["MasterLabel"] for r in statuses] == ["Completed"]
    # the records' own flags follow the value records, as the org derives them
    lead = state.records("Lead")[0]["Id"]
    task = state.insert("Task", {"WhoId": lead, "Subject": "Call", "Status": "Completed"})
    assert state.get("Task", task)["IsClosed"] is True
