"""Outcomes to HubSpot: what sales did with a handed-off lead, written on its contact.

    plan = plan_outcome(lead, contact_properties, settings, status_map=..., accepted=...)
    OutcomeWriter(client, store, settings).push([plan, ...])

`plan_outcome` is pure: from a lead's pulled-back state (`PulledBackLead`) and the contact's
current HubSpot properties it returns only what differs: `hs_lead_status` from the status map,
the lifecycle stage forward to `salesqualifiedlead`, `opportunity` or `customer` (never back),
last sales touch, outcome and reason, opportunity amount, and for a recycled lead its reason,
time and count, the stage back to `lead` and the re-engagement list. HubSpot ignores a backward
lifecycle set (200, nothing changes), so recycling clears the stage in one request and sets it
in a second; a customer is never moved back.

`OutcomeWriter` sends the plans through the write ledger, so a re-run with nothing changed
sends nothing: list memberships first, then the stage moves (clear, then set, per batch of at
most 100), then the plain updates (at most 100 a request). The list goes first because the set
request also writes the recycle count the planner reads back: once written, the lead is no
longer "newly recycled", and a crash in between must not leave it outside the list.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

from connector.errors import Actor, FatalError, HandshakeError, RecordRejected, RequestFailed
from connector.hubspot import settings as hs
from connector.hubspot.client import ListMembershipChange
from connector.ledger import LedgerStore, LedgerWrite, LedgerWrites, Refusal, WriteClaim

__all__ = [
    "OUTCOMES",
    "OUTCOME_KEYS",
    "REENGAGE_KEYS",
    "OutcomeClient",
    "OutcomePlan",
    "OutcomeProperty",
    "OutcomeSettings",
    "OutcomeWriter",
    "PulledBackLead",
    "outcome_of",
    "outcome_property_definitions",
    "plan_outcome",
]

HUBSPOT_NAME = r"^[a-z][a-z0-9_]*$"
# What became of a handed-off lead, from the least to the most final.
OUTCOMES = ("open", "working", "closed", "converted", "opportunity", "won", "lost", "recycled",
            "disqualified")
# ledger keys of a contact's outcome update and of its re-engagement list membership
OUTCOME_KEYS = "hubspot:outcome:"
REENGAGE_KEYS = "hubspot:reengage:"
REASON_MAX_CHARS = 1000  # a readable line in the HubSpot sidebar
DEFAULT_STAGES = ("subscriber", "lead", "marketingqualifiedlead", "salesqualifiedlead",
                  "opportunity", "customer", "evangelist")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OutcomeProperty(_Strict):
    """A contact property the pull-back writes: its HubSpot name and the label it is created
    with."""

    hubspot_property: str = Field(pattern=HUBSPOT_NAME)
    label: str = Field(min_length=1)


def _prop(name: str, label: str) -> OutcomeProperty:
    return OutcomeProperty(hubspot_property=name, label=label)


class OutcomeSettings(_Strict):
    """Where outcomes go in HubSpot: property names (created in `group` when missing), the
    lifecycle stages the pull-back moves contacts to, and the re-engagement list's name."""

    group: str = Field("contactinformation", pattern=HUBSPOT_NAME)
    last_sales_touch: OutcomeProperty = _prop("handshake_last_sales_touch",
                                              "Handshake last sales touch")
    outcome: OutcomeProperty = _prop("handshake_sales_outcome", "Handshake sales outcome")
    reason: OutcomeProperty = _prop("handshake_sales_outcome_reason",
                                    "Handshake sales outcome reason")
    opportunity_amount: OutcomeProperty = _prop("handshake_opportunity_amount",
                                                "Handshake opportunity amount")
    recycle_reason: OutcomeProperty = _prop("handshake_recycle_reason",
                                            "Handshake recycle reason")
    recycled_at: OutcomeProperty = _prop("handshake_recycled_at", "Handshake recycled at")
    recycle_count: OutcomeProperty = _prop("handshake_recycle_count", "Handshake recycle count")
    lead_status_property: str = Field("hs_lead_status", pattern=HUBSPOT_NAME)
    # HubSpot's stage order (stages are customisable: an admin lists theirs here)
    stages: tuple[str, ...] = Field(DEFAULT_STAGES, min_length=1)
    sales_qualified_stage: str = "salesqualifiedlead"
    opportunity_stage: str = "opportunity"
    customer_stage: str = "customer"
    recycle_stage: str = "lead"
    reengagement_list: str = Field("Handshake re-engagement", min_length=1)


