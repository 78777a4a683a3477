"""The pull-back run: every stream's query and the deleted-records checks go out together in
composite calls (one API call for all of them when nothing changed), their next pages and
follow-ups in the next calls. Each call's answers are applied deletions first, then the
streams in order (Lead first: the conversions it finds add the Contacts and Opportunities the
others read); a stop lands between pages, every page before it stored. The bookmarks are
committed once every row they cover is stored, then a state for each hand-off seen the first
time, so the next run reads it from the bookmark.

Deletions and merges: the deleted-records resource of each object followed (Lead, Contact,
Opportunity) since the last check; a deleted record followed is looked up through queryAll
(`MasterRecordId`): merged, the hand-off moves to the survivor; deleted, it is an outcome
and stops being followed. When Salesforce answers that the window is gone (more than 15 days,
or the delete log purged), the records followed are read again whole through queryAll.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from connector.control import checkpoint
from connector.pullback.context import DELETED_BOOKMARK, Handoffs, PullbackContext, parse_time
from connector.pullback.ports import BatchReads, ChangePage, ChangeQuery, Deleted, DeletedCheck
from connector.pullback.streams import STREAMS, Stream, StreamRun, outcome, plan, store
from connector.salesforce import settings as ss

__all__ = ["pull_back"]

log = logging.getLogger("connector.pullback")

FOLLOWED = (ss.LEAD, ss.CONTACT, ss.OPPORTUNITY)  # what the deleted resource is asked about
LOOKUP = "deleted."  # tag prefix of the queryAll reads of deleted (or re-read) records
# the deleted resource wants its start more than a minute before its end (seconds ignored)
DELETED_MIN_SPAN = timedelta(minutes=2)


def pull_back(ctx: PullbackContext, streams: tuple[Stream, ...] = STREAMS) -> Handoffs:
    """Read what sales did with the hand-offs since the bookmarks into the store: outcomes
    once each, the hand-offs' states, the bookmarks. Returns the hand-offs as they now stand."""
    handoffs = Handoffs.load(ctx.store)
    ctx.counts["handoffs"] = len(handoffs.links)
    if not handoffs.links:
        log.info("nothing handed off yet: nothing to pull back")
        return handoffs
    calls = ctx.sf.calls
    run = _Run(ctx, handoffs, streams, ctx.sf.reads())
    run.plan()
    while run.reads.pending:
        checkpoint()  # a stop lands here: every page before this one is stored
        run.call()
    run.finish()
    first_seen = [handoffs.state(h) for h in sorted(handoffs.links) if h not in handoffs.stored]
    # states the streams stored are stored again unchanged: one write, and never missed
    if first_seen and not ctx.dry_run:
        ctx.store.record_pullback(outcomes=[], states=first_seen, run_id=ctx.run_id)
    elif ctx.dry_run:
        ctx.unstored_states.update({str(s["hubspot_id"]): dict(s) for s in first_seen})
    ctx.counts["handoffs.first_seen"] = len(first_seen)
    ctx.counts["salesforce.pull.calls"] = ctx.sf.calls - calls
    return handoffs


