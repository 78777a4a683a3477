"""Real-time alerts: a handed-off lead's new high-intent activity tells its owner at once.

Each push scans the activities stored since its last scan (a bookmark) of contacts linked to
Salesforce. An activity alerts when it was stored after the contact's hand-off Task was written,
occurred within `max_age_days`, and the scoring file's `[alerts]` section says so:
- it matches one of the interest rules `alerts.rules` names (default: every rule marked
  `high_intent`); the shipped file names "Pricing or demo page", so the page patterns live in
  one place;
- it is a form submission (`any_form`);
- it is a page view after `quiet_days` without engagement: a return visit.

One Task per contact and run (Priority High, due today, owned by the Lead's or Contact's owner)
covers its alerting activities, and the same alert is POSTed to `[alerts] webhook_url` when set.
Each activity has a write-ledger key per channel (`sf:task:alert:{contact}:{activity}`,
`webhook:alert:{contact}:{activity}`), so an alert is sent once however often the job runs:
a Task whose creation a crash interrupted is found again by the reference line its Description
ends with; what failed is parked as a dead letter and tried again by the next runs.
"""

from __future__ import annotations

import logging
import re
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from urllib.parse import urlsplit

from connector.activities import PASSIVE_TYPES, ActivityType
from connector.clock import Clock
from connector.errors import Actor, HandshakeError, RetriableError
from connector.http import DESCRIBE, WEBHOOK, HttpPolicy, make_httpx_client, webhook_settings
from connector.ledger import LedgerWrite, Outcome, Refusal, WriteClaim, Written
from connector.push.context import HANDOFF_KEYS, PushContext, latest_handoffs
from connector.push.ports import WriteResult
from connector.scoring.engine import ActivityLike, rule_matcher, url_path
from connector.scoring.model import ScoringModel
from connector.store import SalesOutcome, WriteLedgerEntry

__all__ = ["AlertRules", "WebhookSender", "send_alerts"]

log = logging.getLogger("connector.push.alerts")

BOOKMARK = "push.alerts.activity_id"
SCAN_PAGE = 2000
TASK_PREFIX = "sf:task:alert:"
WEBHOOK_PREFIX = "webhook:alert:"
SUBJECT_PREFIX = "Handshake alert: "
REF_PREFIX = "Handshake alert ref: "
REF_LINE = re.compile(re.escape(REF_PREFIX) + r"([0-9,]+)")
SUBJECT_MAX = 255
DESCRIPTION_MAX = 32_000
USER_ID_PREFIX = "005"  # only a user may own a Task (a queue owns Leads, never Tasks)
# Which reason names the alert when one contact has several (lower first).
RULE, FORM, RETURN = 0, 1, 2


# --- what alerts ----------------------------------------------------------------------------


class StoredActivity(ActivityLike, Protocol):
    """An activity row as the store gives it to the alert scan."""

    @property
    def contact_id(self) -> str: ...
    @property
    def ingested_at(self) -> datetime: ...


@dataclass(frozen=True, slots=True)
class Alert:
    """One alerting activity and why it alerts."""

    hubspot_id: str
    activity: StoredActivity
    headline: str  # "visited pricing page"
    reasons: tuple[str, ...]
    rank: int  # RULE, FORM or RETURN: the strongest reason it has


