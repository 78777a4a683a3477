"""The state store: the hub every flow reads from and writes to."""

from __future__ import annotations

from connector.store.contacts import ActivityRecord, ContactRecord, MqlContact
from connector.store.ledger import WriteClaim, payload_hash
from connector.store.models import (
    Activity,
    Bookmark,
    Contact,
    DeadLetter,
    HandoffState,
    IdLink,
    Lease,
    LifecycleTransition,
    RoutingPointer,
    SalesOutcome,
    Score,
    SlaBreachRecord,
    SlaTimer,
    SyncRun,
    WebhookQueueEntry,
    WriteLedgerEntry,
)
from connector.store.store import Store

__all__ = [
    "Activity",
    "ActivityRecord",
    "Bookmark",
    "Contact",
    "ContactRecord",
    "DeadLetter",
    "HandoffState",
    "IdLink",
    "Lease",
    "LifecycleTransition",
    "MqlContact",
    "RoutingPointer",
    "SalesOutcome",
    "Score",
    "SlaBreachRecord",
    "SlaTimer",
    "Store",
    "SyncRun",
    "WebhookQueueEntry",
    "WriteClaim",
    "WriteLedgerEntry",
    "payload_hash",
]
