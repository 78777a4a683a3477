"""Contacts: a full load through the list endpoint, then incremental search windows.

Bookmarks (streams in the store):
- `contacts.full`    while a full load runs: {"after": cursor, "started": server time}.
- `contacts.modified` ISO time: the next incremental pull searches from it minus the lookback.
- `contacts.archived` ISO time of the last archived sweep (daily: archived contacts cannot be
  searched, so they are listed; doing it every cycle would spend calls for nothing).
- `page_views_due/<id>` a contact whose page-view counter moved; the page-view stream clears it.

Every page is stored with its bookmark in one transaction: a crash loses nothing and the
re-run re-reads at most one page.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

from connector.errors import SkippableError
from connector.hubspot import settings as hs
from connector.pull.base import PullContext, dump, load
from connector.pull.normalize import contact_from_hubspot, parse_time
from connector.store import ContactRecord

__all__ = ["ContactsStream", "search_windows"]

log = logging.getLogger("connector.pull.contacts")

FULL = "contacts.full"
MODIFIED = "contacts.modified"
ARCHIVED = "contacts.archived"
PAGE_VIEWS_DUE = "page_views_due/"
FORMS_DUE = "forms_due"
ARCHIVED_SWEEP_EVERY = timedelta(days=1)
MODIFIED_PROP = "lastmodifieddate"


def _ms(when: datetime) -> str:
    return str(int(when.timestamp() * 1000))


def _modified_at(raw: dict[str, Any]) -> datetime | None:
    try:
        return parse_time((raw.get("properties") or {}).get(MODIFIED_PROP) or raw.get("updatedAt"))
    except (ValueError, TypeError):
        return None


def search_windows(
    ctx: PullContext, since: datetime, until: datetime | None, properties: Sequence[str]
) -> Iterator[tuple[list[dict[str, Any]], datetime | None]]:
    """Contacts modified in [since, until], oldest first, as (page, newest time in page).

    A search can page through 10,000 results at most, so the query restarts from the newest
    modification time seen before it reaches the cap; contacts already read at that instant are
    skipped. When more than a whole window shares one instant, that instant is read by id.
    """
    cursor = since
    seen_at_cursor: set[str] = set()
    while True:
        after: str | None = None
        newest: datetime | None = None
        ids_at_newest: set[str] = set()
        capped = False
        while True:
            filters = [{"propertyName": MODIFIED_PROP, "operator": "GTE", "value": _ms(cursor)}]
            if until is not None:
                filters.append({"propertyName": MODIFIED_PROP, "operator": "LTE",
                                "value": _ms(until)})
            body: dict[str, Any] = {
                "filterGroups": [{"filters": filters}],
                "sorts": [{"propertyName": MODIFIED_PROP, "direction": "ASCENDING"}],
                "properties": list(properties),
                "limit": hs.SEARCH_LIMIT,
            }
            if after:
                body["after"] = after
            page = ctx.saw(ctx.client.search_contacts(body))
            fresh = []
            for raw in page.results:
                when = _modified_at(raw)
                if when is not None:
                    if newest is None or when > newest:
                        newest, ids_at_newest = when, {str(raw.get("id"))}
                    elif when == newest:
                        ids_at_newest.add(str(raw.get("id")))
                if when == cursor and str(raw.get("id")) in seen_at_cursor:
                    continue
                fresh.append(raw)
            yield fresh, newest
            after = page.next_after
            if not after:
                return
            if int(after) + hs.SEARCH_LIMIT > hs.SEARCH_RESULT_CAP:
                capped = True
                break
        if not capped or newest is None:
            return
        if newest == cursor:
            # A whole window at one instant: read that instant by id, then move past it.
            yield from _read_instant_by_id(ctx, cursor, properties, seen_at_cursor | ids_at_newest)
            cursor = cursor + timedelta(milliseconds=1)
            seen_at_cursor = set()
        else:
            cursor, seen_at_cursor = newest, ids_at_newest


def _read_instant_by_id(
    ctx: PullContext, instant: datetime, properties: Sequence[str], skip: set[str]
) -> Iterator[tuple[list[dict[str, Any]], datetime | None]]:
    last_id = "0"
    while True:
        after: str | None = None
        last_in_window: str | None = None
        while True:
            body: dict[str, Any] = {
                "filterGroups": [{"filters": [
                    {"propertyName": MODIFIED_PROP, "operator": "EQ", "value": _ms(instant)},
                    {"propertyName": "hs_object_id", "operator": "GT", "value": last_id},
                ]}],
                "sorts": [{"propertyName": "hs_object_id", "direction": "ASCENDING"}],
                "properties": list(properties),
                "limit": hs.SEARCH_LIMIT,
            }
            if after:
                body["after"] = after
            page = ctx.saw(ctx.client.search_contacts(body))
            if page.results:
                last_in_window = str(page.results[-1].get("id"))
            yield [r for r in page.results if str(r.get("id")) not in skip], instant
            after = page.next_after
            if not after:
                return
            if int(after) + hs.SEARCH_LIMIT > hs.SEARCH_RESULT_CAP:
                break
        if last_in_window is None:
            return
        last_id = last_in_window


class ContactsStream:
    """Keeps the store's contacts an exact copy of HubSpot's."""

    name = "contacts"

    def __init__(self, ctx: PullContext) -> None:
        self.ctx = ctx
        self.task = ctx.progress.task("contacts")

    # --- storing ------------------------------------------------------------------------------

    def store_page(
        self, raws: Sequence[dict[str, Any]], *, bookmark: tuple[str, str] | None = None,
        extra_bookmarks: Sequence[tuple[str, str]] = (), delete_bookmarks: Sequence[str] = (),
    ) -> None:
        """Store the page's new or changed contacts and the bookmark, in one transaction."""
        ctx = self.ctx
        records: list[ContactRecord] = []
        for raw in raws:
            try:
                records.append(contact_from_hubspot(raw))
            except SkippableError as err:
                ctx.park(self.name, err, raw)
        ctx.counts["contacts.fetched"] += len(raws)
        ctx.progress.advance(self.task, len(raws))
        known = ctx.store.contact_versions([r.hubspot_id for r in records])
        changed: list[ContactRecord] = []
        due: list[str] = []
        forms_due = False
        merges: list[tuple[str, list[str]]] = []
        for rec in records:
            before = known.get(rec.hubspot_id)
            if before is not None and before[0] == rec.hubspot_updated_at and not before[1]:
                ctx.counts["contacts.unchanged"] += 1
                continue
            changed.append(rec)
            ctx.counts["contacts.new" if before is None else "contacts.updated"] += 1
            old = before[2] if before is not None else {}
            views = rec.properties.get("hs_analytics_num_page_views")
            if views not in (None, "", "0") and str(old.get("hs_analytics_num_page_views")) != str(views):
                due.append(rec.hubspot_id)
            forms = rec.properties.get("num_conversion_events")
            if forms not in (None, "", "0") and str(old.get("num_conversion_events")) != str(forms):
                forms_due = True
            merged = str(rec.properties.get("hs_merged_object_ids") or "")
            if merged:
                merges.append((rec.hubspot_id, [m for m in merged.split(";") if m.strip()]))
        if ctx.dry_run:
            return
        with ctx.store.transaction() as s:
            ctx.store.upsert_contacts(changed, session=s)
            for survivor, merged_ids in merges:
                ctx.counts["contacts.merged"] += len(merged_ids)
                ctx.store.mark_merged(survivor, merged_ids, session=s)
            marks = [(PAGE_VIEWS_DUE + cid, "1") for cid in due]
            if forms_due:
                marks.append((FORMS_DUE, "1"))
            marks += [bookmark] if bookmark else []
            marks += extra_bookmarks
            ctx.store.set_bookmarks(marks, run_id=ctx.run_id, session=s)
            ctx.store.delete_bookmarks(delete_bookmarks, session=s)

    # --- modes --------------------------------------------------------------------------------

    def run(self, *, full: bool = False) -> None:
        """Full load when asked, when never done, or when one was interrupted; else incremental."""
        store = self.ctx.store
        if full and store.get_bookmark(FULL) is None:
            store.set_bookmark(FULL, dump({}), run_id=self.ctx.run_id)
        if store.get_bookmark(FULL) is not None or store.get_bookmark(MODIFIED) is None:
            self.full_load()
        else:
            self.incremental()
        self.archived_sweep()
        self.ctx.progress.done(self.task)

    def full_load(self) -> None:
        """Every contact through the list endpoint, resuming where an interrupted load stopped."""
        ctx = self.ctx
        state = load(ctx.store.get_bookmark(FULL))
        after = state.get("after")
        started = state.get("started")
        while True:
            page = ctx.saw(ctx.client.list_contacts(ctx.properties, after=after))
            if started is None:
                # The incremental pulls start from HubSpot's time when this load began.
                started = (page.server_time or ctx.clock.now()).isoformat()
            after = page.next_after
            if after:
                self.store_page(page.results, bookmark=(FULL, dump({"after": after,
                                                                   "started": started})))
                continue
            self.store_page(page.results, bookmark=(MODIFIED, started),
                            delete_bookmarks=[FULL])
            return

    def incremental(self, since: datetime | None = None, until: datetime | None = None,
                    *, bookmark: bool = True, bookmark_stream: str = MODIFIED) -> None:
        """Contacts modified since the bookmark (minus the lookback), oldest first; each page
        moves the bookmark `bookmark_stream` (a backfill's own: where it resumes)."""
        ctx = self.ctx
        if since is None:
            mark = ctx.store.get_bookmark(MODIFIED)
            since = (parse_time(mark) if mark else None) or datetime.fromtimestamp(0).astimezone()
            since = since - ctx.lookback
        props = list(dict.fromkeys([*ctx.properties, MODIFIED_PROP]))
        for page, newest in search_windows(ctx, since, until, props):
            mark_value = (bookmark_stream, newest.isoformat()) if bookmark and newest else None
            self.store_page(page, bookmark=mark_value)

    def read_ids(self, ids: Sequence[str]) -> list[str]:
        """These contacts, read by id (batch read, 100 a call) and stored as any page is.
        A merged-away id comes back as its survivor (whose merge is then recorded); ids not
        among the live contacts are read among the archived and flagged archived. Returns the
        ids of the live contacts read."""
        ctx = self.ctx
        props = list(dict.fromkeys([*ctx.properties, MODIFIED_PROP]))
        raws = ctx.client.batch_read_contacts(list(ids), props)
        self.store_page(raws)
        live = [str(r.get("id")) for r in raws]
        merged = {m.strip() for r in raws
                  for m in str((r.get("properties") or {}).get("hs_merged_object_ids") or "")
                  .split(";")}
        gone = [i for i in ids if i not in live and i not in merged]
        if gone:
            records = []
            for raw in ctx.client.batch_read_contacts(gone, ["email", MODIFIED_PROP],
                                                      archived=True):
                try:
                    records.append(contact_from_hubspot(raw, archived=True))
                except SkippableError as err:
                    ctx.park(self.name, err, raw)
            ctx.counts["contacts.archived_seen"] += len(records)
            if not ctx.dry_run and records:
                ctx.counts["contacts.archived"] += ctx.store.mark_archived(records)
        ctx.progress.done(self.task)
        return live

    def archived_sweep(self, *, force: bool = False) -> None:
        """Flag contacts HubSpot archived (list with archived=true), at most once a day."""
        ctx = self.ctx
        mark = ctx.store.get_bookmark(ARCHIVED)
        last = parse_time(mark) if mark else None
        if not force and last is not None and ctx.now() - last < ARCHIVED_SWEEP_EVERY:
            return
        after: str | None = None
        started: datetime | None = None
        while True:
            page = ctx.saw(ctx.client.list_contacts(["email", MODIFIED_PROP], after=after,
                                                    archived=True))
            started = started or page.server_time or ctx.clock.now()
            records = []
            for raw in page.results:
                try:
                    records.append(contact_from_hubspot(raw, archived=True))
                except SkippableError as err:
                    ctx.park(self.name, err, raw)
            ctx.counts["contacts.archived_seen"] += len(records)
            if not ctx.dry_run and records:
                ctx.counts["contacts.archived"] += ctx.store.mark_archived(records)
            after = page.next_after
            if not after:
                break
        if not ctx.dry_run:
            ctx.store.set_bookmark(ARCHIVED, started.isoformat(), run_id=ctx.run_id)

