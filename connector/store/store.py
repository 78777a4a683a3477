"""The state store: SQLite by default (WAL), PostgreSQL by URL; schema kept by Alembic.

`Store` is one facade over the store's parts, each a mixin on `StoreBase` (`_base.py`: engine,
sessions, schema, and the boundary where database failures become `StoreError`s):

    bookmarks.py      BookmarkStore     where each stream resumes
    contacts.py       ContactStore      contacts and activities
    scores.py         ScoreStore        scores and lifecycle transitions
    ledger.py         LedgerStore       the write ledger and the HubSpot-Salesforce id links
    dead_letters.py   DeadLetterStore   records parked for an admin
    sales.py          SalesStore        sales outcomes, SLA timers, round-robin pointers
    pullback.py       PullbackStore     hand-offs' state in Salesforce, outcomes with bookmarks
    calibration.py    CalibrationStore  each hand-off's score next to its outcome (calibration)
    runs.py           RunStore          sync runs and stage leases
    webhooks.py       WebhookQueueStore contacts HubSpot's webhooks said changed
    reports.py        ReportStore       what the reports read (funnel facts)
    store.py          Store             the facade

Each method is one short transaction, so a crash never leaves half a batch behind, and a
bookmark can be written in the same transaction as the records it covers (`transaction()`).
"""

from __future__ import annotations

from collections.abc import Sequence

from connector.store.bookmarks import BookmarkStore
from connector.store.calibration import CalibrationStore
from connector.store.contacts import ActivityRecord, ContactRecord, ContactStore
from connector.store.dead_letters import DeadLetterStore
from connector.store.ledger import LedgerStore, payload_hash
from connector.store.pullback import PullbackStore
from connector.store.reports import ReportStore
from connector.store.runs import RunStore
from connector.store.sales import SalesStore
from connector.store.scores import ScoreStore
from connector.store.webhooks import WebhookQueueStore

__all__ = ["ActivityRecord", "ContactRecord", "Store", "payload_hash"]


class Store(RunStore, PullbackStore, BookmarkStore, ContactStore, ScoreStore, LedgerStore,
            DeadLetterStore, SalesStore, WebhookQueueStore, ReportStore, CalibrationStore):
    """Repository over the state database; every flow goes through it."""

    def settle_writes(self, settled: Sequence[tuple[str, str | None]], *, stage: str,
                      record_keys: Sequence[str]) -> None:
        """Writes `(key, remote_id)` done, and the open dead letters of `record_keys` under
        `stage` resolved, in one transaction (`complete_writes` then `resolve_dead_letters`:
        a write-back settles each batch it sends)."""
        if not settled and not record_keys:
            return
        with self.transaction() as s:
            if settled:
                self._complete_writes(s, settled)
            if record_keys:
                self._resolve_dead_letters(s, stage, record_keys)
