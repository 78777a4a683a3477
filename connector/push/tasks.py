"""Tasks on the handed-off records, each written once however often the push runs or fails.

    hand-off   one per MQL and record (and one more per return after a recycle, saying why
               it came back): why this lead, what they did; due at the end of sla.toml's
               first-touch window
    activity   the stored activities not sent yet: one digest Task a batch (`[push]
               activity_tasks = "digest"`), one completed Task each ("each"), or none ("none")

Task has no external id to upsert by, so "once" rests on the write ledger and on a reference
made from the ledger key at the end of every Subject ("Page view: Pricing [hs-123-a456]"):

1. a Task is claimed (pending) in the ledger before it is sent and completed with its id after;
2. its create is not sent again by the HTTP policy once it may have reached Salesforce (5xx,
   connection lost): a lost answer (of a collection call, or of a composite call of up to
   1,000 Tasks, or of one of its collections), like a crash between sending and recording,
   leaves the entries of the whole call pending;
3. before anything is sent again, pending entries are reconciled: Tasks on the record created
   by Handshake whose Subject carries the entry's reference (batched SOQL) complete the entry
   with the found id; only the Tasks not found are sent;
4. a create refused for the allocation (the governor's share, REQUEST_LIMIT_EXCEEDED) was never
   handled: its entries are released and go out next cycle with no lookup to pay for.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from operator import attrgetter
from typing import Any, Literal

from connector.activities import label
from connector.errors import Actor, QuotaExhausted, RetriableError
from connector.ledger import LedgerWrite, Outcome, Refusal, Written
from connector.push.context import HandedOff, PushContext, handoff_task_key
from connector.push.ports import WriteResult
from connector.scoring.engine import ActivityLike
from connector.scoring.intelligence import render_text, summarize
from connector.store import Store, WriteClaim

__all__ = [
    "ACTIVITY_TASK_MODES",
    "TaskWrite",
    "activity_line",
    "activity_subject",
    "ref_of",
    "write_tasks",
]

log = logging.getLogger("connector.push")

# Tasks handed to the client at once: above 200 it sends them 5 collections of 200 a composite
# call, one API call; a lost answer leaves all of them to reconcile.
BATCH = 1000
SUBJECT_MAX = 255
DESCRIPTION_MAX = 32_000
RETURN_LINES = 10  # a returning lead's activities since its recycle, listed first
SEND_ROUNDS = 5  # sends of one batch whose answers keep getting lost, before the run gives up
ACTIVITY_TASK_MODES = ("digest", "each", "none")
ActivityTaskMode = Literal["digest", "each", "none"]

TASK_KEYS = "sf:task:"
# the Task kinds written here; a first hand-off's reference is "hs-{contact}", a return's
# "hs-{contact}-r{recycles}"
REF_KINDS = {"handoff": "r", "digest": "d", "activity": "a"}
REF_MARK = "[hs-"  # every Subject ends with "[hs-...]"; the reconciling query filters on it
_REF_AT_END = re.compile(r"\[(hs-[0-9A-Za-z-]+)\]\s*$")
_BY_ID = attrgetter("id")
_NEWEST_FIRST = attrgetter("occurred_at", "id")  # with reverse=True: the newest first



@dataclass
class TaskWrite:
    """One Task to create, claimed in the ledger under `key`."""

    key: str
    kind: str  # handoff | activity
    record: dict[str, Any]
    plan: HandedOff

    def ledgered(self) -> LedgerWrite[TaskWrite]:
        """As the ledger sends it: one key, parked under the same key."""
        return LedgerWrite((self.key,), self.key, self)


# --- ledger keys and their references ----------------------------------------------------------


def digest_key(hubspot_id: str, first: int, last: int) -> str:
    """A digest of the contact's activities with store ids in [first, last]."""
    return f"{TASK_KEYS}digest:{hubspot_id}:{first:012d}-{last:012d}"


def activity_key(hubspot_id: str, activity_id: int) -> str:
    """The Task of one activity ("each" mode)."""
    return f"{TASK_KEYS}activity:{hubspot_id}:{activity_id:012d}"


def _parts(key: str) -> tuple[str, str, str]:
    kind, hubspot_id, *rest = key[len(TASK_KEYS):].split(":")
    return kind, hubspot_id, rest[0] if rest else ""


