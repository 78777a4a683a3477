"""Backfills of every stage (`handshake backfill`): re-run a stage over a window of time
without moving the scheduled runs' bookmarks.

    pull      HubSpot changes and engagement in [since, until] into the store, stream by stream
    score     every contact that changed or engaged in the window re-scored, what changed
              written back to HubSpot, a batch at a time
    push      every MQL of the window handed off (created when not yet in Salesforce, updated
              when it is), a round at a time
    pullback  Salesforce re-read for the hand-offs from `since` on, under bookmarks of its own
    fields    (`--fields`) newly mapped fields sent to every Lead linked in the window, only
              those fields

Each stage runs inside `stage_run` under its own stage name (`backfill-<stage>`), which maps to
the lease of the daemon's stage that writes the same data (`LEASES`): a backfill and a scheduled
run never write at once. Each keeps a checkpoint bookmark per stage and window
(`backfill.<stage>.<since>..<until>`, JSON: the window's end as first resolved, the last id or
the streams done, `done`): a rerun of the same command resumes after it, a finished one says
so and does nothing unless restarted. Every write goes through the write ledger, so a batch
redone after an interruption sends nothing twice; every call through the HTTP policy and the
Salesforce governor of the adapters, so a backfill paces itself like any run.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from connector.clock import Clock, SystemClock
from connector.config import Config
from connector.errors import Actor, ConfigError, ConfigProblem
from connector.ledger import LedgerWrite, LedgerWrites, Outcome, Refusal, Written
from connector.progress import NullProgress, ProgressSink
from connector.runtime.run import StageResult, StageRun, stage_run
from connector.runtime.stages import (
    GOVERNOR_BOOKMARK,
    SCORE_WRITEBACK_PENDING,
    _unwritten_steps,
    run_pullback_stage,
    run_push_stage,
)
from connector.runtime.wiring import open_store, pull_context
from connector.store import Contact, Store

if TYPE_CHECKING:
    from connector.mapping import FieldMap
    from connector.push.context import PushContext
    from connector.push.ports import WriteResult
    from connector.salesforce import SalesforceClient
    from connector.store import IdLink

__all__ = ["STAGES", "Backfill", "Checkpoint", "Window", "checkpoint_key", "fields_wanted",
           "run_backfill"]

log = logging.getLogger("connector.backfill")

STAGES = ("pull", "score", "push", "pullback")
PREFIX = "backfill."
SCORE_BATCH = 200  # contacts scored, written back (≤ 100 a call) and checkpointed together
FIELDS_BATCH = 1000  # Leads read and updated together (≤ 200 a collection, 5 a composite call)
FIELDS_LEDGER = "sf:lead-fields:"


def _compact(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


@dataclass(frozen=True)
class Window:
    """The backfill's [since, until]; `until` None: up to when each stage first ran (kept in
    its checkpoint, so a resumed run covers the same window)."""

    since: datetime
    until: datetime | None = None

    def label(self) -> str:
        """The window in checkpoint keys: `20261101T000000Z..20261201T000000Z` (`..now`)."""
        end = _compact(self.until) if self.until is not None else "now"
        return f"{_compact(self.since)}..{end}"


def checkpoint_key(stage: str, window: Window) -> str:
    """The checkpoint bookmark of one backfill stage over one window."""
    return f"{PREFIX}{stage}.{window.label()}"


@dataclass
class Checkpoint:
    """Where a backfill stage stands: its window's end, the last id done (score, push,
    fields) or the streams done (pull), and whether it finished."""

    key: str
    until: datetime
    after: str = ""
    streams: list[str] = field(default_factory=list)
    done: bool = False
    started: bool = False  # read from the store (a run of it began before)

    @classmethod
    def load(cls, store: Store, key: str, window: Window, now: datetime, *,
             restart: bool = False) -> Checkpoint:
        """The stage's checkpoint as stored (a fresh one when there is none, or `restart`)."""
        raw = None if restart else store.get_bookmark(key)
        if not raw:
            return cls(key, window.until or now)
        data = json.loads(raw)
        return cls(key, datetime.fromisoformat(data["until"]), str(data.get("after") or ""),
                   list(data.get("streams") or []), bool(data.get("done")), started=True)

    def save(self, store: Store, run_id: str | None, *, dry_run: bool = False) -> None:
        """Store it (a dry run stores nothing)."""
        if dry_run:
            return
        store.set_bookmark(self.key, json.dumps({
            "until": self.until.isoformat(), "after": self.after, "streams": self.streams,
            "done": self.done}), run_id=run_id)


