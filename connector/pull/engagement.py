"""Engagement streams: email events, form submissions, page views, webinar participations.

Each normalises into `ActivityRecord`s deduplicated by (source, source id), so re-reading a
page after a crash or a lookback never duplicates anything. Bookmarks:
- `email_events`        {"done": ms} everything before it is stored; while a window is being
                        read also {"start", "end", "offset"} to resume inside it.
- `forms/<guid>`        ms of the newest submission stored for that form.
- `page_views`          {"done": ms}, as `email_events`, for the portal-wide read (with
                        {"start", "end", "after"} while a window is being read).
- `page_views_limited`  {"since", "reason"} while HubSpot refuses the events API (403): the
                        contact properties stand in; `handshake status` shows it.
- `page_views/<id>`     per-contact fallback: ISO time of the newest page view stored for that
                        contact; read only while `page_views_due/<id>` says its counter moved.
- `webinars/<id>`       the event's counters (registrants, attendees...) when last read; its
                        participations are read again only when they move.
- `forms_due`           set by the contacts stream when a contact's form-submission counter
                        moved; without it (after a first complete read) forms are not polled.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from connector.control import current_guard
from connector.errors import AccessRefused, RequestFailed, SkippableError
from connector.hubspot.client import Page
from connector.pull.base import MARKS_PENDING, PullContext, dump, load
from connector.pull.contacts import FORMS_DUE, PAGE_VIEWS_DUE, ContactsStream
from connector.pull.normalize import (
    activity_from_email_event,
    activity_from_form_submission,
    activity_from_page_view,
    activity_from_participation,
    parse_time,
)
from connector.store import ActivityRecord

__all__ = ["EmailEventsStream", "FormSubmissionsStream", "PageViewsStream", "WebinarsStream"]

log = logging.getLogger("connector.pull.engagement")

EMAIL_EVENTS = "email_events"
FORMS = "forms/"
PAGE_VIEWS = "page_views/"
WEBINARS = "webinars/"
PAGE_VIEWS_PORTAL = "page_views"
PAGE_VIEWS_LIMITED = "page_views_limited"
# Page views reach the events API within seconds to minutes: leave the newest minutes.
PAGE_VIEWS_SETTLE = timedelta(minutes=1)
# HubSpot records email events asynchronously: leave the newest minute for the next pull.
EMAIL_EVENTS_SETTLE = timedelta(minutes=1)
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
# Pages are written together, a transaction per this many activities or seconds (whichever
# comes first): a commit per page (100 page views) rewrote the same index pages over and over,
# and every 20,000 rows costs a quarter less CPU than every 5,000.
WRITE_ROWS = 20_000
WRITE_SECONDS = 10.0


def _ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def _iso(ms: int) -> str:
    """Epoch milliseconds as the ISO time the events API takes."""
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds") \
        .replace("+00:00", "Z")


class _Stream:
    name = "stream"

    def _known_contacts(
        self, acts: list[ActivityRecord], payload: dict[str, Any],
        live: dict[str, str] | None = None,
    ) -> list[ActivityRecord]:
        """Activities re-pointed to live contacts (merged ones to their survivor); activities
        of unknown contacts are parked. `live`: the store's answer for these contacts, when
        the caller has it already."""
        if live is None:
            live = self.ctx.store.resolve_contact_ids(a.contact_id for a in acts)
        kept = []
        for act in acts:
            target = live.get(act.contact_id)
            if target is None:
                self.ctx.park(self.name, SkippableError(
                    f"{act.type} of contact {act.contact_id}, who is not a known HubSpot "
                    "contact (pull contacts first, or the contact was deleted)",
                    system="hubspot", record_key=act.source_id),
                    {**payload, "contact": act.contact_id})
                continue
            kept.append(act if target == act.contact_id else replace(act, contact_id=target))
        return kept

    def __init__(self, ctx: PullContext) -> None:
        self.ctx = ctx
        self.task = ctx.progress.task(self.name)
        # pages saved but not written yet: their activities, and the bookmarks to set or
        # delete once they are written (the newest value of each)
        self._acts: list[ActivityRecord] = []
        self._marks: dict[str, str] = {}
        self._deletes: dict[str, None] = {}
        self._written_at = time.monotonic()
        # contacts of the activities written, marked changed once when the stream ends
        self._unmarked: set[str] = set()

    def save(
        self, activities: Iterable[ActivityRecord], *, bookmarks: Sequence[tuple[str, str]] = (),
        delete: Sequence[str] = (),
    ) -> None:
        """Save a page: its activities and the bookmarks that cover them. Pages are written
        together (`WRITE_ROWS`, `WRITE_SECONDS`), each bookmark in the same transaction as the
        activities before it, so a crash loses only pages not written yet, which the re-run
        reads again from the bookmark written with the pages before them."""
        acts = list(activities)
        ctx = self.ctx
        ctx.counts[f"{self.name}.fetched"] += len(acts)
        ctx.progress.advance(self.task, len(acts))
        if ctx.dry_run:
            return
        self._acts.extend(acts)
        for stream, value in bookmarks:
            self._deletes.pop(stream, None)
            self._marks[stream] = value
        for stream in delete:
            self._marks.pop(stream, None)
            self._deletes[stream] = None
        if len(self._acts) >= WRITE_ROWS or time.monotonic() - self._written_at >= WRITE_SECONDS:
            self.write()

    def write(self) -> None:
        """Write the pages saved so far, with their bookmarks, in one transaction."""
        acts, marks, deletes = self._acts, self._marks, self._deletes
        # taken before writing: a failed write is not tried again on the way out
        self._acts, self._marks, self._deletes = [], {}, {}
        self._written_at = time.monotonic()
        if not (acts or marks or deletes):
            return
        # Pages are written after the calls that read them, on the way out of an error too:
        # the run must still hold its lease (a stop request still writes what was read).
        guard = current_guard()
        if guard is not None:
            guard()
        ctx = self.ctx
        pending = bool(self._unmarked)
        since = ctx.store.clock.now()  # before the activities' own time stamps
        with ctx.store.transaction() as s:
            ctx.counts[f"{self.name}.new"] += ctx.store.add_activities(
                acts, session=s, defer_marks=self._unmarked)
            if self._unmarked and not pending:
                marks[MARKS_PENDING] = since.isoformat()
            ctx.store.set_bookmarks(marks.items(), run_id=ctx.run_id, session=s)
            ctx.store.delete_bookmarks(deletes, session=s)

    def mark(self) -> None:
        """Mark the contacts of the activities written changed (for the score stage), each
        once, in one transaction that also clears `MARKS_PENDING`."""
        ids, self._unmarked = self._unmarked, set()
        if not ids:
            return
        guard = current_guard()
        if guard is not None:
            guard()
        ctx = self.ctx
        with ctx.store.transaction() as s:
            ctx.store.mark_contacts_changed(ids, session=s)
            ctx.store.delete_bookmarks([MARKS_PENDING], session=s)

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Read the stream inside this block: the pages saved are written when it ends, however
        it ends (an error between pages keeps the pages read before it)."""
        try:
            yield
        finally:
            self.write()
            self.mark()

    def run(self, since: datetime | None = None, until: datetime | None = None,
            *, bookmark: bool = True) -> None:
        """Read the stream: from its bookmarks, or the range [since, until] without them."""
        with self.writing():
            self.read(since, until, bookmark)
        self.finish()

    def read(self, since: datetime | None, until: datetime | None, bookmark: bool) -> None:
        """The stream's own part of `run`: read its pages, saving each."""
        raise NotImplementedError

    def finish(self) -> None:
        self.ctx.progress.done(self.task)

    def _every_page(self, fetch: Callable[..., Page]) -> list[dict[str, Any]]:
        """All records of a short listing (forms, marketing events), page after page."""
        records: list[dict[str, Any]] = []
        after: str | None = None
        while True:
            page = self.ctx.saw(fetch(after=after))
            records.extend(page.results)
            after = page.next_after
            if not after:
                return records


