"""The pull-back's SLA step: each open hand-off's follow-up SLA, from the outcomes in the store.

For each Lead handed off (its current turn: the newest SLA timer of the contact), `connector.sla`
evaluates the windows at the run's time from the stored attempts and status changes. A timer
the push opened (not a reassignment's) starts a fresh hand-off: a returning lead's new owner
starts at turn 0, and the turns of its earlier hand-off end where the return begins (nothing
done after it counts for or against them). Each
breach is recorded once by its stable key (`sla_breaches`) and alerts the owner (and the
manager, when sla.toml says so) with one Task through the write ledger (`sf:task:sla:{key}`),
so no run alerts twice. After the worked window, when sla.toml says reassign, the Lead goes to
the next active member of the owner's routing team with the note in its Description (ledger
key `sf:lead:{reassignment key}`), the move is recorded and a new SLA timer opened for the new
owner. A Lead whose worked window passed with no reassignment left (reassignment off, the
turn limit reached, nobody else in the team) was never accepted: `apply_sla` returns those
Lead ids for recycling. `dry_run` writes nothing and counts what it would.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from statistics import median
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
from connector.store import SalesOutcome, SlaTimer, Store

__all__ = ["ALERT_PREFIX", "REASSIGN_PREFIX", "SlaSalesforce", "as_of", "evaluate_handoffs",
           "run_sla_step", "sla_report"]

log = logging.getLogger("connector.pullback.sla")

ALERT_PREFIX = "sf:task:sla:"
MANAGER_PREFIX = "sf:task:sla-manager:"
WEBHOOK_PREFIX = "webhook:sla:"
REASSIGN_PREFIX = "sf:lead:"
USER_ID_PREFIX = "005"  # only a user may own a Task
LEAD_ID_PREFIX = "00Q"
DESCRIPTION_MAX = 32_000
_TASK_TYPES = {"call": "Call", "email": "Email", "task": "Task"}


class SlaSalesforce(Protocol):
    """What the SLA step needs of Salesforce (`connector.salesforce.SalesforceClient` fits)."""

    def users(self, *, active_only: bool = False) -> list[dict[str, Any]]: ...

    def records_by_id(self, sobject: str, ids: Any, fields: Sequence[str], *,
                      what: str = "") -> Iterator[dict[str, Any]]: ...

    def create_batches(self, sobject: str, records: Sequence[Mapping[str, Any]], *,
                       auto_assign: bool = ..., allow_duplicates: bool = ...) -> Iterator[Any]: ...

    def update_batches(self, sobject: str, records: Sequence[Mapping[str, Any]], *,
                       auto_assign: bool = ..., allow_duplicates: bool = ...) -> Iterator[Any]: ...


@dataclass(frozen=True, slots=True)
class Turn:
    """One hand-off's current SLA turn and what the engine says of it."""

    hubspot_id: str
    timer: SlaTimer
    status: SlaStatus


def run_sla_step(ctx: PullbackContext, sf: SlaSalesforce, config: Config) -> set[str]:
    """The SLA step of the pull-back stage, with sla.toml and routing.toml from `config`;
    returns the ids of the Leads never accepted (for recycling)."""
    sla = load_sla(config.mapping_path("sla")).spec
    routing = load_routing(config.mapping_path("routing"))
    return apply_sla(ctx, sf, sla, routing, config.alerts)


def _activities(outcomes: Sequence[SalesOutcome]) -> list[Activity]:
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


def _turns_of(store: Store) -> dict[str, list[SlaTimer]]:
    """Each contact's SLA timers, oldest turn first."""
    turns: dict[str, list[SlaTimer]] = defaultdict(list)
    for timer in store.sla_timers():
        turns[timer.hubspot_id].append(timer)
    return turns


def evaluate_handoffs(store: Store, sla: SlaFile, now: datetime) -> list[Turn]:
    """Every SLA turn of the hand-offs as of `now` (each contact's reassignments in order),
    evaluated from the stored outcomes."""
    by_contact: dict[str, list[SalesOutcome]] = defaultdict(list)
    for outcome in store.outcomes():
        if outcome.hubspot_id:
            by_contact[outcome.hubspot_id].append(outcome)
    out: list[Turn] = []
    for hubspot_id, timers in _turns_of(store).items():
        activities = _activities(by_contact.get(hubspot_id, []))
        turn = 0
        for at, timer in enumerate(timers):
            # a timer the push opened is a fresh hand-off (a return's too): turn 0 again
            turn = 0 if timer.recycled_from is None else turn + 1
            if not timer.owner_id:
                continue  # Salesforce's assignment rules chose: no rep to hold to a window
            assignment = Assignment(timer.sf_id, timer.owner_id, timer.assigned_at,
                                    reassignments=turn)
            # an earlier hand-off's turns end where the lead's return begins
            until = next((t.assigned_at for t in timers[at + 1:] if t.recycled_from is None),
                         None)
            if until is None:
                status = evaluate(sla, assignment, activities, now)
            else:
                status = evaluate(sla, assignment, [a for a in activities if a.at < until],
                                  min(now, until))
            out.append(Turn(hubspot_id, timer, status))
    return out


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
    states = store.handoff_states()
    latest = {h: timers[-1].id for h, timers in _turns_of(store).items()}
    turns = evaluate_handoffs(store, sla, now)
    known = {b.key for b in store.sla_breaches()}
    records: list[dict[str, Any]] = []
    alerts: list[tuple[Turn, Any]] = []
    for turn in turns:
        for breach in turn.status.breaches:
            if breach.key not in known:
                ctx.counts["sla.breaches"] += 1
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
    return never


