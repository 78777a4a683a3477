"""The pull-back run: every stream in order (Lead first: the conversions it finds add the
Contacts and Opportunities the others read), then a state for each hand-off seen the first
time, so the next run reads it from the bookmark."""

from __future__ import annotations

import logging

from connector.control import checkpoint
from connector.pullback.context import Handoffs, PullbackContext
from connector.pullback.streams import STREAMS, Stream, run_stream

__all__ = ["pull_back"]

log = logging.getLogger("connector.pullback")


def pull_back(ctx: PullbackContext, streams: tuple[Stream, ...] = STREAMS) -> Handoffs:
    """Read what sales did with the hand-offs since the bookmarks into the store: outcomes
    once each, the hand-offs' states, the bookmarks. Returns the hand-offs as they now stand."""
    handoffs = Handoffs.load(ctx.store)
    ctx.counts["handoffs"] = len(handoffs.links)
    if not handoffs.links:
        log.info("nothing handed off yet: nothing to pull back")
        return handoffs
    for stream in streams:
        checkpoint()
        run_stream(ctx, handoffs, stream)
    first_seen = [handoffs.state(h) for h in sorted(handoffs.links) if h not in handoffs.stored]
    # states the streams stored are stored again unchanged: one write, and never missed
    if first_seen and not ctx.dry_run:
        ctx.store.record_pullback(outcomes=[], states=first_seen, run_id=ctx.run_id)
    elif ctx.dry_run:
        ctx.unstored_states.update({str(s["hubspot_id"]): dict(s) for s in first_seen})
    ctx.counts["handoffs.first_seen"] = len(first_seen)
    return handoffs
