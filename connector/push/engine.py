"""Push: the hand-off of every MQL to Salesforce, exactly once, with the context to act.

Per round of MQLs (up to 2,000: writes go 1,000 a composite call of 5 collections, so a round
wastes at most one part-filled call per kind of write — Lead creates, Lead updates, Tasks):
1. match by email in batched SOQL: an existing Contact gets no Lead (its owner is told with a
   hand-off Task on the Contact); an open Lead is updated; a converted Lead follows its Contact;
   otherwise a Lead is created (upsert by the external-id field, so a retry never duplicates);
2. field values from `mappings/fields.toml`, owner from `mappings/routing.toml`;
3. every write is claimed in the write ledger first and completed after: a record whose values
   did not change is not written again; a DUPLICATES_DETECTED answer links to the matched record;
   any other refusal is a dead letter saying who must act;
4. one hand-off Task per MQL (the lead-intelligence summary, due at the end of sla.toml's
   first-touch window) and the activities not sent yet, as a digest or one Task each, each
   written once (ledger, reconciled after a lost answer or a crash; no Task external id):
   connector/push/tasks.py.

A recycled contact (the pull-back handed it back to marketing) is left alone until it
qualifies again, that is until it engages after its recycle (an activity newer than it) and a
score newer than the recycle makes it an MQL: the interest it kept alone never brings it back
(a decay that leaves it at the threshold would otherwise bounce it straight back to sales).
Then it is a returning lead: its Lead is routed again (owner and the org's default Lead Status: the
recycle left it in the marketing queue) and it gets one new hand-off Task saying why it came
back. Its ledger keys carry the recycle count (its generation), so each return is handed off
once, however often the push runs or fails.

A backfill (more MQLs not yet in Salesforce than `bulk_threshold`) holds its Lead creates back
and sends them through Bulk API 2.0, 10,000 a job, when more than the threshold are pending;
their results settle exactly as collection results do, then their Tasks go through collections.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from connector.errors import Actor
from connector.ledger import LedgerWrite, Outcome, Refusal, Written
from connector.mapping import MappedRecord
from connector.push.alerts import send_alerts
from connector.push.context import PushContact, PushContext, Returning, handoff_task_key
from connector.push.ports import WriteResult
from connector.push.tasks import write_tasks
from connector.push.writeback import note_handoffs, write_back_handoffs
from connector.store import MqlContact, SalesOutcome, Store, WriteClaim, WriteLedgerEntry

__all__ = ["PushContext", "plan_leads", "push"]

log = logging.getLogger("connector.push")

BATCH = 200
# MQLs planned together: big enough that part-filled calls are rare next to full ones (write
# calls stay near ceil(records / 1,000) a kind: a round fills a composite call of five 200s),
# small enough to hold in memory with their activities (2,000 held ~60 MB at their peak).
ROUND = 1000
BULK_JOB_RECORDS = 10_000  # Lead creates per Bulk API job in a backfill (one Bulk API batch)
# Held creates whose Tasks are written together once their bulk job is done: with a hand-off
# and a digest each, one composite call of 1,000 Tasks a round, and half the activities,
# summaries and Task records a round of 1,000 contacts would hold at once.
HELD_TASK_ROUND = ROUND // 2
# Fields never copied onto an existing Lead: sales owns them once the Lead exists.
UPDATE_SKIPS_RULES = {"salesforce", "salesforce_unless_blank", "none"}


@dataclass
class _Plan:
    contact: PushContact
    action: str  # create | update | link_contact | link_converted
    values: dict[str, Any]
    sf_id: str | None = None
    owner_id: str | None = None
    why: str = ""
    fixed: list[str] = field(default_factory=list)  # what the mapping's transforms changed
    # What the ledger compares: the mapped HubSpot values, whatever the action, so a Lead
    # created in one run and found as an open Lead in the next is not written again.
    payload: dict[str, Any] = field(default_factory=dict)
    mapped: MappedRecord | None = None  # updates: the sync rules
    returning: Returning | None = None  # a recycled contact that qualified again
    rerouted: bool = False  # its return is handed off in this run: routed again
    # an earlier run's create of this Lead never got its answer (ledger: a create left
    # pending or failed): the Lead matched now is that creation
    lost_create: bool = False

    @property
    def generation(self) -> int:
        """Which hand-off of the contact this is: 0, or its recycles so far."""
        return self.returning.count if self.returning is not None else 0


def _mql_batches(store: Store, size: int = BATCH, ctx: PushContext | None = None,
                 ) -> Iterator[Sequence[PushContact]]:
    """Live contacts with an email whose newest score makes them an MQL, `size` at a time
    (of the context's `only` when given: the webhooks'; a backfill's: those its context
    selects)."""
    if ctx is not None and ctx.mqls is not None:
        yield from ctx.mqls(store, size)
        return
    only = ctx.only if ctx is not None else None
    yield from store.mql_pages(batch=size, ids=only)


def push(ctx: PushContext) -> Counter[str]:
    """Hand every MQL over; returns counts (leads created/updated, tasks, dead letters...)."""
    ctx.started, ctx.handed_now = ctx.store.clock.now(), set()
    describe = ctx.sf.fields("Lead")
    users = list(ctx.sf.query(
        "SELECT Id, Email, Name, IsActive FROM User WHERE IsActive = true", what="users"))
    _routing_state(ctx, users)
    held: list[_Plan] | None = None
    for n, batch in enumerate(_mql_batches(ctx.store, ROUND, ctx)):
        if n == 0 and not ctx.dry_run and _unlinked_mqls(ctx, batch) > ctx.bulk_threshold:
            held = []  # a backfill holds its creates back for Bulk API
        plans = _plan(ctx, batch, describe, users)
        handed = _write_leads(ctx, plans, users, held)
        _write_tasks(ctx, handed)
        note_handoffs(ctx, handed, users)
        if held is not None and len(held) >= max(BULK_JOB_RECORDS, ctx.bulk_threshold + 1):
            _write_held(ctx, held, users)
            held = []
        if ctx.on_round is not None and not held:
            # a backfill's checkpoint: every write of the rounds so far is settled, HubSpot
            # told of their hand-offs (held creates wait for their bulk job first)
            write_back_handoffs(ctx)
            ctx.on_round(ctx, batch[-1].hubspot_id)
    if held:
        _write_held(ctx, held, users)
    if ctx.fixes:
        log.warning("fields.toml transforms fixed values of %d written records (each at DEBUG; "
                    "`sync push --dry-run` shows them): %s", sum(ctx.fixes.values()),
                    ", ".join(f"{k} ({n})" for k, n in ctx.fixes.most_common()))
    send_alerts(ctx)
    write_back_handoffs(ctx)
    ctx.counts["salesforce.calls"] = ctx.sf.calls
    return ctx.counts


def _fix_kind(fixed: str) -> str:
    """"defaulted Company to 'x' (why)" -> "defaulted Company"; "Industry: 'x' written as..."
    -> "Industry picklist"."""
    m = re.match(r"^(defaulted|dropped|truncated) (\w+)", fixed)
    if m:
        return f"{m.group(1)} {m.group(2)}"
    head = fixed.split(":", 1)[0]
    return f"{head} picklist" if head.isidentifier() else "other"


def _unlinked_mqls(ctx: PushContext, first: Sequence[PushContact]) -> int:
    """MQLs not yet standing in Salesforce: at most this many Leads to create (read from the
    store alone, before any write). `first`: the run's first round of MQLs; when it holds
    them all (a short round is the last), its links tell, else the database counts."""
    store = ctx.store
    if ctx.mqls is None and len(first) < ROUND:
        return len(first) - len(store.link_targets([c.hubspot_id for c in first]))
    if ctx.mqls is None:  # counted by the database
        return store.count_unlinked_mqls(ids=ctx.only)
    return sum(len(batch) - len(store.linked_many([c.hubspot_id for c in batch]))
               for batch in _mql_batches(store, 1000, ctx))


# --- planning -------------------------------------------------------------------------------


def _aware(when: datetime) -> datetime:
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _returning(row: SalesOutcome) -> Returning:
    details = row.details or {}
    return Returning(count=int(details.get("count") or 1), reason=str(details.get("reason", "")),
                     detail=row.reason or "", at=_aware(row.occurred_at))


def _returns(ctx: PushContext, batch: Sequence[PushContact]) -> dict[str, Returning | None]:
    """The recycled contacts of the batch: those that qualified again since their latest
    recycle (they engaged after it and a score newer than it made them an MQL) as
    `Returning`, the others (still with marketing) as None."""
    rows = ctx.store.latest_recycles([c.hubspot_id for c in batch])
    if not rows:
        return {}
    scores = ctx.store.latest_scores(list(rows))
    activities = ctx.store.activities_for_many(list(rows))
    out: dict[str, Returning | None] = {}
    for hubspot_id, row in rows.items():
        back = _returning(row)
        score = scores.get(hubspot_id)
        engaged = any(_aware(a.occurred_at) >= back.at for a in activities.get(hubspot_id, []))
        qualified = engaged and score is not None and _aware(score.scored_at) >= back.at
        out[hubspot_id] = back if qualified else None
    return out


def _plan(ctx: PushContext, batch: Sequence[PushContact], describe: Mapping[str, Any],
          users: Sequence[Mapping[str, Any]]) -> list[_Plan]:
    returns = _returns(ctx, batch)
    batch = [c for c in batch if returns.get(c.hubspot_id, True) is not None]
    waiting = sum(1 for r in returns.values() if r is None)
    if waiting:
        ctx.counts["leads.recycled_waiting"] += waiting  # with marketing until they qualify
    matches = ctx.sf.match_emails([c.email for c in batch if c.email])
    plans: list[_Plan] = []
    for contact in batch:
        email = contact.email or ""
        returning = returns.get(contact.hubspot_id)
        mapped = ctx.fields.lead_values(contact.properties, email=email,
                                        hubspot_id=contact.hubspot_id, describe=describe)
        values = dict(mapped.values)
        values[ctx.external_id_field] = contact.hubspot_id
        existing_contacts = matches.contacts_for(email)
        open_leads = matches.open_leads_for(email)
        converted = matches.converted_leads_for(email)
        if existing_contacts and ctx.existing_contact == "ignore":
            ctx.counts["leads.skipped_contact"] += 1
            continue
        if existing_contacts:
            sf_contact = existing_contacts[0]
            plans.append(_Plan(contact, "link_contact", {}, sf_contact.id, sf_contact.owner_id,
                               "the email is already a Salesforce Contact",
                               returning=returning))
        elif open_leads:
            lead = open_leads[0]
            update = {k: v for k, v in values.items()
                      if mapped.rules.get(k) not in UPDATE_SKIPS_RULES}
            update["Id"] = lead.id
            plans.append(_Plan(contact, "update", update, lead.id, lead.owner_id,
                               "an open Lead has this email", mapped.fixed, payload=values,
                               mapped=mapped, returning=returning))
        elif converted and converted[0].converted_contact_id:
            lead = converted[0]
            plans.append(_Plan(contact, "link_converted", {}, lead.converted_contact_id,
                               None, "the Lead was converted: its Contact takes over",
                               returning=returning))
        else:
            plans.append(_Plan(contact, "create", values, None, None, "new MQL", mapped.fixed,
                               payload=dict(values), returning=returning))
    return plans


def plan_leads(ctx: PushContext, contacts: Sequence[PushContact]) -> list[_Plan]:
    """What the push would do with these MQLs and the Lead values it would send (fields.toml
    applied, sync rules too), without routing them: `handshake mappings preview`. Reads
    Salesforce (the Lead describe, the email matches) and writes nothing."""
    return _plan(ctx, contacts, ctx.sf.fields("Lead"), ())


def _routing_state(ctx: PushContext, users: Sequence[Mapping[str, Any]]) -> None:
    """What routing needs from Salesforce once a run: capped reps' open Leads (one aggregate
    query) and the fallback queue's id."""
    if ctx.routing.mode != "handshake":
        return
    capped = ctx.routing.capped_users(users)
    if capped:
        ctx.load.update(ctx.sf.open_leads_by_owner(
            capped, closed_statuses=ctx.routing.closed_statuses))
    name = ctx.routing.fallback_queue
    if name and name not in ctx.queues and (queue := ctx.sf.queue_id(name)):
        ctx.queues[name] = queue


