"""What every part of the push shares: its context, the contacts it hands off, the hand-off
SLAs and ledger keys. The engine (connector/push/engine.py) imports the parts (tasks, alerts,
write-back); they import this module, never the engine.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol

from connector.clock import Clock
from connector.config import AlertSettings
from connector.hubspot.write import ContactUpdate
from connector.ledger import LedgerWrites
from connector.mapping import FieldMap, Routing
from connector.mapping.sla import SlaFile
from connector.push.ports import HubSpotPort, SalesforcePort
from connector.scoring import Engine
from connector.sla import calendar_of
from connector.store import Store, WriteLedgerEntry

__all__ = ["FIRST_TOUCH_SLA", "STAGE", "WORKED_SLA", "HandedOff", "PushContact", "PushContext",
           "Returning",
           "handoff_task_key", "latest_handoff", "latest_handoffs"]

STAGE = "push"
# Without an sla.toml (a push built by hand): the default windows
FIRST_TOUCH_SLA = timedelta(hours=24)
WORKED_SLA = timedelta(hours=48)
HANDOFF_KEYS = "sf:task:handoff:"


def handoff_task_key(hubspot_id: str, generation: int = 0) -> str:
    """The ledger key of a contact's hand-off Task: written once per generation (0: the first
    hand-off; n: its return after the n-th recycle), and when it was written is when the
    contact was handed off."""
    if generation <= 0:
        return f"{HANDOFF_KEYS}{hubspot_id}"
    return f"{HANDOFF_KEYS}{hubspot_id}:{generation:04d}"


def latest_handoff(store: Store, hubspot_id: str) -> WriteLedgerEntry | None:
    """The done ledger entry of the contact's newest hand-off Task (its return, if any)."""
    first = store.ledger_entry(handoff_task_key(hubspot_id))
    returns = store.ledger_entries(f"{handoff_task_key(hubspot_id)}:", status="done")
    if returns:
        return returns[-1]  # the generation is zero-padded: the newest sorts last
    return first if first is not None and first.status == "done" else None


def latest_handoffs(store: Store, hubspot_ids: Sequence[str]) -> dict[str, WriteLedgerEntry]:
    """`latest_handoff` of many contacts in one transaction: those that have one, by id."""
    prefixes = [handoff_task_key(h) for h in hubspot_ids]
    found = store.ledger_entries_many(prefixes)  # the first key and its returns' keys
    out: dict[str, WriteLedgerEntry] = {}
    for hubspot_id, prefix in zip(hubspot_ids, prefixes, strict=True):
        entries = found[prefix]
        returns = [e for e in entries if e.key.startswith(f"{prefix}:") and e.status == "done"]
        first = next((e for e in entries if e.key == prefix), None)
        if returns:
            out[hubspot_id] = returns[-1]  # zero-padded generations: the newest sorts last
        elif first is not None and first.status == "done":
            out[hubspot_id] = first
    return out


class PushContact(Protocol):
    """What the push reads of an MQL: the store's `MqlContact` rows (`Store.mql_pages`) and
    its `Contact` objects (a backfill's selection) fit."""

    @property
    def hubspot_id(self) -> str: ...
    @property
    def email(self) -> str | None: ...
    @property
    def properties(self) -> dict[str, Any]: ...
    @property
    def lifecycle_stage(self) -> str | None: ...
    @property
    def hubspot_created_at(self) -> datetime | None: ...
    @property
    def hubspot_updated_at(self) -> datetime | None: ...


@dataclass(frozen=True, slots=True)
class Returning:
    """A recycled contact that qualified again: its latest recycle, as the pull-back stored
    it (`count`: recycles so far, which is the generation of its new hand-off)."""

    count: int
    reason: str  # the RecycleReason: closed_not_converted, opportunity_lost, ...
    detail: str  # why, as sales said it (the reason-not-converted value, the loss reason)
    at: datetime

    def describe(self) -> str:
        """The lines the returning hand-off Task opens with."""
        why = self.reason.replace("_", " ")
        times = "once" if self.count == 1 else f"{self.count} times"
        return (f"Returning lead: handed off before and sent back to marketing {times}.\n"
                f"Why it came back to marketing: {why} ({self.detail or 'no reason given'}), "
                f"recycled {self.at.astimezone(UTC):%Y-%m-%d %H:%M} UTC.\n"
                f"It qualified again since; its activity history follows.")


