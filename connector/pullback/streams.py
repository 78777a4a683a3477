"""One stream per object (Lead, Opportunity, Task, Event): read what changed since the
bookmark for the hand-offs, turn each change a person made into an outcome, store each page
with the states it moved, and the bookmark at the end.

Rows come oldest change first and many share one SystemModstamp, so each stream re-reads a
lookback before its bookmark; a row already applied (its stamp not newer than the state's)
or an outcome already stored (its source id) changes nothing. A change Handshake made itself
(its integration user modified the record last, or a Task the write ledger says it created)
moves the state but is no outcome, so the two systems never ping-pong.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from connector.control import checkpoint
from connector.pullback.context import (
    Handoffs,
    PullbackContext,
    bookmark_name,
    parse_date,
    parse_time,
)
from connector.salesforce import settings as ss

__all__ = ["STREAMS", "Stream", "run_stream"]

log = logging.getLogger("connector.pullback")

Outcome = dict[str, Any]
# Apply one row: the outcomes it makes go to the list; returns the hand-off whose state moved.
Apply = Callable[[PullbackContext, Handoffs, dict[str, Any], list[Outcome]], str | None]


def _key(stamp: datetime) -> str:
    return stamp.strftime("%Y%m%d%H%M%S%f")


def _outcome(hubspot_id: str, sobject: str, sf_id: str, source_id: str, kind: str,
             occurred_at: datetime, *, status: str | None = None, reason: str | None = None,
             owner_id: str | None = None, amount: float | None = None,
             details: dict[str, Any] | None = None) -> Outcome:
    return {"hubspot_id": hubspot_id, "sf_object": sobject, "sf_id": sf_id,
            "source_id": source_id, "kind": kind, "status": status, "reason": reason,
            "owner_id": owner_id, "occurred_at": occurred_at, "amount": amount,
            "details": details or {}}


def _stamp(row: dict[str, Any]) -> datetime:
    stamp = parse_time(row.get(ss.MODSTAMP))
    if stamp is None:  # the field is always there; a row without it is not Salesforce's
        raise ValueError(f"a {row.get('Id')} row has no {ss.MODSTAMP}")
    return stamp


def apply_lead(ctx: PullbackContext, handoffs: Handoffs, row: dict[str, Any],
               out: list[Outcome]) -> str | None:
    """A Lead's status, owner, reason and conversion; a change against the stored state is
    an outcome: `converted`, else `status`, and `owner` when a person reassigned it."""
    hubspot_id = handoffs.owner.get(row["Id"])
    stamp = _stamp(row)
    if hubspot_id is None:
        return None
    state = handoffs.state(hubspot_id)
    if state.get("lead_changed_at") is not None and stamp <= state["lead_changed_at"]:
        ctx.counts["Lead.already_read"] += 1
        return None
    now = {
        "lead_id": row["Id"],
        "status": row.get("Status"),
        "owner_id": row.get("OwnerId"),
        "is_converted": bool(row.get("IsConverted")),
        "converted_on": parse_date(row.get("ConvertedDate")),
        "reason": row.get(ctx.lead_reason_field) if ctx.lead_reason_field else None,
    }
    converted = now["is_converted"] and not state.get("is_converted")
    if converted:
        now.update(contact_id=row.get("ConvertedContactId"),
                   account_id=row.get("ConvertedAccountId"),
                   opportunity_id=row.get("ConvertedOpportunityId"))
        handoffs.add(hubspot_id, "Contact", now["contact_id"], fresh=True)
        handoffs.add(hubspot_id, "Opportunity", now["opportunity_id"], fresh=True)
    if ctx.by_handshake(row):
        ctx.counts["Lead.handshake_writes"] += 1
    else:
        when = parse_time(row.get("LastModifiedDate")) or stamp
        lead_id = str(row["Id"])
        common = {"status": now["status"], "owner_id": now["owner_id"]}
        if converted:
            out.append(_outcome(hubspot_id, "Lead", lead_id, f"{lead_id}:converted",
                                "converted", when, **common, details={
                                    "contact_id": now["contact_id"],
                                    "account_id": now["account_id"],
                                    "opportunity_id": now["opportunity_id"],
                                    "converted_on": str(now["converted_on"] or "")}))
        elif now["status"] != state.get("status"):
            out.append(_outcome(hubspot_id, "Lead", lead_id, f"{lead_id}:status:{_key(stamp)}",
                                "status", when, **common, reason=now["reason"],
                                details={"from": state.get("status")}))
        if state.get("owner_id") and now["owner_id"] != state["owner_id"]:
            out.append(_outcome(hubspot_id, "Lead", lead_id, f"{lead_id}:owner:{_key(stamp)}",
                                "owner", when, **common,
                                details={"from": state["owner_id"]}))
    state.update(now, lead_changed_at=stamp)
    return hubspot_id


def apply_opportunity(ctx: PullbackContext, handoffs: Handoffs, row: dict[str, Any],
                      out: list[Outcome]) -> str | None:
    """An Opportunity's stage, amount and close date: closing it is a `won` or `lost`
    outcome (closed and won stages read from the org), another stage change a `stage` one."""
    hubspot_id = handoffs.owner.get(row["Id"])
    stamp = _stamp(row)
    if hubspot_id is None:
        return None
    state = handoffs.state(hubspot_id)
    changed_at = state.get("opportunity_changed_at")
    if changed_at is not None and stamp <= changed_at:
        ctx.counts["Opportunity.already_read"] += 1
        return None
    vocabulary = ctx.vocabulary
    stage = row.get("StageName")
    amount = row.get("Amount")
    now = {
        "opportunity_id": row["Id"],
        "stage": stage,
        "amount": float(amount) if amount is not None else None,
        "close_date": parse_date(row.get("CloseDate")),
        "is_closed": stage in vocabulary.closed_stages,
        "is_won": stage in vocabulary.won_stages,
        "loss_reason": row.get(ctx.loss_reason_field) if ctx.loss_reason_field else None,
    }
    if ctx.by_handshake(row):
        ctx.counts["Opportunity.handshake_writes"] += 1
    else:
        when = parse_time(row.get("LastModifiedDate")) or stamp
        opp_id = str(row["Id"])
        common = {"status": stage, "owner_id": row.get("OwnerId"), "amount": now["amount"],
                  "details": {"from": state.get("stage"),
                              "close_date": str(now["close_date"] or "")}}
        if now["is_closed"] and not state.get("is_closed"):
            out.append(_outcome(hubspot_id, "Opportunity", opp_id,
                                f"{opp_id}:closed:{_key(stamp)}",
                                "won" if now["is_won"] else "lost", when,
                                reason=None if now["is_won"] else now["loss_reason"], **common))
        elif state.get("stage") is not None and stage != state.get("stage"):
            out.append(_outcome(hubspot_id, "Opportunity", opp_id,
                                f"{opp_id}:stage:{_key(stamp)}", "stage", when, **common))
    state.update(now, opportunity_changed_at=stamp)
    return hubspot_id


def _channel(sobject: str, row: dict[str, Any]) -> str:
    if sobject == ss.EVENT:
        return "meeting"
    subtype = str(row.get("TaskSubtype") or row.get("Type") or "").lower()
    return {"call": "call", "email": "email", "listemail": "email"}.get(subtype, "task")


def apply_activity(ctx: PullbackContext, handoffs: Handoffs, row: dict[str, Any],
                   out: list[Outcome]) -> str | None:
    """A completed Task (closed statuses read from the org) or an Event on a hand-off: an
    `attempt` outcome (call, email, meeting), once, and the hand-off's last touch."""
    sobject = ss.EVENT if "StartDateTime" in row else ss.TASK
    if row.get("IsDeleted"):
        ctx.counts[f"{sobject}.deleted"] += 1
        return None
    hubspot_id = handoffs.owner.get(row.get("WhoId") or "") or handoffs.owner.get(
        row.get("WhatId") or "")
    if hubspot_id is None:
        return None
    ours = row["Id"] in ctx.handshake_tasks or row.get("CreatedById") == ctx.sf.user_id
    if ours and ctx.by_handshake(row):
        ctx.counts[f"{sobject}.handshake_writes"] += 1
        return None
    if sobject == ss.TASK and row.get("Status") not in ctx.vocabulary.closed_task_statuses:
        ctx.counts["Task.open"] += 1
        return None
    if sobject == ss.EVENT:
        when = parse_time(row.get("StartDateTime"))
    else:
        when = parse_time(row.get("CompletedDateTime")) or parse_time(row.get("LastModifiedDate"))
    when = when or _stamp(row)
    out.append(_outcome(hubspot_id, sobject, str(row["Id"]), str(row["Id"]), "attempt", when,
                        status=row.get("Status"), owner_id=row.get("OwnerId"), details={
                            "channel": _channel(sobject, row),
                            "subject": row.get("Subject"),
                            "call_result": row.get("CallDisposition"),
                            "who_id": row.get("WhoId"), "what_id": row.get("WhatId"),
                            "handshake_task": ours}))
    state = handoffs.state(hubspot_id)
    last = state.get("last_touch_at")
    if when <= ctx.clock.now() and (last is None or when > last):
        state["last_touch_at"] = when
    return hubspot_id