def ref_of(key: str) -> str:
    """The reference a Task's Subject ends with: unique per ledger key, short for a rep."""
    kind, hubspot_id, tail = _parts(key)
    if not tail:
        return f"hs-{hubspot_id}"
    return f"hs-{hubspot_id}-{REF_KINDS[kind]}{int(tail.rsplit('-', 1)[-1])}"


def _range(key: str) -> tuple[int, int]:
    """The activity ids a digest key covers (an older key naming only the newest covers all
    before it)."""
    tail = _parts(key)[2]
    first, _, last = tail.rpartition("-")
    return (int(first) if first else 0), int(last)


def subject(text: str, ref: str) -> str:
    """`text` cut to fit, then the reference, within Subject's 255 characters."""
    tail = f" [{ref}]"
    return " ".join(text.split())[: SUBJECT_MAX - len(tail)].rstrip() + tail


# --- what a Task says --------------------------------------------------------------------------


def _label(activity: ActivityLike) -> str:
    return label(activity.type)


def activity_subject(activity: ActivityLike) -> str:
    """An activity as a rep reads it in one line: "Page view: Pricing"."""
    what = activity.title or activity.url or ""
    return f"{_label(activity)}: {what}" if what else _label(activity)


def activity_line(activity: ActivityLike) -> str:
    """An activity's line in a digest: when ("2026-11-02 09:00"), then what (its subject)."""
    # isoformat cut to the minute: strftime's result, several times faster; the subject made
    # here, not by a call per activity (digests list every activity of a contact)
    when = activity.occurred_at.isoformat(" ", "minutes")[:16]
    what = activity.title or activity.url
    return f"{when} {label(activity.type)}: {what}" if what else f"{when} {label(activity.type)}"


def _activity_description(activity: ActivityLike) -> str:
    details = activity.details or {}
    lines = [f"{_label(activity)} on {activity.occurred_at:%Y-%m-%d %H:%M} UTC"]
    if activity.title:
        lines.append(f"Title: {activity.title}")
    if activity.url:
        lines.append(f"URL: {activity.url}")
    values = details.get("values") if isinstance(details, Mapping) else None
    if isinstance(values, Mapping):
        lines.extend(f"{name}: {value}" for name, value in values.items() if value not in (None, ""))
    if isinstance(details, Mapping):
        for name in ("attendance_seconds", "attendance_percentage"):
            if details.get(name) not in (None, ""):
                lines.append(f"{name.replace('_', ' ').capitalize()}: {details[name]}")
    return "\n".join(lines)[:DESCRIPTION_MAX]


def _owned(record: dict[str, Any], owner: str | None) -> dict[str, Any]:
    if owner and owner.startswith("005"):  # a Task cannot be owned by a queue
        record["OwnerId"] = owner
    return record


# --- planning ----------------------------------------------------------------------------------


def _covered_many(store: Store, hubspot_ids: Sequence[str]) -> dict[str, _Covered]:
    """`_Covered` of many contacts, read in one query a page of contacts."""
    digests = {h: f"{TASK_KEYS}digest:{h}:" for h in hubspot_ids}
    singles = {h: f"{TASK_KEYS}activity:{h}:" for h in hubspot_ids}
    found = store.ledger_entries_many([*digests.values(), *singles.values()])
    out: dict[str, _Covered] = {}
    for hid in hubspot_ids:
        covered = _Covered()
        for entry in found[digests[hid]]:
            if entry.status == "done":
                covered.ranges.append(_range(entry.key))
            else:
                covered.promised.append(entry.key)
                covered.status[entry.key] = entry.status
        covered.singles = {int(_parts(e.key)[2]) for e in found[singles[hid]]
                           if e.status == "done"}
        out[hid] = covered
    return out


@dataclass
class _Covered:
    """Digest ranges and single activities already in Salesforce for one contact, and the
    digests promised but not there (pending and not found, or refused; their status by key):
    sent again under the same key, so their range and their dead letter stay theirs."""

    ranges: list[tuple[int, int]] = field(default_factory=list)
    singles: set[int] = field(default_factory=set)
    promised: list[str] = field(default_factory=list)
    status: dict[str, str] = field(default_factory=dict)