# --- writing Leads --------------------------------------------------------------------------


class _Routes:
    """Routing of one round of Leads, read and kept together: the choices recorded by earlier
    runs read in one query, the teams' round-robin pointers read once and advanced in memory,
    and the new choices with the pointers they moved saved in one transaction (`save`, before
    any of the round's Leads is sent)."""

    def __init__(self, ctx: PushContext, hubspot_ids: Sequence[str]) -> None:
        self.ctx = ctx
        self.kept = ctx.store.lead_routes(hubspot_ids) if hubspot_ids else {}
        self._pointers: dict[str, int] | None = None
        self.moved: dict[str, int] = {}
        self.chosen: list[dict[str, Any]] = []

    def next_round_robin(self, team: str, size: int) -> int:
        """As `Store.next_round_robin`, in memory until `save`."""
        if size <= 0:
            raise ValueError("team size must be positive")
        if self._pointers is None:
            self._pointers = self.ctx.store.round_robin_pointers()
        index = self._pointers.get(team, 0) % size
        self._pointers[team] = self.moved[team] = index + 1
        return index

    def save(self) -> None:
        """Keep the round's choices and pointers (the pointers move in a dry run too, as
        routing one Lead at a time through the store moved them)."""
        if self.chosen or self.moved:
            self.ctx.store.record_routing(self.chosen, self.moved)
        self.chosen, self.moved = [], {}


