"""HubSpotState directly: search indexes stay exact under mutations, the documented way past the
10,000-result cap works, and a generated dataset loads with counters consistent with activity."""

from __future__ import annotations

import random
from collections import Counter
from datetime import timedelta

import pytest

from connector.sandbox.base import SandboxClock
from connector.sandbox.hubspot import HubSpotApiError, HubSpotState
from connector.sandbox.hubspot.search import parse_search_request, to_ms
from tests.sandbox.hs_fixtures import NOW, tiny_dataset


def _window_query(
    op: str,
    value_ms: int,
    *,
    descending: bool = False,
    after: int = 0,
    extra: list[dict[str, str]] | None = None,
) -> object:
    return parse_search_request(
        {
            "filterGroups": [
                {
                    "filters": [
                        {
                            "propertyName": "lastmodifieddate",
                            "operator": op,
                            "value": str(value_ms),
                        },
                        *(extra or []),
                    ]
                }
            ],
            "sorts": [
                {
                    "propertyName": "lastmodifieddate",
                    "direction": "DESCENDING" if descending else "ASCENDING",
                }
            ],
            "limit": 200,
            "after": str(after),
        }
    )


def _ms(state: HubSpotState, minutes_ago: int) -> int:
    return int((state.clock.now() - timedelta(minutes=minutes_ago)).timestamp() * 1000)


def test_indexed_window_search_equals_full_scan_under_mutations() -> None:
    state = HubSpotState(SandboxClock(NOW, frozen=True))
    state.load(tiny_dataset(200))
    rnd = random.Random(7)
    for step in range(300):
        state.clock.advance(timedelta(seconds=rnd.choice([0, 1, 30])))
        cid = str(101 + rnd.randrange(200))
        try:
            if step % 50 == 0:
                state.archive_contact(cid)
            elif step % 61 == 0:
                state.merge_contacts(str(101 + rnd.randrange(200)), cid)
            elif step % 7 == 0:
                state.create_contact({"email": f"n{step}@example.org", "lifecyclestage": "lead"})
            else:
                state.update_contact(cid, {"jobtitle": f"t{step}"})
        except HubSpotApiError:
            continue  # archived or merged away already
    state.touch_contacts(
        [
            str(i)
            for i in range(150, 170)
            if state.contacts[str(i)].merged_into is None and not state.contacts[str(i)].archived
        ],
        at=NOW,
    )
    extra = [{"propertyName": "lifecyclestage", "operator": "EQ", "value": "lead"}]
    checked = 0
    for op in ("GTE", "GT", "LTE", "LT", "EQ"):
        for minutes in (0, 3, 60, 60 * 24 * 31):
            for descending in (False, True):
                for filters in (None, extra):
                    q = _window_query(op, _ms(state, minutes), descending=descending, extra=filters)
                    assert state._modified_window(q) is not None  # type: ignore[arg-type]
                    indexed = state.search_ids(q)  # type: ignore[arg-type]
                    scanned = state.search_ids(q, use_index=False)  # type: ignore[arg-type]
                    assert indexed == scanned
                    checked += len(indexed)
    assert checked > 1000


def test_windowing_by_lastmodifieddate_reads_past_the_10000_cap() -> None:
    state = HubSpotState(SandboxClock(NOW, frozen=True))
    for i in range(10_250):
        state.create_contact({"email": f"c{i}@example.org"}, at=NOW - timedelta(seconds=20_000 - i))
    # the documented workaround: GTE the last value seen, restart before the cap, dedupe by id
    seen: dict[str, None] = {}
    bookmark = 0
    queries = 0
    while True:
        queries += 1
        after, last_value, got = 0, bookmark, 0
        while True:
            if after >= 10_000:
                break
            page, total = state.search_contacts(_window_query("GTE", bookmark, after=after))  # type: ignore[arg-type]
            for rec in page:
                seen.setdefault(rec.id, None)
                last_value = to_ms(rec.props["lastmodifieddate"]) or bookmark
            got += len(page)
            after += len(page)
            if after >= total or not page:
                break
        if got < 10_000:
            break
        bookmark = last_value
    assert len(seen) == 10_250
    assert queries == 2


def test_cap_is_a_400_at_state_level_too() -> None:
    state = HubSpotState(SandboxClock(NOW, frozen=True))
    state.load(tiny_dataset(5))
    q = parse_search_request({"limit": 200, "after": "10000"})
    assert (
        q.after == 10_000
    )  # the app refuses it before asking the state (see test_hubspot_contacts)
    with pytest.raises(HubSpotApiError):
        parse_search_request({"limit": 0})


def test_generated_dataset_loads_with_consistent_counters() -> None:
    generator = pytest.importorskip("connector.sandbox.generator")
    dataset = generator.generate(11, 300)
    state = HubSpotState(SandboxClock(dataset.generated_at, frozen=True))
    state.load(dataset)
    counts = state.record_counts()
    assert counts["email_events"] == len(dataset.email_events)
    assert counts["page_views"] == len(dataset.page_views)
    assert counts["form_submissions"] == len(dataset.form_submissions)
    assert counts["participations"] == len(dataset.participations)
    assert counts["contacts"] + counts["contacts_archived"] + counts["contacts_merged"] == len(
        dataset.contacts
    )
    views = Counter(state.resolve_id(p.contact_id) for p in dataset.page_views)
    for cid, n in views.items():
        rec = state.contacts[cid]
        assert rec.props["hs_analytics_num_page_views"] == str(n)
        sessions = {
            p.session_id for p in dataset.page_views if state.resolve_id(p.contact_id) == cid
        }
        assert rec.props["hs_analytics_num_visits"] == str(len(sessions))
    for seed in dataset.contacts:
        rec = state.contacts[seed.id]
        assert rec.updated_at == seed.updated_at  # loading moves no lastmodifieddate


def test_page_view_counters_follow_added_views_and_merges() -> None:
    state = HubSpotState(SandboxClock(NOW, frozen=True))
    state.load(tiny_dataset(10))
    state.add_page_view("106", "https://example.com/a", at=NOW - timedelta(hours=2))
    state.add_page_view(
        "106", "https://example.com/b", at=NOW - timedelta(hours=2) + timedelta(minutes=10)
    )
    state.add_page_view("106", "https://example.com/c", at=NOW)
    rec = state.contacts["106"]
    assert (rec.props["hs_analytics_num_page_views"], rec.props["hs_analytics_num_visits"]) == (
        "3",
        "2",
    )
    state.merge_contacts("101", "106")
    survivor = state.contacts["101"]
    assert survivor.props["hs_analytics_num_page_views"] == "8"
    assert survivor.props["hs_analytics_num_visits"] == "4"
    assert survivor.props["hs_merged_object_ids"] == "106"
    assert [
        p.contact_id
        for p in state.query_page_views(
            "106", occurred_after=None, occurred_before=None, descending=False
        )
    ][:1] == ["101"]


def test_property_history_keeps_loaded_value_then_changes() -> None:
    state = HubSpotState(SandboxClock(NOW, frozen=True))
    state.load(tiny_dataset(5))
    state.update_contact("102", {"lifecyclestage": "marketingqualifiedlead"})
    history = state.history_of(state.contacts["102"], "lifecyclestage")
    assert [v for v, _, _ in history] == ["marketingqualifiedlead", "lead"]
    assert history[1][1] == "2026-09-03T11:59:00.000Z"  # the loaded value dates from creation
