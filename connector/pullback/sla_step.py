"""The pull-back's SLA step: each open hand-off's follow-up SLA, from the outcomes in the store.

For each Lead handed off (its current turn: the newest SLA timer of the contact), `connector.sla`
evaluates the windows at the run's time from the stored attempts and status changes. A timer
the push opened (not a reassignment's) starts a fresh hand-off: a returning lead's new owner
starts at turn 0, and the turns of its earlier hand-off end where the return begins (nothing
done after it counts for or against them). Each
breach is recorded once by its stable key (`sla_breaches`) and alerts the owner (and the
manager, when sla.toml says so) with one Task through the write ledger (`sf:task:sla:{key}`),
so no run alerts twice: Task has no external id, so an alert whose create may have reached
Salesforce unconfirmed (its answer lost, or the run killed while it was in flight: its ledger
entry is left pending) is first looked for among the Tasks Handshake created on the Lead, by
the breach reference its Description ends with, and only created when not found. After the worked window, when sla.toml says reassign, the Lead goes to
the next active member of the owner's routing team with the note in its Description (ledger
key `sf:lead:{reassignment key}`), the move is recorded and a new SLA timer opened for the new
owner; a reassignment left unconfirmed is not noted twice on the Lead. A Lead whose worked
window passed with no reassignment left (reassignment off, the turn limit reached, nobody else
in the team) was never accepted: `apply_sla` returns those Lead ids for recycling. `dry_run`
writes nothing and counts what it would.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from statistics import median
from types import SimpleNamespace
from typing import Any, Protocol
from urllib.parse import urlsplit

from connector.clock import Clock
from connector.config import AlertSettings, Config
from connector.errors import Actor, HandshakeError, RetriableError
from connector.http import DESCRIBE, WEBHOOK, HttpPolicy, make_httpx_client, webhook_settings
from connector.ledger import LedgerWrite, LedgerWrites, Outcome, Refusal, Written
from connector.mapping import load_routing, load_sla
from connector.mapping.routing import Routing
from connector.mapping.sla import SlaFile
from connector.pullback.context import STAGE, PullbackContext
from connector.sla import (
    Activity,
    Assignment,
    Reassignment,
    SlaStatus,
    calendar_of,
    evaluate,
    never_accepted,
    reassignment,
)
from connector.store import SalesOutcome, Store, WriteClaim

__all__ = ["ALERT_PREFIX", "REASSIGN_PREFIX", "SLA_BOOKMARK", "SlaSalesforce", "as_of",
           "evaluate_handoffs", "run_sla_step", "sla_report"]

log = logging.getLogger("connector.pullback.sla")

ALERT_PREFIX = "sf:task:sla:"
MANAGER_PREFIX = "sf:task:sla-manager:"
WEBHOOK_PREFIX = "webhook:sla:"
REASSIGN_PREFIX = "sf:lead:"
USER_ID_PREFIX = "005"  # only a user may own a Task
LEAD_ID_PREFIX = "00Q"
DESCRIPTION_MAX = 32_000
REF_LABEL = "Handshake SLA ref: "  # an alert Task's Description ends with it and the breach key
SEND_ROUNDS = 4  # creates of one batch whose answers keep getting lost, before the run gives up
_TASK_TYPES = {"call": "Call", "email": "Email", "task": "Task"}
# where the last finished SLA step stood (JSON): the newest outcome and timer ids, its time,
# sla.toml's fingerprint; the next step judges again only what may have changed since
SLA_BOOKMARK = f"{STAGE}.sla"
# states stored this long before the last step's time are judged again too (a clock that
# another host or process read may lag a little)
STATE_MARGIN = timedelta(hours=1)


class SlaSalesforce(Protocol):
    """What the SLA step needs of Salesforce (`connector.salesforce.SalesforceClient` fits)."""

    user_id: str | None  # the integration user: CreatedById of what Handshake writes

    def users(self, *, active_only: bool = False) -> list[dict[str, Any]]: ...

    def records_by_id(self, sobject: str, ids: Any, fields: Sequence[str], *,
                      what: str = "") -> Iterator[dict[str, Any]]: ...

    def find_tasks(self, who_ids: Any, *, subject_contains: str, created_by: str | None = ...,
                   fields: Sequence[str] = ...) -> Iterator[dict[str, Any]]: ...

    def create_batches(self, sobject: str, records: Sequence[Mapping[str, Any]], *,
                       auto_assign: bool = ..., allow_duplicates: bool = ...) -> Iterator[Any]: ...

    def update_batches(self, sobject: str, records: Sequence[Mapping[str, Any]], *,
                       auto_assign: bool = ..., allow_duplicates: bool = ...) -> Iterator[Any]: ...


@dataclass(frozen=True, slots=True)
class Turn:
    """One hand-off's current SLA turn and what the engine says of it."""

    hubspot_id: str
    timer: Any  # the `sla_timers` row
    status: SlaStatus