class AlertRules:
    """The scoring file's `[alerts]` section, compiled against its interest rules."""

    def __init__(self, model: ScoringModel) -> None:
        section = model.alerts
        self.enabled = section.enabled
        named = section.rules
        chosen = [r for r in model.interest.rules
                  if (r.name in named if named is not None else r.high_intent)]
        self.rules = [(rule.name, rule_matcher(rule)) for rule in chosen]
        self.any_form = section.any_form
        self.quiet = timedelta(days=section.quiet_days) if section.quiet_days else None
        self.max_age = timedelta(days=section.max_age_days)

    def needs_history(self, activities: Iterable[ActivityLike]) -> bool:
        """Whether judging these takes the contact's earlier activities (return visits)."""
        return self.quiet is not None and any(a.type == ActivityType.PAGE_VIEW for a in activities)

    def judge(self, hubspot_id: str, activity: StoredActivity,
              history: Sequence[ActivityLike] = (), *,
              engaged: Sequence[datetime] | None = None) -> Alert | None:
        """The alert `activity` raises, if any; `history` is the contact's stored activities,
        or `engaged` the times of those not of `PASSIVE_TYPES`, oldest first (what a return
        visit is measured against, as `ContactStore.engagement_times_for_many` reads them)."""
        reasons: list[str] = []
        rank = None
        for name, matches in self.rules:
            if matches(activity):
                reasons.append(f'interest rule "{name}"')
                rank = RULE
        if self.any_form and activity.type == ActivityType.FORM_SUBMISSION:
            reasons.append("a form submission")
            rank = FORM if rank is None else rank
        gap = self._quiet_gap(activity, history, engaged)
        if gap is not None:
            reasons.append(f"the first visit after {gap.days} days without activity")
            rank = RETURN if rank is None else rank
        if rank is None:
            return None
        headline = (f"back on the site after {gap.days} days" if rank == RETURN and gap
                    else _headline(activity))
        return Alert(hubspot_id, activity, headline, tuple(reasons), rank)

    def _quiet_gap(self, activity: ActivityLike, history: Sequence[ActivityLike],
                   engaged: Sequence[datetime] | None) -> timedelta | None:
        if self.quiet is None or activity.type != ActivityType.PAGE_VIEW:
            return None
        at = activity.occurred_at
        if engaged is None:
            # Passive kinds (an email sent to them) break no quiet period.
            engaged = sorted(h.occurred_at for h in history
                             if h.id != activity.id and h.type not in PASSIVE_TYPES)
        # the newest engagement strictly before the visit (never the visit itself)
        before = bisect_left(engaged, at)
        if before == 0:
            return None  # a first visit ever is no return
        gap = at - engaged[before - 1]
        return gap if gap >= self.quiet else None


def _headline(activity: ActivityLike) -> str:
    details = activity.details or {}
    if activity.type == ActivityType.PAGE_VIEW:
        path = url_path(activity.url) or ""
        first = path.strip("/").split("/", 1)[0]
        return f"visited {first or activity.title or 'a'} page"
    if activity.type == ActivityType.FORM_SUBMISSION:
        return f'submitted form "{details.get("form_name") or activity.title or "a form"}"'
    if activity.type.startswith("webinar_"):
        return f'{activity.type.removeprefix("webinar_")} webinar "{activity.title or ""}"'
    label = activity.title or activity.url or ""
    return f"{activity.type.replace('_', ' ')} {label}".strip()


# --- the webhook ----------------------------------------------------------------------------


class WebhookSender:
    """POSTs alerts as JSON under the HTTP policy (retries, timeouts, classified errors)."""

    def __init__(self, url: str, *, max_attempts: int = 4, timeout: float = 10.0,
                 clock: Clock | None = None) -> None:
        self.url = url
        policy = HttpPolicy(webhook_settings(max_attempts=max_attempts, timeout=timeout),
                            WEBHOOK, clock=clock)
        # Many webhook URLs carry their secret in the path (Slack, Teams): never show it.
        path = urlsplit(url).path
        if len(path) > 1:
            policy.add_secret(path)
        self.client = make_httpx_client(policy, "")

    def post(self, body: Mapping[str, Any]) -> None:
        """Send one alert; raises the policy's error when it cannot be delivered."""
        self.client.post(self.url, json=dict(body), extensions={DESCRIBE: "alert webhook"})

    def close(self) -> None:
        self.client.close()


# --- the run --------------------------------------------------------------------------------


@dataclass
class _Due:
    """One contact's alerts of this run, and where they still have to go."""

    hubspot_id: str
    sf_id: str
    sf_object: str
    handed_off_at: datetime | None
    alerts: list[Alert]
    task: list[Alert] = field(default_factory=list)
    webhook: list[Alert] = field(default_factory=list)
    who: str | None = None
    owner: dict[str, str | None] = field(default_factory=dict)
    owner_active: bool = True
    email: str | None = None  # the contact's, read with the others' when its alerts go out