@dataclass(frozen=True)
class Stream:
    """One object's stream: which of the hand-offs' ids it reads, by which key, how."""

    sobject: str
    ids: Callable[[Handoffs], set[str]]
    apply: Apply
    keys: tuple[str, ...] = (ss.ID,)
    activities: bool = False  # read through queryAll; new ids from their hand-off

    def fields(self, ctx: PullbackContext) -> list[str]:
        """The fields read, a mapped reason field added when configured."""
        extra = {ss.LEAD: ctx.lead_reason_field,
                 ss.OPPORTUNITY: ctx.loss_reason_field}.get(self.sobject)
        return [*ss.PULLBACK_FIELDS[self.sobject], *([extra] if extra else [])]


STREAMS: tuple[Stream, ...] = (
    Stream(ss.LEAD, lambda h: set(h.leads), apply_lead),
    Stream(ss.OPPORTUNITY, lambda h: set(h.opportunities), apply_opportunity),
    Stream(ss.TASK, lambda h: h.leads | h.contacts | h.opportunities, apply_activity,
           keys=("WhoId", "WhatId"), activities=True),
    Stream(ss.EVENT, lambda h: h.leads | h.contacts | h.opportunities, apply_activity,
           keys=("WhoId", "WhatId"), activities=True),
)


def _reads(ctx: PullbackContext, handoffs: Handoffs, stream: Stream,
           newest: datetime | None) -> list[tuple[list[str], datetime | None]]:
    """The queries to make: the ids the bookmark covers from the bookmark less the lookback;
    ids new this run (a new hand-off, a conversion) whole, or for activities from their
    hand-off."""
    ids = stream.ids(handoffs)
    fresh = sorted(ids & handoffs.fresh)
    known = sorted(ids - handoffs.fresh)
    reads: list[tuple[list[str], datetime | None]] = []
    if known:
        if newest is not None:
            reads.append((known, newest - ctx.lookback))
        else:
            start = handoffs.handed_off_at(known) if stream.activities else None
            reads.append((known, start - ctx.lookback if start is not None else None))
    if fresh:
        start = handoffs.handed_off_at(fresh) if stream.activities else None
        reads.append((fresh, start - ctx.lookback if start is not None else None))
    return reads