def run_sla_step(ctx: PullbackContext, sf: SlaSalesforce, config: Config) -> set[str]:
    """The SLA step of the pull-back stage, with sla.toml and routing.toml from `config`;
    returns the ids of the Leads never accepted (for recycling)."""
    sla = load_sla(config.mapping_path("sla")).spec
    routing = load_routing(config.mapping_path("routing"))
    return apply_sla(ctx, sf, sla, routing, config.alerts)


def _activities(outcomes: Sequence[Any]) -> list[Activity]:
    out: list[Activity] = []
    for o in outcomes:
        if o.kind == "attempt" and not (o.details or {}).get("handshake_task"):
            channel = str((o.details or {}).get("channel") or "task")
            event = o.sf_object == "Event" or channel == "meeting"
            out.append(Activity(o.occurred_at, "event" if event else "task", by=o.owner_id,
                                task_type=_TASK_TYPES.get(channel, channel)))
        elif o.kind in ("status", "converted"):
            out.append(Activity(o.occurred_at, "status", by=o.owner_id, status=o.status,
                                converted=o.kind == "converted"))
    return out


def _turns_of(timers: Iterable[Any]) -> dict[str, list[Any]]:
    """Each contact's SLA timers (rows by id), oldest turn first."""
    turns: dict[str, list[Any]] = defaultdict(list)
    for timer in timers:
        turns[timer.hubspot_id].append(timer)
    return turns


def _status_at(outcomes: Sequence[Any], state: Any, lead_id: str,
               at: datetime) -> str | None:
    """The Lead's status at `at`: the status the first change after it came from (the state
    the pull-back had read, Handshake's own writes included), else its status now."""
    changes = sorted((o for o in outcomes if o.sf_id == lead_id
                      and o.kind in ("status", "converted") and o.occurred_at > at),
                     key=lambda o: o.occurred_at)
    if changes:
        before = (changes[0].details or {}).get("from")
        return str(before) if before else None
    return getattr(state, "status", None) if getattr(state, "lead_id", None) == lead_id else None


def _states(store: Store, unstored: Mapping[str, Mapping[str, Any]],
            contacts: Collection[str] | None = None) -> dict[str, Any]:
    """The hand-offs' states as stored (of `contacts` when given), those a dry run read (not
    stored) over them."""
    states: dict[str, Any] = {h: SimpleNamespace(**s)
                              for h, s in store.handoff_state_rows(contacts).items()}
    states.update({h: SimpleNamespace(**s) for h, s in unstored.items()})
    return states


def evaluate_handoffs(store: Store, sla: SlaFile, now: datetime,
                      unstored: Sequence[Mapping[str, Any]] = (),
                      unstored_states: Mapping[str, Mapping[str, Any]] | None = None,
                      ) -> list[Turn]:
    """Every SLA turn of the hand-offs as of `now` (each contact's reassignments in order),
    evaluated from the stored outcomes (and those a dry run read, `unstored`)."""
    return _evaluate(store, sla, now, _turns_of(store.sla_timer_rows()),
                     _states(store, unstored_states or {}), unstored)


def _evaluate(store: Store, sla: SlaFile, now: datetime, timers: Mapping[str, list[Any]],
              states: Mapping[str, Any], unstored: Sequence[Mapping[str, Any]] = (),
              contacts: Collection[str] | None = None) -> list[Turn]:
    """The SLA turns of the contacts of `timers` as of `now` (`contacts`: those alone are
    read from the store; None: every contact)."""
    by_contact: dict[str, list[Any]] = defaultdict(list)
    for outcome in [*store.outcome_rows(hubspot_ids=contacts),
                    *(SalesOutcome(**o) for o in unstored)]:
        if outcome.hubspot_id:
            by_contact[outcome.hubspot_id].append(outcome)
    cal = calendar_of(sla)
    out: list[Turn] = []
    for hubspot_id, turns in timers.items():
        outcomes = by_contact.get(hubspot_id, [])
        activities = _activities(outcomes)
        turn = 0
        for at, timer in enumerate(turns):
            # a timer the push opened is a fresh hand-off (a return's too): turn 0 again
            turn = 0 if timer.recycled_from is None else turn + 1
            if not timer.owner_id:
                continue  # Salesforce's assignment rules chose: no rep to hold to a window
            status = _status_at(outcomes, states.get(hubspot_id), timer.sf_id,
                                timer.assigned_at)
            assignment = Assignment(timer.sf_id, timer.owner_id, timer.assigned_at,
                                    reassignments=turn, status=status)
            # an earlier hand-off's turns end where the lead's return begins
            until = next((t.assigned_at for t in turns[at + 1:] if t.recycled_from is None),
                         None)
            if until is None:
                verdict = evaluate(sla, assignment, activities, now, cal)
            else:
                verdict = evaluate(sla, assignment, [a for a in activities if a.at < until],
                                   min(now, until), cal)
            out.append(Turn(hubspot_id, timer, verdict))
    return out