def _task_key(hubspot_id: str, activity_id: int) -> str:
    return f"{TASK_PREFIX}{hubspot_id}:{activity_id:012d}"


def _webhook_key(hubspot_id: str, activity_id: int) -> str:
    return f"{WEBHOOK_PREFIX}{hubspot_id}:{activity_id:012d}"


def _parse_key(key: str, prefix: str) -> tuple[str, int]:
    hubspot_id, activity = key[len(prefix):].rsplit(":", 1)
    return hubspot_id, int(activity)


def send_alerts(ctx: PushContext) -> None:
    """Alert the owners of handed-off leads that came back; counts `alerts.tasks` and
    `alerts.webhooks`. A webhook that cannot be reached never stops the push."""
    rules = AlertRules(ctx.engine.model)
    if ctx.dry_run or not rules.enabled:
        return
    settings = ctx.alerts
    sender = (WebhookSender(settings.webhook_url, max_attempts=settings.max_attempts,
                            timeout=settings.timeout_seconds, clock=ctx.clock)
              if settings is not None and settings.webhook_url else None)
    try:
        retry = _unfinished(ctx, rules, webhook=sender is not None)
        if retry:
            _deliver(ctx, retry, sender)
        last = int(ctx.store.get_bookmark(BOOKMARK) or 0)
        # Up to the newest linked activity now; older than `max_age_days` never alerts, so
        # the database leaves those out of the pages (the bookmark passes them all the same).
        top = ctx.store.last_linked_activity_id()
        # An activity alerts only when stored after its contact's hand-off: none stored
        # before the earliest hand-off written can (on a first push, none stored before it),
        # so the database leaves those out too; with no hand-off yet, none alerts.
        handed_since = ctx.store.earliest_done(HANDOFF_KEYS) if last < top else None
        if handed_since is None and last < top:
            last = top
            ctx.store.set_bookmark(BOOKMARK, str(last), run_id=ctx.run_id)
        while last < top:
            oldest = ctx.clock.now() - rules.max_age
            rows = ctx.store.linked_activity_times_after(last, until_id=top,
                                                         occurred_since=oldest,
                                                         limit=SCAN_PAGE,
                                                         ingested_after=handed_since)
            _deliver(ctx, _fresh(ctx, rules, rows, oldest), sender)
            last = rows[-1].id if len(rows) == SCAN_PAGE else top
            ctx.store.set_bookmark(BOOKMARK, str(last), run_id=ctx.run_id)
    finally:
        if sender is not None:
            sender.close()


def _handoff_times(ctx: PushContext, hubspot_ids: Sequence[str]) -> dict[str, datetime]:
    """When each contact's newest hand-off Task (its first, or its latest return) was
    written, for those that have one, read together (two transactions, not three per
    contact). A contact is left out while it has not been, or while it is back with marketing
    (the pull-back recycled it after that hand-off): its activities go into its next
    hand-off."""
    entries = latest_handoffs(ctx.store, hubspot_ids)
    recycles = ctx.store.latest_recycles(list(entries)) if entries else {}
    out: dict[str, datetime] = {}
    for hubspot_id, entry in entries.items():
        at = _handed_at(entry, recycles.get(hubspot_id))
        if at is not None:
            out[hubspot_id] = at
    return out


def _handed_at(entry: WriteLedgerEntry, recycle: SalesOutcome | None) -> datetime | None:
    at = entry.completed_at or entry.created_at
    if recycle is not None and _utc(recycle.occurred_at) >= _utc(at):
        return None
    return at