def _route(ctx: PushContext, plan: _Plan, users: Sequence[Mapping[str, Any]], routes: _Routes,
           *, resume: bool = False, since: datetime | None = None) -> None:
    """Owner of a new Lead, by `mappings/routing.toml` (only for Leads about to be created or
    returning, so the round-robin pointers move once per Lead and return). The choice is kept:
    a create that did not land (`resume`: its ledger entry is pending or failed) goes again to
    the same owner while that owner is still active, instead of moving the round-robin once
    more; `since`: only a choice made after it counts (a return's, not the first hand-off's).
    New choices are kept in `routes` (saved before the round's Leads are sent)."""
    hid = plan.contact.hubspot_id
    kept = routes.kept.get(hid) if resume else None
    if kept is not None and since is not None and _aware(kept.decided_at) < since:
        kept = None
    active = {str(u.get("Id")) for u in users}
    if kept is not None and (not (kept.owner_id or "").startswith("005")
                             or kept.owner_id in active):
        owner_id, reason, rules = kept.owner_id, kept.reason, kept.use_assignment_rules
    else:
        owner = str(plan.contact.properties.get("hubspot_owner_id") or "")
        assignment = ctx.routing.assign(plan.contact.properties, users=users, store=routes,
                                        owner_email=ctx.owner_emails.get(owner), load=ctx.load,
                                        queues=ctx.queues)
        owner_id, reason = assignment.owner_id, assignment.reason
        rules = assignment.use_assignment_rules
        if not ctx.dry_run:
            routes.chosen.append({"hubspot_id": hid, "owner_id": owner_id,
                                  "reason": reason or "", "use_assignment_rules": rules})
    plan.owner_id = owner_id
    if owner_id:
        ctx.load[owner_id] += 1
    plan.why = reason or plan.why
    if owner_id and not rules:
        plan.values["OwnerId"] = owner_id


