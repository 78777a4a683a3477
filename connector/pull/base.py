"""What every pull stream shares: the context it runs in, counts, and dead-lettering."""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from connector.clock import Clock
from connector.errors import SkippableError
from connector.hubspot.client import HubSpotClient, Page
from connector.ledger import LedgerWrites, Refusal
from connector.progress import NullProgress, ProgressSink
from connector.store import Store

__all__ = ["MARKS_PENDING", "PullContext", "dump", "load", "recover_marks"]

log = logging.getLogger("connector.pull")
STAGE = "pull"
# Set, in the transaction of a stream's first page whose contacts it marks changed later (once
# each, when the stream ends), to the time before those activities were stored; deleted with
# the marks. Found by the next pull, it means a run died in between: `recover_marks`.
MARKS_PENDING = "activities.marks_pending"


def dump(value: dict[str, Any]) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def load(value: str | None) -> dict[str, Any]:
    if not value:
        return {}
    try:
        loaded = json.loads(value)
    except ValueError:
        return {}
    return loaded if isinstance(loaded, dict) else {}


@dataclass
class PullContext:
    """Everything a stream needs; streams depend on this, not on each other."""

    store: Store
    client: HubSpotClient
    clock: Clock
    properties: list[str]
    lookback: timedelta = timedelta(minutes=10)
    run_id: str | None = None
    progress: ProgressSink = field(default_factory=NullProgress)
    dry_run: bool = False
    counts: Counter[str] = field(default_factory=Counter)
    server_now: datetime | None = None  # HubSpot's clock, from the newest answer's Date header

    def saw(self, page: Page) -> Page:
        """Note the server time of an answer; returns the page for chaining."""
        if page.server_time is not None:
            self.server_now = page.server_time
        return page

    def now(self) -> datetime:
        """HubSpot's time when known (bookmarks compare with server timestamps), else ours."""
        return self.server_now or self.clock.now()

    def park(self, stream: str, err: SkippableError, payload: dict[str, Any]) -> None:
        """Dead-letter one unusable record and count it; the stream goes on."""
        self.counts[f"{stream}.dead_letters"] += 1
        if self.dry_run:
            return
        ledger = LedgerWrites(self.store, stage=STAGE, system="hubspot", run_id=self.run_id)
        ledger.park((), record_key=f"{stream}:{err.record_key}", refusal=Refusal(
            reason=err.message, actor=err.actor, payload={"stream": stream, "record": payload},
            error_code="UNUSABLE_RECORD"))
        # the key and the reason may quote the record (a form's email, a field's value); the
        # first of a stream in a run is a warning, the others INFO (`dlq list` lists them
        # all), so a large backfill does not print a line per parked record
        level = logging.WARNING if self.counts[f"{stream}.dead_letters"] == 1 else logging.INFO
        log.log(level, "parked a %s record (%s must act; `handshake dlq list` lists them and "
                "says why)", stream, err.actor)
        log.debug("parked %s record %s: %s", stream, err.record_key, err.message)


def recover_marks(ctx: PullContext) -> None:
    """Make the marks a stream deferred and never made (its run died before it ended): every
    contact with an activity stored since `MARKS_PENDING` is marked changed, so the score stage
    re-scores it. Nothing to do (one bookmark read) after a run that ended."""
    if ctx.dry_run:
        return
    pending = ctx.store.get_bookmark(MARKS_PENDING)
    if pending is None:
        return
    try:
        since = datetime.fromisoformat(pending)
    except ValueError:
        since = datetime(1970, 1, 1, tzinfo=UTC)
    with ctx.store.transaction() as s:
        marked = ctx.store.mark_contacts_with_activities_since(since, session=s)
        ctx.store.delete_bookmarks([MARKS_PENDING], session=s)
    ctx.counts["contacts.marks_recovered"] += marked
    log.info("a pull ended before marking the contacts of the activities it stored: %d "
             "contact(s) marked changed now, for the score stage", marked)