def _utc(when: datetime) -> datetime:
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _fresh(ctx: PushContext, rules: AlertRules, rows: Sequence[Any],
           oldest: datetime) -> list[_Due]:
    """Alerts among newly stored activities (`rows`: their ids, contacts and times) that
    occurred at `oldest` or later: contacts handed off before they were stored. Only those
    activities are read in full."""
    # Contacts handed off in this run were handed off after everything stored before it
    # began: those activities are in their hand-off (on a first push, all of them).
    just_handed, started = ctx.handed_now, ctx.started
    if just_handed and started is not None:
        rows = [r for r in rows if r.contact_id not in just_handed or r.ingested_at > started]
    if not rows:
        return []
    by_contact: dict[str, list[Any]] = defaultdict(list)
    for row in rows:
        by_contact[row.contact_id].append(row)
    handed: dict[str, datetime] = {}
    keep: list[int] = []
    times = _handoff_times(ctx, list(by_contact))
    for hubspot_id, acts in by_contact.items():
        handed_at = times.get(hubspot_id)
        if handed_at is None:
            continue  # not handed off yet: these will be in its hand-off Task
        new = [a.id for a in acts if a.ingested_at > handed_at and a.occurred_at >= oldest]
        if new:
            handed[hubspot_id] = handed_at
            keep.extend(new)
    candidates: dict[str, list[StoredActivity]] = defaultdict(list)
    for activity in ctx.store.activities_by_id(keep):
        candidates[activity.contact_id].append(activity)
    return _judge(ctx, rules, {h: candidates[h] for h in handed if candidates.get(h)}, handed)


def _judge(ctx: PushContext, rules: AlertRules, activities: Mapping[str, list[StoredActivity]],
           handed: Mapping[str, datetime | None]) -> list[_Due]:
    wanted = [h for h, acts in activities.items() if rules.needs_history(acts)]
    engaged = (ctx.store.engagement_times_for_many(wanted, excluding=PASSIVE_TYPES)
               if wanted else {})
    judged = {hubspot_id: [alert for a in acts
                           if (alert := rules.judge(hubspot_id, a,
                                                    engaged=engaged.get(hubspot_id, [])))]
              for hubspot_id, acts in activities.items()}
    links = ctx.store.link_targets([h for h, alerts in judged.items() if alerts])
    out: list[_Due] = []
    for hubspot_id, alerts in judged.items():
        link = links.get(hubspot_id) if alerts else None
        if link is not None:
            out.append(_Due(hubspot_id, link.sf_id, link.sf_object, handed.get(hubspot_id),
                            alerts))
    return out


def _unfinished(ctx: PushContext, rules: AlertRules, *, webhook: bool) -> list[_Due]:
    """Alerts an earlier run claimed but did not finish (a refusal, an unreachable webhook, a
    crash): Tasks a crash left half-written are found in Salesforce first."""
    store = ctx.store
    tasks = [e for status in ("pending", "failed")
             for e in store.ledger_entries(TASK_PREFIX, status=status)]
    hooks = ([e for status in ("pending", "failed")
              for e in store.ledger_entries(WEBHOOK_PREFIX, status=status)] if webhook else [])
    if not tasks and not hooks:
        return []
    pending = [e for e in tasks if e.status == "pending"]
    found = _tasks_written(ctx, [_parse_key(e.key, TASK_PREFIX) for e in pending])
    for entry in pending:
        task_id = found.get(_parse_key(entry.key, TASK_PREFIX))
        if task_id is not None:
            ctx.ledger().done([entry.key], remote_id=task_id)
            ctx.counts["alerts.tasks_reconciled"] += 1
    wanted: dict[str, set[int]] = defaultdict(set)
    for entry in tasks:
        if _parse_key(entry.key, TASK_PREFIX) not in found:
            hubspot_id, activity_id = _parse_key(entry.key, TASK_PREFIX)
            wanted[hubspot_id].add(activity_id)
    for entry in hooks:
        hubspot_id, activity_id = _parse_key(entry.key, WEBHOOK_PREFIX)
        wanted[hubspot_id].add(activity_id)
    if not wanted:
        return []
    stored = store.activities_for_many(list(wanted))
    activities = {h: [a for a in stored.get(h, []) if a.id in ids] for h, ids in wanted.items()}
    return _judge(ctx, rules, {h: a for h, a in activities.items() if a},
                  dict.fromkeys(activities, None) | _handoff_times(ctx, list(activities)))