@dataclass(frozen=True)
class Backfill:
    """What `handshake backfill` asked for."""

    window: Window
    stages: tuple[str, ...] = STAGES
    fields: tuple[str, ...] = ()  # Salesforce fields to send to every Lead (`--fields`)
    dry_run: bool = False
    restart: bool = False


@dataclass
class StageOutcome:
    """One backfill stage: its run's result, or None when it had finished before."""

    stage: str
    result: StageResult | None
    checkpoint: str


def run_backfill(config: Config, backfill: Backfill, *, progress: ProgressSink | None = None,
                 clock: Clock | None = None) -> list[StageOutcome]:
    """Run the backfill's stages in order (pull -> score -> push -> pullback), or its fields;
    stops after a stage that did not finish (failed, stopped at a quota). A stage finished
    before is skipped (restart: run again from the start). Fields fields.toml does not map
    raise ConfigError before anything runs."""
    sink = progress or NullProgress()
    outcomes: list[StageOutcome] = []
    if backfill.fields:
        # named by their Salesforce fields (one checkpoint and ledger key however named)
        from connector.mapping import load_fields

        path = config.mapping_path("fields")
        backfill = replace(backfill, fields=tuple(
            fields_wanted(load_fields(path), backfill.fields, str(path))))
    jobs = [("fields", _fields)] if backfill.fields else [
        (stage, _BODIES[stage]) for stage in STAGES if stage in backfill.stages]
    for stage, body in jobs:
        key = _key(stage, backfill)
        if not backfill.restart and _finished(config, key, clock):
            log.info("backfill of %s over %s finished before: nothing to do (--restart runs "
                     "it again)", stage, backfill.window.label())
            outcomes.append(StageOutcome(stage, None, key))
            continue
        result = body(config, backfill, key, sink, clock)
        outcomes.append(StageOutcome(stage, result, key))
        if result.status not in ("ok", "degraded"):
            break
    return outcomes


def _key(stage: str, backfill: Backfill) -> str:
    if stage != "fields":
        return checkpoint_key(stage, backfill.window)
    names = ",".join(sorted(backfill.fields))
    tag = names if len(names) <= 40 else hashlib.sha1(names.encode()).hexdigest()[:12]
    return checkpoint_key(f"fields-{tag}", backfill.window)


def _finished(config: Config, key: str, clock: Clock | None) -> bool:
    store = open_store(config, clock)
    try:
        raw = store.get_bookmark(key)
    finally:
        store.close()
    return bool(raw) and bool(json.loads(str(raw)).get("done"))


def _start(run: StageRun, key: str, backfill: Backfill) -> Checkpoint:
    if backfill.restart and not backfill.dry_run:
        for name in run.store.bookmarks(f"{key}."):  # the stage's own bookmarks (pull)
            run.store.delete_bookmark(name)
    cp = Checkpoint.load(run.store, key, backfill.window, run.clock.now(),
                         restart=backfill.restart)
    if cp.started and not cp.done:
        log.info("resuming the backfill from its checkpoint %s (%s)", key,
                 f"after {cp.after}" if cp.after else f"streams done: {cp.streams}")
    cp.done = False
    return cp


# --- pull ---------------------------------------------------------------------------------