def _digest_chunks(
    fresh: Sequence[ActivityLike], promised: Sequence[str], lines: dict[int, str]
) -> list[tuple[str | None, list[ActivityLike]]]:
    """Fresh activities (oldest id first) cut into digests: first one per promised digest range,
    then new ranges, each small enough for Description (the lines measured are kept in
    `lines` by activity id, for the digests' text)."""
    out: list[tuple[str | None, list[ActivityLike]]] = []
    rest = list(fresh)
    for key in promised:
        first, last = _range(key)
        inside = [a for a in rest if first <= a.id <= last]
        rest = [a for a in rest if not first <= a.id <= last]
        out.append((key, inside))
    chunk: list[ActivityLike] = []
    size = 0
    for activity in rest:
        line = lines[activity.id] = activity_line(activity)
        cost = len(line) + 1
        if chunk and size + cost > DESCRIPTION_MAX:
            out.append((None, chunk))
            chunk, size = [], 0
        chunk.append(activity)
        size += cost
    if chunk:
        out.append((None, chunk))
    return out


@dataclass
class _Candidate:
    """A Task the planning wants, written when its ledger claim says so (`build` makes its
    record then: a hand-off's summary is built only for a hand-off to send)."""

    key: str
    kind: str  # handoff | activity
    plan: HandedOff
    build: Callable[[], dict[str, Any]]


def _plan(ctx: PushContext, plan: HandedOff, activities: Sequence[ActivityLike], now: datetime,
          mode: str, covered: _Covered, release: list[str], due: str) -> list[_Candidate]:
    """The Tasks the contact may need, in order (hand-off first); `release` collects promised
    digests whose activities are gone; `due`: the hand-off Task's ActivityDate."""
    hid = plan.contact.hubspot_id
    who = str(plan.sf_id)
    out: list[_Candidate] = []
    handoff_key = handoff_task_key(hid, plan.generation)

    def handoff() -> dict[str, Any]:
        result = ctx.engine.score(plan.contact, activities, now)
        text = render_text(summarize(plan.contact, activities, result, now), limit=DESCRIPTION_MAX)
        why = plan.why or "new MQL"
        back = plan.returning
        if back is not None:
            # what made it qualify again: its activities since the recycle, newest first
            since = sorted((x for x in activities if x.occurred_at >= back.at),
                           key=lambda x: (x.occurred_at, x.id), reverse=True)
            lines = [activity_line(x) for x in since[:RETURN_LINES]]
            if len(since) > RETURN_LINES:
                lines.append(f"... and {len(since) - RETURN_LINES} more")
            done = "\n".join(["What it did since:", *lines]) if lines else ""
            text = "\n\n".join(p for p in (back.describe(), done, text) if p)[:DESCRIPTION_MAX]
            why = f"returning lead ({back.reason.replace('_', ' ')}); {why}"
        record = {
            "WhoId": who, "Subject": subject(f"Handshake hand-off: {why}",
                                             ref_of(handoff_key)),
            "Description": text, "Status": "Not Started", "Priority": "High",
            "ActivityDate": due,
        }
        return _owned(record, plan.owner_id)

    out.append(_Candidate(handoff_key, "handoff", plan, handoff))
    if mode == "none" or not activities:
        return out
    ranges, singles, promised = covered.ranges, covered.singles, covered.promised
    if ranges or singles:
        fresh = sorted((a for a in activities if a.id not in singles
                        and not any(lo <= a.id <= hi for lo, hi in ranges)), key=_BY_ID)
    else:  # nothing sent yet (a first hand-off): every activity, without a test each
        fresh = sorted(activities, key=_BY_ID)
    if mode == "each":
        for key in promised:  # digests promised before go out as they were
            out.extend(_digest(plan, key, [a for a in fresh if _inside(a, key)], covered,
                               release))
        fresh = [a for a in fresh if not any(_inside(a, k) for k in promised)]
        for activity in fresh:
            out.append(_Candidate(activity_key(hid, activity.id), "activity", plan,
                                  partial(_activity_record, who, plan, activity, hid)))
        return out
    lines: dict[int, str] = {}
    for known, chunk in _digest_chunks(fresh, promised, lines):
        out.extend(_digest(plan, known, chunk, covered, release, lines))
    return out


def _activity_record(who: str, plan: HandedOff, activity: ActivityLike,
                     hid: str) -> dict[str, Any]:
    """The completed Task of one activity ("each" mode)."""
    record = {
        "WhoId": who, "Status": "Completed", "Priority": "Normal",
        "Subject": subject(activity_subject(activity), ref_of(activity_key(hid, activity.id))),
        "Description": _activity_description(activity),
        "ActivityDate": activity.occurred_at.date().isoformat(),
    }
    return _owned(record, plan.owner_id)