def _tasks_written(ctx: PushContext, claimed: Sequence[tuple[str, int]]) -> dict[tuple[str, int], str]:
    """Alert Tasks already in Salesforce for claimed (contact, activity) pairs, found by the
    reference line of their Description (Subject can be filtered on; Description cannot)."""
    if not claimed:
        return {}
    dues = [_Due(h, link.sf_id, link.sf_object, None, [])
            for h in sorted({h for h, _ in claimed}) if (link := ctx.store.linked(h))]
    _find_owners(ctx, dues)  # a converted Lead's Tasks are on its Contact
    who_of: dict[str, str] = {}
    for due in dues:
        who_of[due.sf_id] = due.hubspot_id
        if due.who:
            who_of[due.who] = due.hubspot_id
    found: dict[tuple[str, int], str] = {}
    for row in ctx.sf.find_tasks(sorted(who_of), subject_contains=SUBJECT_PREFIX,
                                 fields=("Id", "WhoId", "Description")):
        match = REF_LINE.search(row.get("Description") or "")
        hubspot_id = who_of.get(str(row.get("WhoId")))
        if match is None or hubspot_id is None:
            continue
        for activity_id in match.group(1).split(","):
            if activity_id:
                found[(hubspot_id, int(activity_id))] = str(row["Id"])
    return found


def _deliver(ctx: PushContext, dues: list[_Due], sender: WebhookSender | None) -> None:
    """Write the alert Tasks and POST the webhooks these contacts still need."""
    keys = [_task_key(d.hubspot_id, a.activity.id) for d in dues for a in d.alerts]
    if sender is not None:
        keys += [_webhook_key(d.hubspot_id, a.activity.id) for d in dues for a in d.alerts]
    entries = ctx.store.ledger_entries_by_key(keys)  # one read for every alert's entries
    for due in dues:
        for alert in due.alerts:
            task = entries.get(_task_key(due.hubspot_id, alert.activity.id))
            if task is None or task.status != "done":
                due.task.append(alert)
            if sender is not None:
                hook = entries.get(_webhook_key(due.hubspot_id, alert.activity.id))
                if hook is None or hook.status != "done":
                    due.webhook.append(alert)
    dues = [d for d in dues if d.task or d.webhook]
    if not dues:
        return
    _find_owners(ctx, dues)
    emails = ctx.store.contact_emails([d.hubspot_id for d in dues])
    for due in dues:
        due.email = emails.get(due.hubspot_id)
    _write_tasks(ctx, [d for d in dues if d.task])
    if sender is not None:
        for due in dues:
            if due.webhook:
                _post(ctx, sender, due)


def _find_owners(ctx: PushContext, dues: Sequence[_Due]) -> None:
    """The record each alert goes on and its current owner, read from Salesforce: a converted
    Lead's alerts go to its Contact (Salesforce refuses Tasks on converted Leads)."""
    leads = sorted({d.sf_id for d in dues if d.sf_object == "Lead"})
    contacts = {d.sf_id for d in dues if d.sf_object != "Lead"}
    moved: dict[str, str] = {}
    rows: dict[str, Mapping[str, Any]] = {}
    owner_fields = ("OwnerId", "Owner.Name", "Owner.Email", "Owner.IsActive")
    for row in ctx.sf.records_by_id("Lead", leads,
                                    (*owner_fields, "IsConverted", "ConvertedContactId"),
                                    what="alert owners (Leads)"):
        if row.get("IsConverted") and row.get("ConvertedContactId"):
            moved[row["Id"]] = row["ConvertedContactId"]
            contacts.add(row["ConvertedContactId"])
        else:
            rows[row["Id"]] = row
    for row in ctx.sf.records_by_id("Contact", sorted(contacts), owner_fields,
                                    what="alert owners (Contacts)"):
        rows[row["Id"]] = row
    for due in dues:
        who = moved.get(due.sf_id, due.sf_id)
        record = rows.get(who)
        if record is None:
            continue  # deleted in Salesforce: the Task write names it
        owner = record.get("Owner") or {}
        due.who = who
        due.owner = {"id": record.get("OwnerId"), "name": owner.get("Name"),
                     "email": owner.get("Email")}
        due.owner_active = owner.get("IsActive") is not False