def _owner_inactive(plan: _Plan, active: set[str]) -> bool:
    """The matched record's owner is a user who is not active (queues own records too)."""
    owner = plan.owner_id or ""
    return plan.action != "create" and owner.startswith("005") and owner not in active


def _write_leads(ctx: PushContext, plans: list[_Plan], users: Sequence[Mapping[str, Any]],
                 held: list[_Plan] | None = None) -> list[_Plan]:
    """Write what changed; returns the plans whose contact now stands in Salesforce. Claimed
    creates go to `held` instead when it is given (a backfill: written by `_write_held`).
    What the round needs from the store is read in one query a table, its routes and links
    written in one transaction each and its writes claimed in one, before anything is sent."""
    store, counts, ledger = ctx.store, ctx.counts, ctx.ledger()
    handed: list[_Plan] = []
    creates: list[_Plan] = []
    updates: list[_Plan] = []
    active = {str(u.get("Id")) for u in users}
    keys = {p.contact.hubspot_id: _lead_key(p.contact.hubspot_id, p.generation) for p in plans}
    returns = [handoff_task_key(p.contact.hubspot_id, p.generation) for p in plans
               if p.returning is not None and p.action == "update"]
    entries = store.ledger_entries_by_key([*keys.values(), *returns])
    owners = store.hubspot_ids_for([str(p.sf_id) for p in plans if p.sf_id])
    routes = _Routes(ctx, [p.contact.hubspot_id for p in plans
                           if p.action == "create" or p.returning is not None])
    links: list[tuple[str, str, str, str]] = []
    # in the order of the plans: ("handed", plan) or ("claimed", plan) once the claims are known
    steps: list[tuple[str, _Plan]] = []
    claims: list[WriteClaim] = []
    for plan in plans:
        hid = plan.contact.hubspot_id
        if plan.returning is not None and plan.action == "update" and not _returned(
                entries, plan):
            # Back from marketing: the Lead sits in the marketing queue; routed like a new one
            _route(ctx, plan, users, routes, resume=True, since=plan.returning.at)
            status = _open_status(ctx)
            if status:
                plan.values["Status"] = status
            plan.rerouted = True
        elif _owner_inactive(plan, active):
            # Nobody works a record whose owner left: the Lead is re-routed (a Contact keeps
            # its owner; the hand-off Task goes to the routed rep).
            gone = plan.owner_id
            _route(ctx, plan, users, routes)
            plan.why = f"its owner {gone} is an inactive user; {plan.why}"
            if plan.action != "update":
                plan.values.pop("OwnerId", None)
        taken = owners.get(str(plan.sf_id)) if plan.sf_id else None
        if taken not in (None, hid):
            # Matched by email to a record another HubSpot contact already stands for: the two
            # contacts are one person to Salesforce, which only HubSpot can settle.
            if not ctx.dry_run:
                ledger.park((), record_key=hid, refusal=Refusal(
                    reason=(f"{plan.contact.email}: the Salesforce record {plan.sf_id} with "
                            f"this email already stands for HubSpot contact {taken} — fix: "
                            f"merge the two contacts in HubSpot (then `handshake dlq retry` "
                            f"closes this)"),
                    actor=Actor.DATA,
                    payload={"action": plan.action, "sf_id": plan.sf_id, "hubspot_id": taken},
                    error_code="ALREADY_LINKED"))
            counts["leads.dead_letters"] += 1
            continue
        if plan.action in ("link_contact", "link_converted"):
            if not ctx.dry_run:
                links.append((hid, "Contact", str(plan.sf_id),
                              "matched" if plan.action == "link_contact" else "converted"))
                owners[str(plan.sf_id)] = hid  # taken from now on, as the link stored says
            counts[f"leads.{plan.action}"] += 1
            steps.append(("handed", plan))
            continue
        key = keys[hid]
        before = entries.get(key)
        if plan.action == "create" and (before is None or before.status != "done"):
            _route(ctx, plan, users, routes, resume=before is not None)
        if ctx.dry_run:
            if plan.action == "update":
                updates.append(plan)  # shown below as the fields that would change
                continue
            ctx.planned.append({"contact": hid, "action": plan.action, "values": plan.values,
                                "why": plan.why, "fixed": plan.fixed})
            counts[f"leads.would_{plan.action}"] += 1
            continue
        if plan.action == "update":
            plan.lost_create = (before is not None and before.operation == "create"
                                and before.status != "done")
        claims.append(WriteClaim(key, plan.action, "Lead", plan.payload))
        steps.append(("claimed", plan))
    routes.save()
    if ctx.dry_run:
        handed += [plan for _, plan in steps]
        for plan in _only_changes(ctx, updates, []):
            ctx.planned.append({"contact": plan.contact.hubspot_id, "action": "update",
                                "values": plan.values, "why": plan.why, "fixed": plan.fixed})
            counts["leads.would_update"] += 1
        return handed
    store.link_many(links)
    claimed = {c.key for c, to_send in zip(claims, ledger.claim_many(claims), strict=True)
               if to_send}
    unchanged = [plan.contact.hubspot_id for step, plan in steps
                 if step == "claimed" and keys[plan.contact.hubspot_id] not in claimed]
    linked = store.link_targets(unchanged)
    for step, plan in steps:
        hid = plan.contact.hubspot_id
        if step == "handed":
            handed.append(plan)
            continue
        if keys[hid] not in claimed:
            counts["leads.unchanged"] += 1
            link = linked.get(hid)
            if link is not None:
                plan.sf_id = link.sf_id
                handed.append(plan)
            continue
        if plan.fixed:
            # One line a record is noise on a first large run: the detail at DEBUG, a tally
            # by field at the end of the push.
            log.debug("HubSpot contact %s: %s", hid, "; ".join(plan.fixed))
            ctx.fixes.update(_fix_kind(f) for f in plan.fixed)
        if plan.action != "create":
            updates.append(plan)
        elif held is None:
            creates.append(plan)
        else:
            held.append(_hold(plan))
    handed += _send(ctx, "create", creates)
    handed += _send(ctx, "update", _only_changes(ctx, updates, handed))
    return handed


