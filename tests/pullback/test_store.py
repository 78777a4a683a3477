"""The pull-back's store: outcomes once each by source id, states replaced, the bookmark
committed in the same transaction as the page it covers."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from connector.errors import StoreError
from connector.store import Store

AT = datetime(2026, 11, 2, 9, tzinfo=UTC)


def outcome(source_id: str, kind: str = "attempt") -> dict[str, object]:
    return {"hubspot_id": "101", "sf_object": "Task", "sf_id": source_id[:18],
            "source_id": source_id, "kind": kind, "occurred_at": AT, "details": {}}


def state(status: str) -> dict[str, object]:
    return {"hubspot_id": "101", "lead_id": "00Q000000000001AAA", "status": status,
            "is_converted": False, "is_closed": False, "is_won": False, "lead_changed_at": AT}


def test_outcomes_are_stored_once_and_state_replaced(store: Store) -> None:
    added = store.record_pullback(outcomes=[outcome("00T1"), outcome("00T2")],
                                  states=[state("Working - Contacted")],
                                  stream="pullback.Task", bookmark="2026-11-02T09:00:00Z")
    assert added == 2
    again = store.record_pullback(outcomes=[outcome("00T2"), outcome("00T3")],
                                  states=[state("Closed - Not Converted")])
    assert again == 1
    assert [o.source_id for o in store.outcomes()] == ["00T1", "00T2", "00T3"]
    assert store.handoff_states()["101"].status == "Closed - Not Converted"
    assert store.get_bookmark("pullback.Task") == "2026-11-02T09:00:00Z"


def test_a_failed_page_leaves_neither_rows_nor_bookmark(store: Store) -> None:
    with pytest.raises(StoreError):
        store.record_pullback(outcomes=[outcome("00T9"), {**outcome("00TA"), "kind": None}],
                              states=[], stream="pullback.Task", bookmark="x")
    assert store.outcomes() == []
    assert store.get_bookmark("pullback.Task") is None


def test_a_state_given_in_part_changes_only_the_columns_given(store: Store) -> None:
    store.record_pullback(outcomes=[], states=[{**state("Working - Contacted"),
                                                "owner_id": "005A", "last_touch_at": AT}])
    # a state with fewer columns (a hand-off's first state, a merge's): the others stand,
    # as `Session.merge` of the mapping left them; a new hand-off gets the defaults
    store.record_pullback(outcomes=[], states=[
        {"hubspot_id": "101", "status": "Closed - Not Converted"},
        {"hubspot_id": "102", "lead_id": "00Q000000000002AAA"}])
    states = store.handoff_states()
    assert (states["101"].status, states["101"].owner_id, states["101"].last_touch_at,
            states["101"].lead_changed_at) == ("Closed - Not Converted", "005A", AT, AT)
    assert (states["102"].lead_id, states["102"].is_converted, states["102"].status) == (
        "00Q000000000002AAA", False, None)
    assert store.handoff_state_rows() == {
        h: {c: getattr(s, c) for c in store.handoff_state_rows()[h]} for h, s in states.items()}


def breach(key: str, met_at: datetime | None = None) -> dict[str, object]:
    return {"key": key, "kind": "first_touch", "hubspot_id": "101",
            "lead_id": "00Q000000000001AAA", "owner_id": "005A", "timer_id": None,
            "assigned_at": AT, "due_at": AT, "met_at": met_at, "found_at": AT}


def test_breaches_are_recorded_once_and_met_once(store: Store) -> None:
    assert store.record_sla_breaches([breach("a"), breach("b")]) == 2
    later = datetime(2026, 11, 3, 9, tzinfo=UTC)
    # again: nothing new; "a" met since (its met_at set once, never moved after)
    assert store.record_sla_breaches([breach("a", later), breach("b"), breach("c")]) == 1
    assert store.record_sla_breaches([breach("a", AT), breach("c", later)]) == 0
    assert store.sla_breach_marks() == {"a": later, "b": None, "c": later}
    assert store.sla_breach_marks(["101"]) == store.sla_breach_marks()
    assert store.sla_breach_marks(["999"]) == {}