def _subject(alerts: Sequence[Alert]) -> str:
    lead = min(alerts, key=lambda a: (a.rank, -a.activity.occurred_at.timestamp()))
    more = f" (+{len(alerts) - 1} more)" if len(alerts) > 1 else ""
    return f"{SUBJECT_PREFIX}{lead.headline}{more}"[:SUBJECT_MAX]


def _description(due: _Due, alerts: Sequence[Alert]) -> str:
    email = due.email or due.hubspot_id
    when = f" on {due.handed_off_at:%Y-%m-%d}" if due.handed_off_at else ""
    lines = [f"{email} is active again after the hand-off{when}:", ""]
    owner = due.owner.get("id") or ""
    if not owner.startswith(USER_ID_PREFIX) or not due.owner_active:
        name = due.owner.get("name") or owner or "nobody"
        warning = f"Its owner, {name}, is a queue or an inactive user: assign it to a rep."
        lines[1:1] = [warning, ""]
    for alert in sorted(alerts, key=lambda a: a.activity.occurred_at, reverse=True):
        a = alert.activity
        where = a.url or a.title or ""
        lines.append(f"- {a.occurred_at:%Y-%m-%d %H:%M} UTC: {alert.headline}"
                     + (f" ({where})" if where else ""))
        lines.append(f"  why: {'; '.join(alert.reasons)}")
    lines += ["", "Follow up while the interest is fresh."]
    ref = REF_PREFIX + ",".join(str(a.activity.id) for a in alerts)
    body = "\n".join(lines)[: DESCRIPTION_MAX - len(ref) - 2]
    return f"{body}\n\n{ref}"  # the reference line finds the Task again after a crash


def _write_tasks(ctx: PushContext, dues: Sequence[_Due]) -> None:
    ledger = ctx.ledger()
    today = ctx.clock.now().date().isoformat()
    tasks: list[LedgerWrite[tuple[_Due, dict[str, Any]]]] = []
    for due in dues:
        if due.who is None:
            ledger.park((), record_key=f"alert:task:{due.hubspot_id}",
                        refusal=_refused_task(
                            due, "the Salesforce record this contact was handed off to "
                            f"({due.sf_object} {due.sf_id}) no longer exists", Actor.DATA))
            ctx.counts["alerts.dead_letters"] += 1
    # every alert Task's activities claimed in one transaction
    claims = [WriteClaim(_task_key(d.hubspot_id, a.activity.id), "alert", "Task",
                         {"activity": a.activity.id})
              for d in dues if d.who is not None for a in d.task]
    claimed = {c.key for c, to_send in zip(claims, ledger.claim_many(claims), strict=True)
               if to_send}
    for due in dues:
        if due.who is None:
            continue
        record_key = f"alert:task:{due.hubspot_id}"
        keys = [key for alert in due.task
                if (key := _task_key(due.hubspot_id, alert.activity.id)) in claimed]
        if not keys:
            continue
        alerts = [a for a in due.task if _task_key(due.hubspot_id, a.activity.id) in keys]
        record: dict[str, Any] = {
            "WhoId": due.who, "Subject": _subject(alerts),
            "Description": _description(due, alerts), "Status": "Not Started",
            "Priority": "High", "ActivityDate": today,
        }
        owner = due.owner.get("id")
        if owner and owner.startswith(USER_ID_PREFIX) and due.owner_active:
            record["OwnerId"] = owner  # else the integration user holds it (see Description)
        tasks.append(LedgerWrite(tuple(keys), record_key, (due, record)))
    if not tasks:
        return

    def send(items: list[tuple[_Due, dict[str, Any]]]) -> Iterator[Sequence[WriteResult]]:
        return ctx.sf.create_batches("Task", [task for _, task in items])

    def judge(write: LedgerWrite[tuple[_Due, dict[str, Any]]], result: WriteResult) -> Outcome:
        if result.success:
            return Written(result.id)
        rejection = result.rejection
        due, sent = write.item
        return _refused_task(due, str(rejection.message if rejection else "refused"),
                             rejection.actor if rejection else Actor.ADMIN,
                             code=(rejection.code if rejection else "") or "", record=sent)

    try:
        for _, _, outcome in ledger.send(tasks, send, judge):
            ctx.counts["alerts.tasks" if isinstance(outcome, Written)
                       else "alerts.dead_letters"] += 1
    except RetriableError as exc:
        # The answer was lost after the create may have been applied: the entries stay pending
        # and the next push looks for these Tasks before writing any again.
        ctx.counts["alerts.unconfirmed"] += 1
        log.warning("alert Tasks unconfirmed (%s); the next push looks for them before "
                    "writing again", exc)