def _fingerprint(sla: SlaFile) -> str:
    """What the SLA's verdicts depend on beside the store's data: the file's settings."""
    return hashlib.sha256(sla.model_dump_json().encode()).hexdigest()


def _incremental(ctx: PullbackContext) -> bool:
    """Whether the run judges from, and moves, the scheduled runs' SLA bookmark: not a dry
    run, not a backfill (its own bookmarks; the scheduled runs' are neither read nor moved)."""
    return (not ctx.dry_run and not ctx.unstored and not ctx.unstored_states
            and ctx.bookmark_prefix == STAGE)


def _live(ctx: PullbackContext, fingerprint: str) -> set[str] | None:
    """The contacts whose SLA turns may judge otherwise than the last finished SLA step
    judged them (`SLA_BOOKMARK`): an outcome stored since, or one whose time has come since
    (an Event set ahead); a timer opened since, or one not worked yet (time alone may breach
    it, and it may be alerted, reassigned or found never accepted); a state stored since (the
    status at hand-off, whether the Lead is still open). Every other contact's turns judge as
    they did, and what they called for stands written (breaches, timers; alerts and moves
    only concern turns not worked). None: every contact (no step finished yet, sla.toml
    changed, a dry run, which judges what it read and did not store, or a backfill, which
    leaves the scheduled runs' bookmarks alone)."""
    if not _incremental(ctx):
        return None
    text = ctx.store.get_bookmark(SLA_BOOKMARK)
    try:
        mark = json.loads(text) if text else None
        if not mark or mark.get("sla") != fingerprint:
            return None
        at = datetime.fromisoformat(str(mark["at"]))
        outcome_id, timer_id = int(mark["outcome"]), int(mark["timer"])
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    store = ctx.store
    live = store.outcomes_changed(after_id=outcome_id, occurring_after=at)
    live |= store.sla_timers_live(after_id=timer_id)
    live |= store.states_changed(at - STATE_MARGIN)
    return live


def _teams(routing: Routing, users: Sequence[Mapping[str, Any]]) -> dict[str, list[str]]:
    """Each routing team's active members' user ids, in the team's order."""
    by_key: dict[str, Mapping[str, Any]] = {}
    for user in users:
        for key in (user.get("Email"), user.get("Username"), str(user.get("Id") or "")[:15]):
            if key:
                by_key.setdefault(str(key).lower(), user)
    teams: dict[str, list[str]] = {}
    for name, team in routing.spec.teams.items():
        members = [by_key.get(m.user.lower()) or by_key.get(m.user[:15].lower())
                   for m in team.members]
        teams[name] = [str(u["Id"]) for u in members if u is not None and u.get("IsActive")]
    return teams


def _team_of(teams: Mapping[str, list[str]], owner: str) -> tuple[str, list[str]] | None:
    return next(((name, ids) for name, ids in teams.items() if owner in ids), None)