class EmailEventsStream(_Stream):
    """Legacy email events for the whole portal, by time window, matched to contacts by email."""

    name = "email_events"

    def read(self, since: datetime | None, until: datetime | None, bookmark: bool) -> None:
        ctx = self.ctx
        state = load(ctx.store.get_bookmark(EMAIL_EVENTS)) if bookmark else {}
        if "start" in state and "end" in state:
            start, end, offset = int(state["start"]), int(state["end"]), state.get("offset")
        else:
            done = int(state["done"]) if "done" in state else None
            begin = since or (
                datetime.fromtimestamp(done / 1000, UTC) - ctx.lookback if done else EPOCH
            )
            stop = until or (ctx.now() - EMAIL_EVENTS_SETTLE)
            start, end, offset = _ms(begin), _ms(stop), None
        while True:
            page = ctx.saw(ctx.client.email_events(start, end, offset=offset))
            emails = {str(e.get("recipient") or "").lower() for e in page.results}
            owners = ctx.store.contact_ids_by_email(emails)
            acts: list[ActivityRecord] = []
            for event in page.results:
                recipient = str(event.get("recipient") or "").lower()
                cid = owners.get(recipient)
                try:
                    if cid is None:
                        raise SkippableError(
                            f"email event for {recipient or '(no recipient)'}, who is not a "
                            "known HubSpot contact (pull contacts first, or the contact was "
                            "deleted)", system="hubspot", record_key=str(event.get("id")))
                    act = activity_from_email_event(event, cid)
                except SkippableError as err:
                    self.ctx.park(self.name, err, event)
                    continue
                if act is not None:
                    acts.append(act)
            offset = page.next_after
            if offset:
                marks = [(EMAIL_EVENTS, dump({"start": start, "end": end, "offset": offset,
                                              "done": state.get("done")}))] if bookmark else []
                self.save(acts, bookmarks=marks)
                continue
            self.save(acts, bookmarks=[(EMAIL_EVENTS, dump({"done": end}))] if bookmark else [])
            break


