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