def _pull(config: Config, backfill: Backfill, key: str, sink: ProgressSink,
          clock: Clock | None) -> StageResult:
    """HubSpot's changes in the window, stream by stream; a stream done is not read again."""
    from connector.pull.contacts import ContactsStream
    from connector.pull.normalize import parse_time
    from connector.pull.runner import ENGAGEMENT_STREAMS, STREAMS

    dry_run = backfill.dry_run
    with stage_run(config, "backfill-pull", trigger="backfill", clock=clock) as run:
        cp = _start(run, key, backfill)
        ctx = pull_context(config, run.store, clock=run.clock, run_id=run.run_id,
                           progress=sink, dry_run=dry_run)
        run.own(ctx.client)
        run.result.counts = ctx.counts
        for name in STREAMS:
            if name in cp.streams:
                continue
            before = ctx.client.calls
            if name == "contacts":
                # each page stored moves the backfill's own bookmark: a rerun resumes there
                contacts = ContactsStream(ctx)
                mark = f"{key}.contacts"
                done = parse_time(run.store.get_bookmark(mark) or "")
                contacts.incremental(max(backfill.window.since, done or backfill.window.since),
                                     cp.until, bookmark_stream=mark)
                sink.done(contacts.task)
            else:
                ENGAGEMENT_STREAMS[name](ctx).run(backfill.window.since, cp.until,
                                                  bookmark=False)
            ctx.counts[f"{name}.calls"] += ctx.client.calls - before
            cp.streams.append(name)
            cp.save(run.store, run.run_id, dry_run=dry_run)
        ctx.counts["hubspot.calls"] = ctx.client.calls
        cp.done = True
        cp.save(run.store, run.run_id, dry_run=dry_run)
    return run.result


# --- score --------------------------------------------------------------------------------


def _score(config: Config, backfill: Backfill, key: str, sink: ProgressSink,
           clock: Clock | None) -> StageResult:
    """Every contact that changed or engaged in the window re-scored, SCORE_BATCH at a time:
    its scores and lifecycle steps stored, what changed written back to HubSpot, then the
    checkpoint. A run resumed after an interruption also sends the lifecycle steps the
    interrupted one recorded but did not write (as the score stage does)."""
    from connector.hubspot.client import HubSpotClient
    from connector.hubspot.write import HubSpotWriter, plan_updates
    from connector.scoring import Engine, load_model
    from connector.scoring.runner import score_contacts

    model = load_model(config.mapping_path("scoring"))
    engine = Engine(model)
    dry_run = backfill.dry_run
    with stage_run(config, "backfill-score", trigger="backfill", clock=clock) as run:
        store, result = run.store, run.result
        cp = _start(run, key, backfill)
        since, until, now = backfill.window.since, cp.until, run.clock.now()
        pending = store.get_bookmark(SCORE_WRITEBACK_PENDING)
        resuming = pending is not None
        # the pending mark is ours to clear only when a backfill set it: one left by a score
        # run stopped before its write-back stays, so the next score run finishes that one
        left = store.get_run(pending) if pending else None
        ours = pending is None or (left is not None and left.stage == run.stage)
        if not dry_run:
            store.set_bookmark(SCORE_WRITEBACK_PENDING, run.run_id if ours else str(pending),
                               run_id=run.run_id)
        task = sink.task("contacts re-scored", store.count_in_window(since, until,
                                                                     after=cp.after))
        writer: HubSpotWriter | None = None
        for batch in store.contacts_in_window(since, until, after=cp.after, batch=SCORE_BATCH):
            scored = score_contacts(store, engine, now, run_id=run.run_id, dry_run=dry_run,
                                    selected=[batch])
            result.counts.update(scored.counts)
            if not dry_run and scored.results:
                if writer is None:
                    client = run.own(HubSpotClient.from_config(config, clock=run.clock))
                    writer = HubSpotWriter(client, store, model.writeback,
                                           contacts_path=client.contacts_path,
                                           run_id=run.run_id)
                    writer.ensure_properties()
                steps = scored.decisions
                if resuming:
                    steps = [*_unwritten_steps(scored.contacts.values(), model.lifecycle, now),
                             *steps]
                writer.push(plan_updates(scored.contacts.values(), scored.results,
                                         scored.mql_at, steps, model.writeback,
                                         model.lifecycle))
            cp.after = batch[-1].hubspot_id
            cp.save(store, run.run_id, dry_run=dry_run)
            sink.advance(task, len(batch))
        sink.done(task)
        if writer is not None:
            result.counts.update({f"hubspot.{k}": v for k, v in writer.counts.items()})
        if not dry_run and ours:
            store.delete_bookmark(SCORE_WRITEBACK_PENDING)
        cp.done = True
        cp.save(store, run.run_id, dry_run=dry_run)
    return run.result