class FormSubmissionsStream(_Stream):
    """Submissions of every form, newest first, until the newest one already stored."""

    name = "form_submissions"

    def read(self, since: datetime | None, until: datetime | None, bookmark: bool) -> None:
        ctx = self.ctx
        # Forms are read one by one; when no contact's submission counter moved since the last
        # complete read there is nothing new, and no call is made.
        if bookmark and ctx.store.get_bookmark(FORMS_DUE) is None and ctx.store.bookmarks(FORMS):
            return
        for form in self._every_page(ctx.client.forms):
            self._read_form(form, since, until, bookmark)
        if bookmark:
            # written with (or after) the last forms' submissions
            self.save([], delete=[FORMS_DUE])

    def _read_form(self, form: dict[str, Any], since: datetime | None, until: datetime | None,
                   bookmark: bool) -> None:
        ctx = self.ctx
        guid = str(form.get("id") or form.get("guid"))
        stream = FORMS + guid
        stored = ctx.store.get_bookmark(stream) if bookmark else None
        floor_ms = _ms(since) if since else (int(stored) - int(ctx.lookback.total_seconds() * 1000)
                                             if stored else None)
        ceiling_ms = _ms(until) if until else None
        newest = int(stored) if stored else 0
        after: str | None = None
        while True:
            page = ctx.saw(ctx.client.form_submissions(guid, after=after))
            emails = {self._email(s) for s in page.results}
            owners = ctx.store.contact_ids_by_email(e for e in emails if e)
            acts: list[ActivityRecord] = []
            reached_floor = False
            for sub in page.results:
                submitted = int(sub.get("submittedAt") or 0)
                if floor_ms is not None and submitted < floor_ms:
                    reached_floor = True
                    continue
                if ceiling_ms is not None and submitted > ceiling_ms:
                    continue
                newest = max(newest, submitted)
                email = self._email(sub)
                cid = owners.get(email or "")
                try:
                    if cid is None:
                        raise SkippableError(
                            f"form submission by {email or '(no email field)'}, who is not a "
                            "known HubSpot contact", system="hubspot",
                            record_key=f"{guid}:{submitted}:{email}")
                    acts.append(activity_from_form_submission(sub, form, cid))
                except SkippableError as err:
                    ctx.park(self.name, err, {"form": guid, "submission": sub})
            after = page.next_after
            last = reached_floor or not after
            marks = [(stream, str(newest))] if bookmark and last and newest else []
            self.save(acts, bookmarks=marks)
            if last:
                return

    @staticmethod
    def _email(submission: dict[str, Any]) -> str | None:
        for value in submission.get("values") or []:
            if str(value.get("name")).lower() == "email" and value.get("value"):
                return str(value["value"]).strip().lower()
        return None