def _inside(activity: ActivityLike, key: str) -> bool:
    first, last = _range(key)
    return bool(first <= activity.id <= last)


def _digest(plan: HandedOff, key: str | None, chunk: Sequence[ActivityLike], covered: _Covered,
            release: list[str], lines: Mapping[int, str] | None = None) -> list[_Candidate]:
    """The digest Task of `chunk` (under `key` when it was promised before; `lines`: the
    activities' digest lines already made, by id)."""
    made = lines or {}
    hid = plan.contact.hubspot_id
    if not chunk:
        if key is not None and covered.status.get(key) == "pending":
            release.append(key)  # its activities are gone: nothing to send
        return []
    key = key or digest_key(hid, min(a.id for a in chunk), max(a.id for a in chunk))

    def build() -> dict[str, Any]:
        newest = max(a.occurred_at for a in chunk)
        text = [made.get(a.id) or activity_line(a)
                for a in sorted(chunk, key=_NEWEST_FIRST, reverse=True)]
        record = {
            "WhoId": str(plan.sf_id), "Status": "Completed", "Priority": "Normal",
            "Subject": subject(f"Marketing activity: {len(chunk)} new (to {newest:%Y-%m-%d})",
                               ref_of(str(key))),
            "Description": "\n".join(text)[:DESCRIPTION_MAX],
            "ActivityDate": newest.date().isoformat(),
        }
        return _owned(record, plan.owner_id)

    return [_Candidate(key, "activity", plan, build)]


# --- reconciling and sending -------------------------------------------------------------------


def _reconcile(ctx: PushContext, expected: Mapping[str, str]) -> dict[str, str]:
    """Complete the ledger entries (key -> WhoId) whose Task already stands in Salesforce;
    returns key -> the found Task id."""
    if not expected:
        return {}
    by_ref = {(who, ref_of(key)): key for key, who in expected.items()}
    found: dict[str, str] = {}
    rows = ctx.sf.find_tasks(set(expected.values()), subject_contains=REF_MARK,
                             created_by=ctx.sf.user_id)
    for row in rows:
        match = _REF_AT_END.search(str(row.get("Subject") or ""))
        key = by_ref.get((str(row.get("WhoId")), match.group(1))) if match else None
        if key is not None and key not in found:
            found[key] = str(row["Id"])
    ctx.store.complete_writes(list(found.items()))
    ctx.counts["tasks.reconciled"] += len(found)
    if found:
        log.info("%d of %d Tasks left unconfirmed were found in Salesforce; not written again",
                 len(found), len(expected))
    return found


def _reconcile_earlier(ctx: PushContext, handed: Sequence[HandedOff], now: datetime) -> None:
    """Entries of these contacts left pending by an earlier attempt: complete those whose Task
    stands (opening the hand-off SLA as if just created); the rest are sent again below."""
    plans = {p.contact.hubspot_id: p for p in handed if p.sf_id}
    expected = {e.key: str(plans[_parts(e.key)[1]].sf_id)
                for e in ctx.store.ledger_entries(TASK_KEYS, status="pending")
                if _parts(e.key)[0] in REF_KINDS and _parts(e.key)[1] in plans}
    _open_sla(ctx, [plans[_parts(key)[1]] for key in _reconcile(ctx, expected)
                    if _parts(key)[0] == "handoff"], now)


def _open_sla(ctx: PushContext, plans: Sequence[HandedOff], now: datetime) -> None:
    """The hand-off SLA timers of these contacts, opened in one transaction (and the contacts
    noted as handed off in this run)."""
    if not plans:
        return
    ctx.handed_now.update(p.contact.hubspot_id for p in plans)
    first_touch, worked = ctx.first_touch_due(now), ctx.worked_due(now)
    ctx.store.open_sla_timers([
        {"hubspot_id": p.contact.hubspot_id, "sf_id": str(p.sf_id), "owner_id": p.owner_id,
         "assigned_at": now, "first_touch_due": first_touch, "worked_due": worked}
        for p in plans])


def _outcome(write: LedgerWrite[TaskWrite], result: WriteResult) -> Outcome:
    """What Salesforce's answer means for one Task."""
    if result.success:
        return Written(result.id)
    rejection = result.rejection
    return Refusal(reason=rejection.reason if rejection else "refused",
                   actor=rejection.actor if rejection else Actor.ADMIN,
                   payload={"task": write.item.record},
                   error_code=(rejection.code if rejection else "") or "")