# --- push ---------------------------------------------------------------------------------


class _PushWindow:
    """The push's selection in a backfill: the MQLs of the window after the checkpoint, and
    the checkpoint moved after each round written."""

    def __init__(self, backfill: Backfill, key: str, clock: Clock) -> None:
        self.backfill = backfill
        self.key = key
        self.clock = clock
        self.cp: Checkpoint | None = None

    def checkpoint(self, store: Store) -> Checkpoint:
        if self.cp is None:
            self.cp = Checkpoint.load(store, self.key, self.backfill.window, self.clock.now(),
                                      restart=self.backfill.restart)
            self.cp.done = False
        return self.cp

    def total(self, store: Store) -> int:
        cp = self.checkpoint(store)
        return store.count_in_window(self.backfill.window.since, cp.until, after=cp.after,
                                     mqls_only=True)

    def mqls(self, store: Store, size: int) -> Iterable[list[Contact]]:
        cp = self.checkpoint(store)
        return store.contacts_in_window(self.backfill.window.since, cp.until, after=cp.after,
                                        mqls_only=True, batch=size)

    def on_round(self, ctx: PushContext, last: str) -> None:
        cp = self.checkpoint(ctx.store)
        cp.after = last
        cp.save(ctx.store, ctx.run_id, dry_run=ctx.dry_run)


def _push(config: Config, backfill: Backfill, key: str, sink: ProgressSink,
          clock: Clock | None) -> StageResult:
    """Every MQL of the window handed off through the push (created or updated, once)."""
    select = _PushWindow(backfill, key, clock or SystemClock())
    result = run_push_stage(config, trigger="backfill", dry_run=backfill.dry_run, clock=clock,
                            progress=sink, stage="backfill-push", select=select)
    if result.status in ("ok", "degraded") and not backfill.dry_run and select.cp is not None:
        _mark_done(config, select.cp, result.run_id, clock)
    return result


def _mark_done(config: Config, cp: Checkpoint, run_id: str, clock: Clock | None) -> None:
    store = open_store(config, clock)
    try:
        cp.done = True
        cp.save(store, run_id)
    finally:
        store.close()


# --- pull-back ----------------------------------------------------------------------------


def _pullback(config: Config, backfill: Backfill, key: str, sink: ProgressSink,
              clock: Clock | None) -> StageResult:
    """Salesforce re-read for the hand-offs from `since` on: the pull-back with bookmarks of
    its own under the checkpoint's key (each stream resumes from its own), the incremental
    bookmarks and the deleted-records check left to the scheduled runs; its SLA, outcomes and
    recycling steps as in any pull-back (each write once, by the ledger). Rows changed after
    `until` are read too: they are applied once, and the scheduled run finds them applied."""
    if backfill.restart and not backfill.dry_run:
        # from `since` again: the streams' own bookmarks go with the checkpoint
        store = open_store(config, clock)
        try:
            for name in [key, *store.bookmarks(f"{key}.")]:
                store.delete_bookmark(name)
        finally:
            store.close()
    result = run_pullback_stage(config, trigger="backfill", dry_run=backfill.dry_run,
                                clock=clock, stage="backfill-pullback",
                                window=(key, backfill.window.since))
    if result.status in ("ok", "degraded") and not backfill.dry_run:
        store = open_store(config, clock)
        try:
            cp = Checkpoint.load(store, key, backfill.window, (clock or SystemClock()).now())
        finally:
            store.close()
        _mark_done(config, cp, result.run_id, clock)
    return result


