"""The stages, each one body inside `stage_run`: pull (or back-fill), score, push, pull-back
and the dead-letter retry. The CLI, the jobs, the demo and the coming daemon call these."""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from datetime import datetime, timedelta
from itertools import chain
from typing import TYPE_CHECKING, Protocol

import httpx

from connector.clock import Clock
from connector.config import Config
from connector.errors import SkippableError
from connector.progress import NullProgress, ProgressCounts, ProgressSink
from connector.pull import STREAMS, backfill, pull
from connector.runtime.run import StageResult, stage_run
from connector.runtime.wiring import lift_pacing, open_store, pull_context
from connector.store import Contact, Store

if TYPE_CHECKING:
    from connector.mapping.sla import SlaFile
    from connector.pullback import Handoffs, PullbackContext
    from connector.push.context import PushContext
    from connector.runtime.run import StageRun
    from connector.salesforce import SalesforceClient
    from connector.scoring.engine import ContactLike
    from connector.scoring.lifecycle import Decision
    from connector.scoring.model import LifecycleSection

__all__ = [
    "GOVERNOR_BOOKMARK",
    "SCORE_WRITEBACK_PENDING",
    "PushSelection",
    "retry_dead_letters",
    "run_pull_stage",
    "run_pullback_stage",
    "run_push_stage",
    "run_score_stage",
]

log = logging.getLogger("connector.stages")

GOVERNOR_BOOKMARK = "salesforce.governor"
# Set while a score run's HubSpot write-back is due and cleared when it is done: a run stopped
# in between leaves it, and the next run re-scores everyone so nothing scored goes unwritten.
SCORE_WRITEBACK_PENDING = "score.writeback_pending"


def run_pull_stage(
    config: Config, *, trigger: str = "manual", dry_run: bool = False, full: bool = False,
    streams: Sequence[str] = STREAMS, since: datetime | None = None,
    until: datetime | None = None, progress: ProgressSink | None = None,
    clock: Clock | None = None, transport: httpx.BaseTransport | None = None,
    paced: bool = True,
) -> StageResult:
    """Pull (or back-fill [since, until]) once. `paced=False` lifts the client's own pacing
    (the demo and the benchmarks, against a sandbox whose limits are lifted too)."""
    stage = "backfill-pull" if since is not None else "pull"
    with stage_run(config, stage, trigger=trigger, clock=clock) as run:
        ctx = pull_context(config, run.store, clock=run.clock, run_id=run.run_id,
                           progress=progress or NullProgress(), dry_run=dry_run,
                           transport=transport)
        if not paced:
            lift_pacing(ctx)
        run.own(ctx.client)
        run.result.counts = ctx.counts
        if since is not None:
            backfill(ctx, since, until)
        else:
            pull(ctx, streams=streams, full=full)
    return run.result


def run_score_stage(
    config: Config, *, trigger: str = "manual", dry_run: bool = False, everyone: bool = False,
    write_back: bool = True, clock: Clock | None = None,
    transport: httpx.BaseTransport | None = None, progress: ProgressSink | None = None,
    ids: Collection[str] | None = None, stage: str = "score",
) -> StageResult:
    """Score the contacts that are due, record scores and lifecycle decisions, and write the
    changed values back to HubSpot. `dry_run` computes everything and stores or sends nothing.
    A bad scoring file raises `ConfigError` before anything runs. `progress` is told each batch
    of contacts scored. `ids` scores only those contacts (the webhooks' targeted sync, recorded
    as `stage`); a write-back a full run left pending is then left to the next full run."""
    from connector.hubspot.client import HubSpotClient
    from connector.hubspot.write import HubSpotWriter, plan_updates
    from connector.scoring import Engine, load_model
    from connector.scoring.runner import score_batches

    model = load_model(config.mapping_path("scoring"))
    engine = Engine(model)
    with stage_run(config, stage, trigger=trigger, clock=clock) as run:
        store, result = run.store, run.result
        writing = write_back and not dry_run
        pending = store.get_bookmark(SCORE_WRITEBACK_PENDING) is not None
        resuming = writing and pending and ids is None
        # a targeted run neither resumes nor clears a full run's pending write-back
        marking = writing and (ids is None or not pending)
        if resuming:
            log.warning("the last score run stopped before its HubSpot write-back: "
                        "re-scoring every contact so nothing scored goes unwritten")
            everyone = True
        if marking:
            store.set_bookmark(SCORE_WRITEBACK_PENDING, run.run_id, run_id=run.run_id)
        sink = progress or NullProgress()
        scoring = sink.task("contacts scored")
        writer: HubSpotWriter | None = None
        # Each batch is written back once stored, then let go: the pending bookmark above
        # covers the whole run, so a run stopped between batches re-scores everyone.
        for scored in score_batches(store, engine, run.clock.now(), run_id=run.run_id,
                                    dry_run=dry_run, everyone=everyone, ids=ids):
            result.counts.update(scored.counts)
            sink.advance(scoring, len(scored.contacts))
            if not (writing and scored.results):
                continue
            if writer is None:
                client = run.own(HubSpotClient.from_config(config, clock=run.clock,
                                                           transport=transport))
                writer = HubSpotWriter(client, store, model.writeback,
                                       contacts_path=client.contacts_path, run_id=run.run_id)
                writer.ensure_properties()
            steps = scored.decisions
            if resuming:
                # The stopped run recorded its lifecycle steps, so this run decides none of
                # them again: the ones HubSpot was not told come from the store.
                steps = [*_unwritten_steps(scored.contacts.values(), model.lifecycle,
                                           run.clock.now()), *steps]
            writer.push(plan_updates(scored.contacts.values(), scored.results, scored.mql_at,
                                     steps, model.writeback, model.lifecycle))
        sink.done(scoring)
        if writer is not None:
            result.counts.update({f"hubspot.{k}": v for k, v in writer.counts.items()})
        if marking:
            store.delete_bookmark(SCORE_WRITEBACK_PENDING)
    return run.result