class PageViewsStream(_Stream):
    """Page views of every contact, read portal-wide by time window (the events API without
    `objectId`), oldest first and resumable inside a window, as the email events are.

    Fallbacks: an API that refuses the portal-wide form (400) gets the per-contact reads of
    the contacts whose visit counter moved; an account that refuses the events API (403, tier
    or scopes) leaves the stream *limited*: the contacts' own counters and first/last pages
    (`hs_analytics_num_page_views`, `hs_analytics_first_url`, `hs_analytics_last_url`, pulled
    with every contact) stand in, `handshake status` says so, and the pull goes on."""

    name = "page_views"

    def __init__(self, ctx: PullContext) -> None:
        super().__init__(ctx)
        self._tried: set[str] = set()  # unknown contacts already read by id in this run

    def read(self, since: datetime | None, until: datetime | None, bookmark: bool) -> None:
        try:
            self._portal(since, until, bookmark)
        except AccessRefused as err:
            self._limit(err, bookmark)
        except RequestFailed as err:
            if err.status != 400:
                raise
            log.info("page views: HubSpot refused the portal-wide read (%s); reading the "
                     "contacts whose visit counter moved one by one", err.status)
            self._per_contact(since, until, bookmark)

    # --- portal-wide ----------------------------------------------------------------------

    def _portal(self, since: datetime | None, until: datetime | None, bookmark: bool) -> None:
        ctx = self.ctx
        state = load(ctx.store.get_bookmark(PAGE_VIEWS_PORTAL)) if bookmark else {}
        if "start" in state and "end" in state:
            # a window was being read when the last run stopped: go on from its cursor
            start, end, after = int(state["start"]), int(state["end"]), state.get("after")
        else:
            done = int(state["done"]) if "done" in state else None
            # the lookback re-reads the window's edge: views at the same instant as the last
            # one read, and views HubSpot recorded late, are read again and deduplicated
            begin = since or (
                datetime.fromtimestamp(done / 1000, UTC) - ctx.lookback if done else EPOCH
            )
            stop = until or (ctx.now() - PAGE_VIEWS_SETTLE)
            start, end, after = _ms(begin), _ms(stop), None
        while True:
            page = ctx.saw(ctx.client.portal_page_views(_iso(start), _iso(end), after=after))
            acts: list[ActivityRecord] = []
            for event in page.results:
                try:
                    acts.append(activity_from_page_view(event))
                except SkippableError as err:
                    ctx.park(self.name, err, event)
            acts = self._owned(acts)
            after = page.next_after
            if after:
                # the page's views and the cursor after them commit together: a crash here
                # resumes at the next page, nothing read twice or skipped
                marks = [(PAGE_VIEWS_PORTAL, dump({"start": start, "end": end, "after": after,
                                                   "done": state.get("done")}))]
                self.save(acts, bookmarks=marks if bookmark else [])
                continue
            if not bookmark:
                self.save(acts)
                return
            # every view up to `end` is stored: the per-contact "counter moved" markers are
            # answered, and a stream limited before is readable again
            due = list(ctx.store.iter_bookmark_streams(PAGE_VIEWS_DUE))
            self.save(acts, bookmarks=[(PAGE_VIEWS_PORTAL, dump({"done": end}))],
                      delete=[*due, PAGE_VIEWS_LIMITED])
            return

    def _owned(self, acts: list[ActivityRecord]) -> list[ActivityRecord]:
        """Views re-pointed to live contacts. Views of contacts not pulled yet (created since
        the contacts were read) get their contacts read by id now, in the same cycle, so the
        views are stored rather than lost; contacts parked as unusable stay parked."""
        ctx = self.ctx
        live = ctx.store.resolve_contact_ids(a.contact_id for a in acts)
        unknown = {a.contact_id for a in acts if a.contact_id not in live}
        unknown -= self._tried
        unknown -= self._parked_contacts(unknown)
        if not unknown:
            # every contact was known: the answer above stands (one query a page, not two)
            return self._known_contacts(acts, {"stream": "portal"}, live)
        self._tried |= unknown
        ctx.counts[f"{self.name}.contacts_fetched"] += len(unknown)
        # the views saved before are written first: reading contacts may merge some, moving
        # the stored activities of the merged ones to their survivor
        self.write()
        ContactsStream(ctx).read_ids(sorted(unknown))
        return self._known_contacts(acts, {"stream": "portal"})

    def _parked_contacts(self, ids: set[str]) -> set[str]:
        """Which of `ids` are contacts parked as unusable (open dead letters of the pull)."""
        if not ids:
            return set()
        keys = self.ctx.store.open_letter_keys(stage="pull",
                                               record_keys=(f"contacts:{i}" for i in ids))
        return {key.split(":", 1)[1] for key in keys}

    # --- refused: the contact properties stand in -----------------------------------------

    def _limit(self, err: AccessRefused, bookmark: bool) -> None:
        ctx = self.ctx
        ctx.counts[f"{self.name}.limited"] += 1
        held = load(ctx.store.get_bookmark(PAGE_VIEWS_LIMITED))
        # a warning when the stream becomes limited; while it stays so (a daemon's every
        # cycle), INFO: `handshake status` keeps saying it
        log.log(
            logging.INFO if held else logging.WARNING,
            "page views: HubSpot refused the events API (403: the account's tier or the "
            "token's scopes do not include it); page-view counts and first/last pages come "
            "from the contact properties instead. Fix: an Enterprise account and a token with "
            "the events scope; `handshake status` shows the stream as limited until then")
        log.debug("page views refused: %s", err)
        if not bookmark or ctx.dry_run:
            return
        reason = ("HubSpot refused the events API (403: account tier or token scopes); "
                  "counts and first/last pages come from the contact properties")
        since = held.get("since") or ctx.now().isoformat()
        # the markers cannot be answered by a refused API; the counters carry the news
        due = list(ctx.store.iter_bookmark_streams(PAGE_VIEWS_DUE))
        self.save([], bookmarks=[(PAGE_VIEWS_LIMITED, dump({"since": since, "reason": reason}))],
                  delete=due)

    # --- per contact (the fallback, and the webhooks' targeted sync) ----------------------

    def _per_contact(self, since: datetime | None, until: datetime | None,
                     bookmark: bool) -> None:
        ctx = self.ctx
        if not bookmark and since is not None:
            # A backfill re-reads every contact that visited since `since`.
            for contact in ctx.store.iter_contacts():
                last = contact.properties.get("hs_analytics_last_visit_timestamp")
                try:
                    visited = parse_time(last)
                except ValueError:
                    visited = None
                if visited is not None and visited >= since:
                    self._read_contact(contact.hubspot_id, "", since, until, bookmark)
            return
        for marker in ctx.store.iter_bookmark_streams(PAGE_VIEWS_DUE):
            cid = marker[len(PAGE_VIEWS_DUE):]
            self._read_contact(cid, marker, since, until, bookmark)

    def run_for(self, ids: Iterable[str]) -> None:
        """Page views of these contacts only, those whose visit counter moved: a few
        contacts cost fewer calls one by one than a portal-wide window."""
        with self.writing():
            try:
                for cid in ids:
                    marker = PAGE_VIEWS_DUE + cid
                    if self.ctx.store.get_bookmark(marker) is not None:
                        self._read_contact(cid, marker, None, None, True)
            except AccessRefused as err:
                self._limit(err, True)
        self.finish()

    def _read_contact(self, cid: str, marker: str, since: datetime | None,
                      until: datetime | None, bookmark: bool) -> None:
        ctx = self.ctx
        cursor_key = PAGE_VIEWS + cid
        stored = parse_time(ctx.store.get_bookmark(cursor_key)) if bookmark else None
        start = since or (stored - ctx.lookback if stored else None)
        newest = stored
        after: str | None = None
        while True:
            page = ctx.saw(ctx.client.page_views(
                cid, occurred_after=start.isoformat().replace("+00:00", "Z") if start else None,
                after=after))
            acts: list[ActivityRecord] = []
            for event in page.results:
                try:
                    act = activity_from_page_view(event)
                except SkippableError as err:
                    ctx.park(self.name, err, event)
                    continue
                if until is not None and act.occurred_at > until:
                    continue
                acts.append(act)
                newest = act.occurred_at if newest is None else max(newest, act.occurred_at)
            acts = self._known_contacts(acts, {"contact": cid})
            after = page.next_after
            if after:
                self.save(acts)
                continue
            marks = [(cursor_key, newest.isoformat())] if bookmark and newest else []
            self.save(acts, bookmarks=marks, delete=[marker] if bookmark else [])
            return