# --- fields -------------------------------------------------------------------------------


def fields_wanted(fields: FieldMap, names: Sequence[str], file: str) -> list[str]:
    """The Salesforce fields `--fields` names (a fields.toml entry's Salesforce field, or the
    HubSpot property it reads), in file order; ConfigError naming fields.toml and each name
    it does not map."""
    by_name: dict[str, str] = {}
    for rule in fields.rules:
        if rule.sync == "none":
            continue
        by_name.setdefault(rule.salesforce.lower(), rule.salesforce)
        for prop in rule.hubspot:
            by_name.setdefault(prop.lower(), rule.salesforce)
    unknown = [n for n in names if n.lower() not in by_name]
    if unknown:
        mapped = ", ".join(r.salesforce for r in fields.rules if r.sync != "none")
        raise ConfigError([ConfigProblem(
            file, "fields", f"{name!r} is not a field this file maps to Salesforce",
            f"name the `salesforce` field (or the `hubspot` property) of a [[fields]] entry "
            f"whose sync is not \"none\"; mapped: {mapped}") for name in unknown])
    wanted = {by_name[n.lower()] for n in names}
    return list(dict.fromkeys(r.salesforce for r in fields.rules if r.salesforce in wanted))


@dataclass
class _FieldUpdate:
    hubspot_id: str
    sf_id: str
    values: dict[str, Any]


def _fields(config: Config, backfill: Backfill, key: str, sink: ProgressSink,
            clock: Clock | None) -> StageResult:
    """Send the named fields, and only them, to every Lead linked in the window: each Lead's
    current values read (batched SOQL), the mapped values its sync rules allow that differ
    sent as updates, ≤ 200 a collection, each once (the write ledger)."""
    from connector.mapping import load_fields
    from connector.salesforce import SalesforceClient
    from connector.salesforce.governor import GovernorSnapshot

    path = config.mapping_path("fields")
    fields = load_fields(path)
    wanted = fields_wanted(fields, backfill.fields, str(path))
    dry_run = backfill.dry_run
    with stage_run(config, "backfill-fields", trigger="backfill", clock=clock) as run:
        store, result = run.store, run.result
        cp = _start(run, key, backfill)
        saved = store.get_bookmark(GOVERNOR_BOOKMARK)
        snapshot = GovernorSnapshot.from_json(json.loads(saved)) if saved else None
        sf = run.own(SalesforceClient.from_config(config, clock=run.clock, snapshot=snapshot))
        if not dry_run:
            run.on_close(lambda: store.set_bookmark(
                GOVERNOR_BOOKMARK, json.dumps(sf.governor.snapshot().to_json()),
                run_id=run.run_id))
        describe = sf.fields(fields.sobject)
        missing = [name for name in wanted if name not in describe]
        for name in missing:
            problem = (f"{path}: [[fields]] salesforce = {name!r}: the org's {fields.sobject} "
                       f"has no such field — fix: create it in Salesforce, or correct the name")
            result.problems.append(problem)
            log.warning("mapping problem: %s", problem)
            result.status = "degraded"
        sending = [name for name in wanted if name in describe]
        since, until = backfill.window.since, cp.until
        links = [link for chunk in store.leads_linked_in_window(since, until, after=cp.after)
                 for link in chunk]
        task = sink.task(f"Leads given {', '.join(sending) or 'no field'}", len(links))
        ledger = LedgerWrites(store, stage="push", system="salesforce", run_id=run.run_id)
        for start in range(0, len(links) if sending else 0, FIELDS_BATCH):
            chunk = links[start:start + FIELDS_BATCH]
            updates = _field_updates(store, sf, fields, chunk, sending, describe, result)
            _send_fields(sf, fields, ledger, key, updates, result, dry_run)
            cp.after = chunk[-1].hubspot_id
            cp.save(store, run.run_id, dry_run=dry_run)
            sink.advance(task, len(chunk))
        sink.done(task)
        result.counts["salesforce.calls"] = sf.calls
        cp.done = True
        cp.save(store, run.run_id, dry_run=dry_run)
    return run.result


