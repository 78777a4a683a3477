"""A backfill (more Lead creates than `bulk_threshold`) goes through Bulk API 2.0 and ends
exactly as the collections path does: same Leads, owners, dead letters and Tasks; a run below
the threshold keeps to collections."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from connector.demo import MAPPINGS_DIR, sandbox_config
from connector.pull import pull
from connector.sandbox import Sandbox
from connector.runtime import run_push_stage, run_score_stage
from connector.store import Store
from connector.runtime import open_store
from tests.pull.helpers import context, unthrottle

CONTACTS = 400
BULK_THRESHOLD = 50
UPSERT_ROUTE = "/services/data/vXX.X/composite/sobjects/{sobject}/{field}"
# Fields the org sets itself (ids and times differ between two orgs).
SYSTEM = {"Id", "CreatedDate", "CreatedById", "LastModifiedDate", "LastModifiedById",
          "SystemModstamp"}


def _scoring(folder: Path) -> Path:
    """The shipped scoring model with low MQL thresholds: many MQLs from a small sandbox."""
    path = folder / "scoring.toml"
    path.write_text((MAPPINGS_DIR / "scoring.toml").read_text().replace(
        'thresholds = { A = 50, B = 50, C = 80 }\nnever = ["D", "F"]',
        'thresholds = { A = 5, B = 5, C = 5, D = 5 }\nnever = ["F"]'))
    return path


def _fields(folder: Path) -> Path:
    """The shipped field mapping plus an admin's mistake: a HubSpot property that only a few
    contacts have, mapped to a Lead field that does not exist."""
    path = folder / "fields.toml"
    path.write_text((MAPPINGS_DIR / "fields.toml").read_text() + (
        '\n[[fields]]\nsalesforce = "Legacy_Title"\nhubspot = "legacy_title"\n'))
    return path


def _spoil(sb: Sandbox) -> list[str]:
    """Give two new MQLs the property the broken mapping entry reads."""
    assert sb.dataset is not None and sb.hubspot is not None
    gt = sb.dataset.ground_truth
    existing = {e.lower() for e in gt.existing_sf_contacts + gt.existing_sf_leads}
    ready = {e.lower() for e in gt.sales_ready} - existing
    new = sorted(c.id for c in sb.dataset.contacts
                 if str(c.properties.get("email") or "").lower() in ready)
    sb.hubspot.state.touch_contacts(new[:2], {"legacy_title": "Chief Everything Officer"})
    return new[:2]


def _cycle(folder: Path, threshold: int) -> dict[str, Any]:
    with Sandbox(contacts=CONTACTS, seed=42, workdir=folder / "sb") as sb:
        assert sb.salesforce is not None
        unthrottle(sb)
        sb.clock.advance(timedelta(hours=1))
        spoiled = _spoil(sb)
        config = sandbox_config(sb.info(), folder / "state.db")
        config = config.model_copy(update={
            "salesforce": config.salesforce.model_copy(update={"bulk_threshold": threshold}),
            "mappings": config.mappings.model_copy(update={
                "scoring": str(_scoring(folder)), "fields": str(_fields(folder))})})
        pull(context(config, open_store(config)))
        run_score_stage(config)
        first = run_push_stage(config)
        routes = dict(sb.salesforce.stats.snapshot()["by_route"])
        jobs = [(job.state, job.processed) for job in sb.salesforce.bulk.jobs()]
        stored = sb.salesforce.state.counts()
        again = [run_push_stage(config) for _ in range(2)]
        store = Store(config.state.database_url)
        state = sb.salesforce.state
        return {
            "spoiled": spoiled,
            "first": first,
            "again": again,
            "routes": routes,
            "routes_after": dict(sb.salesforce.stats.snapshot()["by_route"]),
            "jobs": jobs,
            "jobs_after": len(sb.salesforce.bulk.jobs()),
            "stored": (stored, sb.salesforce.state.counts()),
            "leads": {r["Handshake_Id__c"]: {k: v for k, v in r.items()
                                             if k not in SYSTEM and k != "attributes"}
                      for r in state.records("Lead") if r.get("Handshake_Id__c")},
            "tasks": Counter((t["Subject"].split(":")[0], t["OwnerId"], t["Status"])
                             for t in state.records("Task")),
            # each hand-off Task's opening lines (the contact's name, email, headline, fit):
            # a held create's contact is read again for its Task
            "handoffs": {t["Subject"].rsplit("[", 1)[-1]: t["Description"].splitlines()[0]
                         for t in state.records("Task")
                         if t["Subject"].startswith("Handshake hand-off")},
            "dead": {(d.record_key, d.reason, str(d.actor), d.error_code)
                     for d in store.dead_letters(stage="push")},
            "links": {c.hubspot_id: (link.sf_object, link.how) for c in store.iter_contacts()
                      if (link := store.linked(c.hubspot_id)) is not None},
        }


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    folder = tmp_path_factory.mktemp("bulk-push")
    return {"bulk": _cycle(folder / "bulk", BULK_THRESHOLD),
            "collections": _cycle(folder / "collections", 2000)}


def _written(counts: Counter[str]) -> dict[str, int]:
    """What a run wrote (records parked again on a retry are attempts, not writes)."""
    return {k: v for k, v in counts.items()
            if k.startswith(("leads.created", "leads.updated", "leads.bulk", "tasks.")) and v
            and not k.endswith("dead_letters")}


def test_a_backfill_creates_its_leads_in_a_bulk_job(runs: dict[str, dict[str, Any]]) -> None:
    bulk = runs["bulk"]
    counts = bulk["first"].counts
    assert counts["leads.created"] > 2 * BULK_THRESHOLD
    assert counts["leads.bulk_records"] >= counts["leads.created"]
    assert [state for state, _ in bulk["jobs"]] == ["JobComplete"]
    # the two records naming a field Lead lacks are refused unsent, as collections do
    assert sum(n for _, n in bulk["jobs"]) == counts["leads.bulk_records"] - 2
    assert bulk["routes"].get(UPSERT_ROUTE, 0) == 0  # no collection call for Lead creates
    assert bulk["routes"]["/services/data/vXX.X/jobs/ingest/{job_id}/batches"] == len(bulk["jobs"])


def test_bulk_leads_equal_those_of_the_collections_path(
        runs: dict[str, dict[str, Any]]) -> None:
    bulk, collections = runs["bulk"], runs["collections"]
    assert bulk["leads"] == collections["leads"]  # every field, owners included
    assert bulk["links"] == collections["links"]
    assert bulk["tasks"] == collections["tasks"]
    assert bulk["handoffs"] == collections["handoffs"]
    assert len(bulk["handoffs"]) >= bulk["first"].counts["leads.created"]
    assert _written(collections["first"].counts) == {
        k: v for k, v in _written(bulk["first"].counts).items() if k != "leads.bulk_records"}


def test_bad_records_are_dead_lettered_with_the_same_reasons(
        runs: dict[str, dict[str, Any]]) -> None:
    bulk, collections = runs["bulk"], runs["collections"]
    assert bulk["dead"] == collections["dead"]
    by_key = {key: (reason, actor, code) for key, reason, actor, code in bulk["dead"]}
    for hid in bulk["spoiled"]:
        reason, actor, code = by_key[hid]
        assert (actor, code) == ("admin", "INVALID_FIELD") and "Legacy_Title" in reason
        assert hid not in bulk["leads"]
    assert bulk["first"].counts["leads.dead_letters"] == 2


def test_running_the_backfill_again_writes_nothing(runs: dict[str, dict[str, Any]]) -> None:
    bulk = runs["bulk"]
    for again in bulk["again"]:
        # the map still names a field Lead lacks: every run says so (degraded), writing nothing
        assert again.status == "degraded"
        assert any("Legacy_Title" in problem for problem in again.problems)
        assert _written(again.counts) == {}
    assert bulk["jobs_after"] == len(bulk["jobs"])  # no new bulk job
    before, after = bulk["stored"]
    assert after == before  # not one record more in Salesforce


def test_below_the_threshold_the_collections_path_is_used(
        runs: dict[str, dict[str, Any]]) -> None:
    collections = runs["collections"]
    assert collections["jobs"] == []
    assert collections["routes"][UPSERT_ROUTE] >= 1
    assert "leads.bulk_records" not in collections["first"].counts