def run_stream(ctx: PullbackContext, handoffs: Handoffs, stream: Stream) -> None:
    """Read one object's changes page by page. Each page's outcomes and the states they moved
    are stored together once the next page is in hand; the last page's go with the bookmark
    (the newest SystemModstamp read), so the bookmark is committed with the rows it covers
    (the ids' chunks are read one after another: only the end of all of them covers it)."""
    name = bookmark_name(stream.sobject)
    newest = parse_time(ctx.store.get_bookmark(name))
    seen = newest
    fields = stream.fields(ctx)
    held: tuple[list[Outcome], list[dict[str, Any]]] | None = None
    for ids, since in _reads(ctx, handoffs, stream, newest):
        for page in ctx.sf.modified_since(stream.sobject, fields, ids=ids, keys=stream.keys,
                                          since=since, include_deleted=stream.activities):
            if held is not None:
                _store(ctx, stream.sobject, *held)
                held = None
            checkpoint()  # a stop lands here: every page before this one is stored
            ctx.counts[f"{stream.sobject}.read"] += len(page)
            if stream.activities:
                stored = ctx.store.stored_sources([str(r["Id"]) for r in page])
                page = [r for r in page if str(r["Id"]) not in stored]
            outcomes: list[Outcome] = []
            moved: set[str] = set()
            for row in page:
                stamp = _stamp(row)
                seen = stamp if seen is None or stamp > seen else seen
                hubspot_id = stream.apply(ctx, handoffs, row, outcomes)
                if hubspot_id is not None:
                    moved.add(hubspot_id)
            # copies: a later page may move the same hand-off again before this one is stored
            held = (outcomes, [dict(handoffs.states[h]) for h in sorted(moved)])
    bookmark = seen.isoformat() if seen is not None and seen != newest else None
    if held is not None or bookmark is not None:
        _store(ctx, stream.sobject, *(held or ([], [])), stream=name, bookmark=bookmark)


def _store(ctx: PullbackContext, sobject: str, outcomes: list[Outcome],
           states: list[dict[str, Any]], *, stream: str | None = None,
           bookmark: str | None = None) -> None:
    if not (outcomes or states or bookmark):
        return
    if ctx.dry_run:
        ctx.counts[f"{sobject}.would_store"] += len(outcomes)
        ctx.unstored.extend(outcomes)
        ctx.unstored_states.update({str(s["hubspot_id"]): dict(s) for s in states})
        return
    added = ctx.store.record_pullback(outcomes=outcomes, states=states, stream=stream,
                                      bookmark=bookmark, run_id=ctx.run_id)
    ctx.counts[f"{sobject}.outcomes"] += added
