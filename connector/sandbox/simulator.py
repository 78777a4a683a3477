"""A sales team working the open Leads in the emulated Salesforce org, as real teams do.

`SalesTeamSimulator.run(hours)` advances the sandbox clock step by step and, for each open,
unconverted Lead owned by an active sales user, follows a plan drawn from
`random.Random(f"{seed}|{lead email}|{owner id}")`: most leads get a first attempt within 24 hours
of reaching the rep, some later (24-72 h), some never; calls and emails are logged as completed
Tasks with their outcome; the first attempt moves the Lead to "Working - Contacted" (a Lead
already there stays, and the attempt entry then has no "status": either way the rep's first
attempt of a turn is when the lead is worked, a status and a touch); connected
leads are converted (Account, Contact, Opportunity) or closed as "Closed - Not Converted" with a
reason, unreachable ones closed as Unresponsive or left working; converted opportunities close
Won or Lost weeks later. A Lead reassigned to another rep gets a new plan for that rep (the SLA's
recycle), drawn the same way.

A Lead whose email the dataset's conversion truth (`ground_truth.conversion`, see
`generator.conversion_truth`) gives a propensity has its verdict drawn once, from
`random.Random(f"{seed}|{email}|verdict")`: accepted with that propensity (the person answers
the rep's first attempt and the rep converts the Lead, its opportunity won or lost in the
profile's shares: won with the propensity times `won_share`), else rejected (closed with a reason once worked: a
disqualification when reached, Bad Contact Data after a wrong number, Unresponsive otherwise).
Among the worked leads' verdicts, the share of conversions is then the propensity; other Leads
convert at random, by the profile's shares.

Plans are per lead and the due actions of a step run sorted by (due time, email), so the log does
not depend on the order the org returns records in. Every action is one dict in the log
(`run` returns the entries of that call; `log` holds all), and is also appended to
`dataset.ground_truth.simulator` when a dataset is given.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from connector.sandbox.base import SandboxClock
from connector.sandbox.dataset import SandboxDataset
from connector.sandbox.salesforce.state import RecordError

__all__ = ["DEFAULT_PROFILE", "SalesTeamSimulator"]

DEFAULT_PROFILE: dict[str, Any] = {
    # First follow-up: share of leads worked within 24 h, late (24-72 h), the rest never.
    "fast_share": 0.80,
    "late_share": 0.13,
    "fast_hours": (0.25, 23.5),
    "late_hours": (24.5, 72.0),
    # Attempts per lead and the gap between them.
    "attempts": (1, 4),
    "attempt_gap_hours": (18.0, 72.0),
    "call_share": 0.7,  # the rest are emails
    "connect_p": 0.4,  # a call reaches the person
    "reply_p": 0.2,  # an email gets an answer
    # Outcome once connected: convert, disqualify, or keep working.
    "convert_share": 0.5,
    "disqualify_share": 0.35,
    "convert_after_hours": (4.0, 72.0),
    # Never reached after every attempt: close as Unresponsive with this probability.
    "unresponsive_close_share": 0.6,
    # Opportunities from conversions close later.
    "won_share": 0.4,
    "lost_share": 0.4,
    "close_after_days": (10.0, 60.0),
}
OPEN_STATUSES = ("Open - Not Contacted", "Working - Contacted")
WORKING_STATUS = "Working - Contacted"
CONVERTED_STATUS = "Closed - Converted"
NOT_CONVERTED_STATUS = "Closed - Not Converted"
REASON_FIELD = "Reason_Not_Converted__c"
DISQUALIFY_REASONS = ("No Budget", "No Authority", "No Need", "Bad Timing", "Competitor",
                      "Not a Fit")
UNRESPONSIVE_REASON = "Unresponsive"
BAD_DATA_REASON = "Bad Contact Data"
NO_CONNECT_DISPOSITIONS = (("Left Voicemail", 50), ("No Answer", 35), ("Busy", 8),
                           ("Wrong Number", 7))
CONNECTED_DISPOSITION = "Connected"
CALL_SUBJECT = "Call"
EMAIL_SUBJECTS = (
    "Following up on your request",
    "Quick question about your evaluation",
    "Resources you asked for",
)
CLOSED_WON = "Closed Won"
CLOSED_LOST = "Closed Lost"


@dataclass
class _Step:
    due: datetime
    kind: str  # "call", "email", "convert", "disqualify", "close_opportunity"
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Plan:
    lead_id: str
    email: str
    owner_id: str
    steps: list[_Step]
    cursor: int = 0


class SalesTeamSimulator:
    """Works the org's open Leads on the sandbox clock (see the module docstring)."""

    def __init__(
        self,
        sf_state: Any,
        clock: SandboxClock,
        *,
        seed: int,
        profile: dict[str, Any] | None = None,
        dataset: SandboxDataset | None = None,
    ) -> None:
        unknown = set(profile or {}) - set(DEFAULT_PROFILE)
        if unknown:
            raise ValueError(f"unknown simulator profile keys: {sorted(unknown)}")
        self.state = sf_state
        self.clock = clock
        self.seed = seed
        self.profile = {**DEFAULT_PROFILE, **(profile or {})}
        self.dataset = dataset
        self.log: list[dict[str, Any]] = []
        self._origin = clock.now()
        self._plans: dict[str, _Plan] = {}
        self._opportunity_steps: list[tuple[str, _Step]] = []  # (lead email, step)
        # the dataset's hidden conversion truth: propensity by (lower-case) email
        conversion = dataset.ground_truth.conversion if dataset is not None else {}
        self._propensity: dict[str, float] = {
            str(e).lower(): float(v) for e, v in (conversion.get("propensity") or {}).items()}

    # ------------------------------------------------------------------------------- running

    def run(self, hours: float, step_hours: float = 1) -> list[dict[str, Any]]:
        """Advance the clock by `hours` in steps of `step_hours`, acting at each step; returns
        the actions taken during this call."""
        if hours < 0 or step_hours <= 0:
            raise ValueError("hours must be >= 0 and step_hours > 0")
        steps = math.ceil(hours / step_hours - 1e-9)
        entries: list[dict[str, Any]] = []
        remaining = hours
        for _ in range(steps):
            delta = min(step_hours, remaining)
            remaining -= delta
            self.clock.advance(timedelta(hours=delta))
            entries.extend(self.tick())
        return entries

    def tick(self) -> list[dict[str, Any]]:
        """Act once at the clock's current time: plan new leads, run every due action."""
        now = self.clock.now()
        active = self._active_user_ids()
        for lead in self.state.records("Lead"):
            if lead.get("IsConverted") or lead.get("Status") not in OPEN_STATUSES:
                continue
            email = str(lead.get("Email") or "").lower()
            owner = str(lead.get("OwnerId") or "")
            if not email or owner not in active:
                continue
            plan = self._plans.get(lead["Id"])
            if plan is None or plan.owner_id != owner:
                if plan is None:
                    base = max(_parse(lead.get("CreatedDate")) or now, self._origin)
                else:
                    base = now  # reassigned: the new rep's clock starts when it reaches them
                self._plans[lead["Id"]] = self._plan(lead["Id"], email, owner, base)
        due: list[tuple[datetime, str, int, _Plan | None, _Step]] = []
        for plan in self._plans.values():
            if plan.cursor < len(plan.steps) and plan.steps[plan.cursor].due <= now:
                while plan.cursor < len(plan.steps) and plan.steps[plan.cursor].due <= now:
                    step = plan.steps[plan.cursor]
                    due.append((step.due, plan.email, plan.cursor, plan, step))
                    plan.cursor += 1
        pending = []
        for email, step in self._opportunity_steps:
            if step.due <= now:
                due.append((step.due, email, 0, None, step))
            else:
                pending.append((email, step))
        self._opportunity_steps = pending
        due.sort(key=lambda d: (d[0], d[1], d[2]))
        entries: list[dict[str, Any]] = []
        for _, email, _, plan, step in due:
            try:
                entry = self._execute(plan, email, step, active)
            except RecordError as exc:
                # The org refused the write (a validation rule, a deleted record): log, go on.
                entry = {"at": _iso(step.due), "email": email, "action": step.kind,
                         "error": exc.errors}
            if entry is not None:
                entries.append(entry)
        self.log.extend(entries)
        if self.dataset is not None:
            self.dataset.ground_truth.simulator.extend(entries)
        return entries

    # ------------------------------------------------------------------------------ planning

    def _verdict(self, email: str) -> tuple[bool, float] | None:
        """Whether sales accepts this lead, for a lead the dataset's conversion truth gives a
        propensity (None otherwise): drawn once per lead (not per owner, so a reassigned lead
        keeps it) from `random.Random(f"{seed}|{email}|verdict")`; with the propensity."""
        p = self._propensity.get(email)
        if p is None:
            return None
        return random.Random(f"{self.seed}|{email}|verdict").random() < p, p

    def _plan(self, lead_id: str, email: str, owner: str, base: datetime) -> _Plan:
        p = self.profile
        rng = random.Random(f"{self.seed}|{email}|{owner}")
        roll = rng.random()
        if roll < p["fast_share"]:
            first = base + _hours(rng, p["fast_hours"])
        elif roll < p["fast_share"] + p["late_share"]:
            first = base + _hours(rng, p["late_hours"])
        else:
            return _Plan(lead_id, email, owner, [])
        verdict = self._verdict(email)
        accepted = verdict is not None and verdict[0]
        steps: list[_Step] = []
        when = first
        connected = False
        bad_data = False
        attempts = rng.randint(*p["attempts"])
        for n in range(attempts):
            if n:
                when = when + _hours(rng, p["attempt_gap_hours"])
            # a lead sales accepts answers the rep's first attempt
            reach = accepted
            if rng.random() < p["call_share"]:
                if rng.random() < p["connect_p"] or reach:
                    disposition = CONNECTED_DISPOSITION
                    connected = True
                else:
                    disposition = _pick(rng, NO_CONNECT_DISPOSITIONS)
                    bad_data = disposition == "Wrong Number" and not accepted
                steps.append(_Step(when, "call", {"disposition": disposition,
                                                  "duration": rng.randint(240, 1500)
                                                  if connected else rng.randint(10, 60)}))
            else:
                replied = rng.random() < p["reply_p"] or reach
                connected = connected or replied
                steps.append(_Step(when, "email", {
                    "subject": rng.choice(EMAIL_SUBJECTS),
                    "outcome": "Replied" if replied else "No reply",
                }))
            if connected or bad_data:
                break
        outcome_at = when + _hours(rng, p["convert_after_hours"])
        roll = rng.random()
        if verdict is not None:
            steps.append(self._verdict_step(rng, outcome_at, accepted=accepted,
                                            connected=connected, bad_data=bad_data))
        elif bad_data:
            steps.append(_Step(outcome_at, "disqualify", {"reason": BAD_DATA_REASON}))
        elif connected:
            if roll < p["convert_share"]:
                close_roll = rng.random()
                stage = (CLOSED_WON if close_roll < p["won_share"] else
                         CLOSED_LOST if close_roll < p["won_share"] + p["lost_share"] else None)
                steps.append(_Step(outcome_at, "convert", {
                    "stage": stage,
                    "close_after": timedelta(days=rng.uniform(*p["close_after_days"])),
                }))
            elif roll < p["convert_share"] + p["disqualify_share"]:
                steps.append(_Step(outcome_at, "disqualify",
                                   {"reason": rng.choice(DISQUALIFY_REASONS)}))
        elif roll < p["unresponsive_close_share"]:
            steps.append(_Step(outcome_at, "disqualify", {"reason": UNRESPONSIVE_REASON}))
        return _Plan(lead_id, email, owner, steps)

    def _verdict_step(self, rng: random.Random, at: datetime, *,
                      accepted: bool, connected: bool, bad_data: bool) -> _Step:
        """The outcome of a worked lead whose verdict the conversion truth decided: accepted,
        converted (its opportunity closes won or lost in the profile's shares, so a lead is won
        with its propensity times `won_share`); rejected, closed with a reason, always (so the
        share of verdicts that are conversions is the propensity)."""
        p = self.profile
        if accepted:
            close_roll = rng.random()
            stage = (CLOSED_WON if close_roll < p["won_share"] else
                     CLOSED_LOST if close_roll < p["won_share"] + p["lost_share"] else None)
            return _Step(at, "convert", {
                "stage": stage,
                "close_after": timedelta(days=rng.uniform(*p["close_after_days"])),
            })
        if bad_data:
            return _Step(at, "disqualify", {"reason": BAD_DATA_REASON})
        if connected:
            return _Step(at, "disqualify", {"reason": rng.choice(DISQUALIFY_REASONS)})
        return _Step(at, "disqualify", {"reason": UNRESPONSIVE_REASON})

    # ----------------------------------------------------------------------------- executing

    def _execute(
        self, plan: _Plan | None, email: str, step: _Step, active: set[str]
    ) -> dict[str, Any] | None:
        if step.kind == "close_opportunity":
            return self._close_opportunity(email, step)
        assert plan is not None
        lead = self.state.get("Lead", plan.lead_id)
        if (
            lead is None
            or lead.get("IsConverted")
            or lead.get("Status") not in OPEN_STATUSES
            or lead.get("OwnerId") != plan.owner_id
            or plan.owner_id not in active
        ):
            plan.cursor = len(plan.steps)  # someone else moved the lead on: drop the plan
            return None
        base = {
            "at": _iso(step.due),
            "lead_id": plan.lead_id,
            "email": plan.email,
            "owner_id": plan.owner_id,
        }
        if step.kind in ("call", "email"):
            return {**base, **self._log_attempt(plan, lead, step)}
        if step.kind == "convert":
            name = f"{lead.get('Company') or lead.get('LastName')} - New Business"
            ids = self.state.convert_lead(
                plan.lead_id,
                converted_status=CONVERTED_STATUS,
                create_opportunity=True,
                opportunity_name=name[:120],
                as_user_id=plan.owner_id,
            )
            if step.data["stage"] is not None and ids.get("opportunityId"):
                self._opportunity_steps.append((plan.email, _Step(
                    step.due + step.data["close_after"], "close_opportunity",
                    {"opportunity_id": ids["opportunityId"], "stage": step.data["stage"],
                     "lead_id": plan.lead_id, "owner_id": plan.owner_id},
                )))
            return {**base, "action": "convert", "status": CONVERTED_STATUS,
                    "account_id": ids.get("accountId"), "contact_id": ids.get("contactId"),
                    "opportunity_id": ids.get("opportunityId")}
        reason = step.data["reason"]
        self.state.update("Lead", plan.lead_id,
                          {"Status": NOT_CONVERTED_STATUS, REASON_FIELD: reason},
                          as_user_id=plan.owner_id)
        return {**base, "action": "disqualify", "status": NOT_CONVERTED_STATUS, "reason": reason}

    def _log_attempt(self, plan: _Plan, lead: dict[str, Any], step: _Step) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "WhoId": plan.lead_id,
            "OwnerId": plan.owner_id,
            "Status": "Completed",
            "Priority": "Normal",
            "ActivityDate": step.due.astimezone(UTC).date().isoformat(),
        }
        if step.kind == "call":
            disposition = step.data["disposition"]
            fields.update(
                Subject=CALL_SUBJECT,
                TaskSubtype="Call",
                Type="Call",
                CallType="Outbound",
                CallDisposition=disposition,
                CallDurationInSeconds=step.data["duration"],
                Description=f"Outbound call: {disposition}.",
            )
            outcome = disposition
        else:
            outcome = step.data["outcome"]
            fields.update(
                Subject=f"Email: {step.data['subject']}",
                TaskSubtype="Email",
                Type="Email",
                Description=f"Follow-up email sent. {outcome}.",
            )
        task_id = self.state.insert("Task", fields, as_user_id=plan.owner_id)
        entry: dict[str, Any] = {
            "action": step.kind,
            "task_id": task_id,
            "subtype": fields["TaskSubtype"],
            "outcome": outcome,
        }
        if lead.get("Status") != WORKING_STATUS:
            self.state.update("Lead", plan.lead_id, {"Status": WORKING_STATUS},
                              as_user_id=plan.owner_id)
            entry["status"] = WORKING_STATUS
        return entry

    def _close_opportunity(self, email: str, step: _Step) -> dict[str, Any] | None:
        opp_id = step.data["opportunity_id"]
        opp = self.state.get("Opportunity", opp_id)
        if opp is None or opp.get("StageName") in (CLOSED_WON, CLOSED_LOST):
            return None
        stage = step.data["stage"]
        self.state.update("Opportunity", opp_id,
                          {"StageName": stage,
                           "CloseDate": step.due.astimezone(UTC).date().isoformat()},
                          as_user_id=step.data["owner_id"])
        return {"at": _iso(step.due), "lead_id": step.data["lead_id"], "email": email,
                "owner_id": step.data["owner_id"], "action": "close_opportunity",
                "opportunity_id": opp_id, "stage": stage}

    def _active_user_ids(self) -> set[str]:
        integration = getattr(self.state, "integration_user_id", None)
        return {
            str(u["Id"])
            for u in self.state.users()
            if u.get("IsActive") and u["Id"] != integration
        }


def _hours(rng: random.Random, bounds: tuple[float, float]) -> timedelta:
    return timedelta(hours=rng.uniform(*bounds))


def _pick(rng: random.Random, weighted: tuple[tuple[str, int], ...]) -> str:
    roll = rng.random() * sum(w for _, w in weighted)
    for value, weight in weighted:
        roll -= weight
        if roll < 0:
            return value
    return weighted[-1][0]


def _iso(dt: datetime) -> str:
    dt = dt.astimezone(UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def _parse(value: Any) -> datetime | None:
    if not value:
        return None
    text = str(value).replace("Z", "+00:00")
    if len(text) > 5 and text[-5] in "+-" and text[-3] != ":":
        text = text[:-2] + ":" + text[-2:]
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
