"""Activity Tasks match the stored activities: in either `[push] activity_tasks` mode, every
stored activity of every handed-off contact (page views and webinars included) appears exactly
once in Salesforce, as a digest line or as its own Task; running again writes nothing, and new
engagement pulled later is sent once, alone."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from connector.clock import FrozenClock
from connector.demo.verify import handoff_differences
from connector.errors import TransportError
from connector.mapping import load_routing
from connector.pull import pull
from connector.push.tasks import (
    SEND_ROUNDS,
    activity_key,
    activity_line,
    activity_subject,
    ref_of,
    subject,
)
from connector.sandbox import Fault, Sandbox
from connector.runtime import run_push_stage
from connector.store import Store
from tests.pull.helpers import context
from tests.push.helpers import REF, TASK_CREATE, Scored, org, score_once, writes


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory) -> Scored:
    return score_once(tmp_path_factory.mktemp("scored"), contacts=500, seed=17)


def activity_tasks_by_contact(sb: Sandbox) -> dict[str, list[dict[str, Any]]]:
    """Handshake's activity Tasks by the HubSpot contact their Subject's reference names."""
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for task in sb.salesforce.state.records("Task"):  # type: ignore[union-attr]
        match = REF.search(task["Subject"] or "")
        assert match, f"a Task without a reference: {task['Subject']!r}"
        if not task["Subject"].startswith("Handshake hand-off"):
            out[match.group(1).split("-")[1]].append(task)
    return out


def assert_activity_tasks_match(sb: Sandbox, store: Store, mode: str) -> set[str]:
    """Every stored activity of every handed-off contact exactly once; returns the types seen."""
    links = {c.hubspot_id: link for c in store.iter_contacts()
             if (link := store.linked(c.hubspot_id)) is not None}
    parked = {d.record_key.split(":")[3] for d in store.dead_letters(stage="push")
              if d.record_key.startswith("sf:task:")}
    stored = store.activities_for_many(list(links))
    written = activity_tasks_by_contact(sb)
    assert set(written) <= set(links)
    seen: set[str] = set()
    for hid, link in links.items():
        if hid in parked:  # refused by Salesforce: dead-lettered with who must act, not lost
            continue
        acts = stored[hid]
        got = written.get(hid, [])
        assert all(t["WhoId"] == link.sf_id for t in got)
        if mode == "digest":
            lines = Counter(line for t in got for line in t["Description"].splitlines())
            assert lines == Counter(activity_line(a) for a in acts), hid
        else:
            assert Counter((t["Subject"], t["ActivityDate"], t["Status"]) for t in got) == Counter(
                (subject(activity_subject(a), ref_of(activity_key(hid, a.id))),
                 a.occurred_at.date().isoformat(), "Completed") for a in acts), hid
        seen.update(a.type for a in acts)
    assert len(links) - len(parked) > 15
    return seen


@pytest.mark.parametrize("mode", ["digest", "each"])
def test_activity_tasks_match_the_stored_activities(scored: Scored, tmp_path: Path,
                                                    mode: str) -> None:
    clock = FrozenClock(scored.now)
    with org(scored, tmp_path, mode, activity_tasks=mode) as (sb, config, db):
        state = sb.salesforce.state  # type: ignore[union-attr]
        before = {r["Id"] for r in state.records("Lead")}
        first = run_push_stage(config, clock=clock)
        assert first.status == "ok", first.error
        store = Store(f"sqlite:///{db}")
        seen = assert_activity_tasks_match(sb, store, mode)
        assert handoff_differences(store, sb.dataset, state,  # type: ignore[arg-type]
                                   load_routing(config.mapping_path("routing")),
                                   leads_before=before) == []
        assert {"page_view", "webinar_registered", "webinar_attended", "form_submission",
                "email_open"} <= seen
        count = len(state.records("Task"))
        assert writes(run_push_stage(config, clock=clock).counts) == {}
        assert len(state.records("Task")) == count

        # a handed-off lead comes back: a page view and a webinar attended, pulled, sent once
        hub = sb.hubspot.state  # type: ignore[union-attr]
        hid = next(h for h in sorted(activity_tasks_by_contact(sb))
                   if store.linked(h).sf_object == "Lead")  # type: ignore[union-attr]
        sb.clock.advance(timedelta(minutes=5))
        hub.add_page_view(hid, "https://www.handshake-demo.com/pricing", title="Pricing")
        hub.add_participation(next(iter(hub.marketing_events)), hid, "ATTENDED")
        sb.clock.advance(timedelta(minutes=2))  # past the page views' settle minute
        pull(context(config, store))
        again = run_push_stage(config, clock=clock)
        assert again.status == "ok", again.error
        assert again.counts["tasks.activity"] == (2 if mode == "each" else 1)
        assert len(state.records("Task")) == count + again.counts["tasks.activity"]
        assert_activity_tasks_match(sb, store, mode)
        assert writes(run_push_stage(config, clock=clock).counts) == {}
        store.close()


def test_a_digest_left_unsent_goes_out_as_it_was_and_newer_activity_apart(
        scored: Scored, tmp_path: Path) -> None:
    clock = FrozenClock(scored.now)
    with org(scored, tmp_path, "unsent") as (sb, config, db):
        plan = sb.salesforce.faults  # type: ignore[union-attr]
        # every send of the first Task batch is lost before Salesforce sees it: the run stops
        plan.schedule(TASK_CREATE, *[Fault("drop")] * SEND_ROUNDS)
        with pytest.raises(TransportError):
            run_push_stage(config, clock=clock)
        store = Store(f"sqlite:///{db}")
        promised = {e.key for e in store.pending_writes("salesforce")
                    if e.key.startswith("sf:task:digest:")}
        assert promised and sb.salesforce.state.records("Task") == []  # type: ignore[union-attr]

        # meanwhile one of those leads views a page; the next run sends each digest promised,
        # under its key, and the new page view in a digest of its own
        hid = min(promised).split(":")[3]
        sb.clock.advance(timedelta(minutes=5))
        sb.hubspot.state.add_page_view(hid, "https://www.handshake-demo.com/demo",  # type: ignore[union-attr]
                                       title="Book a demo")
        sb.clock.advance(timedelta(minutes=2))  # past the page views' settle minute
        pull(context(config, store))
        result = run_push_stage(config, clock=clock)
        assert result.status == "ok", result.error
        done = {e.key for e in store.ledger_entries(f"sf:task:digest:{hid}:", status="done")}
        assert {k for k in promised if k.split(":")[3] == hid} < done and len(done) == 2
        assert store.pending_writes("salesforce") == []
        assert_activity_tasks_match(sb, store, "digest")
        store.close()
