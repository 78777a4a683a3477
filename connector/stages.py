"""One stage run, recorded: the pieces built from the config, a `sync_runs` row, a run id on
every log line, and a clean stop when a daily quota is spent. Used by the CLI and the jobs."""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx

from connector.clock import Clock, SystemClock
from connector.config import Config
from connector.errors import QuotaExhausted
from connector.logs import bind_run
from connector.progress import NullProgress, ProgressCounts, ProgressSink
from connector.pull import STREAMS, backfill, pull
from connector.wiring import open_store, pull_context

__all__ = ["StageResult", "run_pull_stage", "run_score_stage"]

log = logging.getLogger("connector.stages")


@dataclass
class StageResult:
    run_id: str
    status: str  # ok | stopped (quota: resumes next cycle) | failed
    counts: Counter[str] = field(default_factory=Counter)
    error: str | None = None
    planned: list[dict[str, Any]] = field(default_factory=list)  # dry runs: what would be written


def run_pull_stage(
    config: Config, *, trigger: str = "manual", dry_run: bool = False, full: bool = False,
    streams: Sequence[str] = STREAMS, since: datetime | None = None,
    until: datetime | None = None, progress: ProgressSink | None = None,
) -> StageResult:
    """Pull (or back-fill [since, until]) once. Failures other than a spent quota re-raise
    after the run is recorded as failed."""
    store = open_store(config)
    stage = "backfill-pull" if since is not None else "pull"
    run_id = store.start_run(stage, trigger=trigger)
    result = StageResult(run_id, "ok")
    with bind_run(run_id):
        ctx = pull_context(config, store, run_id=run_id, progress=progress or NullProgress(),
                           dry_run=dry_run)
        try:
            if since is not None:
                backfill(ctx, since, until)
            else:
                pull(ctx, streams=streams, full=full)
        except QuotaExhausted as exc:
            result.status, result.error = "stopped", str(exc)
            log.warning("stopped until the quota resets: %s", exc)
        except Exception as exc:
            store.finish_run(run_id, status="failed", counts=dict(ctx.counts), error=str(exc))
            raise
        finally:
            ctx.client.close()
            result.counts = ctx.counts
    store.finish_run(run_id, status=result.status, counts=dict(result.counts), error=result.error)
    store.close()
    return result


def run_score_stage(
    config: Config, *, trigger: str = "manual", dry_run: bool = False, everyone: bool = False,
    write_back: bool = True, clock: Clock | None = None,
    transport: httpx.BaseTransport | None = None, progress: ProgressSink | None = None,
) -> StageResult:
    """Score the contacts that are due, record scores and lifecycle decisions, and write the
    changed values back to HubSpot. `dry_run` computes everything and stores or sends nothing.
    A bad scoring file raises `ConfigError` before anything runs. `progress` is told each batch
    of contacts scored."""
    from connector.hubspot.client import HubSpotClient
    from connector.hubspot.write import HubSpotWriter, plan_updates
    from connector.scoring import Engine, load_model
    from connector.scoring.runner import score_contacts

    clock = clock or SystemClock()
    model = load_model(config.mapping_path("scoring"))
    engine = Engine(model)
    store = open_store(config, clock)
    run_id = store.start_run("score", trigger=trigger)
    result = StageResult(run_id, "ok")
    progress = progress or NullProgress()
    with bind_run(run_id):
        try:
            scoring = progress.task("contacts scored")
            run = score_contacts(store, engine, clock.now(), run_id=run_id, dry_run=dry_run,
                                 everyone=everyone,
                                 on_batch=lambda n: progress.advance(scoring, n))
            progress.done(scoring)
            result.counts.update(run.counts)
            if write_back and not dry_run and run.results:
                client = HubSpotClient.from_config(config, clock=clock, transport=transport)
                try:
                    writer = HubSpotWriter(client, store, model.writeback,
                                           contacts_path=client.contacts_path, run_id=run_id)
                    writer.ensure_properties()
                    updates = plan_updates(run.contacts.values(), run.results, run.mql_at, run.decisions,
                                           model.writeback, model.lifecycle)
                    writer.push(updates)
                    result.counts.update({f"hubspot.{k}": v for k, v in writer.counts.items()})
                finally:
                    client.close()
        except QuotaExhausted as exc:
            result.status, result.error = "stopped", str(exc)
            log.warning("stopped until the quota resets: %s", exc)
        except Exception as exc:
            store.finish_run(run_id, status="failed", counts=dict(result.counts), error=str(exc))
            store.close()
            raise
    store.finish_run(run_id, status=result.status, counts=dict(result.counts), error=result.error)
    store.close()
    return result


GOVERNOR_BOOKMARK = "salesforce.governor"


# The push's counts that settle one MQL each: its progress.
PUSH_OUTCOMES = (
    "leads.created", "leads.updated", "leads.unchanged", "leads.link_contact",
    "leads.link_converted", "leads.linked_duplicate", "leads.dead_letters",
    "leads.skipped_contact", "leads.would_create", "leads.would_update",
    "leads.would_leave_unchanged",
)


