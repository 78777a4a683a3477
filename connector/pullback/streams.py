"""One stream per object (Lead, Opportunity, Task, Event): the query that reads what changed
since the bookmark (`plan`: every record of the object changed since the bookmark less the
lookback, the rows of records not handed off left out here, new hand-offs' Leads whole), each
change a person made to a hand-off turned into an outcome, each page stored with the states
it moved, and the bookmark once every row it covers is stored (`StreamRun`). The engine sends
the queries of all streams together.

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

from connector.pullback.context import (
    Handoffs,
    PullbackContext,
    parse_date,
    parse_time,
)
from connector.pullback.ports import ChangeQuery
from connector.salesforce import settings as ss

__all__ = ["STREAMS", "Stream", "StreamRun", "outcome", "plan", "store"]

log = logging.getLogger("connector.pullback")

Outcome = dict[str, Any]
# Apply one row: the outcomes it makes go to the list; returns the hand-off whose state moved.
Apply = Callable[[PullbackContext, Handoffs, dict[str, Any], list[Outcome]], str | None]


def _key(stamp: datetime) -> str:
    return stamp.strftime("%Y%m%d%H%M%S%f")


def outcome(hubspot_id: str, sobject: str, sf_id: str, source_id: str, kind: str,
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
            out.append(outcome(hubspot_id, "Lead", lead_id, f"{lead_id}:converted",
                                "converted", when, **common, details={
                                    # the status it came from: the SLA's status at hand-off
                                    "from": state.get("status"),
                                    "contact_id": now["contact_id"],
                                    "account_id": now["account_id"],
                                    "opportunity_id": now["opportunity_id"],
                                    "converted_on": str(now["converted_on"] or "")}))
        elif now["status"] != state.get("status"):
            out.append(outcome(hubspot_id, "Lead", lead_id, f"{lead_id}:status:{_key(stamp)}",
                                "status", when, **common, reason=now["reason"],
                                details={"from": state.get("status")}))
        if state.get("owner_id") and now["owner_id"] != state["owner_id"]:
            out.append(outcome(hubspot_id, "Lead", lead_id, f"{lead_id}:owner:{_key(stamp)}",
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
    stage = row.get("StageName")
    ctx.check_value("stages", stage)
    vocabulary = ctx.vocabulary
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
            out.append(outcome(hubspot_id, "Opportunity", opp_id,
                                f"{opp_id}:closed:{_key(stamp)}",
                                "won" if now["is_won"] else "lost", when,
                                reason=None if now["is_won"] else now["loss_reason"], **common))
        elif state.get("stage") is not None and stage != state.get("stage"):
            out.append(outcome(hubspot_id, "Opportunity", opp_id,
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
    if sobject == ss.TASK:
        ctx.check_value("task_statuses", row.get("Status"))
    if sobject == ss.TASK and row.get("Status") not in ctx.vocabulary.closed_task_statuses:
        ctx.counts["Task.open"] += 1
        return None
    if sobject == ss.EVENT:
        when = parse_time(row.get("StartDateTime"))
    else:
        when = parse_time(row.get("CompletedDateTime")) or parse_time(row.get("LastModifiedDate"))
    when = when or _stamp(row)
    out.append(outcome(hubspot_id, sobject, str(row["Id"]), str(row["Id"]), "attempt", when,
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
    """One object's stream: which of the hand-offs' ids it follows, by which key, how."""

    sobject: str
    ids: Callable[[Handoffs], set[str]]
    apply: Apply
    keys: tuple[str, ...] = (ss.ID,)
    activities: bool = False  # read through queryAll; new ids from their hand-off

    def fields(self, ctx: PullbackContext) -> tuple[str, ...]:
        """The fields read, a mapped reason field added when configured."""
        extra = {ss.LEAD: ctx.lead_reason_field,
                 ss.OPPORTUNITY: ctx.loss_reason_field}.get(self.sobject)
        return (*ss.PULLBACK_FIELDS[self.sobject], *([extra] if extra else []))


STREAMS: tuple[Stream, ...] = (
    Stream(ss.LEAD, lambda h: set(h.leads), apply_lead),
    Stream(ss.OPPORTUNITY, lambda h: set(h.opportunities), apply_opportunity),
    Stream(ss.TASK, lambda h: h.leads | h.contacts | h.opportunities, apply_activity,
           keys=("WhoId", "WhatId"), activities=True),
    Stream(ss.EVENT, lambda h: h.leads | h.contacts | h.opportunities, apply_activity,
           keys=("WhoId", "WhatId"), activities=True),
)


def plan(ctx: PullbackContext, handoffs: Handoffs, stream: Stream,
         ids: set[str] | None = None) -> ChangeQuery | None:
    """The stream's query. The first of a run (`ids` None): every record of the object
    changed since the bookmark less the lookback (since the first hand-off, before any
    bookmark), the rows of other records left out here: one query however many hand-offs.
    Ids new this run are read whole (a new hand-off's Lead, an Opportunity a conversion
    made), or for activities from their hand-off, where the bookmark does not cover them.
    With `ids`: those alone (ids added after the run's query passed them)."""
    newest = parse_time(ctx.store.get_bookmark(ctx.bookmark(stream.sobject)))
    start = newest if newest is not None else (ctx.window_start or handoffs.earliest())
    since = start - ctx.lookback if start is not None and ids is None else None
    fresh = sorted((ids if ids is not None else stream.ids(handoffs) & handoffs.fresh)
                   & stream.ids(handoffs))
    fresh_since: datetime | None = None
    if stream.activities and fresh:
        handed = handoffs.handed_off_at(fresh)
        fresh_since = handed - ctx.lookback if handed is not None else None
        if since is not None and fresh_since is not None and fresh_since >= since:
            fresh = []  # the bookmark covers them
    if since is None and not fresh:
        return None
    return ChangeQuery(stream.sobject, stream.sobject, stream.fields(ctx), since=since,
                       ids=tuple(fresh), ids_since=fresh_since, keys=stream.keys,
                       include_deleted=stream.activities)


@dataclass
class StreamRun:
    """One stream's progress this run: the newest SystemModstamp read, its stored bookmark."""

    stream: Stream
    newest: datetime | None
    seen: datetime | None = None

    @classmethod
    def start(cls, ctx: PullbackContext, stream: Stream) -> StreamRun:
        newest = parse_time(ctx.store.get_bookmark(ctx.bookmark(stream.sobject)))
        return cls(stream, newest, newest)

    def page(self, ctx: PullbackContext, handoffs: Handoffs, rows: list[dict[str, Any]]) -> None:
        """Apply one page of rows and store its outcomes with the states they moved."""
        stream = self.stream
        handoffs.started.add(stream.sobject)
        ctx.counts[f"{stream.sobject}.read"] += len(rows)
        ctx.counts[f"{stream.sobject}.pages"] += 1
        for row in rows:
            stamp = _stamp(row)
            self.seen = stamp if self.seen is None or stamp > self.seen else self.seen
        if stream.activities:
            stored = ctx.store.stored_sources([str(r["Id"]) for r in rows])
            rows = [r for r in rows if str(r["Id"]) not in stored]
        outcomes: list[Outcome] = []
        moved: set[str] = set()
        for row in rows:
            hubspot_id = stream.apply(ctx, handoffs, row, outcomes)
            if hubspot_id is not None:
                moved.add(hubspot_id)
        store(ctx, stream.sobject, outcomes, [dict(handoffs.states[h]) for h in sorted(moved)])

    def finish(self, ctx: PullbackContext) -> None:
        """Commit the bookmark once every row it covers is stored."""
        if self.seen is not None and self.seen != self.newest:
            store(ctx, self.stream.sobject, [], [], stream=ctx.bookmark(self.stream.sobject),
                  bookmark=self.seen.isoformat())


def store(ctx: PullbackContext, sobject: str, outcomes: list[Outcome],
          states: list[dict[str, Any]], *, stream: str | None = None,
          bookmark: str | None = None) -> None:
    """Store outcomes (once each), the states they moved and a bookmark, together."""
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
