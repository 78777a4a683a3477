"""What every part of the push shares: its context, the contacts it hands off, the hand-off
SLAs and ledger keys. The engine (connector/push/engine.py) imports the parts (tasks, alerts,
write-back); they import this module, never the engine.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol

from connector.clock import Clock
from connector.config import AlertSettings
from connector.hubspot.write import ContactUpdate
from connector.ledger import LedgerWrites
from connector.mapping import FieldMap, Routing
from connector.push.ports import HubSpotPort, SalesforcePort
from connector.scoring import Engine
from connector.store import Contact, Store

__all__ = ["FIRST_TOUCH_SLA", "STAGE", "WORKED_SLA", "HandedOff", "PushContext",
           "handoff_task_key"]

STAGE = "push"
FIRST_TOUCH_SLA = timedelta(hours=24)
WORKED_SLA = timedelta(hours=48)


def handoff_task_key(hubspot_id: str) -> str:
    """The ledger key of a contact's hand-off Task: written once, and when it was written
    is when the contact was handed off."""
    return f"sf:task:handoff:{hubspot_id}"


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

    def ledger(self, system: str = "salesforce") -> LedgerWrites:
        """The write ledger's claim -> send -> settle -> park sequence for this run's writes
        to `system`."""
        return LedgerWrites(self.store, stage=STAGE, system=system, run_id=self.run_id)


class HandedOff(Protocol):
    """A contact that now stands in Salesforce (the engine's plan)."""

    @property
    def contact(self) -> Contact: ...
    @property
    def sf_id(self) -> str | None: ...
    @property
    def owner_id(self) -> str | None: ...
    @property
    def why(self) -> str: ...