@dataclass(frozen=True, slots=True)
class PulledBackLead:
    """What the pull-back knows of one handed-off lead, for its HubSpot contact."""

    contact_id: str
    status: str | None = None  # the Salesforce Lead status
    closed: bool = False  # closed without converting (the status says so)
    converted: bool = False
    opportunity_stage: str | None = None
    opportunity_amount: float | None = None
    opportunity_won: bool = False
    opportunity_lost: bool = False
    reason: str | None = None  # why it did not convert, or why the opportunity was lost
    last_sales_touch_at: datetime | None = None
    # handed back to marketing now (False again once handed off anew; the count stays)
    recycled: bool = False
    recycle_reason: str | None = None
    recycled_at: datetime | None = None
    recycle_count: int = 0
    disqualified: bool = False


@dataclass(frozen=True, slots=True)
class OutcomePlan:
    """The writes one contact needs: `properties` in one update, or, when `move_back_to` is
    set, in the request that sets that stage after a request clearing it; `join_list` adds
    it to the re-engagement list."""

    contact_id: str
    properties: dict[str, str] = field(default_factory=dict)
    move_back_to: str | None = None
    join_list: bool = False


def outcome_of(lead: PulledBackLead, accepted: Collection[str] = ()) -> str:
    """The lead's outcome, one of `OUTCOMES`."""
    if lead.disqualified:
        return "disqualified"
    if lead.opportunity_won:
        return "won"
    if lead.recycled:
        return "recycled"
    if lead.opportunity_lost:
        return "lost"
    if lead.opportunity_stage:
        return "opportunity"
    if lead.converted:
        return "converted"
    if lead.closed:
        return "closed"
    if lead.last_sales_touch_at is not None or (lead.status or "") in accepted:
        return "working"
    return "open"


def _datetime(value: datetime) -> str:
    return value.astimezone(UTC).strftime(hs.DATETIME_FORMAT)