def _only_changes(ctx: PushContext, updates: list[_Plan], handed: list[_Plan]) -> list[_Plan]:
    """Cut each open Lead's update to what its fields' sync rules allow against the Lead's
    current values (batched queries): `salesforce_unless_blank` fills blanks only,
    `two_way` writes when HubSpot changed last, a blank or a stand-in ("[not provided]") never
    replaces a value, equal values are not sent. A Lead needing nothing is done without a call."""
    if not updates:
        return []
    known = ctx.sf.fields("Lead")  # cached describe: a query naming a missing column would fail
    names = sorted({k for p in updates for k in p.values if k in known} - {"Id"}
                   | {"LastModifiedDate"})
    ids = [str(p.sf_id) for p in updates]
    ctx.counts["leads.current_values_read"] += len(ids)
    current = {str(row["Id"])[:15]: row for row in ctx.sf.records_by_id(
        "Lead", ids, names, what="open Leads' current values")}
    send: list[_Plan] = []
    links = ctx.store.link_targets([p.contact.hubspot_id for p in updates])
    relinked: list[tuple[str, str, str, str]] = []
    done: list[tuple[str, str | None]] = []
    for plan in updates:
        row = current.get(str(plan.sf_id)[:15])
        if row is None or plan.mapped is None:
            send.append(plan)  # gone since the match: Salesforce's answer says so
            continue
        changes = plan.mapped.changes(
            row, hubspot_modified=plan.contact.hubspot_updated_at,
            salesforce_modified=_salesforce_time(row.get("LastModifiedDate")))
        if row.get(ctx.external_id_field) != plan.contact.hubspot_id:
            changes[ctx.external_id_field] = plan.contact.hubspot_id
        if plan.values.get("OwnerId") and plan.values["OwnerId"] != row.get("OwnerId"):
            changes["OwnerId"] = plan.values["OwnerId"]  # re-routed (inactive owner, a return)
        if plan.rerouted and plan.values.get("Status") and plan.values["Status"] != row.get(
                "Status"):
            changes["Status"] = plan.values["Status"]  # a return: open again
        if not changes and ctx.dry_run:
            ctx.counts["leads.would_leave_unchanged"] += 1
            continue
        if not changes:
            hid = plan.contact.hubspot_id
            link = links.get(hid)
            if link is None or link.sf_id != plan.sf_id:
                relinked.append((hid, "Lead", str(plan.sf_id),
                                 "created" if link is None and plan.lost_create else "matched"))
            done.append((_lead_key(hid, plan.generation), str(plan.sf_id)))
            ctx.counts["leads.unchanged"] += 1
            handed.append(plan)
            continue
        plan.values = {"Id": plan.sf_id, **changes}
        send.append(plan)
    # the links first, then the ledger (a done entry never stands without its link); one
    # remote id a key, so settled key by key in one transaction
    ctx.store.link_many(relinked)
    ctx.store.complete_writes(done)
    return send