class PushSelection(Protocol):
    """Which MQLs a push hands off (a backfill's window), and what it does after each round
    written (its checkpoint)."""

    def total(self, store: Store) -> int:
        """How many MQLs it selects (the progress bar's total)."""
        ...

    def mqls(self, store: Store, size: int) -> Iterable[list[Contact]]:
        """The MQLs, `size` a batch."""
        ...

    def on_round(self, ctx: PushContext, last: str) -> None:
        """A round is written up to HubSpot contact `last`."""
        ...


# The push's counts that settle one MQL each: its progress.
PUSH_OUTCOMES = (
    "leads.created", "leads.updated", "leads.unchanged", "leads.link_contact",
    "leads.link_converted", "leads.linked_duplicate", "leads.dead_letters",
    "leads.skipped_contact", "leads.would_create", "leads.would_update",
    "leads.would_leave_unchanged",
)


def _unwritten_steps(contacts: Iterable[ContactLike], section: LifecycleSection,
                     now: datetime) -> list[Decision]:
    """The lead and MQL steps the store shows that HubSpot, as last pulled, does not (recording
    a step moves the stored stage; a pull sets it back to HubSpot's): steps recorded by a run
    stopped before its write-back."""
    from connector.hubspot.write import LIFECYCLE_PROPERTY
    from connector.scoring.lifecycle import Decision

    kinds = {section.lead: "lead", section.mql: "mql"}
    steps = []
    for contact in contacts:
        stage = contact.lifecycle_stage
        shown = contact.properties.get(LIFECYCLE_PROPERTY) or None
        if stage in kinds and stage != shown:
            steps.append(Decision(contact.hubspot_id, kinds[stage], shown, stage, now,
                                  "recorded by a run stopped before its write-back"))
    return steps