def apply_sla(ctx: PullbackContext, sf: SlaSalesforce, sla: SlaFile, routing: Routing,
              webhook: AlertSettings | None = None) -> set[str]:
    """Record, alert and reassign what the SLA says of every current turn (see the module);
    `webhook`: the `[alerts]` settings, whose URL the breaches are POSTed to when sla.toml
    says so. Returns the ids of the Leads never accepted: not worked in their window and not
    reassigned (`connector.sla.never_accepted`), which recycling hands back to marketing."""
    store = ctx.store
    now = ctx.clock.now()
    fingerprint = _fingerprint(sla)
    # what the next step's `_live` starts from: read before anything of this step
    marks = {"outcome": store.outcome_mark(), "timer": store.sla_timer_mark()}
    live = _live(ctx, fingerprint)
    timers = _turns_of(store.sla_timer_rows(live))
    # how many contacts' turns were judged again (every contact with a timer, in a full run)
    ctx.counts["judged.sla_contacts"] = len(timers)
    states = _states(store, ctx.unstored_states, live)
    latest = {h: turns_[-1].id for h, turns_ in timers.items()}
    turns = _evaluate(store, sla, now, timers, states, ctx.unstored, live)
    known = store.sla_breach_marks(live)
    records: list[dict[str, Any]] = []
    alerts: list[tuple[Turn, Any]] = []
    for turn in turns:
        for breach in turn.status.breaches:
            new = breach.key not in known
            if new:
                ctx.counts["sla.breaches"] += 1
            if new or (breach.met_at is not None and known[breach.key] is None):
                # only what changed is written (a breach is recorded once, met once)
                records.append({"key": breach.key, "kind": breach.kind,
                                "hubspot_id": turn.hubspot_id, "lead_id": breach.lead_id,
                                "owner_id": breach.owner_id, "timer_id": turn.timer.id,
                                "assigned_at": breach.assigned_at, "due_at": breach.due_at,
                                "met_at": breach.met_at, "found_at": now})
            current = turn.timer.id == latest.get(turn.hubspot_id)
            if current and breach.met_at is None:
                alerts.append((turn, breach))
    if ctx.dry_run:
        ctx.counts["sla.alerts"] += sum(1 for _, b in alerts if b.key not in known)
        if sla.breach.alert_owner:
            _plan_alerts(ctx, sf, sla, alerts)
    else:
        store.record_sla_breaches(records)
        _update_timers(ctx, turns)
        if sla.breach.alert_owner:
            _send_alerts(ctx, sf, sla, alerts, states)
        if sla.breach.alert_webhook and webhook is not None and webhook.webhook_url:
            _post_webhooks(ctx, webhook, [(t.hubspot_id, b) for t, b in alerts])
    moves = [t for t in turns if t.timer.id == latest.get(t.hubspot_id)
             and t.timer.sf_id.startswith(LEAD_ID_PREFIX)  # an existing Contact stays put
             and _open(states.get(t.hubspot_id))]
    breached = [t for t in moves if t.status.breach("worked") and t.status.worked_at is None]
    planned = _moves(sf, sla, routing, breached) if sla.breach.reassign and breached else []
    if planned:
        _reassign(ctx, sf, sla, planned, now)
    moving = {t.timer.id: m for t, m in planned}
    never = {t.timer.sf_id for t in breached
             if never_accepted(sla, t.status, moving.get(t.timer.id))}
    if never:
        ctx.counts["sla.never_accepted"] = len(never)
    if _incremental(ctx):
        # the next step judges again only what may have changed since this one
        store.set_bookmark(SLA_BOOKMARK, json.dumps({**marks, "at": now.isoformat(),
                                                     "sla": fingerprint}), run_id=ctx.run_id)
    return never


def _update_timers(ctx: PullbackContext, turns: Sequence[Turn]) -> None:
    """Each timer's first touch, worked time and state as the engine says (a reassigned turn
    stays `breached`): `handshake sla` and an admin's SQL read the same figures."""
    now = ctx.clock.now()
    changed: list[dict[str, Any]] = []
    for turn in turns:
        timer, status = turn.timer, turn.status
        state = ("breached" if status.breaches or timer.state == "breached"
                 else "met" if status.worked_at is not None else "open")
        values = {"first_touch_at": status.first_touch_at, "worked_at": status.worked_at,
                  "state": state,
                  "breached_at": timer.breached_at or (now if status.breaches else None)}
        if any(getattr(timer, k) != v for k, v in values.items()):
            changed.append({"id": timer.id, **values})
    ctx.store.update_sla_timers(changed)


def _open(state: Any) -> bool:
    """The Lead is still with sales: not converted, not closed (as last pulled back)."""
    if state is None:
        return True
    return not state.is_converted and state.lead_id is not None


def _alert_record(sla: SlaFile, turn: Turn, breach: Any, owner: str | None,
                  today: str) -> dict[str, Any]:
    subject = (sla.breach.first_touch_subject if breach.kind == "first_touch"
               else sla.breach.worked_subject)
    what = "first follow-up" if breach.kind == "first_touch" else "work (a worked status)"
    record: dict[str, Any] = {
        "WhoId": breach.lead_id, "Subject": subject[:255], "Status": "Not Started",
        "Priority": sla.breach.priority, "ActivityDate": today,
        "Description": (f"This lead was assigned {breach.assigned_at:%Y-%m-%d %H:%M} UTC; its "
                        f"{what} was due {breach.due_at:%Y-%m-%d %H:%M} UTC.\n\n"
                        f"{REF_LABEL}{breach.key}"),
    }
    if owner and owner.startswith(USER_ID_PREFIX):
        record["OwnerId"] = owner
    return record


def _refusal(reason: str, actor: Actor | str, record: Mapping[str, Any]) -> Refusal:
    return Refusal(reason=f"SLA write refused: {reason}", actor=actor,
                   payload={"record": dict(record),
                            "fix": "retried every pull-back; `handshake dlq list` shows it"})


