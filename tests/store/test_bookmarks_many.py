"""Bookmarks set and deleted many at a time (the pull's markers), on each backend."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from connector.store import ActivityRecord, Store
from connector.store.models import sqlite_json_text, sqlite_utc_text


def test_many_bookmarks_in_one_call_the_last_value_of_a_stream_winning(store: Store) -> None:
    store.set_bookmark("contacts.modified", "old", run_id="r0")
    marks = [(f"page_views_due/{i}", "1") for i in range(1500)]
    marks += [("contacts.modified", "newer"), ("forms_due", "1"), ("contacts.modified", "newest")]
    store.set_bookmarks(marks, run_id="r1")
    stored = store.bookmarks()
    assert stored["contacts.modified"] == "newest"
    assert stored["forms_due"] == "1"
    assert len(store.bookmarks("page_views_due/")) == 1500
    store.set_bookmarks([])  # nothing to do


def test_many_bookmarks_deleted_in_one_call_commit_with_the_transaction(store: Store) -> None:
    store.set_bookmarks([(f"page_views_due/{i}", "1") for i in range(1200)] + [("keep", "x")])
    names = list(store.iter_bookmark_streams("page_views_due/"))
    with pytest.raises(RuntimeError), store.transaction() as s:
        store.delete_bookmarks(names, session=s)
        raise RuntimeError("crash before commit")
    assert len(store.bookmarks("page_views_due/")) == 1200
    with store.transaction() as s:
        store.delete_bookmarks([*names, "never-set"], session=s)
    assert store.bookmarks() == {"keep": "x"}
    store.delete_bookmark("keep")
    assert store.get_bookmark("keep") is None
    store.delete_bookmarks([])


def test_activities_stored_read_back_as_given(store: Store) -> None:
    when = datetime(2026, 10, 1, 12, 30, 5, 250000, tzinfo=UTC)
    acts = [
        ActivityRecord(contact_id="7", type="email_open", occurred_at=when, source="email_event",
                       source_id="e1", title="Hi", details={"browser": {"name": "x"}, "n": 2}),
        ActivityRecord(contact_id="7", type="page_view", occurred_at=when.replace(microsecond=0),
                       source="web_event", source_id="v1", url="https://x.test/a"),
    ]
    assert store.add_activities(acts) == 2
    assert store.add_activities(acts) == 0  # same sources and ids: not stored twice
    stored = store.activities_for("7")
    assert [(a.source_id, a.occurred_at, a.details, a.title, a.url) for a in stored] == [
        ("v1", when.replace(microsecond=0), {}, None, "https://x.test/a"),
        ("e1", when, {"browser": {"name": "x"}, "n": 2}, "Hi", None),
    ]


def test_the_sqlite_text_of_a_time_and_of_details() -> None:
    assert sqlite_utc_text(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)) == "2026-01-02 03:04:05.000000"
    with pytest.raises(ValueError):
        sqlite_utc_text(datetime(2026, 1, 2))  # naive
    assert sqlite_json_text(None) == "{}"
    assert sqlite_json_text({}) == "{}"
    # compact UTF-8 text (orjson), decoded by the JSON type's readers to the very data given
    details = {"a": [1, "é"], "b": {"c": None, "d": 1.5, "e": True}, "f": 2**53 + 1}
    assert sqlite_json_text({"a": [1, "é"]}) == '{"a":[1,"é"]}'
    assert json.loads(sqlite_json_text(details)) == details
