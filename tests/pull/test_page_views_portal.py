"""Page views read portal-wide (the events API without `objectId`): nothing missed at page or
window edges, resumable after a crash mid-window, contacts not pulled yet read in the same
cycle, and a refused API (403) leaves the stream limited, never the pull failed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from connector.hubspot.client import HubSpotClient, Page
from connector.pull import pull
from connector.runtime.status import collect_status
from connector.sandbox import Sandbox
from connector.store import Activity, Store
from tests.pull.helpers import assert_matches_ground_truth, context, sandbox_config, unthrottle

CONTACTS = 150


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(contacts=CONTACTS, seed=23) as sb:
        unthrottle(sb)
        sb.clock.advance(timedelta(hours=1))
        yield sb


def new_store(tmp_path: Path, name: str = "state.db") -> Store:
    store = Store(f"sqlite:///{tmp_path / name}")
    store.migrate()
    return store


def stored_views(store: Store) -> list[str]:
    """Source ids of the stored page views, one per row (a duplicate would show twice)."""
    with store.transaction() as s:
        return sorted(s.scalars(select(Activity.source_id).where(Activity.source == "web_event")))


def live_contacts(store: Store) -> set[str]:
    return {c.hubspot_id for c in store.iter_contacts() if not c.archived and not c.merged_into}


def test_many_views_at_one_instant_across_pages_and_at_the_window_edge(
        sandbox: Sandbox, tmp_path: Path) -> None:
    hub = sandbox.hubspot
    assert hub is not None
    config = sandbox_config(sandbox, tmp_path / "s.db")
    store = new_store(tmp_path)
    pull(context(config, store))
    assert_matches_ground_truth(store, sandbox)
    people = sorted(live_contacts(store))[:40]
    # 330 views in one millisecond: more than three pages of 100 share one instant
    instant = sandbox.clock.now() + timedelta(minutes=5)
    before = stored_views(store)
    added = [hub.state.add_page_view(people[n % len(people)], f"https://example.com/p/{n}",
                                     at=instant, session_id=f"s-{n}").id for n in range(330)]
    sandbox.clock.advance(timedelta(minutes=10))
    counts = pull(context(config, store))
    assert counts["page_views.new"] == 330
    assert counts["page_views.calls"] >= 4  # the instant spans pages
    assert stored_views(store) == sorted(before + added)

    # Views at the instant the last window ended, recorded after it was read: the next
    # window's lookback reads them; those read already are not stored twice.
    state = store.get_bookmark("page_views")
    assert state is not None and '"done"' in state
    edge = json.loads(state)["done"]
    at_edge = datetime.fromtimestamp(edge / 1000, UTC)
    late = [hub.state.add_page_view(people[n], f"https://example.com/late/{n}", at=at_edge,
                                    session_id=f"late-{n}").id for n in range(7)]
    sandbox.clock.advance(timedelta(minutes=5))
    again = pull(context(config, store))
    assert again["page_views.new"] == 7
    assert stored_views(store) == sorted(before + added + late)  # each once


class Crash(Exception):
    pass


def test_a_crash_mid_window_resumes_and_equals_an_uninterrupted_pull(
        sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = sandbox_config(sandbox, tmp_path / "s.db")
    calm = new_store(tmp_path, "calm.db")
    pull(context(config, calm))
    whole = stored_views(calm)
    pages_whole = pull(context(config, new_store(tmp_path, "count.db")))["page_views.calls"]
    assert pages_whole >= 4, "the dataset must span several pages for this test to mean much"

    crashy = new_store(tmp_path, "crashy.db")
    real = HubSpotClient.portal_page_views
    served = {"n": 0}

    def crash_after_two(self: HubSpotClient, *args: Any, **kwargs: Any) -> Page:
        if served["n"] == 2:
            raise Crash("killed between pages")
        served["n"] += 1
        return real(self, *args, **kwargs)

    monkeypatch.setattr(HubSpotClient, "portal_page_views", crash_after_two)
    with pytest.raises(Crash):
        pull(context(config, crashy))
    mid = crashy.get_bookmark("page_views")
    assert mid is not None and '"after"' in mid  # the cursor was committed with the pages
    partial = stored_views(crashy)
    assert 0 < len(partial) < len(whole)
    monkeypatch.setattr(HubSpotClient, "portal_page_views", real)

    rerun = pull(context(config, crashy))
    # resumed at the cursor: the two pages read before the crash are not read again
    assert rerun["page_views.calls"] == pages_whole - 2
    assert rerun["page_views.new"] == len(whole) - len(partial)
    assert stored_views(crashy) == whole
    assert_matches_ground_truth(crashy, sandbox)


def test_views_of_a_contact_created_after_the_contacts_read_are_kept(
        sandbox: Sandbox, tmp_path: Path) -> None:
    hub = sandbox.hubspot
    assert hub is not None
    config = sandbox_config(sandbox, tmp_path / "s.db")
    store = new_store(tmp_path)
    pull(context(config, store))
    pull(context(config, store), streams=("contacts",))
    # the contact appears between the contacts read and the page-views read of a cycle
    late = hub.state.create_contact({"email": "late.visitor@example.org", "firstname": "Late"})
    view = hub.state.add_page_view(late.id, "https://example.com/pricing", title="Pricing")
    sandbox.clock.advance(timedelta(minutes=5))
    ctx = context(config, store)
    ctx.server_now = sandbox.clock.now()  # as the contacts read of the cycle would have set it
    counts = pull(ctx, streams=("page_views",))
    assert counts["page_views.contacts_fetched"] == 1
    assert store.get_contact(late.id) is not None
    assert view.id in stored_views(store)
    assert not [d for d in store.dead_letters() if d.record_key.startswith("page_views:")]


def test_views_of_a_contact_parked_as_unusable_do_not_read_it_again(
        sandbox: Sandbox, tmp_path: Path) -> None:
    """A contact parked by the contacts read (a bad record) is not read again by id each cycle
    its views come back in: it stays parked, and the cycle reads only what it must."""
    hub = sandbox.hubspot
    assert hub is not None
    gt = sandbox.dataset.ground_truth  # type: ignore[union-attr]
    config = sandbox_config(sandbox, tmp_path / "s.db")
    store = new_store(tmp_path)
    pull(context(config, store))
    bad = min(gt.bad_records)
    assert f"contacts:{bad}" in {d.record_key for d in store.dead_letters(stage="pull")}
    late = hub.state.create_contact({"email": "late.visitor@example.org", "firstname": "Late"})
    for n in range(3):
        hub.state.add_page_view(bad, f"https://example.com/bad/{n}", session_id=f"b-{n}")
    hub.state.add_page_view(late.id, "https://example.com/pricing", title="Pricing")
    sandbox.clock.advance(timedelta(minutes=5))
    ctx = context(config, store)
    ctx.server_now = sandbox.clock.now()
    counts = pull(ctx, streams=("page_views",))
    assert counts["page_views.contacts_fetched"] == 1  # the new contact only
    assert store.get_contact(late.id) is not None
    assert f"contacts:{bad}" in {d.record_key for d in store.dead_letters(stage="pull")}


def test_a_refused_events_api_leaves_the_stream_limited_and_the_pull_ok(
        sandbox: Sandbox, tmp_path: Path) -> None:
    hub = sandbox.hubspot
    assert hub is not None
    hub.set_events_api(False)
    config = sandbox_config(sandbox, tmp_path / "s.db")
    store = new_store(tmp_path)
    counts = pull(context(config, store))  # no exception: the pull goes on
    assert counts["page_views.limited"] == 1
    assert counts["contacts.new"] > 0 and counts["email_events.new"] > 0
    assert stored_views(store) == []
    limited = collect_status(config, store)["limited_streams"]
    assert set(limited) == {"page_views"}
    assert "403" in limited["page_views"]["reason"]
    # the contact properties stand in: counts and first/last pages, as HubSpot has them
    visitor = next(c for c in store.iter_contacts()
                   if hub.state.page_views.get(c.hubspot_id) and not c.archived)
    views = sorted(hub.state.page_views[visitor.hubspot_id], key=lambda p: (p.occurred_at, p.id))
    assert visitor.properties["hs_analytics_num_page_views"] == str(len(views))
    assert visitor.properties["hs_analytics_first_url"] == views[0].url
    assert visitor.properties["hs_analytics_last_url"] == views[-1].url
    assert not list(store.iter_bookmark_streams("page_views_due/"))

    # granted again (an upgraded tier): the next pull reads every view and clears the flag
    hub.set_events_api(True)
    sandbox.clock.advance(timedelta(minutes=5))
    pull(context(config, store))
    assert collect_status(config, store)["limited_streams"] == {}
    assert_matches_ground_truth(store, sandbox)


def test_the_pull_stage_with_a_refused_events_api_ends_ok_and_status_says_limited(
        sandbox: Sandbox, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from connector.cli import app
    from connector.runtime import run_pull_stage
    from tests.pull.helpers import sandbox_env, sandbox_toml

    hub = sandbox.hubspot
    assert hub is not None
    hub.set_events_api(False)
    config = sandbox_config(sandbox, tmp_path / "stage.db")
    result = run_pull_stage(config)
    assert result.status == "ok", result.error
    path = tmp_path / "handshake.toml"
    path.write_text(sandbox_toml(sandbox, tmp_path / "stage.db"))
    shown = CliRunner().invoke(app, ["status", "-c", str(path)],
                               env={"COLUMNS": "200", **sandbox_env(sandbox)})
    assert shown.exit_code == 0, shown.stderr
    text = " ".join(shown.stdout.split())
    assert "stream page_views is limited" in text and "403" in text


def test_a_portal_wide_read_refused_as_invalid_falls_back_to_per_contact_reads(
        sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from connector.errors import RequestFailed

    def refused(self: HubSpotClient, *args: Any, **kwargs: Any) -> Page:
        raise RequestFailed("objectId or objectProperty is required", system="hubspot",
                            status=400)

    monkeypatch.setattr(HubSpotClient, "portal_page_views", refused)
    config = sandbox_config(sandbox, tmp_path / "s.db")
    store = new_store(tmp_path)
    counts = pull(context(config, store))
    assert counts["page_views.calls"] > 10  # one or more per contact whose counter moved
    assert_matches_ground_truth(store, sandbox)
    assert not list(store.iter_bookmark_streams("page_views_due/"))