def _judge(write: LedgerWrite[dict[str, Any]], result: Any) -> Outcome:
    if result.success:
        return Written(result.id)
    rejection = result.rejection
    return _refusal(str(rejection.message if rejection else "refused"),
                    rejection.actor if rejection else Actor.ADMIN, write.item)


def _managers(sf: SlaSalesforce, sla: SlaFile,
              alerts: Sequence[tuple[Turn, Any]]) -> dict[str, str]:
    """Each alerted owner's manager (User.ManagerId), when sla.toml alerts managers."""
    if not sla.breach.alert_manager or not alerts:
        return {}
    owners = sorted({b.owner_id for _, b in alerts if b.owner_id.startswith(USER_ID_PREFIX)})
    return {str(r["Id"]): str(r["ManagerId"])
            for r in sf.records_by_id("User", owners, ("ManagerId",),
                                      what="SLA alert managers") if r.get("ManagerId")}


def _targets(breach: Any, managers: Mapping[str, str]) -> list[tuple[str, str]]:
    """Who gets the breach's alert Task: (ledger prefix, user id), the owner then a manager."""
    targets = [(ALERT_PREFIX, breach.owner_id)]
    if breach.owner_id in managers:
        targets.append((MANAGER_PREFIX, managers[breach.owner_id]))
    return targets


def _plan_alerts(ctx: PullbackContext, sf: SlaSalesforce, sla: SlaFile,
                 alerts: Sequence[tuple[Turn, Any]]) -> None:
    """A dry run: the alert Tasks the real run would create (those the ledger has not)."""
    managers = _managers(sf, sla, alerts)
    done = {e.key for prefix in (ALERT_PREFIX, MANAGER_PREFIX)
            for e in ctx.store.ledger_entries(prefix, status="done")}
    for _, breach in alerts:
        for prefix, owner in _targets(breach, managers):
            if prefix + breach.key not in done:
                ctx.planned.append({
                    "system": "salesforce", "action": "alert_task", "record": breach.lead_id,
                    "to": owner, "role": "manager" if prefix == MANAGER_PREFIX else "owner",
                    "breach": breach.kind, "due_at": breach.due_at.isoformat()})


def _send_alerts(ctx: PullbackContext, sf: SlaSalesforce, sla: SlaFile,
                 alerts: Sequence[tuple[Turn, Any]], states: Mapping[str, Any]) -> None:
    """One Task per breach to its owner (and manager), once: the ledger skips those done."""
    if not alerts:
        return
    ledger = LedgerWrites(ctx.store, stage=STAGE, system="salesforce", run_id=ctx.run_id)
    today = ctx.clock.now().date().isoformat()
    managers = _managers(sf, sla, alerts)
    unconfirmed = {e.key for prefix in (ALERT_PREFIX, MANAGER_PREFIX)
                   for e in ctx.store.ledger_entries(prefix, status="pending")}
    wanted = [(turn, breach, prefix, owner) for turn, breach in alerts
              for prefix, owner in _targets(breach, managers)]
    claimed = ledger.claim_many([WriteClaim(prefix + breach.key, "alert", "Task",
                                            {"breach": breach.key})
                                 for _, breach, prefix, _ in wanted])
    writes: list[LedgerWrite[dict[str, Any]]] = [
        LedgerWrite((prefix + breach.key,), f"sla:alert:{breach.key}",
                    _alert_record(sla, turn, breach, owner, today))
        for (turn, breach, prefix, owner), due in zip(wanted, claimed, strict=True) if due]
    try:
        # left pending by an earlier run: created after all unless found
        found = _find_alerts(ctx, sf, [w for w in writes if w.keys[0] in unconfirmed])
        ctx.counts["sla.alerts_reconciled"] += len(found)
        _create_alerts(ctx, sf, ledger, [w for w in writes if w.keys[0] not in found])
    except RetriableError as exc:
        ctx.counts["sla.alerts_unconfirmed"] += 1
        log.warning("SLA alert Tasks unconfirmed (%s); the next pull-back looks for them and "
                    "sends those not found", exc)