def run_push_stage(
    config: Config, *, trigger: str = "manual", dry_run: bool = False,
    clock: Clock | None = None, progress: ProgressSink | None = None,
) -> StageResult:
    """Hand the MQLs to Salesforce once. Stops cleanly (status "stopped") when Handshake's
    share of the Salesforce allocation is spent; the next cycle resumes where it stopped.
    `progress` is told each MQL settled (created, updated, linked, unchanged or parked)."""
    from connector.mapping import load_fields, load_routing
    from connector.push.engine import PushContext, push
    from connector.salesforce import SalesforceClient
    from connector.salesforce.governor import GovernorSnapshot
    from connector.scoring import Engine, load_model

    clock = clock or SystemClock()
    fields = load_fields(config.mapping_path("fields"))
    routing = load_routing(config.mapping_path("routing"))
    engine = Engine(load_model(config.mapping_path("scoring")))
    store = open_store(config, clock)
    run_id = store.start_run("push", trigger=trigger)
    result = StageResult(run_id, "ok")
    saved = store.get_bookmark(GOVERNOR_BOOKMARK)
    snapshot = GovernorSnapshot.from_json(json.loads(saved)) if saved else None
    progress = progress or NullProgress()
    handing = progress.task("MQLs handed off")
    with bind_run(run_id):
        from connector.hubspot.client import HubSpotClient

        # A Lead goes to its HubSpot owner's Salesforce user when routing.toml prefers it.
        # Open for the run: owners for routing first, the hand-off write-back at the end.
        hubspot = HubSpotClient.from_config(config, clock=clock)
        try:
            owner_emails = hubspot.owner_emails() if routing.spec.prefer_hubspot_owner else {}
            sf = SalesforceClient.from_config(config, clock=clock, snapshot=snapshot)
        except BaseException:
            hubspot.close()
            raise
        ctx = PushContext(store=store, sf=sf, fields=fields, routing=routing, engine=engine,
                          clock=clock, external_id_field=config.salesforce.external_id_field,
                          run_id=run_id, dry_run=dry_run, owner_emails=owner_emails,
                          hubspot=hubspot, alerts=config.alerts,
                          bulk_threshold=config.salesforce.bulk_threshold,
                          activity_tasks=config.push.activity_tasks,
                          existing_contact=config.push.existing_contact,
                          counts=ProgressCounts().watch(progress, handing, PUSH_OUTCOMES))
        try:
            push(ctx)
            progress.done(handing)
        except QuotaExhausted as exc:
            result.status, result.error = "stopped", str(exc)
            log.warning("stopped at Handshake's share of the Salesforce allocation: %s", exc)
        except Exception as exc:
            store.finish_run(run_id, status="failed", counts=dict(ctx.counts), error=str(exc))
            raise
        finally:
            result.counts = ctx.counts
            result.planned = ctx.planned
            store.set_bookmark(GOVERNOR_BOOKMARK, json.dumps(sf.governor.snapshot().to_json()),
                              run_id=run_id)
            sf.close()
            hubspot.close()
    store.finish_run(run_id, status=result.status, counts=dict(result.counts), error=result.error)
    store.close()
    return result


def retry_dead_letters(config: Config, ids: Sequence[int] = ()) -> dict[str, int]:
    """Try the open dead letters again (all, or those with the given ids), after an admin fixed
    the mapping or the data: parked HubSpot contacts are read again; parked pushes run through
    the push stage, which retries every write the ledger marks failed. Returns what happened."""
    from connector.errors import SkippableError
    from connector.pull.normalize import contact_from_hubspot
    from connector.pull.properties import needed_properties

    store = open_store(config)
    letters = [d for d in store.dead_letters() if not ids or d.id in ids]
    outcome: Counter[str] = Counter(selected=len(letters))
    contacts = [d for d in letters if d.stage == "pull" and d.record_key.startswith("contacts:")]
    if contacts:
        from connector.hubspot.client import HubSpotClient

        client = HubSpotClient.from_config(config)
        try:
            raws = client.batch_read_contacts(
                [d.record_key.split(":", 1)[1] for d in contacts], needed_properties(config))
        finally:
            client.close()
        fixed = []
        for raw in raws:
            try:
                fixed.append(contact_from_hubspot(raw))
            except SkippableError as err:
                store.dead_letter(stage="pull", system="hubspot",
                                  record_key=f"contacts:{err.record_key}", reason=err.message,
                                  actor=err.actor)
        store.upsert_contacts(fixed)
        outcome["resolved"] += store.resolve_dead_letters(
            stage="pull", record_keys=[f"contacts:{c.hubspot_id}" for c in fixed])
    pushes = [d for d in letters if d.stage == "push"]
    # A contact merged away or archived in HubSpot since is no longer handed off: its letter
    # closes (a merge is how a "same person twice" letter is fixed).
    gone = [d.record_key for d in pushes
            if (c := store.get_contact(d.record_key)) is not None and (c.merged_into or c.archived)]
    outcome["resolved"] += store.resolve_dead_letters(stage="push", record_keys=gone)
    pushes = [d for d in pushes if d.record_key not in gone]
    if pushes:
        before = {d.id for d in store.dead_letters(stage="push")}
        run_push_stage(config, trigger="dlq-retry")
        after = {d.id for d in store.dead_letters(stage="push")}
        outcome["resolved"] += len({d.id for d in pushes} & (before - after))
    outcome["still_open"] = len([d for d in store.dead_letters() if not ids or d.id in ids])
    store.close()
    return dict(outcome)