def run_push_stage(
    config: Config, *, trigger: str = "manual", dry_run: bool = False,
    clock: Clock | None = None, progress: ProgressSink | None = None,
    ids: Collection[str] | None = None, stage: str = "push",
    select: PushSelection | None = None,
) -> StageResult:
    """Hand the MQLs (of `ids` only, when given: the webhooks' targeted sync, recorded as
    `stage`) to Salesforce once. Stops cleanly (status "stopped") when Handshake's
    share of the Salesforce allocation is spent; the next cycle resumes where it stopped.
    A fields.toml naming what the org's Lead describe does not have (or cannot take)
    write is reported (`StageResult.problems`) before anything is planned. `progress` is told
    each MQL settled (created, updated, linked, unchanged or parked). A backfill runs it as
    its own `stage` with its `select`ion of MQLs and a call after each round written."""
    from connector.hubspot.client import HubSpotClient
    from connector.mapping import load_fields, load_routing
    from connector.push.engine import PushContext, push
    from connector.salesforce import SalesforceClient
    from connector.salesforce.governor import GovernorSnapshot
    from connector.scoring import Engine, load_model

    fields = load_fields(config.mapping_path("fields"))
    routing = load_routing(config.mapping_path("routing"))
    sla = _push_sla(config)
    engine = Engine(load_model(config.mapping_path("scoring")))
    with stage_run(config, stage, trigger=trigger, clock=clock) as run:
        store, result = run.store, run.result
        sink = progress or NullProgress()
        handing = sink.task("MQLs handed off",
                            select.total(store) if select is not None else None)
        saved = store.get_bookmark(GOVERNOR_BOOKMARK)
        snapshot = GovernorSnapshot.from_json(json.loads(saved)) if saved else None
        # A Lead goes to its HubSpot owner's Salesforce user when routing.toml prefers it.
        # Open for the run: owners for routing first, the hand-off write-back at the end.
        hubspot = run.own(HubSpotClient.from_config(config, clock=run.clock))
        owner_emails = hubspot.owner_emails() if routing.spec.prefer_hubspot_owner else {}
        sf = run.own(SalesforceClient.from_config(config, clock=run.clock, snapshot=snapshot))
        run.on_close(lambda: store.set_bookmark(
            GOVERNOR_BOOKMARK, json.dumps(sf.governor.snapshot().to_json()), run_id=run.run_id))
        # The push reads the Lead describe first anyway (cached): what it says is wrong with
        # fields.toml is told before any record is planned, and makes the run degraded (the
        # records it spoils are parked for an admin), dry run or not.
        known = set(chain.from_iterable(fields.sources().values()))
        for problem in fields.live_problems(sf.fields(fields.sobject), known,
                                            str(config.mapping_path("fields"))):
            result.problems.append(str(problem))
            log.warning("mapping problem: %s", problem)
        if result.problems:
            result.status = "degraded"
        ctx = PushContext(store=store, sf=sf, fields=fields, routing=routing, engine=engine,
                          clock=run.clock, external_id_field=config.salesforce.external_id_field,
                          run_id=run.run_id, dry_run=dry_run, owner_emails=owner_emails,
                          hubspot=hubspot, alerts=config.alerts,
                          bulk_threshold=config.salesforce.bulk_threshold,
                          activity_tasks=config.push.activity_tasks,
                          existing_contact=config.push.existing_contact, sla=sla,
                          only=frozenset(ids) if ids is not None else None,
                          counts=ProgressCounts().watch(sink, handing, PUSH_OUTCOMES),
                          mqls=select.mqls if select is not None else None,
                          on_round=select.on_round if select is not None else None)
        result.counts = ctx.counts
        result.planned = ctx.planned
        push(ctx)
        sink.done(handing)
    return run.result


def _push_sla(config: Config) -> SlaFile:
    """sla.toml as the push reads it: the hand-off Task is due, and the SLA timer it opens
    counts, as its windows say. A mappings folder made before sla.toml existed has none: the
    push then uses the shipped windows and says so (the pull-back needs the file)."""
    from connector.defaults import default_mapping
    from connector.mapping import load_sla

    path = config.mapping_path("sla")
    shipped = default_mapping("sla")
    if not path.exists() and "sla" not in config.mappings.model_fields_set and shipped:
        log.warning("no SLA file at %s: hand-off Tasks are due as the shipped sla.toml says "
                    "(fix: copy the shipped mappings/sla.toml there, or set [mappings] sla)", path)
        path = shipped
    return load_sla(path).spec


def run_pullback_stage(
    config: Config, *, trigger: str = "manual", dry_run: bool = False,
    clock: Clock | None = None, stage: str = "pullback",
    window: tuple[str, datetime] | None = None,
) -> StageResult:
    """Pull back what sales did with the hand-offs (Lead status, owner and conversion, the
    Opportunity's stage and outcome, completed Tasks and Events) into the store, since each
    object's bookmark. `dry_run` reads and stores nothing (the counts say what it would).
    Stops cleanly (status "stopped") when Handshake's Salesforce share is spent. A backfill
    runs it as its own `stage` with a `window` (its bookmarks' prefix, the time its streams
    start from before they have one)."""
    from connector.pullback import PullbackContext, pull_back
    from connector.pullback.sla_step import run_sla_step
    from connector.salesforce import SalesforceClient
    from connector.salesforce.governor import GovernorSnapshot

    with stage_run(config, stage, trigger=trigger, clock=clock) as run:
        store = run.store
        saved = store.get_bookmark(GOVERNOR_BOOKMARK)
        snapshot = GovernorSnapshot.from_json(json.loads(saved)) if saved else None
        sf = run.own(SalesforceClient.from_config(config, clock=run.clock, snapshot=snapshot))
        if not dry_run:
            run.on_close(lambda: store.set_bookmark(
                GOVERNOR_BOOKMARK, json.dumps(sf.governor.snapshot().to_json()),
                run_id=run.run_id))
        settings = config.pullback
        ctx = PullbackContext(
            store=store, sf=sf, clock=run.clock,
            lookback=timedelta(minutes=config.schedule.lookback_minutes), run_id=run.run_id,
            dry_run=dry_run, lead_reason_field=settings.lead_reason_field or None,
            loss_reason_field=settings.loss_reason_field or None)
        if window is not None:
            ctx.bookmark_prefix, ctx.window_start = window
        run.result.counts = ctx.counts
        run.result.planned = ctx.planned
        handoffs = pull_back(ctx)
        # the Leads the SLA finds never accepted go back to marketing with that reason
        never_accepted = run_sla_step(ctx, sf, config)
        _outcomes_and_recycling(config, run, sf, ctx, handoffs, never_accepted)
        ctx.counts["salesforce.calls"] = sf.calls
    return run.result