def _create_alerts(ctx: PullbackContext, sf: SlaSalesforce, ledger: LedgerWrites,
                   writes: Sequence[LedgerWrite[dict[str, Any]]]) -> None:
    """Create the alert Tasks; when a create call's answer is lost (it may have been applied),
    look for its Tasks and create only those not found, a few rounds at most (then the error
    reaches the caller, the entries left pending for the next run to look for)."""
    batch = list(writes)
    for round_ in range(1, SEND_ROUNDS + 1):
        settled: set[str] = set()
        try:
            for write, _, outcome in ledger.send(
                    batch, lambda items: sf.create_batches("Task", items), _judge):
                settled.add(write.keys[0])
                ctx.counts["sla.alerts" if isinstance(outcome, Written)
                           else "sla.dead_letters"] += 1
            return
        except RetriableError as exc:
            batch = [w for w in batch if w.keys[0] not in settled]
            if round_ == SEND_ROUNDS:
                raise
            log.warning("%s; looking for %d SLA alert Tasks before sending them again",
                        exc.message, len(batch))
            ctx.clock.sleep(exc.retry_after or float(2 ** (round_ - 1)))
            found = _find_alerts(ctx, sf, batch)
            ctx.counts["sla.alerts"] += len(found)  # created by this run after all
            batch = [w for w in batch if w.keys[0] not in found]
            if not batch:
                return


def _find_alerts(ctx: PullbackContext, sf: SlaSalesforce,
                 writes: Sequence[LedgerWrite[dict[str, Any]]]) -> dict[str, str]:
    """The alert Tasks of `writes` that already stand in Salesforce (created by Handshake on
    the Lead, with the subject, the owner and the breach reference of the write): their
    ledger entries are completed; returns ledger key -> Task id."""
    if not writes:
        return {}
    wanted: dict[tuple[str, str], list[LedgerWrite[dict[str, Any]]]] = defaultdict(list)
    for write in writes:
        ref = str(write.item["Description"]).rsplit(REF_LABEL, 1)[-1]
        wanted[(str(write.item["WhoId"]), ref)].append(write)
    ledger = LedgerWrites(ctx.store, stage=STAGE, system="salesforce", run_id=ctx.run_id)
    found: dict[str, str] = {}
    for subject in sorted({str(w.item["Subject"]) for w in writes}):
        rows = sf.find_tasks({str(w.item["WhoId"]) for w in writes}, subject_contains=subject,
                             created_by=sf.user_id,
                             fields=("Id", "WhoId", "Subject", "OwnerId", "Description"))
        for row in rows:
            text = str(row.get("Description") or "")
            if REF_LABEL not in text or row.get("Subject") != subject:
                continue
            ref = text.rsplit(REF_LABEL, 1)[1].strip()
            for write in wanted.get((str(row.get("WhoId")), ref), []):
                key = write.keys[0]
                owner = write.item.get("OwnerId")
                if key in found or (owner and row.get("OwnerId") != owner):
                    continue
                found[key] = str(row["Id"])
                ledger.done([key], remote_id=found[key], record_keys=[write.record_key])
                break
    if found:
        log.info("%d of %d SLA alert Tasks left unconfirmed were found in Salesforce; not "
                 "sent again", len(found), len(writes))
    return found


def _post_webhooks(ctx: PullbackContext, settings: AlertSettings,
                   breaches: Sequence[tuple[str, Any]]) -> None:
    """POST each breach once (`webhook:sla:{key}` in the ledger); an unreachable endpoint
    parks it and the pull-back goes on (the next runs send it again)."""
    ledger = LedgerWrites(ctx.store, stage=STAGE, system="webhook", run_id=ctx.run_id)
    claimed = ledger.claim_many([WriteClaim(WEBHOOK_PREFIX + b.key, "alert", "webhook",
                                            {"breach": b.key}) for _, b in breaches])
    due = [(h, b) for (h, b), ok in zip(breaches, claimed, strict=True) if ok]
    if not due:
        return
    client = _webhook_client(settings, ctx.clock)

    def refused(exc: HandshakeError, write: LedgerWrite[dict[str, Any]]) -> Refusal:
        return Refusal(reason=f"SLA webhook failed: {exc.message}", actor=exc.actor,
                       payload={"body": write.item, "fix": "check [alerts] webhook_url and "
                                "the endpoint; the next pull-backs send it again"})

    try:
        for at, (hubspot_id, breach) in enumerate(due):
            body = {"event": "handshake.sla_breach", "breach": breach.key, "kind": breach.kind,
                    "hubspot_id": hubspot_id, "salesforce_id": breach.lead_id,
                    "owner_id": breach.owner_id, "assigned_at": breach.assigned_at.isoformat(),
                    "due_at": breach.due_at.isoformat()}
            write = LedgerWrite((WEBHOOK_PREFIX + breach.key,), f"sla:webhook:{breach.key}",
                                body)
            failed = ledger.send_together(
                [write], lambda bodies: client.post(settings.webhook_url, json=bodies[0],
                                                    extensions={DESCRIBE: "SLA webhook"}),
                refused)
            if failed is not None:
                ctx.counts["sla.webhook_failures"] += 1
                log.warning("SLA webhook failed for contact %s: %s", hubspot_id,
                            failed.message)
                # the endpoint is down: the rest wait for the next run
                ledger.release(WEBHOOK_PREFIX + b.key for _, b in due[at + 1:])
                break
            ctx.counts["sla.webhooks"] += 1
    finally:
        client.close()