def _salesforce_time(value: Any) -> datetime | None:
    """Salesforce's "2026-11-02T09:00:00.000+0000" as an aware datetime (None if absent)."""
    if not value:
        return None
    try:
        return datetime.strptime(str(value), "%Y-%m-%dT%H:%M:%S.%f%z")
    except ValueError:
        return None


def _send(ctx: PushContext, kind: str, group: list[_Plan], *, bulk: bool = False) -> list[_Plan]:
    """Upsert (create) or update the group's Leads, 1,000 a composite call (up to 200 as one
    collection call) or in Bulk API jobs, settle each result; returns the plans whose contact
    now stands in Salesforce."""
    writes = [LedgerWrite((_lead_key(p.contact.hubspot_id, p.generation),), p.contact.hubspot_id,
                          p) for p in group]

    def send(plans: list[_Plan]) -> Iterable[Sequence[WriteResult]]:
        records = [p.values for p in plans]
        if kind != "create":
            return ctx.sf.update_batches("Lead", records, auto_assign=False)
        auto = not any("OwnerId" in r for r in records)
        if bulk:
            return [ctx.sf.bulk_upsert("Lead", records, ctx.external_id_field, auto_assign=auto)]
        return ctx.sf.upsert_batches("Lead", records, ctx.external_id_field, auto_assign=auto)

    links = _Links(ctx.store, ctx.store.link_targets([p.contact.hubspot_id for p in group]))

    def judge(write: LedgerWrite[_Plan], result: WriteResult) -> Outcome:
        return _outcome(ctx, write.item, result, kind, links)

    def prepare(_: object) -> None:
        links.save()  # a call's links, before its ledger entries are settled

    return [write.item for write, _, _ in ctx.ledger().send(writes, send, judge, prepare)
            if write.item.sf_id]


