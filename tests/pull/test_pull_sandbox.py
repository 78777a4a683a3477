"""The pull against the sandbox over real HTTP: exact, incremental, frugal, fault-proof."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from connector.clock import FrozenClock
from connector.pull import pull
from connector.sandbox import Sandbox
from connector.sandbox.base import FaultPlan
from connector.store import Store
from tests.pull.helpers import (
    assert_matches_ground_truth,
    context,
    sandbox_config,
    snapshot,
    unthrottle,
)

CONTACTS = 600


@pytest.fixture
def sandbox() -> Sandbox:
    with Sandbox(contacts=CONTACTS, seed=11) as sb:
        unthrottle(sb)
        # The dataset is history: the first pull runs an hour after its last change.
        sb.clock.advance(timedelta(hours=1))
        yield sb


def new_store(tmp_path: Path, name: str = "state.db") -> Store:
    store = Store(f"sqlite:///{tmp_path / name}")
    store.migrate()
    return store


def test_first_pull_stores_exactly_the_ground_truth_then_nothing(sandbox: Sandbox, tmp_path: Path) -> None:
    config = sandbox_config(sandbox, tmp_path / "s.db")
    store = new_store(tmp_path)
    counts = pull(context(config, store))
    assert_matches_ground_truth(store, sandbox)
    # Unusable records are parked with a reason, not lost and not crashing the run.
    gt = sandbox.dataset.ground_truth  # type: ignore[union-attr]
    parked = {d.record_key for d in store.dead_letters()}
    assert {f"contacts:{cid}" for cid in gt.bad_records} <= parked
    assert counts["contacts.new"] > 0

    before = snapshot(store)
    again = pull(context(config, store))
    assert snapshot(store)["activities"] == before["activities"]
    assert snapshot(store)["contacts"] == before["contacts"]
    stored_anything = {k: v for k, v in again.items()
                       if k.endswith((".new", ".updated")) and v}
    assert stored_anything == {}
    for stream in ("contacts", "email_events", "form_submissions", "page_views", "webinars"):
        assert again[f"{stream}.calls"] <= 3, (stream, dict(again))


def test_changed_contacts_are_exactly_what_the_next_pull_fetches(sandbox: Sandbox, tmp_path: Path) -> None:
    config = sandbox_config(sandbox, tmp_path / "s.db")
    store = new_store(tmp_path)
    pull(context(config, store))
    assert sandbox.hubspot is not None
    gt = sandbox.dataset.ground_truth  # type: ignore[union-attr]
    changed = sorted(set(gt.contact_ids) - set(gt.bad_records))[:150]
    sandbox.clock.advance(timedelta(hours=1))
    sandbox.hubspot.state.touch_contacts(changed, {"jobtitle": "Chief Revenue Officer"})
    counts = pull(context(config, store))
    assert counts["contacts.fetched"] == len(changed)
    assert counts["contacts.updated"] == len(changed)
    assert counts.get("contacts.new", 0) == 0
    for cid in changed:
        assert store.get_contact(cid).properties["jobtitle"] == "Chief Revenue Officer"  # type: ignore[union-attr]


def test_new_engagement_arrives_on_the_next_pull(sandbox: Sandbox, tmp_path: Path) -> None:
    config = sandbox_config(sandbox, tmp_path / "s.db")
    store = new_store(tmp_path)
    pull(context(config, store))
    hub = sandbox.hubspot
    assert hub is not None
    gt = sandbox.dataset.ground_truth  # type: ignore[union-attr]
    cid = sorted(set(gt.contact_ids) - set(gt.bad_records))[0]
    email = store.get_contact(cid).email  # type: ignore[union-attr]
    sandbox.clock.advance(timedelta(minutes=30))
    hub.state.add_page_view(cid, "https://example.com/pricing", title="Pricing")
    hub.state.add_email_event(email, "CLICK", url="https://example.com/demo")
    # HubSpot records email events asynchronously: the pull leaves the newest minute alone.
    sandbox.clock.advance(timedelta(minutes=2))
    counts = pull(context(config, store))
    assert counts["page_views.new"] == 1
    assert counts["email_events.new"] == 1
    kinds = [a.type for a in store.activities_for(cid)]
    assert "page_view" in kinds and "email_click" in kinds
    # Only the contact whose visit counter moved had its page views read.
    assert counts["page_views.calls"] == 1


def test_faults_do_not_change_the_result(tmp_path: Path) -> None:
    faults = FaultPlan(p429=0.06, p500=0.05, p503=0.04, p_drop=0.05, seed=3)
    with Sandbox(contacts=300, seed=5, hubspot_faults=faults) as sb:
        unthrottle(sb)
        config = sandbox_config(sb, tmp_path / "s.db")
        store = new_store(tmp_path)
        # A frozen policy clock makes the back-off waits instant; the retries are real.
        counts = pull(context(config, store, policy_clock=FrozenClock(), max_attempts=12))
        assert_matches_ground_truth(store, sb)
        served = sb.hubspot.stats.snapshot()["by_status"]  # type: ignore[union-attr]
        failed = sum(v for k, v in served.items() if k in ("0", "429", "500", "503"))
        assert failed >= 0.1 * counts["hubspot.calls"]


@pytest.mark.slow
def test_twelve_thousand_contacts_modified_in_one_second_are_all_pulled(tmp_path: Path) -> None:
    with Sandbox(contacts=40, seed=2) as sb:
        unthrottle(sb)
        config = sandbox_config(sb, tmp_path / "s.db")
        store = new_store(tmp_path)
        pull(context(config, store))
        hub = sb.hubspot
        assert hub is not None
        instant = sb.clock.now() + timedelta(minutes=5)
        created = [hub.state.create_contact({"email": f"bulk{i}@acme-corp.com", "lastname": f"B{i}"},
                                            at=instant).id for i in range(12_000)]
        counts = pull(context(config, store, policy_clock=FrozenClock()))
        assert counts["contacts.new"] == 12_000
        live = {c.hubspot_id for c in store.iter_contacts()}
        assert set(created) <= live


def test_date_versioned_api_paths_pull_the_same(tmp_path: Path) -> None:
    with Sandbox(contacts=120, seed=4) as sb:
        unthrottle(sb)
        sb.clock.advance(timedelta(hours=1))
        config = sandbox_config(sb, tmp_path / "s.db")
        config = config.model_copy(update={"hubspot": config.hubspot.model_copy(
            update={"api_version": "2026-03"})})
        store = new_store(tmp_path)
        ctx = context(config, store)
        assert ctx.client.contacts_path == "/crm/objects/2026-03/contacts"
        pull(ctx)
        assert_matches_ground_truth(store, sb)