def _number(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _parse_time(text: str) -> datetime | None:
    if text.isdigit():
        return datetime.fromtimestamp(int(text) / 1000, UTC)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _same(current: Any, wanted: str) -> bool:
    """Whether HubSpot's value already is `wanted` (numbers and times compared as such)."""
    text = "" if current is None else str(current)
    if text == wanted:
        return True
    if not text or not wanted:
        return False
    try:
        return float(text) == float(wanted)
    except ValueError:
        pass
    then, now = _parse_time(text), _parse_time(wanted)
    return then is not None and now is not None and then == now


def _newly_recycled(lead: PulledBackLead, current: Mapping[str, Any],
                    s: OutcomeSettings) -> bool:
    """A recycle HubSpot does not show yet (its count and time are written with the move)."""
    if not lead.recycled or lead.recycle_count < 1:
        return False
    count = current.get(s.recycle_count.hubspot_property)
    when = current.get(s.recycled_at.hubspot_property)
    if not _same(count, str(lead.recycle_count)):
        return True
    return lead.recycled_at is not None and not _same(when, _datetime(lead.recycled_at))


def _forward_stage(lead: PulledBackLead, s: OutcomeSettings,
                   accepted: Collection[str]) -> str | None:
    if lead.opportunity_won:
        return s.customer_stage
    if lead.opportunity_stage or lead.opportunity_lost:
        return s.opportunity_stage
    if lead.converted or (lead.status or "") in accepted:
        return s.sales_qualified_stage
    return None


def plan_outcome(
    lead: PulledBackLead,
    current: Mapping[str, Any],
    settings: OutcomeSettings,
    *,
    status_map: Mapping[str, str],
    accepted: Collection[str] = (),
) -> OutcomePlan | None:
    """The properties of `lead`'s contact whose value differs from `current` (its HubSpot
    properties), the stage move a new recycle needs, and whether it joins the re-engagement
    list; None when nothing is to be written. `status_map` maps a Salesforce Lead status to an
    `hs_lead_status` value; `accepted` names the statuses that make a lead sales-qualified."""
    s = settings
    order = {stage: i for i, stage in enumerate(s.stages)}
    stage = str(current.get(hs.LIFECYCLE_PROPERTY) or "")
    # a stage the settings do not list cannot be compared: leave it to HubSpot's users
    known = stage == "" or stage in order
    is_customer = lead.opportunity_won or (
        stage in order and order[stage] >= order.get(s.customer_stage, len(order)))
    new_recycle = _newly_recycled(lead, current, s)
    if new_recycle and is_customer:
        # customers are never recycled: what HubSpot shows of earlier recycles stays
        lead = replace(lead, recycled=False, recycle_count=0)
        new_recycle = False
    wanted: dict[str, str] = {s.outcome.hubspot_property: outcome_of(lead, accepted)}
    mapped = status_map.get(lead.status or "")
    if mapped:
        wanted[s.lead_status_property] = mapped
    wanted[s.reason.hubspot_property] = (lead.reason or "")[:REASON_MAX_CHARS]
    if lead.last_sales_touch_at is not None:
        wanted[s.last_sales_touch.hubspot_property] = _datetime(lead.last_sales_touch_at)
    if lead.opportunity_amount is not None:
        wanted[s.opportunity_amount.hubspot_property] = _number(lead.opportunity_amount)
    if lead.recycle_count > 0:
        wanted[s.recycle_count.hubspot_property] = str(lead.recycle_count)
        wanted[s.recycle_reason.hubspot_property] = (lead.recycle_reason or "")[:REASON_MAX_CHARS]
        if lead.recycled_at is not None:
            wanted[s.recycled_at.hubspot_property] = _datetime(lead.recycled_at)

    move_back_to: str | None = None
    join_list = False
    if new_recycle:
        join_list = True
        if known and order.get(stage, -1) > order.get(s.recycle_stage, -1):
            move_back_to = s.recycle_stage
        elif stage != s.recycle_stage and known:
            wanted[hs.LIFECYCLE_PROPERTY] = s.recycle_stage  # forward or from empty: one set
    elif not lead.recycled or lead.opportunity_won:
        target = _forward_stage(lead, s, accepted)
        if target and known and order.get(target, -1) > order.get(stage, -1):
            wanted[hs.LIFECYCLE_PROPERTY] = target

    changed = {k: v for k, v in wanted.items() if not _same(current.get(k), v)}
    if not changed and move_back_to is None and not join_list:
        return None
    return OutcomePlan(lead.contact_id, changed, move_back_to, join_list)


def outcome_property_definitions(settings: OutcomeSettings) -> list[dict[str, Any]]:
    """The contact properties outcomes are written to, as the properties API creates them."""
    s = settings
    base = {"groupName": s.group, "formField": False}

    def prop(p: OutcomeProperty, kind: str, field_type: str, about: str,
             **extra: Any) -> dict[str, Any]:
        return {**base, "name": p.hubspot_property, "label": p.label, "type": kind,
                "fieldType": field_type, "description": about, **extra}

    return [
        prop(s.last_sales_touch, "datetime", "date",
             "When sales last called, emailed or met the lead (Handshake, from Salesforce)"),
        prop(s.outcome, "enumeration", "select",
             "What sales did with the lead Handshake handed off",
             options=[{"label": o.capitalize(), "value": o, "displayOrder": i, "hidden": False}
                      for i, o in enumerate(OUTCOMES)]),
        prop(s.reason, "string", "textarea",
             "Why the lead did not convert or the opportunity was lost (Handshake)"),
        prop(s.opportunity_amount, "number", "number",
             "Amount of the lead's Salesforce opportunity (Handshake)"),
        prop(s.recycle_reason, "string", "text",
             "Why Handshake handed the lead back to marketing"),
        prop(s.recycled_at, "datetime", "date",
             "When Handshake last handed the lead back to marketing"),
        prop(s.recycle_count, "number", "number",
             "How many times Handshake handed the lead back to marketing"),
    ]


class OutcomeClient(Protocol):
    """The `HubSpotClient` methods the writer uses (tests may pass a fake)."""

    def property_options(self, name: str) -> list[str]: ...
    def ensure_properties(self, definitions: Sequence[Mapping[str, Any]]) -> list[str]: ...
    def update_contacts(self, updates: Sequence[tuple[str, Mapping[str, str]]], *,
                        describe: str = ...) -> int: ...
    def move_lifecycle_back(self, updates: Sequence[tuple[str, Mapping[str, str]]],
                            stage: str) -> int: ...
    def manual_list(self, name: str) -> str: ...
    def add_to_list(self, list_id: str, record_ids: Sequence[str]) -> ListMembershipChange: ...


class OutcomeWriter:
    """Sends outcome plans to HubSpot through the write ledger, batched."""

    def __init__(self, client: OutcomeClient, store: LedgerStore, settings: OutcomeSettings,
                 *, stage: str = "pullback", run_id: str | None = None) -> None:
        self.client = client
        self.settings = settings
        self.ledger = LedgerWrites(store, stage=stage, system=hs.HUBSPOT_SYSTEM, run_id=run_id)
        self.counts: Counter[str] = Counter()
        self._properties_ready = False

    def ensure_properties(self) -> list[str]:
        """Create the outcome properties HubSpot lacks; returns the names created."""
        created = self.client.ensure_properties(outcome_property_definitions(self.settings))
        self._properties_ready = True
        self.counts["properties.created"] += len(created)
        return created

    def check_status_map(self, status_map: Mapping[str, str]) -> None:
        """Refuse a status map naming `hs_lead_status` values the portal does not offer."""
        name = self.settings.lead_status_property
        offered = set(self.client.property_options(name))
        unknown = sorted({v for v in status_map.values() if v not in offered})
        if unknown:
            error = FatalError(
                f"the status map names {name} values HubSpot does not offer: "
                f"{', '.join(unknown)} (offered: {', '.join(sorted(offered))})",
                system=hs.HUBSPOT_SYSTEM)
            error.fix = (f"map each Salesforce status to one of the offered values, or add "
                         f"the value to the {name} property in HubSpot")
            raise error

    def push(self, plans: Sequence[OutcomePlan]) -> Counter[str]:
        """Send the plans: list memberships, then stage moves, then plain updates; a write
        the ledger already holds with the same values is skipped."""
        joins = self._claim([p for p in plans if p.join_list], REENGAGE_KEYS, "add",
                            "list", lambda p: {"list": self.settings.reengagement_list})
        moves = self._claim([p for p in plans if p.move_back_to], OUTCOME_KEYS, "update",
                            "contact", lambda p: {"back_to": p.move_back_to, **p.properties})
        updates = self._claim([p for p in plans if not p.move_back_to and p.properties],
                              OUTCOME_KEYS, "update", "contact", lambda p: p.properties)
        if (moves or updates) and not self._properties_ready:
            self.ensure_properties()
        if joins:
            self._join(joins)
        for back_to in sorted({w.item.move_back_to or "" for w in moves}):
            def move(items: list[OutcomePlan], stage: str = back_to) -> int:
                return self.client.move_lifecycle_back(
                    [(p.contact_id, p.properties) for p in items], stage)

            same = [w for w in moves if w.item.move_back_to == back_to]
            for chunk in _chunks(same, hs.WRITE_BATCH_LIMIT):
                self._send(chunk, "moved_back", move)

        def update(items: list[OutcomePlan]) -> int:
            return self.client.update_contacts([(p.contact_id, p.properties) for p in items],
                                               describe="write sales outcomes to contacts")

        for chunk in _chunks(updates, hs.WRITE_BATCH_LIMIT):
            self._send(chunk, "updated", update)
        return self.counts

    def _claim(self, plans: Sequence[OutcomePlan], prefix: str, operation: str, target: str,
               payload: Any) -> list[LedgerWrite[OutcomePlan]]:
        due: list[LedgerWrite[OutcomePlan]] = []
        claimed = self.ledger.claim_many([  # one transaction for them all
            WriteClaim(f"{prefix}{plan.contact_id}", operation, target, payload(plan))
            for plan in plans])
        for plan, ok in zip(plans, claimed, strict=True):
            if not ok:
                self.counts[f"{target}.unchanged"] += 1
                continue
            due.append(LedgerWrite((f"{prefix}{plan.contact_id}",),
                                   f"contacts:{plan.contact_id}", plan,
                                   remote_id=plan.contact_id))
        return due

    def _send(self, chunk: list[LedgerWrite[OutcomePlan]], counted: str,
              send: Callable[[list[OutcomePlan]], int]) -> None:
        def refused(exc: HandshakeError, write: LedgerWrite[OutcomePlan]) -> Refusal:
            return Refusal(reason=f"sales outcome write-back refused: {exc}", actor=Actor.ADMIN,
                           payload=write.item.properties)

        def call(items: list[OutcomePlan]) -> None:
            self.counts["requests"] += send(items)

        failed = self.ledger.send_together(chunk, call, refused, (RequestFailed, RecordRejected))
        self.counts[f"contacts.{'failed' if failed is not None else counted}"] += len(chunk)

    def _join(self, joins: list[LedgerWrite[OutcomePlan]]) -> None:
        list_id = self.client.manual_list(self.settings.reengagement_list)

        def call(items: list[OutcomePlan]) -> None:
            change = self.client.add_to_list(list_id, [p.contact_id for p in items])
            self.counts["requests"] += 1
            self.counts["list.added"] += len(change.added)
            self.counts["list.missing"] += len(change.missing)

        def refused(exc: HandshakeError, write: LedgerWrite[OutcomePlan]) -> Refusal:
            return Refusal(reason=f"re-engagement list membership refused: {exc}",
                           actor=Actor.ADMIN, payload={"list": self.settings.reengagement_list})

        for chunk in _chunks(joins, hs.LIST_MEMBERSHIPS_BATCH):
            self.ledger.send_together(chunk, call, refused, (RequestFailed, RecordRejected))


def _chunks(items: Sequence[LedgerWrite[OutcomePlan]],
            size: int) -> list[list[LedgerWrite[OutcomePlan]]]:
    return [list(items[i : i + size]) for i in range(0, len(items), size)]