@dataclass
class PushContext:
    """What the push needs; adapters and mapping files come in, nothing is built here."""

    store: Store
    sf: SalesforcePort
    fields: FieldMap
    routing: Routing
    engine: Engine  # for the hand-off summary
    clock: Clock
    external_id_field: str = "Handshake_Id__c"
    run_id: str | None = None
    dry_run: bool = False
    # More Lead creates pending in one run than this go through Bulk API 2.0 (a backfill).
    bulk_threshold: int = 2000
    owner_emails: Mapping[str, str] = field(default_factory=dict)  # HubSpot owner id -> email
    activity_tasks: str = "digest"  # digest | each | none: `[push] activity_tasks`
    existing_contact: str = "notify"  # notify | ignore: `[push] existing_contact`
    fixes: Counter[str] = field(default_factory=Counter)  # what transforms fixed, by field
    counts: Counter[str] = field(default_factory=Counter)
    planned: list[dict[str, Any]] = field(default_factory=list)  # dry run: what would be written
    # Open Leads per capped rep (read once a run, grown as Leads are assigned) and Lead queues
    # by name, for routing's capacity caps and fallback queue.
    load: Counter[str] = field(default_factory=Counter)
    queues: dict[str, str] = field(default_factory=dict)
    hubspot: HubSpotPort | None = None  # hand-off write-back (None: none)
    alerts: AlertSettings | None = None  # the alert webhook (None: Tasks only)
    handoffs: list[ContactUpdate] = field(default_factory=list)  # HubSpot write-back noted
    # sla.toml: the hand-off Task is due at the first-touch window's end, and the SLA timer the
    # hand-off opens uses its windows (None: the default 24 h and 48 h, every hour counting)
    sla: SlaFile | None = None
    open_status: str | None = None  # the org's default Lead Status, read at the first return
    only: frozenset[str] | None = None  # hand off only these contacts (webhooks); None: all
    # A backfill's selection: the MQLs to hand off, `size` a batch (None: every MQL), and what
    # to do once a round is written (its hand-offs told to HubSpot too), with its last id.
    mqls: Callable[[Store, int], Iterable[Sequence[PushContact]]] | None = None
    on_round: Callable[[PushContext, str], None] | None = None
    # The contacts whose hand-off Task this run wrote (or found written), and the store's time
    # before the first of them: what was stored by then is in their hand-off, never an alert.
    handed_now: set[str] = field(default_factory=set)
    started: datetime | None = None

    def ledger(self, system: str = "salesforce") -> LedgerWrites:
        """The write ledger's claim -> send -> settle -> park sequence for this run's writes
        to `system`."""
        return LedgerWrites(self.store, stage=STAGE, system=system, run_id=self.run_id)

    def first_touch_due(self, assigned_at: datetime) -> datetime:
        """When the first follow-up of a lead assigned at `assigned_at` is due (sla.toml)."""
        if self.sla is None:
            return assigned_at + FIRST_TOUCH_SLA
        return calendar_of(self.sla).add(assigned_at, self.sla.windows.first_touch_hours)

    def worked_due(self, assigned_at: datetime) -> datetime:
        """When a lead assigned at `assigned_at` must be worked (sla.toml)."""
        if self.sla is None:
            return assigned_at + WORKED_SLA
        return calendar_of(self.sla).add(assigned_at, self.sla.windows.worked_hours)

    def due_date(self, due: datetime) -> date:
        """A due time as a Task's ActivityDate: the day in sla.toml's business time zone when
        only business hours count, else in UTC."""
        if self.sla is not None and self.sla.windows.business_hours_only:
            return due.astimezone(self.sla.business_hours.zone()).date()
        return due.astimezone(UTC).date()


class HandedOff(Protocol):
    """A contact that now stands in Salesforce (the engine's plan)."""

    @property
    def contact(self) -> PushContact: ...
    @property
    def sf_id(self) -> str | None: ...
    @property
    def owner_id(self) -> str | None: ...
    @property
    def why(self) -> str: ...
    @property
    def returning(self) -> Returning | None: ...

    @property
    def generation(self) -> int:
        """Which hand-off of the contact this is (0: the first; n: after n recycles)."""
        ...