class WebinarsStream(_Stream):
    """Registrations and attendance of marketing events, until each event has settled."""

    name = "webinars"

    def read(self, since: datetime | None, until: datetime | None, bookmark: bool) -> None:
        ctx = self.ctx
        events = self._every_page(ctx.client.marketing_events)
        read = ctx.store.bookmarks(WEBINARS) if bookmark else {}
        for event in events:
            event_id = str(event.get("objectId") or event.get("id"))
            # The event's own counters move whenever a participation is added or changes state.
            signature = ":".join(str(event.get(k, "")) for k in
                                 ("registrants", "attendees", "cancellations", "noShows",
                                  "updatedAt"))
            if read.get(WEBINARS + event_id) == signature:
                continue
            end = parse_time(event.get("endDateTime") or event.get("startDateTime"))
            if since and end and end < since:
                continue
            self._read_event(event, event_id, signature, bookmark)

    def _read_event(self, event: dict[str, Any], event_id: str, signature: str,
                    bookmark: bool) -> None:
        ctx = self.ctx
        after: str | None = None
        while True:
            page = ctx.saw(ctx.client.participations(event_id, after=after))
            acts: list[ActivityRecord] = []
            for part in page.results:
                try:
                    act = activity_from_participation(part, event)
                except SkippableError as err:
                    ctx.park(self.name, err, part)
                    continue
                if act is not None:
                    acts.append(act)
            acts = self._known_contacts(acts, {"event": event_id})
            after = page.next_after
            if after:
                self.save(acts)
                continue
            self.save(acts, bookmarks=[(WEBINARS + event_id, signature)] if bookmark else [])
            return