class _Run:
    """One run's reads: what was asked, what came back, what is still to ask."""

    def __init__(self, ctx: PullbackContext, handoffs: Handoffs, streams: tuple[Stream, ...],
                 reads: BatchReads) -> None:
        self.ctx = ctx
        self.handoffs = handoffs
        self.streams = streams
        self.reads = reads
        self.runs = {s.sobject: StreamRun.start(ctx, s) for s in streams}
        self.asked: dict[str, set[str]] = {}  # lookup tag -> ids asked
        self.answered: dict[str, set[str]] = {}  # lookup tag -> ids seen
        self.deleted_end: datetime | None = None
        self.covered: list[datetime] = []
        self.window_gone_logged = False

    # --- planning -------------------------------------------------------------------------

    def plan(self) -> None:
        for stream in self.streams:
            query = plan(self.ctx, self.handoffs, stream)
            if query is not None:
                self.reads.add(query)
        if self.ctx.window_start is not None:
            return  # a backfill re-reads changes; the incremental run follows deletions
        previous = parse_time(self.ctx.store.get_bookmark(DELETED_BOOKMARK))
        earliest = self.handoffs.earliest()
        start = previous or (earliest - self.ctx.lookback if earliest is not None else None)
        end = self.ctx.clock.now()
        if start is None or _minute(end) - _minute(start) < DELETED_MIN_SPAN:
            return  # checked a moment ago: the next run's window starts where that one ended
        self.deleted_end = end
        for sobject in FOLLOWED:
            if self.handoffs.followed(sobject):
                self.reads.check_deleted(DeletedCheck(sobject, start, end))

    # --- one call -------------------------------------------------------------------------

    def call(self) -> None:
        answers = list(self.reads.call())
        for answer in answers:
            if isinstance(answer, Deleted):
                self._deleted(answer)
        pages = [a for a in answers if isinstance(a, ChangePage)]
        for page in pages:
            if page.tag.startswith(LOOKUP):
                self._looked_up(page)
        for stream in self.streams:
            for page in pages:
                if page.tag == stream.sobject:
                    checkpoint()
                    self.runs[stream.sobject].page(self.ctx, self.handoffs, page.rows)
        self._late()

    def _late(self) -> None:
        """Ids added this run after the query of their object passed them (a survivor of a
        merge, a conversion found on a later Lead page): read by id in the next call."""
        late, self.handoffs.late = self.handoffs.late, set()
        if not late:
            return
        for stream in self.streams:
            query = plan(self.ctx, self.handoffs, stream, ids=late)
            if query is not None:
                self.ctx.counts[f"{stream.sobject}.late_reads"] += 1
                self.reads.add(query)

    # --- deletions ------------------------------------------------------------------------

    def _deleted(self, answer: Deleted) -> None:
        followed = self.handoffs.followed(answer.sobject)
        if answer.window_gone:
            if not self.window_gone_logged:
                log.info("Salesforce no longer lists the records deleted since the last "
                         "check (more than 15 days ago, or its delete log was purged): "
                         "reading the records followed again")
                self.window_gone_logged = True
            self.ctx.counts["deleted.window_gone"] += 1
            ids = followed
        else:
            if answer.latest_covered is not None:
                self.covered.append(answer.latest_covered)
            ids = followed & set(answer.ids)
            self.ctx.counts[f"{answer.sobject}.deleted_listed"] += len(answer.ids)
        if not ids:
            return
        tag = LOOKUP + answer.sobject
        self.asked.setdefault(tag, set()).update(ids)
        self.reads.add(ChangeQuery(tag, answer.sobject, ss.MERGE_FIELDS[answer.sobject],
                                   ids=tuple(sorted(ids)), include_deleted=True))

    def _looked_up(self, page: ChangePage) -> None:
        sobject = page.tag.removeprefix(LOOKUP)
        seen = self.answered.setdefault(page.tag, set())
        for row in page.rows:
            sf_id = str(row["Id"])
            seen.add(sf_id)
            if not row.get("IsDeleted"):
                continue
            master = row.get("MasterRecordId")
            when = parse_time(row.get(ss.MODSTAMP)) or self.ctx.clock.now()
            self._gone(sobject, sf_id, str(master) if master else None, when)

    def _gone(self, sobject: str, sf_id: str, master: str | None, when: datetime) -> None:
        """A followed record deleted (`master` None) or merged into `master`."""
        hubspot_id = self.handoffs.owner.get(sf_id)
        if hubspot_id is None:
            return
        state = self.handoffs.state(hubspot_id)
        self.handoffs.drop(sf_id)
        kind = "merged" if master else "deleted"
        found = [outcome(hubspot_id, sobject, sf_id, f"{sf_id}:{kind}", kind, when,
                         details={"into": master} if master else {})]
        self.ctx.counts[f"{sobject}.{kind}"] += 1
        field = {ss.LEAD: "lead_id", ss.CONTACT: "contact_id",
                 ss.OPPORTUNITY: "opportunity_id"}[sobject]
        if master:
            if state.get(field) == sf_id:
                state[field] = master
            link = self.handoffs.links.get(hubspot_id)
            if (link is not None and link.sf_id == sf_id and not self.ctx.dry_run
                    and self.ctx.store.hubspot_id_for(master) is None):
                # the hand-off itself moves: the push and the next runs follow the survivor
                # (unless the survivor is another hand-off's: one record, one contact)
                self.ctx.store.link(hubspot_id, link.sf_object, master, how="merged")
            self.handoffs.started.add(sobject)  # the survivor is read by id
            self.handoffs.add(hubspot_id, sobject, master, fresh=True)
        store(self.ctx, sobject, found, [dict(state)])

    # --- the end --------------------------------------------------------------------------

    def finish(self) -> None:
        # records asked about and not answered at all are gone for good (purged)
        for tag, asked in self.asked.items():
            sobject = tag.removeprefix(LOOKUP)
            for sf_id in sorted(asked - self.answered.get(tag, set())):
                self._gone(sobject, sf_id, None, self.ctx.clock.now())
        for run in self.runs.values():
            run.finish(self.ctx)
        if self.deleted_end is not None and not self.ctx.dry_run:
            # the next check starts where Salesforce says this one is safe to resume
            resume = min([*self.covered, self.deleted_end])
            self.ctx.store.set_bookmark(DELETED_BOOKMARK, resume.isoformat(),
                                        run_id=self.ctx.run_id)


def _minute(when: datetime) -> datetime:
    return when.replace(second=0, microsecond=0)
