"""Each stage's backfill against the sandbox: pull, score, push and pull-back over a window,
each under its checkpoint (a finished one does nothing, `--restart` runs it again and writes
nothing twice), the scheduled runs' bookmarks untouched; `--dry-run` writes nothing;
`--fields` sends one newly mapped field to every Lead, once; unknown fields exit 2."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from connector.clock import FrozenClock
from connector.config import Config
from connector.runtime import open_store
from connector.runtime.backfill import (
    Backfill,
    StageOutcome,
    Window,
    checkpoint_key,
    run_backfill,
)
from connector.sandbox import Sandbox
from tests.backfill.helpers import (
    MAPPINGS,
    SINCE,
    handshake_leads,
    hubspot_contacts,
    org,
    run,
    write_config,
)

PATCH_LEADS = r"PATCH /services/data/v"


@dataclass
class Org:
    sb: Sandbox
    config: Config
    folder: Path


WINDOW = Window(datetime.fromisoformat(SINCE + "T00:00:00+00:00"))


# one instant for every run in-process: a re-score seconds later decays nothing
CLOCK = FrozenClock(datetime.now(UTC))


def backfill(config: Config, *stages: str, **options: Any) -> list[StageOutcome]:
    return run_backfill(config, Backfill(WINDOW, tuple(stages), **options), clock=CLOCK)


def one(outcomes: list[StageOutcome]) -> Any:
    assert len(outcomes) == 1
    return outcomes[0].result


def bookmarks(config: Config) -> dict[str, str]:
    store = open_store(config)
    try:
        return store.bookmarks()
    finally:
        store.close()


def scheduled(marks: dict[str, str]) -> dict[str, str]:
    """The bookmarks of the scheduled runs (the backfill's checkpoints left out)."""
    return {k: v for k, v in marks.items() if not k.startswith("backfill.")}


def hubspot_writes(sb: Sandbox) -> int:
    served = sb.hubspot.stats.snapshot()["by_method_route"]  # type: ignore[union-attr]
    return sum(n for route, n in served.items()
               if route.startswith("PATCH ") or (route.startswith("POST ") and any(
                   w in route for w in ("/batch/update", "/batch/upsert", "/batch/create",
                                        "/memberships/add", "/properties"))))


def salesforce_writes(sb: Sandbox) -> int:
    served = sb.salesforce.stats.snapshot()["by_method_route"]  # type: ignore[union-attr]
    return sum(n for route, n in served.items()
               if route.split(" ", 1)[0] in ("POST", "PATCH", "DELETE")
               and not any(w in route for w in ("/oauth2/", "/Soap/", "/query")))


@pytest.fixture(scope="module")
def stages(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Org]:
    """An org with an empty store, its stages backfilled one after another by the tests (in
    file order), the mapping without `Title` (the --fields test maps it afterwards)."""
    folder = tmp_path_factory.mktemp("stages")
    fields = folder / "fields.toml"
    text = (MAPPINGS / "fields.toml").read_text()
    entry = '[[fields]]\nsalesforce = "Title"\nhubspot = "jobtitle"\n'
    assert entry in text
    fields.write_text(text.replace(entry, ""))
    with org(folder, "org", fields=fields) as (sb, config):
        yield Org(sb, config, folder)


def test_pull_backfill_reads_the_window_and_leaves_the_scheduled_bookmarks(stages: Org) -> None:
    result = one(backfill(stages.config, "pull"))
    assert result.status == "ok", result.error
    assert result.counts["contacts.fetched"] > 0
    marks = bookmarks(stages.config)
    # no stream bookmark of the scheduled pulls (only the contacts whose page views are due)
    assert {k for k in scheduled(marks) if not k.startswith(("page_views_due/", "forms_due"))
            } == set()
    cp = json.loads(marks[checkpoint_key("pull", WINDOW)])
    assert cp["done"] and cp["streams"] == ["contacts", "email_events", "form_submissions",
                                            "page_views", "webinars"]
    store = open_store(stages.config)
    try:
        assert store.count_contacts() > 0 and sum(store.count_activities_by_type().values()) > 0
    finally:
        store.close()
    again = backfill(stages.config, "pull")
    assert again[0].result is None  # finished: nothing to do


def test_score_backfill_scores_the_window_and_writes_back_once(stages: Org) -> None:
    dry = one(backfill(stages.config, "score", dry_run=True))
    assert dry.status == "ok" and dry.counts["scored"] > 0
    store = open_store(stages.config)
    try:
        assert store.latest_scores([c.hubspot_id for c in store.iter_contacts()]) == {}
    finally:
        store.close()
    assert hubspot_writes(stages.sb) == 0
    assert checkpoint_key("score", WINDOW) not in bookmarks(stages.config)

    result = one(backfill(stages.config, "score"))
    assert result.status == "ok", result.error
    assert result.counts["scored"] == dry.counts["scored"] > 0 and result.counts["mql"] > 0
    assert result.counts["hubspot.contacts.updated"] > 0
    assert hubspot_writes(stages.sb) > 0
    held = hubspot_contacts(stages.sb)
    assert "score.writeback_pending" not in bookmarks(stages.config)
    again = one(backfill(stages.config, "score", restart=True))
    assert again.status == "ok" and again.counts["scored"] == result.counts["scored"]
    # values HubSpot already holds change nothing there (the write-back's ledger compares
    # whole payloads: a contact whose lifecycle step went with its first write is re-stated)
    assert hubspot_contacts(stages.sb) == held
    assert again.counts["hubspot.contacts.updated"] <= (
        result.counts["transition.lead"] + result.counts["transition.mql"])


def test_push_backfill_hands_off_the_mqls_of_the_window_once(stages: Org) -> None:
    dry = one(backfill(stages.config, "push", dry_run=True))
    assert dry.status in ("ok", "degraded"), dry.error
    assert dry.counts["leads.would_create"] > 0 and handshake_leads(stages.sb) == {}
    result = one(backfill(stages.config, "push"))
    assert result.status in ("ok", "degraded"), result.error
    leads = handshake_leads(stages.sb)
    assert len(leads) == result.counts["leads.created"] == dry.counts["leads.would_create"]
    store = open_store(stages.config)
    try:
        mqls = {c.hubspot_id for c in store.iter_mqls()}
        assert set(leads) <= mqls
    finally:
        store.close()
    writes = salesforce_writes(stages.sb)
    assert one(backfill(stages.config, "push")) is None  # finished
    again = one(backfill(stages.config, "push", restart=True))
    assert again.counts["leads.created"] == 0 and again.counts["tasks.handoff"] == 0
    assert salesforce_writes(stages.sb) == writes
    assert handshake_leads(stages.sb) == leads


def test_pullback_backfill_reads_the_handoffs_without_moving_the_bookmarks(
        stages: Org) -> None:
    sb = stages.sb
    before = scheduled(bookmarks(stages.config))
    # sales work the Leads a few hours (statuses, calls)
    sb.simulator().run(6, step_hours=2)
    result = one(backfill(stages.config, "pullback"))
    assert result.status in ("ok", "degraded"), result.error
    assert result.counts["Lead.read"] > 0
    marks = bookmarks(stages.config)
    after = scheduled(marks)
    # the incremental pull-back bookmarks are neither read nor moved
    assert {k: v for k, v in after.items() if k.startswith("pullback.") and
            k != "pullback.vocabulary"} == {
        k: v for k, v in before.items() if k.startswith("pullback.") and
        k != "pullback.vocabulary"}
    key = checkpoint_key("pullback", WINDOW)
    assert json.loads(marks[key])["done"]
    assert f"{key}.Lead" in marks
    store = open_store(stages.config)
    try:
        outcomes = len(store.outcomes())
        assert len(store.handoff_states()) == len(handshake_leads(sb))
    finally:
        store.close()
    again = one(backfill(stages.config, "pullback", restart=True))
    assert again.status in ("ok", "degraded"), again.error
    store = open_store(stages.config)
    try:
        assert len(store.outcomes()) == outcomes  # read again: nothing new, nothing twice
    finally:
        store.close()


def test_fields_backfill_updates_only_that_field_on_every_lead_once(stages: Org) -> None:
    sb = stages.sb
    before = handshake_leads(sb)
    assert before and not any(lead.get("Title") for lead in before.values())
    config = write_config(sb, stages.folder, "org")  # the shipped mapping: Title mapped
    unknown = run(sb, config, "backfill", "--since", SINCE, "--fields", "Title,Nickname__c")
    assert unknown.returncode == 2
    assert "fields.toml" in unknown.stderr and "Nickname__c" in unknown.stderr

    dry = one(backfill(config, fields=("Title",), dry_run=True))
    assert dry.counts["fields.would_update"] > 0
    assert {tuple(p["values"]) for p in dry.planned} == {("Id", "Title")}
    assert handshake_leads(sb) == before
    writes = salesforce_writes(sb)
    result = one(backfill(config, fields=("jobtitle",)))  # the HubSpot property names it too
    assert result.status == "ok", result.error
    assert result.counts["fields.updated"] == dry.counts["fields.would_update"]
    # ≤ 200 Leads a collection: one composite call of them here
    assert salesforce_writes(sb) - writes == -(-result.counts["fields.updated"] // 1000)
    after = handshake_leads(sb)
    changed: Counter[str] = Counter()
    for hid, lead in after.items():
        for name in lead.keys() | before[hid].keys():
            # who modified it last: Handshake's user now, on the Leads a rep had modified
            if name != "LastModifiedById" and lead.get(name) != before[hid].get(name):
                changed[name] += 1
    assert changed == Counter({"Title": result.counts["fields.updated"]})
    store = open_store(config)
    try:
        titled = {c.hubspot_id for c in store.iter_contacts()
                  if (c.properties.get("jobtitle") or "").strip()}
    finally:
        store.close()
    assert {hid for hid, lead in after.items() if lead.get("Title")} == titled & set(after)
    writes = salesforce_writes(sb)
    again = one(backfill(config, fields=("Title",), restart=True))
    assert again.counts["fields.updated"] == 0 and again.counts["fields.unchanged"] == len(after)
    assert salesforce_writes(sb) == writes
    assert one(backfill(config, fields=("jobtitle",))) is None  # the same fields: finished


def test_a_rerun_finds_the_backfill_finished(stages: Org) -> None:
    result = run(stages.sb, stages.config, "backfill", "--since", SINCE, "--stage", "pull")
    assert result.returncode == 0, result.stderr
    assert "finished before" in result.stdout


def test_dry_run_of_every_stage_writes_nothing(tmp_path: Path) -> None:
    with org(tmp_path, "dry") as (sb, config):
        result = run(sb, config, "backfill", "--since", SINCE, "--dry-run")
        assert result.returncode in (0, 3), result.stderr
        assert "backfill pull (dry run: nothing written)" in result.stdout
        assert hubspot_writes(sb) == 0 and salesforce_writes(sb) == 0
        store = open_store(config)
        try:
            assert store.count_contacts() == 0
            # only the count of the Salesforce calls it made (the governor's share)
            assert scheduled(store.bookmarks()).keys() <= {"salesforce.governor"}
            assert [k for k in store.bookmarks() if k.startswith("backfill.")] == []
            assert store.ledger_entries("") == []
        finally:
            store.close()
