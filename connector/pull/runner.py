"""The pull stage: contacts first (activities attach to them), then each engagement stream."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime

from connector.pull.base import PullContext, recover_marks
from connector.pull.contacts import ContactsStream
from connector.pull.engagement import (
    EmailEventsStream,
    FormSubmissionsStream,
    PageViewsStream,
    WebinarsStream,
)

__all__ = ["ENGAGEMENT_STREAMS", "STREAMS", "backfill", "pull", "pull_contacts"]

log = logging.getLogger("connector.pull")

ENGAGEMENT_STREAMS = {
    "email_events": EmailEventsStream,
    "form_submissions": FormSubmissionsStream,
    "page_views": PageViewsStream,
    "webinars": WebinarsStream,
}
STREAMS = ("contacts", *ENGAGEMENT_STREAMS)


def pull(ctx: PullContext, *, streams: Sequence[str] = STREAMS, full: bool = False) -> Counter[str]:
    """One incremental pull (a full load on the first run, or when `full`)."""
    recover_marks(ctx)
    if "contacts" in streams:
        with _calls(ctx, "contacts"):
            ContactsStream(ctx).run(full=full)
    for name, stream in ENGAGEMENT_STREAMS.items():
        if name in streams:
            with _calls(ctx, name):
                stream(ctx).run()
    ctx.counts["hubspot.calls"] = ctx.client.calls
    return ctx.counts


def pull_contacts(ctx: PullContext, ids: Sequence[str]) -> list[str]:
    """Just these contacts (the webhooks' targeted sync): read by id, stored as the pull stores
    them, then their page views and any new form submissions, as a pull reads them when the
    contact's counters moved. Email events and webinars are portal-wide streams: the next
    regular pull brings them. Returns the ids of the live contacts read."""
    recover_marks(ctx)
    with _calls(ctx, "contacts"):
        live = ContactsStream(ctx).read_ids(ids)
    with _calls(ctx, "page_views"):
        PageViewsStream(ctx).run_for(live)
    with _calls(ctx, "form_submissions"):
        FormSubmissionsStream(ctx).run()
    ctx.counts["hubspot.calls"] = ctx.client.calls
    return live


@contextmanager
def _calls(ctx: PullContext, stream: str) -> Iterator[None]:
    """Count the HubSpot calls a stream spends (`<stream>.calls`)."""
    before = ctx.client.calls
    try:
        yield
    finally:
        ctx.counts[f"{stream}.calls"] += ctx.client.calls - before


def backfill(ctx: PullContext, since: datetime, until: datetime | None) -> Counter[str]:
    """Re-read everything changed or recorded in [since, until] without moving the regular
    bookmarks (so the scheduled pulls are unaffected). Already stored records are recognised
    and not duplicated; records whose mapped properties were never pulled get them now."""
    recover_marks(ctx)
    contacts = ContactsStream(ctx)
    contacts.incremental(since, until, bookmark=False)
    ctx.progress.done(contacts.task)
    for stream in ENGAGEMENT_STREAMS.values():
        stream(ctx).run(since, until, bookmark=False)
    ctx.counts["hubspot.calls"] = ctx.client.calls
    return ctx.counts