def _written(ctx: PushContext, writes: Sequence[TaskWrite], now: datetime) -> None:
    """Count Tasks that stand in Salesforce; a hand-off Task opens the contact's SLA."""
    handoffs = [w.plan for w in writes if w.kind == "handoff"]
    for name, n in (("tasks.handoff", len(handoffs)),
                    ("tasks.activity", len(writes) - len(handoffs))):
        if n:
            ctx.counts[name] += n
    _open_sla(ctx, handoffs, now)


def _send(ctx: PushContext, batch: list[TaskWrite], now: datetime) -> None:
    """One create call (a collection, or a composite of up to 5); when its answer is lost,
    find what was written and send only the rest, a few rounds at most (then the error stops
    the run: the next one reconciles)."""
    ledger = ctx.ledger()
    for round_ in range(1, SEND_ROUNDS + 1):
        try:
            results = ctx.sf.create("Task", [w.record for w in batch])
        except QuotaExhausted:
            # refused before Salesforce handled it (a spent share is never a lost answer); a
            # refusal of the query that looks for them instead leaves them pending
            _release(ctx, batch)
            raise
        except RetriableError as exc:
            if round_ == SEND_ROUNDS:
                raise
            log.warning("%s; looking for the %d Tasks before sending them again", exc, len(batch))
            ctx.clock.sleep(exc.retry_after or float(2 ** (round_ - 1)))
            found = _reconcile(ctx, {w.key: str(w.record["WhoId"]) for w in batch})
            _written(ctx, [w for w in batch if w.key in found], now)  # created after all
            batch = [w for w in batch if w.key not in found]
            if not batch:
                return
            continue
        settled = list(ledger.settle_results([w.ledgered() for w in batch], results, _outcome))
        _written(ctx, [sent.item for sent, _, outcome in settled
                       if isinstance(outcome, Written)], now)
        refused = sum(1 for _, _, o in settled if not isinstance(o, Written))
        if refused:
            ctx.counts["tasks.dead_letters"] += refused
        return


def write_tasks(ctx: PushContext, handed: Sequence[HandedOff], mode: str = "digest") -> None:
    """The hand-off Task of every contact in `handed` not told yet, and its activities not sent
    yet (`mode`: digest | each | none); each written once (see the module docstring)."""
    if ctx.dry_run or not handed:
        return
    if mode not in ACTIVITY_TASK_MODES:
        raise ValueError(f"activity_tasks must be one of {', '.join(ACTIVITY_TASK_MODES)}")
    now = ctx.clock.now()
    handed = [p for p in handed if p.sf_id]
    _reconcile_earlier(ctx, handed, now)
    ids = [p.contact.hubspot_id for p in handed]
    activities = ctx.store.activities_for_many(ids)
    # what the contacts' Tasks so far cover, read together (none needed for mode "none")
    covered = _covered_many(ctx.store, ids) if mode != "none" else {}
    release: list[str] = []
    wanted: list[_Candidate] = []
    due = ctx.due_date(ctx.first_touch_due(now)).isoformat()  # every hand-off's, from `now`
    for plan in handed:
        hid = plan.contact.hubspot_id
        wanted.extend(_plan(ctx, plan, activities.get(hid, []), now, mode,
                            covered.get(hid) or _Covered(), release, due))
    ledger = ctx.ledger()
    if release:
        ledger.release(release)
    # every Task claimed in one transaction; a record is built only for a claimed one, and
    # only when its call is about to be made (a batch's records are held, not the round's)
    claimed = ledger.claim_many([WriteClaim(c.key, "create", "Task", {"who": str(c.plan.sf_id)})
                                 for c in wanted])
    due_now = [c for c, to_send in zip(wanted, claimed, strict=True) if to_send]
    for start in range(0, len(due_now), BATCH):
        try:
            _send(ctx, [TaskWrite(c.key, c.kind, c.build(), c.plan)
                        for c in due_now[start:start + BATCH]], now)
        except QuotaExhausted:
            ledger.release(c.key for c in due_now[start + BATCH:])  # never sent
            raise


def _release(ctx: PushContext, writes: Sequence[TaskWrite]) -> None:
    """Writes Salesforce never handled (refused for the allocation before): the next cycle
    sends them again without first spending a query of a spent share to look for them."""
    ctx.ledger().release(w.key for w in writes)