def _field_updates(store: Store, sf: SalesforceClient, fields: FieldMap, links: Sequence[IdLink],
                   sending: list[str], describe: dict[str, Any],
                   result: StageResult) -> list[_FieldUpdate]:
    """What each Lead of the batch needs of the named fields, against its current values."""
    from connector.push.engine import _salesforce_time

    current = {str(row["Id"])[:15]: row for row in sf.records_by_id(
        "Lead", [link.sf_id for link in links], [*sending, "LastModifiedDate"],
        what="Leads' current values of the fields backfilled")}
    out: list[_FieldUpdate] = []
    for link in links:
        contact = store.get_contact(link.hubspot_id)
        row = current.get(link.sf_id[:15])
        if contact is None or row is None:
            result.counts["fields.lead_gone" if row is None else "fields.contact_gone"] += 1
            continue
        mapped = fields.lead_values(contact.properties, email=contact.email or "",
                                    hubspot_id=contact.hubspot_id, describe=describe)
        changes = mapped.changes(row, hubspot_modified=contact.hubspot_updated_at,
                                 salesforce_modified=_salesforce_time(
                                     row.get("LastModifiedDate")))
        values = {k: v for k, v in changes.items() if k in sending}
        if not values:
            result.counts["fields.unchanged"] += 1
            continue
        out.append(_FieldUpdate(link.hubspot_id, link.sf_id, values))
    return out


def _send_fields(sf: SalesforceClient, fields: FieldMap, ledger: LedgerWrites, key: str,
                 updates: list[_FieldUpdate], result: StageResult, dry_run: bool) -> None:
    if dry_run:
        for u in updates:
            result.planned.append({"contact": u.hubspot_id, "action": "update",
                                   "values": {"Id": u.sf_id, **u.values},
                                   "why": "--fields backfill", "fixed": []})
            result.counts["fields.would_update"] += 1
        return
    tag = key.removeprefix(PREFIX).split(".", 1)[0]
    writes: list[LedgerWrite[_FieldUpdate]] = []
    for u in updates:
        ledger_key = f"{FIELDS_LEDGER}{tag}:{u.hubspot_id}"
        if ledger.claim(ledger_key, operation="update", target="Lead", payload=u.values):
            writes.append(LedgerWrite((ledger_key,), u.hubspot_id, u, remote_id=u.sf_id))
        else:
            result.counts["fields.sent_before"] += 1

    def send(items: list[_FieldUpdate]) -> Iterator[Sequence[WriteResult]]:
        records = [{"Id": u.sf_id, **u.values} for u in items]
        yield from sf.update_batches("Lead", records, auto_assign=False)

    def judge(write: LedgerWrite[_FieldUpdate], answer: WriteResult) -> Outcome:
        if answer.success:
            result.counts["fields.updated"] += 1
            return Written(answer.id or write.item.sf_id)
        result.counts["fields.dead_letters"] += 1
        rejection = answer.rejection
        return Refusal(
            reason=(rejection.reason_with(fields.sources()) if rejection
                    else "Salesforce refused the update and gave no reason"),
            actor=rejection.actor if rejection else Actor.ADMIN,
            payload={"action": "update", "values": write.item.values},
            error_code=rejection.code if rejection else "")

    for _ in ledger.send(writes, send, judge):
        pass


_BODIES = {"pull": _pull, "score": _score, "push": _push, "pullback": _pullback}