def _outcomes_and_recycling(config: Config, run: StageRun, sf: SalesforceClient,
                            ctx: PullbackContext, handoffs: Handoffs,
                            never_accepted: set[str]) -> None:
    """The pull-back's last step: outcomes to HubSpot, dead leads back to marketing
    (`never_accepted`: the Lead ids the SLA step found never accepted)."""
    from connector.hubspot.client import HubSpotClient
    from connector.hubspot.outcomes import OutcomeSettings
    from connector.mapping.sla import load_sla
    from connector.pullback.outcomes_step import hand_back

    if not handoffs.links:
        return
    sla = load_sla(config.mapping_path("sla")).spec
    hubspot = run.own(HubSpotClient.from_config(config, clock=run.clock))
    settings = OutcomeSettings(reengagement_list=sla.recycling.reengagement_list)
    before = sf.calls
    hand_back(ctx, handoffs, hubspot=hubspot, sf=sf, sla=sla, settings=settings,
              never_accepted=never_accepted)
    ctx.counts["salesforce.recycle.calls"] = sf.calls - before


def retry_dead_letters(config: Config, ids: Sequence[int] = (),
                       clock: Clock | None = None, *, trigger: str = "manual") -> dict[str, int]:
    """Try the open dead letters again (all, or those with the given ids), after an admin fixed
    the mapping or the data: parked HubSpot contacts are read again (under the pull's lease);
    parked pushes run through the push stage and parked pull-back writes (SLA alerts,
    reassignments, recycled Leads) through the pull-back stage, which retry every write the
    ledger marks failed. Returns what happened."""
    from connector.hubspot.client import HubSpotClient
    from connector.pull.normalize import contact_from_hubspot
    from connector.pull.properties import needed_properties

    outcome: Counter[str] = Counter()
    with stage_run(config, "dlq-retry", trigger=trigger, clock=clock) as run:
        store = run.store
        letters = [d for d in store.dead_letters() if not ids or d.id in ids]
        outcome["selected"] = len(letters)
        contacts = [d for d in letters
                    if d.stage == "pull" and d.record_key.startswith("contacts:")]
        if contacts:
            client = run.own(HubSpotClient.from_config(config, clock=run.clock))
            raws = client.batch_read_contacts(
                [d.record_key.split(":", 1)[1] for d in contacts], needed_properties(config))
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
        # A contact merged away or archived in HubSpot since is no longer handed off: its
        # letter closes (a merge is how a "same person twice" letter is fixed).
        gone = [d.record_key for d in pushes
                if (c := store.get_contact(d.record_key)) is not None
                and (c.merged_into or c.archived)]
        outcome["resolved"] += store.resolve_dead_letters(stage="push", record_keys=gone)
        pushes = [d for d in pushes if d.record_key not in gone]
        pullbacks = [d for d in letters if d.stage == "pullback"]
        before = {d.id for d in store.dead_letters(stage="push")}
    if pushes:
        run_push_stage(config, trigger="dlq-retry", clock=clock)
    if pullbacks:  # the pull-back's ledger sends its failed writes (alerts, moves) again
        run_pullback_stage(config, trigger="dlq-retry", clock=clock)
    store = open_store(config)
    try:
        after = {d.id for d in store.dead_letters(stage="push")}
        if pushes:
            outcome["resolved"] += len({d.id for d in pushes} & (before - after))
        if pullbacks:
            still = {d.id for d in store.dead_letters(stage="pullback")}
            outcome["resolved"] += len({d.id for d in pullbacks} - still)
        outcome["still_open"] = len([d for d in store.dead_letters() if not ids or d.id in ids])
    finally:
        store.close()
    return dict(outcome)