def _webhook_client(settings: AlertSettings, clock: Clock) -> Any:
    """An httpx client under the webhook policy (retries, timeouts, classified errors)."""
    policy = HttpPolicy(webhook_settings(max_attempts=settings.max_attempts,
                                         timeout=settings.timeout_seconds), WEBHOOK, clock=clock)
    path = urlsplit(settings.webhook_url).path
    if len(path) > 1:
        policy.add_secret(path)  # Slack or Teams URLs carry their secret in the path
    return make_httpx_client(policy, "")


def _moves(sf: SlaSalesforce, sla: SlaFile, routing: Routing,
           turns: Sequence[Turn]) -> list[tuple[Turn, Reassignment]]:
    """Where each Lead not worked in its window goes: the next active rep of its owner's
    team (none for an owner in no team, at the turn limit, or alone in the team)."""
    teams = _teams(routing, sf.users())
    moves = []
    for turn in turns:
        found = _team_of(teams, turn.status.assignment.owner_id)
        if found is None:
            continue  # the owner is in no routing team: nobody to give it to
        team, members = found
        status = replace(turn.status, assignment=replace(turn.status.assignment, team=team))
        move = reassignment(sla, status, members)
        if move is not None:
            moves.append((turn, move))
    return moves


def _reassign(ctx: PullbackContext, sf: SlaSalesforce, sla: SlaFile,
              moves: Sequence[tuple[Turn, Reassignment]], now: datetime) -> None:
    """Give each Lead not worked in its window to the next active rep of its owner's team."""
    store = ctx.store
    if ctx.dry_run:
        done = {e.key for e in store.ledger_entries(REASSIGN_PREFIX + "reassign:",
                                                    status="done")}
        due = [m for _, m in moves if REASSIGN_PREFIX + m.key not in done]
        ctx.counts["sla.reassignments"] += len(due)
        ctx.planned.extend({"system": "salesforce", "action": "reassign", "record": m.lead_id,
                            "from": m.from_owner, "to": m.to_owner, "team": m.team}
                           for m in due)
        return
    ledger = LedgerWrites(store, stage=STAGE, system="salesforce", run_id=ctx.run_id)
    unconfirmed = {e.key for e in store.ledger_entries(REASSIGN_PREFIX + "reassign:",
                                                       status="pending")}
    claims = ledger.claim_many([WriteClaim(REASSIGN_PREFIX + m.key, "update", "Lead",
                                           {"OwnerId": m.to_owner}) for _, m in moves])
    claimed = [(t, m) for (t, m), ok in zip(moves, claims, strict=True) if ok]
    if not claimed:
        return
    leads = {str(r["Id"]): r for r in sf.records_by_id(
        "Lead", [m.lead_id for _, m in claimed], ("Description", "OwnerId"),
        what="Leads to reassign")}
    by_lead = {m.lead_id: (t, m) for t, m in claimed}

    def moved(turn: Turn, move: Any) -> None:
        """The Lead stands with its new owner: the move recorded, a new turn opened."""
        # recorded before the ledger settles: a done entry always has its new turn
        store.record_sla_breaches([{
            "key": move.key, "kind": "reassign", "hubspot_id": turn.hubspot_id,
            "lead_id": move.lead_id, "owner_id": move.from_owner, "timer_id": turn.timer.id,
            "assigned_at": turn.status.assignment.assigned_at, "due_at": move.due_at,
            "met_at": None, "to_owner": move.to_owner, "team": move.team, "found_at": now}])
        cal = calendar_of(sla)
        store.update_sla_timer(turn.timer.id, state="breached", breached_at=now)
        store.open_sla_timer(hubspot_id=turn.hubspot_id, sf_id=move.lead_id,
                             owner_id=move.to_owner, assigned_at=now,
                             first_touch_due=cal.add(now, sla.windows.first_touch_hours),
                             worked_due=cal.add(now, sla.windows.worked_hours),
                             recycled_from=turn.timer.id)

    writes = []
    for turn, move in claimed:
        key = REASSIGN_PREFIX + move.key
        lead = leads.get(move.lead_id, {})
        before = str(lead.get("Description") or "")
        if key in unconfirmed and lead.get("OwnerId") == move.to_owner \
                and before.endswith(move.note):
            # an earlier run's update was applied, its answer lost: nothing to send again
            moved(turn, move)
            ledger.done([key], remote_id=move.lead_id,
                        record_keys=[f"sla:reassign:{move.lead_id}"])
            ctx.counts["sla.reassignments_reconciled"] += 1
            continue
        text = "\n".join(p for p in (before, move.note) if p)
        writes.append(LedgerWrite((key,), f"sla:reassign:{move.lead_id}",
                                  {"Id": move.lead_id, "OwnerId": move.to_owner,
                                   "Description": text[-DESCRIPTION_MAX:]},
                                  remote_id=move.lead_id))

    def _update_leads(items: list[dict[str, Any]]) -> Iterator[Any]:
        # the org's assignment rules must not undo the move
        return sf.update_batches("Lead", items, auto_assign=False)

    def judge(write: LedgerWrite[dict[str, Any]], result: Any) -> Outcome:
        outcome = _judge(write, result)
        if isinstance(outcome, Written):
            moved(*by_lead[write.item["Id"]])
        return outcome

    try:
        for _, _, outcome in ledger.send(writes, _update_leads, judge):
            ctx.counts["sla.reassignments" if isinstance(outcome, Written)
                       else "sla.dead_letters"] += 1
    except RetriableError as exc:
        ctx.counts["sla.reassignments_unconfirmed"] += 1
        log.warning("SLA reassignments unconfirmed (%s); the next pull-back sends them again",
                    exc)