def _refused_task(due: _Due, reason: str, actor: Actor, *, code: str = "",
                  record: Mapping[str, Any] | None = None) -> Refusal:
    """The dead letter of a contact's alert Task."""
    return Refusal(
        reason=f"alert Task refused: {reason}", actor=actor,
        payload={"task": dict(record or {}), "activities": [a.activity.id for a in due.task],
                 "fix": "retried every push; `handshake dlq list` shows it meanwhile"},
        error_code=code,
    )


def webhook_body(due: _Due, alerts: Sequence[Alert]) -> dict[str, Any]:
    """The JSON an alert webhook receives: the lead, its owner and what it did (the strongest
    alert first, every alerting activity in `activities`)."""
    ordered = sorted(alerts, key=lambda a: (a.rank, -a.activity.occurred_at.timestamp()))
    head = ordered[0]

    def item(alert: Alert) -> dict[str, Any]:
        a = alert.activity
        return {"activity_id": a.id, "activity_type": a.type, "url": a.url, "title": a.title,
                "occurred_at": a.occurred_at.isoformat(), "reason": alert.headline,
                "why": list(alert.reasons)}

    return {
        "event": "handshake.alert",
        "alert_id": f"{due.hubspot_id}:{','.join(str(a.activity.id) for a in alerts)}",
        "email": due.email,
        "hubspot_id": due.hubspot_id,
        "salesforce_id": due.who or due.sf_id,
        "salesforce_object": due.sf_object,
        "owner": dict(due.owner),
        "handed_off_at": due.handed_off_at.isoformat() if due.handed_off_at else None,
        **item(head),
        "activities": [item(a) for a in ordered],
    }


def _post(ctx: PushContext, sender: WebhookSender, due: _Due) -> None:
    ledger = ctx.ledger("webhook")
    keys = [key for alert in due.webhook
            if ledger.claim(key := _webhook_key(due.hubspot_id, alert.activity.id),
                            operation="alert", target="webhook",
                            payload={"activity": alert.activity.id})]
    if not keys:
        return
    alerts = [a for a in due.webhook if _webhook_key(due.hubspot_id, a.activity.id) in keys]
    body = webhook_body(due, alerts)

    def refused(exc: HandshakeError, _: LedgerWrite[dict[str, Any]]) -> Refusal:
        return Refusal(reason=f"alert webhook failed: {exc.message}", actor=exc.actor,
                       payload={"body": body, "fix": "check [alerts] webhook_url and the "
                                "endpoint; the alert is sent again by the next pushes"})

    # An unreachable endpoint parks the alert and the push goes on; the next runs retry.
    write = LedgerWrite(tuple(keys), f"alert:webhook:{due.hubspot_id}", body)
    failed = ledger.send_together([write], lambda bodies: sender.post(bodies[0]), refused)
    if failed is not None:
        ctx.counts["alerts.webhook_failures"] += 1
        log.warning("alert webhook failed for contact %s: %s", due.hubspot_id, failed.message)
        return
    ctx.counts["alerts.webhooks"] += 1
