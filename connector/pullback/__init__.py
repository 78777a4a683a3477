"""Pull-back: what sales did with the hand-offs (Salesforce -> store).

    engine.py    the run: every stream's query and the deleted checks in composite calls,
                 deletions and merges, then the states of first-seen hand-offs
    streams.py   one stream per object (Lead, Opportunity, Task, Event): its query, changes
                 since the bookmark become outcomes, stored page by page with the states they
                 moved
    context.py   PullbackContext, the hand-offs read for, bookmark names
    ports.py     what the pull-back needs of Salesforce, as Protocols

Outcomes land in `sales_outcomes` once each (by source id), each hand-off's current state in
`handoff_states`; Handshake's own writes move states but are never outcomes.
"""

from __future__ import annotations

from connector.pullback.context import STAGE, Handoffs, PullbackContext, bookmark_name
from connector.pullback.engine import pull_back
from connector.pullback.streams import STREAMS, Stream

__all__ = ["STAGE", "STREAMS", "Handoffs", "PullbackContext", "Stream", "bookmark_name",
           "pull_back"]