class _Links:
    """The links one group of Lead writes reads and makes: the group's links read at once
    before sending, each call's new links stored together before its results are settled
    (`save`), and the Salesforce records they take known at once (a later result of the same
    call matched to one of them finds it taken)."""

    def __init__(self, store: Store, known: Mapping[str, Any]) -> None:
        self.store = store
        self.known = dict(known)
        self.pending: dict[str, tuple[str, str, str, str]] = {}
        self.taken: dict[str, str] = {}  # sf id -> HubSpot id, of the links not saved yet

    def linked(self, hubspot_id: str) -> str | None:
        """The Salesforce id the contact's link names (before this group's writes)."""
        link = self.known.get(hubspot_id)
        return link.sf_id if link is not None else None

    def owner_of(self, sf_id: str) -> str | None:
        """The contact the Salesforce record stands for, if any."""
        if sf_id in self.taken:
            return self.taken[sf_id]
        return self.store.hubspot_id_for(sf_id)

    def link(self, hubspot_id: str, sf_object: str, sf_id: str, how: str) -> None:
        self.pending[hubspot_id] = (hubspot_id, sf_object, sf_id, how)
        self.taken[sf_id] = hubspot_id

    def save(self) -> None:
        self.store.link_many(list(self.pending.values()))
        self.pending, self.taken = {}, {}


def _write_held(ctx: PushContext, held: list[_Plan],
                users: Sequence[Mapping[str, Any]]) -> None:
    """A backfill's held creates: through Bulk API when more than the threshold (fewer go
    cheaper as composite calls), then their Tasks and HubSpot updates, a round at a time."""
    bulk = len(held) > ctx.bulk_threshold
    if bulk:
        ctx.counts["leads.bulk_records"] += len(held)
    handed = _send(ctx, "create", held, bulk=bulk)
    for start in range(0, len(handed), HELD_TASK_ROUND):
        # the round's contacts read again for their Tasks, held only while they are written
        part = handed[start:start + HELD_TASK_ROUND]
        contacts = ctx.store.contacts_by_id([p.contact.hubspot_id for p in part])
        part = [replace(p, contact=contacts.get(p.contact.hubspot_id, p.contact)) for p in part]
        _write_tasks(ctx, part)
        note_handoffs(ctx, part, users)


def _hold(plan: _Plan) -> _Plan:
    """A claimed create held for a backfill's Bulk API job, cut to what the job and the
    settling of its result need (its contact's id, its Lead values, what the mapping fixed,
    its routing): a backfill holds up to 10,000, so its contact (every HubSpot property) and
    the payload already claimed are not kept; `_write_held` reads the contacts again for
    their Tasks, a round at a time."""
    contact = plan.contact
    plan.contact = MqlContact(contact.hubspot_id, contact.email, {}, None, None, None)
    plan.payload = {}
    plan.mapped = None
    return plan


def _lead_key(hubspot_id: str, generation: int = 0) -> str:
    """The ledger key of the Lead standing for a HubSpot contact (from its n-th return on,
    a key of that generation: the return's update is a write of its own)."""
    if generation <= 0:
        return f"sf:lead:{hubspot_id}"
    return f"sf:lead:{hubspot_id}:{generation:04d}"


