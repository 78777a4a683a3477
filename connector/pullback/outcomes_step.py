"""Outcomes to HubSpot and dead leads back to marketing, after the pull-back has stored what
sales did (store -> HubSpot, store -> Salesforce).

    hand_back(ctx, handoffs, hubspot=..., sf=..., sla=sla.spec, settings=OutcomeSettings())

Each hand-off's stored state is judged by `connector.sla.recycle`, against its newest hand-off
(a recycled lead that qualified again was handed off anew: the push opened a fresh SLA timer,
and what was decided before it is history, not this hand-off's); a new decision is stored
first, as an outcome of kind `recycled` or `disqualified` whose source id is the decision's
key (so it is taken once, and a crash after it loses no write: the writes below are derived
from the stored decisions and the write ledger skips those already made). Then:

- Salesforce: a recycled, unconverted Lead gets the status and the queue sla.toml names, in
  one update through the ledger;
- the interest score: a score row with the reset or decayed interest (not an MQL), the newest
  score the score stage and the push read for the contact;
- HubSpot: every hand-off's contact gets only what differs from its current properties
  (`plan_outcome`), recycled ones moved back to `lead` and added to the re-engagement list
  (`OutcomeWriter`).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from connector.errors import Actor
from connector.hubspot import settings as hs
from connector.hubspot.outcomes import (
    OUTCOME_KEYS,
    REENGAGE_KEYS,
    OutcomeClient,
    OutcomePlan,
    OutcomeSettings,
    OutcomeWriter,
    PulledBackLead,
    plan_outcome,
)
from connector.ledger import LedgerWrite, LedgerWrites, Outcome, Refusal, Written
from connector.mapping.sla import SlaFile
from connector.pullback.context import STAGE, Handoffs, PullbackContext
from connector.sla import LeadOutcome, RecycleDecision, recycle
from connector.store import SalesOutcome, WriteClaim

__all__ = [
    "HUBSPOT_BOOKMARK",
    "RECYCLE_KINDS",
    "HubSpotOutcomePort",
    "Recycle",
    "RecycleSalesforcePort",
    "hand_back",
    "recycles_by_contact",
]

log = logging.getLogger("connector.pullback")

RECYCLE_KINDS = ("recycled", "disqualified")
# where the last finished hand-back stood (JSON): the newest outcome and timer ids, its time,
# the last time every hand-off was compared with HubSpot, the settings' fingerprint
HUBSPOT_BOOKMARK = f"{STAGE}.hubspot"
FULL_EVERY = timedelta(hours=24)  # every hand-off compared with HubSpot at least this often
STATE_MARGIN = timedelta(hours=1)  # as the SLA step's: states stored a little before count


class HubSpotOutcomePort(OutcomeClient, Protocol):
    """The HubSpot reads and writes the step needs (`HubSpotClient` has them)."""

    def batch_read_contacts(self, ids: Sequence[str],
                            properties: Sequence[str]) -> list[dict[str, Any]]: ...


class RecycleSalesforcePort(Protocol):
    """The Salesforce writes recycling needs (`SalesforceClient` has them)."""

    def queue_id(self, name: str) -> str | None: ...

    def update_batches(self, sobject: str, records: Sequence[Mapping[str, Any]], *,
                       auto_assign: bool = ...,
                       allow_duplicates: bool = ...) -> Iterable[Sequence[Any]]: ...


@dataclass(frozen=True, slots=True)
class Recycle:
    """One stored recycling decision of a hand-off."""

    hubspot_id: str
    lead_id: str
    action: str  # recycled | disqualified
    reason: str  # the RecycleReason
    detail: str
    count: int
    at: datetime
    source_id: str
    interest: str = "keep"  # what the recycle does to the interest score: reset | decay | keep
    keep_percent: float = 100.0


def _aware(when: datetime | None) -> datetime | None:
    if when is None:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _recycle_of(row: Any) -> Recycle:
    details = row.details or {}
    at = _aware(row.occurred_at)
    assert at is not None
    return Recycle(str(row.hubspot_id), row.sf_id, row.kind, str(details.get("reason", "")),
                   row.reason or "", int(details.get("count", 0)), at, row.source_id,
                   str(details.get("interest") or "keep"),
                   float(details.get("keep_percent", 100.0)))


def recycles_by_contact(outcomes: Iterable[Any]) -> dict[str, list[Recycle]]:
    """The stored recycling decisions of each contact, oldest first."""
    found: dict[str, list[Recycle]] = {}
    for row in outcomes:
        if row.kind in RECYCLE_KINDS and row.hubspot_id:
            found.setdefault(row.hubspot_id, []).append(_recycle_of(row))
    for rows in found.values():
        rows.sort(key=lambda r: (r.at, r.count))
    return found


def _current(recycles: list[Recycle], handed_off_at: datetime) -> Recycle | None:
    """The decision taken on this hand-off (none until sales give the lead up)."""
    latest = recycles[-1] if recycles else None
    return latest if latest is not None and latest.at >= handed_off_at else None


def _lead_outcome(state: Mapping[str, Any], lead_id: str, handed_off_at: datetime,
                  recycles: list[Recycle], never_accepted: bool) -> LeadOutcome:
    return LeadOutcome(
        lead_id, handed_off_at, status=state.get("status"),
        is_converted=bool(state.get("is_converted")), status_reason=state.get("reason"),
        opportunity_closed=bool(state.get("is_closed")),
        opportunity_won=bool(state.get("is_won")), loss_reason=state.get("loss_reason"),
        is_customer=bool(state.get("is_won")), last_touch_at=_aware(state.get("last_touch_at")),
        recycle_count=sum(1 for r in recycles if r.action == "recycled"),
        settled=_current(recycles, handed_off_at) is not None, never_accepted=never_accepted)


def _decision_row(hubspot_id: str, decision: RecycleDecision, now: datetime) -> dict[str, Any]:
    kind = "recycled" if decision.action == "recycle" else "disqualified"
    return {"hubspot_id": hubspot_id, "sf_object": "Lead", "sf_id": decision.lead_id,
            "source_id": decision.key, "kind": kind, "status": decision.lead_status,
            "reason": decision.detail, "owner_id": None, "occurred_at": now, "amount": None,
            "details": {"reason": decision.reason, "count": decision.count,
                        "interest": decision.interest, "keep_percent": decision.keep_percent}}


def _folded(status: Any) -> str:
    return str(status or "").strip().casefold()


def _handed_off_at(link_at: datetime | None, started: datetime | None) -> datetime | None:
    """When the contact's newest hand-off began: its link, or the latest SLA timer the push
    opened (`started`: a return after a recycle; a reassignment's timer is no new hand-off)."""
    latest = _aware(started)
    if link_at is None or (latest is not None and latest > link_at):
        return latest
    return link_at


def _fresh_handoffs(ctx: PullbackContext, handoffs: Handoffs) -> dict[str, datetime]:
    """Each hand-off's newest start (see `_handed_off_at`)."""
    timers = ctx.store.first_handoff_times()
    out: dict[str, datetime] = {}
    for hubspot_id, link in handoffs.links.items():
        at = _handed_off_at(_aware(link.linked_at), timers.get(hubspot_id))
        if at is not None:
            out[hubspot_id] = at
    return out


def _pulled_back(hubspot_id: str, state: Mapping[str, Any], sla: SlaFile,
                 taken: Recycle | None, count: int,
                 last: Recycle | None = None) -> PulledBackLead:
    closed = {s.strip().casefold() for s in sla.recycling.closed_statuses}
    status = state.get("status")
    lost = bool(state.get("is_closed")) and not state.get("is_won")
    recycled = taken is not None and taken.action == "recycled"
    if recycled:
        # Handshake set this status itself: reading it back must not count as a change
        status = sla.recycling.lead_status
    return PulledBackLead(
        contact_id=hubspot_id, status=status,
        closed=(status or "").strip().casefold() in closed,
        converted=bool(state.get("is_converted")), opportunity_stage=state.get("stage"),
        opportunity_amount=state.get("amount"), opportunity_won=bool(state.get("is_won")),
        opportunity_lost=lost,
        reason=state.get("loss_reason") if lost else state.get("reason"),
        last_sales_touch_at=_aware(state.get("last_touch_at")),
        # the latest recycle's reason and time stay shown once the lead is handed off again
        recycled=recycled, recycle_reason=last.detail if last is not None else None,
        recycled_at=last.at if last is not None else None, recycle_count=count,
        disqualified=taken is not None and taken.action == "disqualified")


def hand_back(
    ctx: PullbackContext,
    handoffs: Handoffs,
    *,
    hubspot: HubSpotOutcomePort,
    sf: RecycleSalesforcePort,
    sla: SlaFile,
    settings: OutcomeSettings,
    never_accepted: Collection[str] = (),
) -> None:
    """Decide which hand-offs go back to marketing, then write what changed to Salesforce,
    the scores and HubSpot. `never_accepted`: the Lead ids the SLA found never accepted
    (`connector.sla.never_accepted`). A dry run writes nothing and counts what it would
    write."""
    store, counts, now = ctx.store, ctx.counts, ctx.clock.now()
    # where this step stands, for the next one's `_changed` (read before anything is stored)
    marks = {"outcome": store.outcome_mark(), "timer": store.sla_timer_mark(),
             "at": now.isoformat()}
    recycles = recycles_by_contact(store.outcome_rows(kinds=RECYCLE_KINDS))
    started = _fresh_handoffs(ctx, handoffs)
    worked = {_folded(s) for s in sla.worked.statuses}
    decisions: list[tuple[str, RecycleDecision]] = []
    for hubspot_id, link in sorted(handoffs.links.items()):
        state = handoffs.states.get(hubspot_id)
        handed_off_at = started.get(hubspot_id)
        if state is None or handed_off_at is None:
            continue
        lead_id = state.get("lead_id") or link.sf_id
        # a Lead standing in a worked status was accepted, whatever the stored outcomes say
        # yet (a dry run stores none of what it just read)
        ignored = lead_id in never_accepted and _folded(state.get("status")) not in worked
        decision = recycle(sla, _lead_outcome(state, lead_id, handed_off_at,
                                              recycles.get(hubspot_id, []), ignored), now)
        if decision is not None:
            decisions.append((hubspot_id, decision))
    counts["recycle.decided"] += sum(1 for _, d in decisions if d.action == "recycle")
    counts["recycle.disqualified"] += sum(1 for _, d in decisions if d.action == "disqualify")
    rows = [_decision_row(h, d, now) for h, d in decisions]
    if ctx.dry_run:
        counts["recycle.would_store"] += len(rows)
    elif rows:
        store.record_pullback(outcomes=rows, states=[], run_id=ctx.run_id)
    for row in rows:  # a dry run sees them too, to count what it would write
        recycles.setdefault(row["hubspot_id"], []).append(_recycle_of(SalesOutcome(**row)))
    current = {h: _current(recycles.get(h, []), started.get(h, now)) for h in handoffs.links}
    if not ctx.dry_run:
        _adjust_interest(ctx, current, now)
    _recycle_in_salesforce(ctx, sf, sla, handoffs, current, {r["source_id"] for r in rows})
    fingerprint = hashlib.sha256(
        (sla.model_dump_json() + settings.model_dump_json()).encode()).hexdigest()
    changed = _changed(ctx, fingerprint, now)
    if changed is not None:
        changed |= {r["hubspot_id"] for r in rows}  # decided now (untouched for days...)
    _outcomes_to_hubspot(ctx, hubspot, sla, settings, handoffs, recycles, current, changed)
    if not ctx.dry_run and ctx.bookmark_prefix == STAGE:  # a backfill leaves it alone
        full_at = now if changed is None else _full_at(ctx) or now
        store.set_bookmark(HUBSPOT_BOOKMARK, json.dumps({
            **marks, "full_at": full_at.isoformat(), "settings": fingerprint}),
            run_id=ctx.run_id)


def _mark(ctx: PullbackContext) -> dict[str, Any] | None:
    text = ctx.store.get_bookmark(HUBSPOT_BOOKMARK)
    try:
        mark = json.loads(text) if text else None
    except ValueError:
        return None
    return mark if isinstance(mark, dict) else None


def _full_at(ctx: PullbackContext) -> datetime | None:
    mark = _mark(ctx)
    try:
        return datetime.fromisoformat(str(mark["full_at"])) if mark else None
    except (KeyError, ValueError):
        return None


def _changed(ctx: PullbackContext, fingerprint: str, now: datetime) -> set[str] | None:
    """The hand-offs whose outcome on their HubSpot contact may differ from what the last
    finished step compared with HubSpot (`HUBSPOT_BOOKMARK`): a state or an outcome stored
    since (a recycle decision among them), a hand-off started again since (a timer the push
    opened), a HubSpot write left unconfirmed or refused. None: every hand-off is compared
    with HubSpot's values (no step finished yet, sla.toml or the outcome settings changed, a
    dry run, a backfill, or the last full comparison is `FULL_EVERY` old: a change made in
    HubSpot itself is seen within that time)."""
    if ctx.dry_run or ctx.bookmark_prefix != STAGE:
        return None
    mark = _mark(ctx)
    if mark is None or mark.get("settings") != fingerprint:
        return None
    try:
        at = datetime.fromisoformat(str(mark["at"]))
        full_at = datetime.fromisoformat(str(mark["full_at"]))
        outcome_id, timer_id = int(mark["outcome"]), int(mark["timer"])
    except (KeyError, ValueError, TypeError):
        return None
    if now - full_at >= FULL_EVERY:
        return None
    store = ctx.store
    changed = store.outcomes_changed(after_id=outcome_id, occurring_after=now)
    changed |= store.states_changed(at - STATE_MARGIN)
    changed |= store.sla_timers_opened(after_id=timer_id)
    for prefix in (OUTCOME_KEYS, REENGAGE_KEYS):
        for status in ("pending", "failed"):
            changed |= {e.key[len(prefix):] for e in store.ledger_entries(prefix, status=status)}
    return changed


def _adjust_interest(ctx: PullbackContext, current: Mapping[str, Recycle | None],
                     now: datetime) -> None:
    """A score row with the interest a recycled contact keeps: the newest score, so the push
    no longer sees an MQL and the score stage goes on from it. Owed by each current recycle
    whose contact has no score since the decision: one taken now, or one a run stopped
    before adjusting (the decision is stored first)."""
    recycled = {h: r for h, r in current.items()
                if r is not None and r.action == "recycled" and r.interest != "keep"}
    # only the contacts not scored since their decision are owed (their scores read whole)
    scored = ctx.store.newest_score_times(recycled)
    owed = sorted(h for h, taken in recycled.items()
                  if (at := scored.get(h)) is not None and at < taken.at)
    latest = ctx.store.latest_scores(owed)
    rows = []
    for hubspot_id, taken in sorted(recycled.items()):
        score = latest.get(hubspot_id)
        scored_at = _aware(score.scored_at) if score is not None else None
        if score is None or scored_at is None or scored_at >= taken.at:
            continue
        rows.append({"contact_id": hubspot_id, "scored_at": now,
                     # as connector.sla.interest_after, from the stored decision
                     "interest": round(score.interest * taken.keep_percent / 100.0, 2),
                     "fit_grade": score.fit_grade, "fit_points": score.fit_points,
                     "is_mql": False, "model_version": score.model_version,
                     "explanation": {"recycled": taken.reason,
                                     "interest_before": score.interest,
                                     "interest": taken.interest}})
    ctx.store.add_scores(rows)
    ctx.counts["recycle.interest_adjusted"] += len(rows)


def _recycle_in_salesforce(ctx: PullbackContext, sf: RecycleSalesforcePort, sla: SlaFile,
                           handoffs: Handoffs, current: Mapping[str, Recycle | None],
                           new: set[str]) -> None:
    """Each recycled, unconverted Lead: the status and the marketing queue, one update (a
    dry run counts those of the decisions taken now: the ledger holds the earlier ones)."""
    rules = sla.recycling
    due = [(h, r) for h, r in sorted(current.items())
           if r is not None and r.action == "recycled"
           and not handoffs.states.get(h, {}).get("is_converted")]
    if not due:
        return
    if ctx.dry_run:
        would = [(h, r) for h, r in due if r.source_id in new]
        ctx.counts["salesforce.recycle.would_write"] += len(would)
        for hubspot_id, r in would:
            state = handoffs.states.get(hubspot_id, {})
            ctx.planned.append({
                "system": "salesforce", "action": "recycle", "record": r.lead_id,
                "status": f"{state.get('status')} -> {rules.lead_status}",
                "owner": f"{state.get('owner_id')} -> {rules.owner_queue or 'unchanged'}"})
        return
    ledger = LedgerWrites(ctx.store, stage="pullback", system="salesforce", run_id=ctx.run_id)
    payload = {"Status": rules.lead_status, "owner_queue": rules.owner_queue}
    claimed = ledger.claim_many([WriteClaim(f"salesforce:{r.source_id}", "update", "Lead",
                                            payload) for _, r in due])
    writes = [LedgerWrite((f"salesforce:{r.source_id}",), f"Lead:{r.lead_id}", r,
                          remote_id=r.lead_id)
              for (_, r), ok in zip(due, claimed, strict=True) if ok]
    ctx.counts["salesforce.recycle.unchanged"] += len(due) - len(writes)
    if not writes:
        return
    values: dict[str, str] = {"Status": rules.lead_status}
    if rules.owner_queue:
        queue = sf.queue_id(rules.owner_queue)
        if queue is None:
            log.warning("sla.toml [recycling] owner_queue %r is no queue of the Salesforce "
                        "org: recycled Leads keep their owner (fix: create the queue in "
                        "Salesforce, or name an existing Lead queue)", rules.owner_queue)
            ctx.counts["salesforce.recycle.queue_missing"] += 1
        else:
            values["OwnerId"] = queue

    def send(items: list[Recycle]) -> Iterable[Sequence[Any]]:
        return sf.update_batches("Lead", [{"Id": r.lead_id, **values} for r in items],
                                 auto_assign=False)

    def judge(write: LedgerWrite[Recycle], result: Any) -> Outcome:
        if result.success:
            ctx.counts["salesforce.recycle.written"] += 1
            return Written(write.item.lead_id)
        ctx.counts["salesforce.recycle.failed"] += 1
        return Refusal(reason=f"recycled Lead refused by Salesforce: {result.rejection}",
                       actor=Actor.ADMIN, payload=values)

    for _ in ledger.send(writes, send, judge):
        pass


def _outcomes_to_hubspot(ctx: PullbackContext, hubspot: HubSpotOutcomePort, sla: SlaFile,
                         settings: OutcomeSettings, handoffs: Handoffs,
                         recycles: Mapping[str, list[Recycle]],
                         current: Mapping[str, Recycle | None],
                         changed: Collection[str] | None = None) -> None:
    """Every hand-off's outcome on its contact (of those `changed` when given): only what
    differs from HubSpot's values."""
    leads = []
    for hubspot_id in sorted(handoffs.links):
        if changed is not None and hubspot_id not in changed:
            continue
        state = handoffs.states.get(hubspot_id)
        if state is None:
            continue
        done = [r for r in recycles.get(hubspot_id, []) if r.action == "recycled"]
        leads.append(_pulled_back(hubspot_id, state, sla, current.get(hubspot_id), len(done),
                                  done[-1] if done else None))
    if not leads:
        return
    s = settings
    names = [hs.LIFECYCLE_PROPERTY, s.lead_status_property, s.last_sales_touch.hubspot_property,
             s.outcome.hubspot_property, s.reason.hubspot_property,
             s.opportunity_amount.hubspot_property, s.recycle_reason.hubspot_property,
             s.recycled_at.hubspot_property, s.recycle_count.hubspot_property]
    found = hubspot.batch_read_contacts([lead.contact_id for lead in leads], names)
    properties = {str(c.get("id")): c.get("properties") or {} for c in found}
    accepted = sla.accepted_statuses
    plans = [p for lead in leads if lead.contact_id in properties
             and (p := plan_outcome(lead, properties[lead.contact_id], settings,
                                    status_map=sla.hubspot_lead_status,
                                    accepted=accepted)) is not None]
    ctx.counts["hubspot.contacts_missing"] += len(leads) - len(properties)
    if ctx.dry_run:
        ctx.counts["hubspot.outcomes.would_write"] += len(plans)
        ctx.counts["hubspot.recycle.would_move"] += sum(1 for p in plans if p.join_list)
        ctx.planned.extend(_planned_hubspot(plans, properties, settings))
        return
    plans = _settle_unconfirmed(ctx, plans, properties, current)
    writer = OutcomeWriter(hubspot, ctx.store, settings, run_id=ctx.run_id)
    written = writer.push(plans)
    ctx.counts.update({f"hubspot.outcomes.{k}": v for k, v in written.items()})


def _planned_hubspot(plans: Sequence[OutcomePlan], current: Mapping[str, Mapping[str, Any]],
                     settings: OutcomeSettings) -> list[dict[str, Any]]:
    """A dry run's listing of the HubSpot writes: each contact's properties (ids and values
    Handshake sets, no contact data), its lifecycle move, its list addition."""
    out: list[dict[str, Any]] = []
    for plan in plans:
        before = current.get(plan.contact_id, {}).get(hs.LIFECYCLE_PROPERTY)
        after = plan.move_back_to or plan.properties.get(hs.LIFECYCLE_PROPERTY)
        if plan.properties:
            out.append({"system": "hubspot", "action": "update", "record": plan.contact_id,
                        "properties": dict(sorted(plan.properties.items()))})
        if after and after != before:
            out.append({"system": "hubspot", "action": "lifecycle", "record": plan.contact_id,
                        "from": before or "", "to": after,
                        "how": "clear, then set" if plan.move_back_to else "set"})
        if plan.join_list:
            out.append({"system": "hubspot", "action": "list_add", "record": plan.contact_id,
                        "list": settings.reengagement_list})
    return out


def _settle_unconfirmed(ctx: PullbackContext, plans: Sequence[OutcomePlan],
                        read: Mapping[str, Any],
                        current: Mapping[str, Recycle | None]) -> list[OutcomePlan]:
    """Writes an earlier run left unconfirmed (killed with them in flight, ledger entries
    pending): an outcome update HubSpot now shows (nothing left to write for the contact, as
    just read) is done; the re-engagement membership of a recycled contact is sent again (an
    add of a member changes nothing the second time)."""
    store = ctx.store
    by_contact = {p.contact_id: p for p in plans}
    ledger = LedgerWrites(store, stage="pullback", system=hs.HUBSPOT_SYSTEM, run_id=ctx.run_id)
    shown = []
    for entry in store.ledger_entries(OUTCOME_KEYS, status="pending"):
        plan = by_contact.get(contact := entry.key[len(OUTCOME_KEYS):])
        if contact in read and not (plan and (plan.properties or plan.move_back_to)):
            shown.append(entry.key)
    ledger.done(shown)
    ctx.counts["hubspot.outcomes.reconciled"] += len(shown)
    for entry in store.ledger_entries(REENGAGE_KEYS, status="pending"):
        contact = entry.key[len(REENGAGE_KEYS):]
        taken = current.get(contact)
        if contact in read and taken is not None and taken.action == "recycled":
            plan = by_contact.get(contact)
            by_contact[contact] = (replace(plan, join_list=True) if plan is not None
                                   else OutcomePlan(contact, join_list=True))
    return list(by_contact.values())