# --- the per-rep report ---------------------------------------------------------------------


def as_of(store: Store) -> datetime | None:
    """When the newest finished pull-back started: the store's sales data are as of then."""
    done = [r for r in store.runs(stage=STAGE, limit=50) if r.status in ("ok", "degraded")]
    return max((r.started_at for r in done), default=None)


def _pct(hits: int, total: int) -> float | None:
    return round(100.0 * hits / total, 1) if total else None


def sla_report(store: Store, sla: SlaFile, now: datetime,
               since: datetime | None = None,
               evaluated: Sequence[Turn] | None = None) -> dict[str, dict[str, Any]]:
    """Per rep (Salesforce user id): the SLA turns assigned to them (since `since`) as of
    `now`: `leads` (distinct), `turns`, `median_first_touch_hours` (of the turns touched),
    `first_touch_within_pct` / `worked_within_pct` (of the turns whose window has passed or
    that were done), `open_breaches` (not met, the lead still theirs), `past_breaches`, and
    `reassignments` (leads taken from them). No contact data. `evaluated`: the turns
    `evaluate_handoffs` gave for the same `now`, when the caller has them."""
    if evaluated is None:
        evaluated = evaluate_handoffs(store, sla, now)
    turns = [t for t in evaluated if since is None or t.timer.assigned_at >= since]
    latest = {h: timers[-1].id for h, timers in _turns_of(store.sla_timer_rows()).items()}
    kept = {t.timer.id for t in turns}
    reps: dict[str, dict[str, Any]] = {}
    touch_hours: dict[str, list[float]] = defaultdict(list)
    tallies: dict[str, Counter[str]] = defaultdict(Counter)
    leads: dict[str, set[str]] = defaultdict(set)
    for turn in turns:
        s = turn.status
        rep = s.assignment.owner_id
        leads[rep].add(s.assignment.lead_id)
        tally = tallies[rep]
        tally["turns"] += 1
        if s.first_touch_at is not None:
            touch_hours[rep].append((s.first_touch_at - s.assignment.assigned_at)
                                    .total_seconds() / 3600)
        for kind, due, done in (("first_touch", s.first_touch_due, s.first_touch_at),
                                ("worked", s.worked_due, s.worked_at)):
            if done is not None or now >= due:
                tally[f"{kind}.decided"] += 1
                tally[f"{kind}.within"] += done is not None and done <= due
    for record in store.sla_breaches():
        if record.timer_id not in kept:
            continue
        tally = tallies[record.owner_id]
        if record.kind == "reassign":
            tally["reassignments"] += 1
        elif record.met_at is None and latest.get(record.hubspot_id) == record.timer_id:
            tally["open"] += 1
        else:
            tally["past"] += 1
    for rep in sorted(leads):
        tally = tallies[rep]
        hours = sorted(touch_hours[rep])
        reps[rep] = {
            "leads": len(leads[rep]),
            "turns": tally["turns"],
            "median_first_touch_hours": round(median(hours), 2) if hours else None,
            "first_touch_within_pct": _pct(tally["first_touch.within"],
                                           tally["first_touch.decided"]),
            "worked_within_pct": _pct(tally["worked.within"], tally["worked.decided"]),
            "open_breaches": tally["open"],
            "past_breaches": tally["past"],
            "reassignments": tally["reassignments"],
        }
    return reps