def _update_timers(ctx: PullbackContext, turns: Sequence[Turn]) -> None:
    """Each timer's first touch, worked time and state as the engine says (a reassigned turn
    stays `breached`): `handshake sla` and an admin's SQL read the same figures."""
    for turn in turns:
        timer, status = turn.timer, turn.status
        state = ("breached" if status.breaches or timer.state == "breached"
                 else "met" if status.worked_at is not None else "open")
        values = {"first_touch_at": status.first_touch_at, "worked_at": status.worked_at,
                  "state": state,
                  "breached_at": timer.breached_at or (ctx.clock.now() if status.breaches
                                                       else None)}
        if any(getattr(timer, k) != v for k, v in values.items()):
            ctx.store.update_sla_timer(timer.id, **values)


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
                        f"Handshake SLA ref: {breach.key}"),
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


def _send_alerts(ctx: PullbackContext, sf: SlaSalesforce, sla: SlaFile,
                 alerts: Sequence[tuple[Turn, Any]], states: Mapping[str, Any]) -> None:
    """One Task per breach to its owner (and manager), once: the ledger skips those done."""
    if not alerts:
        return
    ledger = LedgerWrites(ctx.store, stage=STAGE, system="salesforce", run_id=ctx.run_id)
    today = ctx.clock.now().date().isoformat()
    managers: dict[str, str] = {}
    if sla.breach.alert_manager:
        owners = sorted({b.owner_id for _, b in alerts})
        managers = {str(r["Id"]): str(r["ManagerId"])
                    for r in sf.records_by_id("User", owners, ("ManagerId",),
                                              what="SLA alert managers") if r.get("ManagerId")}
    writes: list[LedgerWrite[dict[str, Any]]] = []
    for turn, breach in alerts:
        targets = [(ALERT_PREFIX, breach.owner_id)]
        if breach.owner_id in managers:
            targets.append((MANAGER_PREFIX, managers[breach.owner_id]))
        for prefix, owner in targets:
            key = prefix + breach.key
            if ledger.claim(key, operation="alert", target="Task", payload={"breach": breach.key}):
                writes.append(LedgerWrite((key,), f"sla:alert:{breach.key}",
                                          _alert_record(sla, turn, breach, owner, today)))
    try:
        for _, _, outcome in ledger.send(writes, lambda items: sf.create_batches("Task", items),
                                         _judge):
            ctx.counts["sla.alerts" if isinstance(outcome, Written)
                       else "sla.dead_letters"] += 1
    except RetriableError as exc:
        ctx.counts["sla.alerts_unconfirmed"] += 1
        log.warning("SLA alert Tasks unconfirmed (%s); the next pull-back sends them again", exc)


def _post_webhooks(ctx: PullbackContext, settings: AlertSettings,
                   breaches: Sequence[tuple[str, Any]]) -> None:
    """POST each breach once (`webhook:sla:{key}` in the ledger); an unreachable endpoint
    parks it and the pull-back goes on (the next runs send it again)."""
    ledger = LedgerWrites(ctx.store, stage=STAGE, system="webhook", run_id=ctx.run_id)
    due = [(h, b) for h, b in breaches
           if ledger.claim(WEBHOOK_PREFIX + b.key, operation="alert", target="webhook",
                           payload={"breach": b.key})]
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
        ctx.counts["sla.reassignments"] += len(moves)
        return
    ledger = LedgerWrites(store, stage=STAGE, system="salesforce", run_id=ctx.run_id)
    claimed = [(t, m) for t, m in moves
               if ledger.claim(REASSIGN_PREFIX + m.key, operation="update", target="Lead",
                               payload={"OwnerId": m.to_owner})]
    if not claimed:
        return
    described = {str(r["Id"]): str(r.get("Description") or "")
                 for r in sf.records_by_id("Lead", [m.lead_id for _, m in claimed],
                                           ("Description",), what="Leads to reassign")}
    writes = []
    for turn, move in claimed:
        text = "\n".join(p for p in (described.get(move.lead_id, ""), move.note) if p)
        writes.append(LedgerWrite((REASSIGN_PREFIX + move.key,), f"sla:reassign:{move.lead_id}",
                                  {"Id": move.lead_id, "OwnerId": move.to_owner,
                                   "Description": text[-DESCRIPTION_MAX:]},
                                  remote_id=move.lead_id))
    by_lead = {m.lead_id: (t, m) for t, m in claimed}

    def _update_leads(items: list[dict[str, Any]]) -> Iterator[Any]:
        # the org's assignment rules must not undo the move
        return sf.update_batches("Lead", items, auto_assign=False)

    def judge(write: LedgerWrite[dict[str, Any]], result: Any) -> Outcome:
        outcome = _judge(write, result)
        if isinstance(outcome, Written):
            turn, move = by_lead[write.item["Id"]]
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
                                 worked_due=cal.add(now, sla.windows.worked_hours), recycled_from=turn.timer.id)
        return outcome

    try:
        for _, _, outcome in ledger.send(writes, _update_leads,
                                         judge):
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
               since: datetime | None = None) -> dict[str, dict[str, Any]]:
    """Per rep (Salesforce user id): the SLA turns assigned to them (since `since`) as of
    `now`: `leads` (distinct), `turns`, `median_first_touch_hours` (of the turns touched),
    `first_touch_within_pct` / `worked_within_pct` (of the turns whose window has passed or
    that were done), `open_breaches` (not met, the lead still theirs), `past_breaches`, and
    `reassignments` (leads taken from them). No contact data."""
    turns = [t for t in evaluate_handoffs(store, sla, now)
             if since is None or t.timer.assigned_at >= since]
    latest = {h: timers[-1].id for h, timers in _turns_of(store).items()}
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