def _returned(entries: Mapping[str, WriteLedgerEntry], plan: _Plan) -> bool:
    """This return of the contact was handed off already (its hand-off Task is written):
    `entries` holds the round's ledger entries by key."""
    entry = entries.get(handoff_task_key(plan.contact.hubspot_id, plan.generation))
    return entry is not None and entry.status == "done"


def _open_status(ctx: PushContext) -> str | None:
    """The Lead Status a new Lead gets in the org (LeadStatus.IsDefault), read once a run:
    what a returning lead's Lead is set back to."""
    if ctx.open_status is None:
        default = [s.api_name for s in ctx.sf.lead_statuses() if s.is_default]
        ctx.open_status = default[0] if default else ""
    return ctx.open_status or None


def _outcome(ctx: PushContext, plan: _Plan, result: WriteResult, kind: str,
             links: _Links) -> Outcome:
    """What Salesforce's answer means for the plan's Lead; the link to the Lead is kept in
    `links`, stored before the ledger is settled."""
    counts = ctx.counts
    hid = plan.contact.hubspot_id
    if result.success and result.id:
        plan.sf_id = result.id
        # A create whose first answer was lost comes back from the retried upsert as an update
        # of the Lead it made; with no link yet (or the link that attempt stored before it was
        # cut short: a create is planned only when no Lead matched), that Lead is our creation.
        linked = links.linked(hid) if not result.created else None
        created = result.created or (kind == "create" and (linked is None
                                                           or linked == result.id))
        # ... or the Lead our create made, its answer lost, matched by email on the next run
        created = created or ((linked is None or linked == result.id) and plan.lost_create)
        links.link(hid, "Lead", result.id, "created" if created else "updated")
        counts["leads.created" if created else "leads.updated"] += 1
        return Written(result.id)
    duplicates = result.duplicates
    # A matched record another HubSpot contact already stands for cannot take this one too:
    # Salesforce says the two contacts are one person, which only HubSpot can settle.
    owners = {d.id: links.owner_of(d.id) for d in duplicates}
    free = [d for d in duplicates if owners[d.id] in (None, hid)]
    if free:
        match = free[0]
        plan.sf_id = match.id
        links.link(hid, match.sobject, match.id, "duplicate_rule")
        counts["leads.linked_duplicate"] += 1
        return Written(match.id)
    counts["leads.dead_letters"] += 1
    rejection = result.rejection
    if duplicates:
        taken = duplicates[0]
        return Refusal(
            reason=(f"{taken.sobject} {taken.id}: Salesforce's duplicate rule "
                    f"({taken.rule or 'matching rule'}) says this contact is the person HubSpot "
                    f"contact {owners[taken.id]} already stands for — fix: merge the two "
                    f"contacts in HubSpot (then `handshake dlq retry` closes this), or, if they "
                    f"are two people, have an admin narrow the matching rule in Salesforce"),
            actor=Actor.DATA,
            payload={"action": kind, "values": plan.values, "fixed": plan.fixed,
                     "duplicates": [{"sobject": d.sobject, "id": d.id,
                                     "hubspot_id": owners[d.id]} for d in duplicates]},
            error_code="DUPLICATES_DETECTED",
        )
    # Salesforce's reason may quote the values sent: at DEBUG only
    log.warning("HubSpot contact %s parked (%s must act; `handshake dlq list` says why)", hid,
                rejection.actor if rejection else Actor.ADMIN)
    log.debug("HubSpot contact %s parked: %s", hid, rejection.reason if rejection else "refused")
    # The reason names each refused field, the value sent, the HubSpot property it came from
    # and the fix; who must act is the actor.
    return Refusal(
        reason=(rejection.reason_with(ctx.fields.sources()) if rejection
                else "Salesforce refused the Lead and gave no reason"),
        actor=rejection.actor if rejection else Actor.ADMIN,
        payload={"action": kind, "values": plan.values, "fixed": plan.fixed,
                 "fields": list(rejection.fields) if rejection else [],
                 "fix": rejection.fix if rejection else ""},
        error_code=rejection.code if rejection else "",
    )


# --- Tasks -------------------------------------------------------------------------------


def _write_tasks(ctx: PushContext, handed: list[_Plan]) -> None:
    """The hand-off Task (once per MQL) and the activities not sent yet (connector/push/tasks.py)."""
    write_tasks(ctx, handed, ctx.activity_tasks)
