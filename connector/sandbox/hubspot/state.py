"""In-memory HubSpot portal: contacts, properties, owners, lists and marketing activity.

Thread-safe (one re-entrant lock); the app and the tests mutate it concurrently. Contacts are
kept in a dict plus sorted id lists so a list page costs O(page); search results are cached by
query and data version, so paging one query costs one filter+sort pass, not one per page.
Email events and page views are the dataset's own seed objects and form submissions are slotted
records: their API JSON is built when a page of them is read, so a 100,000-contact portal does
not hold a dict for each of its millions of events.
"""

from __future__ import annotations

import bisect
import gc
import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from ..base import SandboxClock
from ..dataset import (
    EmailEventSeed,
    FormSeed,
    MarketingEventSeed,
    PageViewSeed,
    SandboxDataset,
)
from . import settings
from .catalog import DEFAULT_GROUPS, default_contact_properties, property_definition
from .errors import HubSpotApiError, not_found, validation
from .search import SearchQuery, compile_query, sort_key, to_ms

__all__ = ["ContactRecord", "HubSpotState", "Submission", "iso", "iso_ms"]

SOURCE_API = "INTEGRATION"
SOURCE_SEED = "IMPORT"
SOURCE_SANDBOX = "CRM_UI"
APP_ID = 1160452
APP_NAME = "Batch"

T = TypeVar("T")


def iso(dt: datetime) -> str:
    """ISO-8601 with milliseconds and Z, as the v3 APIs write datetimes."""
    dt = dt.astimezone(UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def iso_ms(ms: int) -> str:
    """Epoch milliseconds as v3 ISO text."""
    return iso(datetime.fromtimestamp(ms / 1000, UTC))


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def ms(dt: datetime) -> int:
    """A datetime as epoch milliseconds (the v1 APIs' timestamps); exact, no float rounding."""
    return (dt - _EPOCH) // timedelta(milliseconds=1)


@dataclass(slots=True)
class ContactRecord:
    """One contact. `props` holds only non-empty values, all strings."""

    id: str
    props: dict[str, str]
    created_at: datetime
    updated_at: datetime
    history: dict[str, list[tuple[str, str, str]]] = field(default_factory=dict)
    archived: bool = False
    archived_at: datetime | None = None
    merged_into: str | None = None
    merged_ids: list[str] = field(default_factory=list)


@dataclass(slots=True)
class ListRecord:
    """A CRM list (ILS) of contacts."""

    list_id: str
    name: str
    processing_type: str
    created_at: datetime
    updated_at: datetime
    members: dict[str, datetime] = field(default_factory=dict)
    version: int = 1


class HubSpotState:
    """Everything the emulated portal holds, with mutators for tests and benchmarks."""

    def __init__(self, clock: SandboxClock, *, portal_id: int = 12345678) -> None:
        self.clock = clock
        self.portal_id = portal_id
        self.lock = threading.RLock()
        self.version = 0
        at = iso(clock.now())
        self.properties: dict[str, dict[str, Any]] = default_contact_properties(at)
        self.property_groups: dict[str, dict[str, Any]] = {
            name: {"name": name, "label": label, "displayOrder": i, "archived": False}
            for i, (name, label) in enumerate(DEFAULT_GROUPS)
        }
        self.contacts: dict[str, ContactRecord] = {}
        self._live: list[int] = []
        # live contacts by (lastmodifieddate ms, id): incremental syncs window on it
        self._by_modified: list[tuple[int, int]] = []
        self._modified_key: dict[str, tuple[int, int]] = {}
        self._archived: list[int] = []
        self._by_email: dict[str, str] = {}
        self._next_id = 1
        self.owners: list[dict[str, Any]] = []
        # the email events themselves (the dataset's seeds, not copies), by (created ms, id);
        # each is rendered as the v1 API's JSON only when read
        self.email_events: list[EmailEventSeed] = []
        self.forms: dict[str, dict[str, Any]] = {}
        # by form, newest first; each rendered as the legacy API's JSON only when read
        self.form_submissions: dict[str, list[Submission]] = {}
        self._subs_by_contact: dict[str, list[Submission]] = {}
        self.page_views: dict[str, list[PageViewSeed]] = {}
        # every page view by (occurredAt ms, id), for the portal-wide events read: built on
        # the first read after a change, so paging through 200,000 views is not a sort a page
        self._portal_views: list[PageViewSeed] | None = None
        self.marketing_events: dict[str, MarketingEventSeed] = {}
        self.marketing_event_meta: dict[str, dict[str, Any]] = {}
        self.participations: list[dict[str, Any]] = []
        self.lists: dict[str, ListRecord] = {}
        self._next_list_id = 1
        self._search_cache: OrderedDict[tuple[Any, ...], list[str]] = OrderedDict()
        # told of every contact change as a webhook event (`webhooks.WebhookSender.emit`)
        self.listener: Callable[[dict[str, Any]], None] | None = None

    # ------------------------------------------------------------------ loading

    def load(self, dataset: SandboxDataset) -> None:
        """Replace contacts and activity with a generated dataset (counters made consistent)."""
        # hundreds of thousands of small objects: the cyclic GC only slows the bulk build down
        enabled = gc.isenabled()
        gc.disable()
        try:
            self._load(dataset)
        finally:
            if enabled:
                gc.enable()

    def _load(self, dataset: SandboxDataset) -> None:
        with self.lock:
            self.contacts.clear()
            self._live.clear()
            self._by_modified.clear()
            self._modified_key.clear()
            self._archived.clear()
            self._by_email.clear()
            for seed in dataset.contacts:
                props = {k: str(v) for k, v in seed.properties.items() if v not in (None, "")}
                for name in props:
                    self._ensure_property(name)
                rec = ContactRecord(
                    id=str(seed.id),
                    props=props,
                    created_at=seed.created_at,
                    updated_at=seed.updated_at,
                    archived=seed.archived,
                    archived_at=seed.updated_at if seed.archived else None,
                    merged_into=seed.merged_into,
                    merged_ids=list(seed.merged_ids),
                )
                self._stamp(rec)
                self.contacts[rec.id] = rec
                self._next_id = max(self._next_id, int(rec.id) + 1)
            for rec in self.contacts.values():
                if not rec.archived and not rec.merged_into:
                    self._modified_key[rec.id] = (ms(rec.updated_at), int(rec.id))
                self._index(rec)
            self._by_modified = sorted(self._modified_key.values())
            self.owners = [self._owner_json(o) for o in dataset.owners]
            self.owners.sort(key=lambda o: int(o["id"]))
            self.email_events = _in_order(dataset.email_events, _event_key)
            self.forms = {f.guid: self._form_json(f) for f in dataset.forms}
            self.form_submissions = {guid: [] for guid in self.forms}
            self._subs_by_contact = {}
            for sub in dataset.form_submissions:
                self._insert_submission(
                    sub.form_guid,
                    sub.values,
                    sub.submitted_at,
                    sub.page_url,
                    sub.contact_id,
                    keep_order=False,
                    copy=False,
                )
            for subs in self.form_submissions.values():
                subs.sort(key=Submission.key, reverse=True)
            self.page_views = {}
            self._portal_views = None
            for pv in dataset.page_views:
                self.page_views.setdefault(self.resolve_id(pv.contact_id), []).append(pv)
            for views in self.page_views.values():
                views.sort(key=lambda p: (p.occurred_at, p.id))
            self.marketing_events = {e.id: e for e in dataset.marketing_events}
            self.marketing_event_meta = {
                e.id: {"createdAt": dataset.generated_at, "cancelled": False}
                for e in dataset.marketing_events
            }
            self.participations = []
            for p in dataset.participations:
                self._insert_participation(p.event_id, p.contact_id, p.state, p.occurred_at)
            self._recompute_activity_counters(bump=False)
            self._changed()

    def _recompute_activity_counters(self, *, bump: bool) -> None:
        for cid in self.page_views:
            self._refresh_page_view_counters(cid, bump=bump)
        for cid in self._subs_by_contact:
            self._refresh_conversion_counters(cid, bump=bump)
        latest: dict[tuple[str, str], _EventView] = {}
        for seed in self.email_events:
            ev = _EventView.of(seed, self)
            if ev.unsubscribes:
                self._refresh_email_dates(ev, bump=bump)
            if ev.type in ("OPEN", "CLICK"):
                key = (ev.recipient.lower(), ev.type)
                if key not in latest or latest[key].created < ev.created:
                    latest[key] = ev
        for ev in latest.values():
            self._refresh_email_dates(ev, bump=bump)

    # ------------------------------------------------------------------ indexes

    def _stamp(self, rec: ContactRecord) -> None:
        rec.props["hs_object_id"] = rec.id
        rec.props["createdate"] = iso(rec.created_at)
        rec.props["lastmodifieddate"] = iso(rec.updated_at)
        if rec.id in self._modified_key:
            self._unindex_modified(rec.id)
            self._index_modified(rec)
        email = rec.props.get("email")
        if email and "@" in email:
            rec.props["hs_email_domain"] = email.split("@", 1)[1].lower()
        if rec.merged_ids:
            rec.props["hs_merged_object_ids"] = ";".join(rec.merged_ids)

    def _index_modified(self, rec: ContactRecord) -> None:
        key = (ms(rec.updated_at), int(rec.id))
        self._modified_key[rec.id] = key
        bisect.insort(self._by_modified, key)

    def _unindex_modified(self, contact_id: str) -> None:
        key = self._modified_key.pop(contact_id, None)
        if key is not None:
            i = bisect.bisect_left(self._by_modified, key)
            if i < len(self._by_modified) and self._by_modified[i] == key:
                del self._by_modified[i]

    def _index(self, rec: ContactRecord) -> None:
        if rec.merged_into:
            return
        if not rec.archived and rec.id not in self._modified_key:
            self._index_modified(rec)
        target = self._archived if rec.archived else self._live
        n = int(rec.id)
        i = bisect.bisect_left(target, n)
        if i == len(target) or target[i] != n:
            target.insert(i, n)
        email = rec.props.get("email")
        if email and not rec.archived:
            self._by_email[email.lower()] = rec.id

    def _unindex(self, rec: ContactRecord) -> None:
        self._unindex_modified(rec.id)
        for target in (self._live, self._archived):
            n = int(rec.id)
            i = bisect.bisect_left(target, n)
            if i < len(target) and target[i] == n:
                del target[i]
        email = rec.props.get("email")
        if email and self._by_email.get(email.lower()) == rec.id:
            del self._by_email[email.lower()]

    def _notify(self, kind: str, rec: ContactRecord, at: datetime, source: str,
                **fields: Any) -> None:
        if self.listener is not None:
            self.listener({"subscriptionType": kind, "objectId": int(rec.id),
                           "occurredAt": ms(at), "changeSource": source, **fields})

    def _changed(self) -> None:
        self.version += 1
        self._search_cache.clear()

    def _ensure_property(self, name: str) -> None:
        if name not in self.properties:
            self.properties[name] = property_definition(
                name,
                name.replace("_", " ").title(),
                "string",
                "text",
                "contactinformation",
                hubspot_defined=False,
                at=iso(self.clock.now()),
            )

    # ------------------------------------------------------------------ contacts: reads

    def kind_of(self, name: str) -> str:
        """The property's `type` (string when unknown)."""
        prop = self.properties.get(name)
        return str(prop["type"]) if prop else "string"

    def resolve_id(self, contact_id: str) -> str:
        """Follow merges: the id of the surviving contact."""
        seen = set()
        cid = str(contact_id)
        while cid in self.contacts and self.contacts[cid].merged_into and cid not in seen:
            seen.add(cid)
            cid = str(self.contacts[cid].merged_into)
        return cid

    def get_contact(
        self, contact_id: str, *, archived: bool = False, id_property: str | None = None
    ) -> ContactRecord:
        """A contact by id (following merges) or by a unique property; 404 otherwise."""
        with self.lock:
            if id_property and id_property != "hs_object_id":
                if id_property != "email":
                    raise validation(f"Property {id_property} is not a unique identifier property")
                cid = self._by_email.get(str(contact_id).lower())
                if cid is None:
                    raise not_found()
            else:
                cid = self.resolve_id(contact_id)
            rec = self.contacts.get(cid)
            if rec is None or rec.merged_into or rec.archived != archived:
                raise not_found()
            return rec

    def find_by_email(self, email: str) -> ContactRecord | None:
        """The live contact with this email, if any."""
        with self.lock:
            cid = self._by_email.get(email.lower())
            return self.contacts.get(cid) if cid else None

    def page_contacts(
        self, after: str | None, limit: int, *, archived: bool
    ) -> tuple[list[ContactRecord], str | None]:
        """One page of the id-ordered contact list and the next cursor."""
        with self.lock:
            ids = self._archived if archived else self._live
            start = 0
            if after:
                try:
                    start = bisect.bisect_left(ids, int(after))
                except ValueError:
                    raise validation(f"Invalid after cursor: {after}") from None
            chunk = ids[start : start + limit]
            nxt = str(ids[start + limit]) if start + limit < len(ids) else None
            return [self.contacts[str(i)] for i in chunk], nxt

    def search_contacts(self, q: SearchQuery) -> tuple[list[ContactRecord], int]:
        """The page of a search and the total matching; cached per query and data version."""
        with self.lock:
            key = q.cache_key()
            ids = self._search_cache.get(key)
            if ids is None:
                ids = self._run_search(q)
                self._search_cache[key] = ids
                while len(self._search_cache) > settings.SEARCH_CACHE_SIZE:
                    self._search_cache.popitem(last=False)
            else:
                self._search_cache.move_to_end(key)
            page = ids[q.after : q.after + q.limit]
            return [self.contacts[i] for i in page], len(ids)

    def _modified_window(self, q: SearchQuery) -> tuple[int, int] | None:
        """[lo, hi) in the lastmodifieddate index covering a one-group query that bounds and
        sorts by lastmodifieddate (the incremental-sync shape), else None."""
        if q.sort_property != "lastmodifieddate" or q.query or len(q.filter_groups) != 1:
            return None
        low, high = -(1 << 62), 1 << 62
        bounded = False
        for name, op, value, high_value in q.filter_groups[0]:
            if name != "lastmodifieddate":
                continue
            v = to_ms(str(value)) if isinstance(value, str) else None
            if v is None:
                return None
            if op in ("GTE", "EQ", "BETWEEN"):
                low = max(low, v)
            elif op == "GT":
                low = max(low, v + 1)
            if op in ("LTE", "EQ"):
                high = min(high, v)
            elif op == "LT":
                high = min(high, v - 1)
            elif op == "BETWEEN":
                hv = to_ms(str(high_value)) if isinstance(high_value, str) else None
                if hv is None:
                    return None
                high = min(high, hv)
            bounded = bounded or op in ("GTE", "GT", "LTE", "LT", "EQ", "BETWEEN")
        if not bounded:
            return None
        lo = bisect.bisect_left(self._by_modified, (low, -1))
        hi = bisect.bisect_right(self._by_modified, (high, 1 << 62))
        return lo, hi

    def search_ids(self, q: SearchQuery, *, use_index: bool = True) -> list[str]:
        """Every matching id in result order (uncached); `use_index=False` forces a full scan."""
        with self.lock:
            return self._run_search(q, use_index=use_index)

    def _run_search(self, q: SearchQuery, *, use_index: bool = True) -> list[str]:
        predicate = compile_query(q, self.kind_of)
        window = self._modified_window(q) if use_index else None
        if window is not None:
            # candidates already in (lastmodifieddate, id) order: only the window is filtered
            keys = self._by_modified[window[0] : window[1]]
            hits = [c for c in (self.contacts[str(i)] for _, i in keys) if predicate(c.props)]
            if q.sort_descending:
                hits.sort(key=lambda c: (-ms(c.updated_at), int(c.id)))
            return [c.id for c in hits]
        hits = [self.contacts[str(i)] for i in self._live]
        hits = [c for c in hits if predicate(c.props)]
        if q.sort_property:
            kind = self.kind_of(q.sort_property)
            name = q.sort_property
            keyed = [(sort_key(kind, c.props.get(name)), c) for c in hits]
            with_value = [kc for kc in keyed if kc[0][0] == 0]
            without = [kc[1] for kc in keyed if kc[0][0] == 1]
            # hits are id-ordered and the sort is stable: ties keep ascending id order
            with_value.sort(key=lambda kc: kc[0][1], reverse=q.sort_descending)
            hits = [kc[1] for kc in with_value] + without
        return [c.id for c in hits]

    def property_names(self, requested: Iterable[str] | None, defaults: Iterable[str]) -> list[str]:
        """Which properties a response carries: requested (known ones) plus the always-present."""
        if requested is None:
            names = list(defaults)
        else:
            names = [n for n in requested if n in self.properties]
        for always in settings.ALWAYS_RETURNED_PROPERTIES:
            if always not in names:
                names.append(always)
        return names

    def history_of(self, rec: ContactRecord, name: str) -> list[tuple[str, str, str]]:
        """A property's values, newest first; a loaded value dates from the contact's creation."""
        if name in rec.history:
            return rec.history[name]
        value = rec.props.get(name)
        return [(value, iso(rec.created_at), SOURCE_SEED)] if value else []

    def contact_json(
        self,
        rec: ContactRecord,
        properties: Iterable[str] | None,
        *,
        defaults: Iterable[str] = settings.LIST_DEFAULT_PROPERTIES,
        with_history: Iterable[str] | None = None,
    ) -> dict[str, Any]:
        """A contact as `SimplePublicObject`: string properties, ISO timestamps."""
        names = self.property_names(properties, defaults)
        out: dict[str, Any] = {
            "id": rec.id,
            "properties": {n: rec.props.get(n) for n in names},
            "createdAt": iso(rec.created_at),
            "updatedAt": iso(rec.updated_at),
            "archived": rec.archived,
        }
        if rec.archived and rec.archived_at:
            out["archivedAt"] = iso(rec.archived_at)
        if with_history:
            out["propertiesWithHistory"] = {
                n: [
                    {"value": v, "timestamp": ts, "sourceType": src}
                    for v, ts, src in self.history_of(rec, n)
                ]
                for n in with_history
                if n in self.properties
            }
        return out

    # ------------------------------------------------------------------ contacts: writes

    def check_writable(self, props: Mapping[str, Any]) -> None:
        bad: list[dict[str, Any]] = []
        for name, value in props.items():
            prop = self.properties.get(name)
            if prop is None:
                bad.append(
                    {
                        "isValid": False,
                        "message": f'Property "{name}" does not exist',
                        "error": "PROPERTY_DOESNT_EXIST",
                        "name": name,
                    }
                )
                continue
            if prop["modificationMetadata"]["readOnlyValue"]:
                bad.append(
                    {
                        "isValid": False,
                        "message": f"{name} is a read only property; its value cannot be set.",
                        "error": "READ_ONLY_VALUE",
                        "name": name,
                    }
                )
                continue
            if prop["type"] == "enumeration" and prop["options"] and value not in (None, ""):
                allowed = [o["value"] for o in prop["options"]]
                if prop["fieldType"] == "checkbox":
                    values = str(value).split(";")
                else:
                    values = [str(value)]
                for v in values:
                    if v not in allowed:
                        bad.append(
                            {
                                "isValid": False,
                                "message": f"{v} was not one of the allowed options: "
                                + ", ".join(
                                    f"[label: {o['label']!r} value: {o['value']!r}]"
                                    for o in prop["options"]
                                ),
                                "error": "INVALID_OPTION",
                                "name": name,
                            }
                        )
        if bad:
            raise validation(
                "Property values were not valid: " + json.dumps(bad),
                errors=[
                    {
                        "message": b["message"],
                        "code": b["error"],
                        "context": {"propertyName": [b["name"]]},
                    }
                    for b in bad
                ],
            )

    def check_email_free(self, email: str | None, own_id: str | None) -> None:
        if not email:
            return
        other = self._by_email.get(email.lower())
        if other is not None and other != own_id:
            raise HubSpotApiError(409, "CONFLICT", f"Contact already exists. Existing ID: {other}")

    def _stage_order(self) -> dict[str, int]:
        prop = self.properties.get(settings.LIFECYCLE_PROPERTY)
        options = prop["options"] if prop else []
        return {
            o["value"]: i
            for i, o in enumerate(sorted(options, key=lambda o: o.get("displayOrder", 0)))
        }

    def _apply(
        self,
        rec: ContactRecord,
        props: Mapping[str, Any],
        at: datetime,
        source: str,
        *,
        force: bool = False,
        notify: bool = True,
    ) -> bool:
        """Set properties; lifecycle stage only moves forward (silently kept otherwise) unless
        `force` (a user editing the record in HubSpot's UI may set any stage). Each change is
        a `contact.propertyChange` event for the listener unless not `notify`."""
        changed = False
        stamp = iso(at)
        for name, raw in props.items():
            value = "" if raw is None else str(raw)
            if name in ("hs_object_id", "createdate", "lastmodifieddate"):
                continue
            if name == settings.LIFECYCLE_PROPERTY and value and not force:
                order = self._stage_order()
                current = rec.props.get(name)
                if (
                    current
                    and current in order
                    and value in order
                    and order[value] < order[current]
                ):
                    continue
            old = rec.props.get(name)
            if (old or "") == value:
                continue
            if name == "email":
                if old and self._by_email.get(old.lower()) == rec.id:
                    del self._by_email[old.lower()]
                if value and not rec.archived and not rec.merged_into:
                    self._by_email[value.lower()] = rec.id
            if name not in rec.history and old:
                rec.history[name] = self.history_of(rec, name)
            if value:
                rec.props[name] = value
            else:
                rec.props.pop(name, None)
            rec.history.setdefault(name, []).insert(0, (value, stamp, source))
            if notify:
                self._notify("contact.propertyChange", rec, at, source, propertyName=name,
                             propertyValue=value)
            if name == settings.LIFECYCLE_PROPERTY and value:
                date_prop = f"hs_lifecyclestage_{value}_date"
                if date_prop in self.properties and date_prop not in rec.props:
                    rec.props[date_prop] = stamp
            changed = True
        if changed:
            rec.updated_at = at
            self._stamp(rec)
        return changed

    def create_contact(
        self,
        props: Mapping[str, Any],
        *,
        at: datetime | None = None,
        validate: bool = False,
        source: str = SOURCE_SANDBOX,
    ) -> ContactRecord:
        """A new contact (next numeric id). `validate` applies the API's property checks."""
        with self.lock:
            if validate:
                self.check_writable(props)
                self.check_email_free(props.get("email"), None)
            else:
                for name in props:
                    self._ensure_property(name)
            now = at or self.clock.now()
            rec = ContactRecord(id=str(self._next_id), props={}, created_at=now, updated_at=now)
            self._next_id += 1
            self.contacts[rec.id] = rec
            self._apply(rec, props, now, source, notify=False)
            self._stamp(rec)
            self._index(rec)
            self._changed()
            self._notify("contact.creation", rec, now, source, changeFlag="CREATED")
            return rec

    def update_contact(
        self,
        contact_id: str,
        props: Mapping[str, Any],
        *,
        at: datetime | None = None,
        validate: bool = False,
        source: str = SOURCE_SANDBOX,
        id_property: str | None = None,
        force: bool = False,
    ) -> ContactRecord:
        """Update a live contact; bumps lastmodifieddate to the clock (or `at`) when a value
        changes. `force` lets a test move the lifecycle stage back as a UI user could."""
        with self.lock:
            rec = self.get_contact(contact_id, id_property=id_property)
            if validate:
                self.check_writable(props)
                self.check_email_free(props.get("email"), rec.id)
            else:
                for name in props:
                    self._ensure_property(name)
            if self._apply(rec, props, at or self.clock.now(), source, force=force):
                self._changed()
            return rec

    def touch_contacts(
        self,
        ids: Iterable[str],
        props: Mapping[str, Any] | None = None,
        at: datetime | None = None,
    ) -> list[ContactRecord]:
        """Mark many contacts modified at one instant (default: now), optionally setting props."""
        with self.lock:
            when = at or self.clock.now()
            out = []
            for cid in ids:
                rec = self.get_contact(cid)
                if props:
                    for name in props:
                        self._ensure_property(name)
                    self._apply(rec, props, when, SOURCE_SANDBOX)
                rec.updated_at = when
                self._stamp(rec)
                out.append(rec)
            self._changed()
            return out

    def archive_contact(self, contact_id: str) -> None:
        """Archive (soft-delete) a live contact; it then shows only with archived=true."""
        with self.lock:
            rec = self.get_contact(contact_id)
            self._unindex(rec)
            rec.archived = True
            rec.archived_at = self.clock.now()
            self._index(rec)
            self._changed()
            self._notify("contact.deletion", rec, rec.archived_at, SOURCE_SANDBOX,
                         changeFlag="DELETED")

    def merge_contacts(self, primary_id: str, merged_id: str) -> ContactRecord:
        """Merge `merged_id` into `primary_id`: the survivor keeps its values, fills blanks,
        lists the merged ids in hs_merged_object_ids and takes over the activity."""
        with self.lock:
            primary = self.get_contact(primary_id)
            merged = self.get_contact(merged_id)
            if primary.id == merged.id:
                raise validation("Cannot merge a contact into itself")
            self._unindex(merged)
            fill = {
                k: v
                for k, v in merged.props.items()
                if k not in primary.props
                and k
                not in (
                    "hs_object_id",
                    "createdate",
                    "lastmodifieddate",
                    "email",
                    "hs_merged_object_ids",
                )
            }
            now = self.clock.now()
            self._apply(primary, fill, now, "MERGE")
            extra = merged.props.get("email")
            if extra:
                emails = [
                    e for e in (primary.props.get("hs_additional_emails") or "").split(";") if e
                ]
                if extra not in emails:
                    emails.append(extra)
                primary.props["hs_additional_emails"] = ";".join(emails)
            merged.merged_into = primary.id
            primary.merged_ids = [*primary.merged_ids, merged.id, *merged.merged_ids]
            primary.updated_at = now
            self._stamp(primary)
            if merged.id in self.page_views:
                self._portal_views = None
                views = self.page_views.setdefault(primary.id, []) + self.page_views.pop(merged.id)
                views.sort(key=lambda p: (p.occurred_at, p.id))
                self.page_views[primary.id] = views
                self._refresh_page_view_counters(primary.id, bump=True)
            if merged.id in self._subs_by_contact:
                moved = self._subs_by_contact.pop(merged.id)
                for sub in moved:
                    sub.contact_id = primary.id
                self._subs_by_contact.setdefault(primary.id, []).extend(moved)
                self._refresh_conversion_counters(primary.id, bump=True)
            for part in self.participations:
                if part["contactId"] == merged.id:
                    part["contactId"] = primary.id
            for lst in self.lists.values():
                if merged.id in lst.members:
                    lst.members.setdefault(primary.id, lst.members.pop(merged.id))
            self._changed()
            self._notify("contact.merge", primary, now, "CRM_UI",
                         primaryObjectId=int(primary.id), mergedObjectIds=[int(merged.id)],
                         newObjectId=int(primary.id),
                         numberOfPropertiesMoved=len(fill))
            return primary

    # ------------------------------------------------------------------ properties

    def create_property(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """A custom contact property (409 when the name exists)."""
        with self.lock:
            missing = [
                k for k in ("name", "label", "type", "fieldType", "groupName") if not body.get(k)
            ]
            if missing:
                raise validation(f"Missing required fields: {', '.join(missing)}")
            name = str(body["name"])
            if name in self.properties:
                raise HubSpotApiError(
                    409,
                    "OBJECT_ALREADY_EXISTS",
                    f"Object already exists: A property named '{name}' already exists.",
                    sub_category="PropertyValidationError.PROPERTY_EXISTS",
                )
            if body["groupName"] not in self.property_groups:
                raise validation(f"Property group {body['groupName']} does not exist")
            options = [
                {
                    "label": o.get("label", o.get("value")),
                    "value": o.get("value"),
                    "displayOrder": o.get("displayOrder", i),
                    "hidden": bool(o.get("hidden", False)),
                    "description": o.get("description", ""),
                }
                for i, o in enumerate(body.get("options") or [])
            ]
            prop = property_definition(
                name,
                str(body["label"]),
                str(body["type"]),
                str(body["fieldType"]),
                str(body["groupName"]),
                options=options,
                hubspot_defined=False,
                at=iso(self.clock.now()),
                description=str(body.get("description") or ""),
                display_order=int(body.get("displayOrder", -1)),
                has_unique_value=bool(body.get("hasUniqueValue", False)),
            )
            self.properties[name] = prop
            return prop

    def create_property_group(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """A property group (409 when the name exists)."""
        with self.lock:
            name = str(body.get("name") or "")
            if not name or not body.get("label"):
                raise validation("Missing required fields: name, label")
            if name in self.property_groups:
                raise HubSpotApiError(
                    409, "OBJECT_ALREADY_EXISTS", f"Object already exists: property group {name}"
                )
            group = {
                "name": name,
                "label": str(body["label"]),
                "displayOrder": int(body.get("displayOrder", -1)),
                "archived": False,
            }
            self.property_groups[name] = group
            return group

    # ------------------------------------------------------------------ owners

    def _owner_json(self, o: Any) -> dict[str, Any]:
        at = iso(self.clock.now() - timedelta(days=365))
        return {
            "id": str(o.id),
            "email": o.email,
            "firstName": o.first_name,
            "lastName": o.last_name,
            "userId": int(o.user_id),
            "userIdIncludingInactive": int(o.user_id),
            "type": "PERSON",
            "createdAt": at,
            "updatedAt": at,
            "archived": False,
            "teams": [
                {"id": str(1000 + i), "name": t, "primary": i == 0} for i, t in enumerate(o.teams)
            ],
        }

    # ------------------------------------------------------------------ email events

    def _email_event_json(self, ev: EmailEventSeed) -> dict[str, Any]:
        created = ms(ev.created)
        out: dict[str, Any] = {
            "id": ev.id,
            "created": created,
            "type": ev.type,
            "recipient": ev.recipient,
            "portalId": self.portal_id,
            "appId": APP_ID,
            "appName": APP_NAME,
            "emailCampaignId": int(ev.email_campaign_id),
            "sentBy": {"id": f"sent-{ev.email_campaign_id}-{ev.recipient}", "created": created},
        }
        if ev.type == "SENT" and ev.subject is not None:
            out["subject"] = ev.subject
            out["from"] = "Marketing <marketing@example.com>"
        if ev.type in ("OPEN", "CLICK"):
            out["userAgent"] = "Mozilla/5.0 (Windows NT 10.0; Win64; x64)"
            out["browser"] = {"name": "Chrome", "family": "Chrome", "type": "Browser"}
            out["location"] = {"country": "United States", "state": "", "city": ""}
            out["deviceType"] = "COMPUTER"
        if ev.type == "CLICK" and ev.url:
            out["url"] = ev.url
        if ev.type == "DELIVERED":
            out["response"] = "250 2.0.0 OK"
            out["smtpId"] = f"<{ev.id}@sandbox>"
        out.update(ev.extra)
        return out

    def _insert_email_event(self, event: EmailEventSeed) -> None:
        i = bisect.bisect_right(self.email_events, _event_key(event), key=_event_key)
        self.email_events.insert(i, event)

    def query_email_events(
        self,
        *,
        start: int | None,
        end: int | None,
        event_type: str | None,
        recipient: str | None,
        campaign_id: int | None,
        offset: int,
        limit: int,
    ) -> tuple[list[dict[str, Any]], bool]:
        """Events in created order within [start, end] matching the filters, from `offset`."""
        with self.lock:
            events = self.email_events
            lo = 0 if start is None else bisect.bisect_left(events, (start, ""), key=_event_key)
            hi = (
                len(events)
                if end is None
                else bisect.bisect_right(events, (end, "\uffff"), key=_event_key)
            )
            if not event_type and not recipient and campaign_id is None:
                first = lo + offset
                page = events[first : min(hi, first + limit)]
                return [self._email_event_json(ev) for ev in page], first + limit < hi
            out: list[dict[str, Any]] = []
            seen = 0
            for i in range(lo, hi):
                view = _EventView.of(events[i], self)
                if event_type and view.type != event_type:  # case-sensitive, as documented
                    continue
                if recipient and view.recipient.lower() != recipient.lower():
                    continue
                if campaign_id is not None and view.campaign_id != campaign_id:
                    continue
                if seen >= offset:
                    if len(out) == limit:
                        return out, True
                    out.append(self._email_event_json(events[i]))
                seen += 1
            return out, False

    def add_email_event(
        self,
        recipient: str,
        type_: str,
        *,
        created: datetime | None = None,
        email_campaign_id: int = 1,
        subject: str | None = None,
        url: str | None = None,
        event_id: str | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """Record a marketing email event; OPEN/CLICK move the contact's last open/click date."""
        with self.lock:
            when = created or self.clock.now()
            seed = EmailEventSeed(
                id=event_id or f"ev-{len(self.email_events) + 1}-{ms(when)}",
                recipient=recipient,
                type=type_.upper(),
                created=when,
                email_campaign_id=email_campaign_id,
                subject=subject,
                url=url,
                extra=dict(extra),
            )
            self._insert_email_event(seed)
            view = _EventView.of(seed, self)
            if view.type in ("OPEN", "CLICK") or view.unsubscribes:
                self._refresh_email_dates(view, bump=True)
            return self._email_event_json(seed)

    def _refresh_email_dates(self, event: _EventView, *, bump: bool) -> None:
        cid = self._by_email.get(event.recipient.lower())
        if cid is None:
            return
        rec = self.contacts[cid]
        if event.unsubscribes:
            if rec.props.get("hs_email_optout") != "true":
                self._set_derived(rec, {"hs_email_optout": "true"}, bump=bump)
            return
        name = "hs_email_last_open_date" if event.type == "OPEN" else "hs_email_last_click_date"
        value = iso_ms(event.created)
        current = rec.props.get(name)
        if current is None or current < value:
            self._set_derived(rec, {name: value}, bump=bump)

    def _set_derived(self, rec: ContactRecord, props: Mapping[str, str], *, bump: bool) -> None:
        if bump:
            if self._apply(rec, props, self.clock.now(), "ANALYTICS"):
                self._changed()
        else:
            # loading: values as they stand, no modification recorded
            rec.props.update({k: v for k, v in props.items() if v})

    # ------------------------------------------------------------------ forms

    def _form_json(self, f: FormSeed) -> dict[str, Any]:
        at = iso(self.clock.now() - timedelta(days=400))
        return {
            "id": f.guid,
            "name": f.name,
            "formType": "hubspot",
            "createdAt": at,
            "updatedAt": at,
            "archived": False,
            "fieldGroups": [
                {"groupType": "default_group", "richTextType": "text", "fields": [_form_field(fd)]}
                for fd in f.fields
            ],
            "configuration": {
                "language": "en",
                "cloneable": True,
                "postSubmitAction": {"type": "thank_you", "value": ""},
                "editable": True,
                "archivable": True,
                "recaptchaEnabled": False,
                "notifyContactOwner": False,
                "notifyRecipients": [],
                "createNewContactForNewEmail": False,
                "prePopulateKnownValues": True,
                "allowLinkToResetKnownValues": False,
                "lifecycleStages": [],
            },
            "displayOptions": {
                "renderRawHtml": False,
                "theme": "default_style",
                "submitButtonText": "Submit",
                "style": {
                    "fontFamily": "arial, helvetica, sans-serif",
                    "backgroundWidth": "100%",
                    "labelTextColor": "#33475b",
                    "labelTextSize": "14px",
                    "helpTextColor": "#7C98B6",
                    "helpTextSize": "11px",
                    "legalConsentTextColor": "#33475b",
                    "legalConsentTextSize": "14px",
                    "submitColor": "#ff7a59",
                    "submitAlignment": "left",
                    "submitFontColor": "#ffffff",
                    "submitSize": "12px",
                },
                "cssClass": "",
            },
            "legalConsentOptions": {"type": "none"},
        }

    def _insert_submission(
        self,
        guid: str,
        values: Mapping[str, str],
        at: datetime,
        page_url: str,
        contact_id: str | None,
        *,
        keep_order: bool = True,
        copy: bool = True,
    ) -> Submission:
        """File a submission; `copy=False` keeps `values` itself (a dataset seed's, never
        changed) rather than a copy."""
        if guid not in self.forms:
            raise not_found(f"Form {guid} does not exist")
        owner = self.resolve_id(contact_id) if contact_id else None
        sub = Submission(
            f"{guid[:8]}-{ms(at)}-{len(self.form_submissions.get(guid, []))}",
            ms(at),
            dict(values) if copy else values,
            page_url,
            owner,
        )
        if owner:
            self._subs_by_contact.setdefault(owner, []).append(sub)
        subs = self.form_submissions.setdefault(guid, [])
        if not keep_order:
            subs.append(sub)
            return sub
        # newest first, as the legacy endpoint returns them
        key = sub.key()
        i = 0
        while i < len(subs) and subs[i].key() > key:
            i += 1
        subs.insert(i, sub)
        return sub

    def add_form_submission(
        self,
        form_guid: str,
        values: Mapping[str, str],
        *,
        at: datetime | None = None,
        page_url: str = "",
        contact_id: str | None = None,
    ) -> dict[str, Any]:
        """Record a form submission as HubSpot processes one: the submitted values of contact
        properties update the contact (created, as a lead, when the email is new) and its
        conversion counters move."""
        with self.lock:
            when = at or self.clock.now()
            if form_guid not in self.forms:
                raise not_found(f"Form {form_guid} does not exist")
            known = {
                k: str(v)
                for k, v in values.items()
                if k in self.properties
                and not self.properties[k]["modificationMetadata"]["readOnlyValue"]
                and k != settings.LIFECYCLE_PROPERTY
            }
            if contact_id is None and values.get("email"):
                found = self._by_email.get(str(values["email"]).lower())
                if found is None:
                    created = self.create_contact(
                        {**known, settings.LIFECYCLE_PROPERTY: settings.FORM_DEFAULT_STAGE},
                        at=when,
                        source="FORM",
                    )
                    found = created.id
                elif known:
                    self.update_contact(found, known, at=when, source="FORM")
                contact_id = found
            sub = self._insert_submission(form_guid, values, when, page_url, contact_id)
            if sub.contact_id:
                self._refresh_conversion_counters(sub.contact_id, bump=True)
            return {**sub.json(), "_contact_id": sub.contact_id}

    def _refresh_conversion_counters(self, contact_id: str, *, bump: bool) -> None:
        rec = self.contacts.get(contact_id)
        if rec is None:
            return
        mine = self._subs_by_contact.get(contact_id)
        if not mine:
            return
        latest = max(s.submitted_at for s in mine)
        self._set_derived(
            rec,
            {"num_conversion_events": str(len(mine)), "recent_conversion_date": iso_ms(latest)},
            bump=bump,
        )

    # ------------------------------------------------------------------ web analytics

    def add_page_view(
        self,
        contact_id: str,
        url: str,
        *,
        title: str = "",
        at: datetime | None = None,
        session_id: str | None = None,
        event_id: str | None = None,
    ) -> PageViewSeed:
        """Record an e_visited_page event; the contact's analytics counters move."""
        with self.lock:
            cid = self.resolve_id(contact_id)
            if cid not in self.contacts:
                raise not_found(f"Contact {contact_id} does not exist")
            when = at or self.clock.now()
            views = self.page_views.setdefault(cid, [])
            if session_id is None:
                last = views[-1] if views else None
                gap = timedelta(minutes=settings.VISIT_GAP_MINUTES)
                if last is not None and timedelta(0) <= when - last.occurred_at <= gap:
                    session_id = last.session_id
                else:
                    session_id = f"s-{cid}-{ms(when)}"
            pv = PageViewSeed(
                id=event_id or f"pv-{cid}-{ms(when)}-{len(views)}",
                contact_id=cid,
                occurred_at=when,
                url=url,
                title=title,
                session_id=session_id,
            )
            keys = [(p.occurred_at, p.id) for p in views]
            views.insert(bisect.bisect_right(keys, (pv.occurred_at, pv.id)), pv)
            self._portal_views = None
            self._refresh_page_view_counters(cid, bump=True)
            return pv

    def _refresh_page_view_counters(self, contact_id: str, *, bump: bool) -> None:
        rec = self.contacts.get(contact_id)
        views = self.page_views.get(contact_id) or []
        if rec is None or not views:
            return
        self._set_derived(
            rec,
            {
                "hs_analytics_num_page_views": str(len(views)),
                "hs_analytics_num_visits": str(len({p.session_id for p in views})),
                "hs_analytics_last_visit_timestamp": iso(max(p.occurred_at for p in views)),
                "hs_analytics_first_url": min(views, key=lambda p: (p.occurred_at, p.id)).url,
                "hs_analytics_last_url": max(views, key=lambda p: (p.occurred_at, p.id)).url,
            },
            bump=bump,
        )

    def query_page_views(
        self,
        contact_id: str | None,
        *,
        occurred_after: int | None,
        occurred_before: int | None,
        descending: bool,
    ) -> list[PageViewSeed]:
        """Page views of a contact (or all), within the window, by occurrence time."""
        with self.lock:
            if contact_id is not None:
                views = list(self.page_views.get(self.resolve_id(contact_id), []))
            else:
                views = sorted(
                    (p for vs in self.page_views.values() for p in vs),
                    key=lambda p: (p.occurred_at, p.id),
                )
            if occurred_after is not None:
                views = [p for p in views if ms(p.occurred_at) >= occurred_after]
            if occurred_before is not None:
                views = [p for p in views if ms(p.occurred_at) <= occurred_before]
            if descending:
                views.reverse()
            return views

    def portal_page_views(
        self,
        *,
        occurred_after: int | None,
        occurred_before: int | None,
        after: tuple[int, str] | None,
        descending: bool,
        limit: int,
    ) -> tuple[list[PageViewSeed], bool]:
        """One page of every contact's page views within the window, by (occurrence ms, id),
        after the cursor `after`; and whether more follow."""
        with self.lock:
            if self._portal_views is None:
                # by (occurredAt ms, id) as two stable sorts: no key tuple for each view
                views = [p for vs in self.page_views.values() for p in vs]
                views.sort(key=_view_id)
                views.sort(key=_view_ms)
                self._portal_views = views
            views = self._portal_views
        lo = (0 if occurred_after is None
              else bisect.bisect_left(views, (occurred_after, ""), key=_view_key))
        hi = (len(views) if occurred_before is None
              else bisect.bisect_right(views, (occurred_before, "\U0010ffff"), key=_view_key))
        if not descending:
            start = (lo if after is None
                     else max(lo, bisect.bisect_right(views, after, key=_view_key)))
            page = views[start:min(hi, start + limit)]
            return page, start + limit < hi
        end = hi if after is None else min(hi, bisect.bisect_left(views, after, key=_view_key))
        first = max(lo, end - limit)
        return list(reversed(views[first:end])), first > lo

    # ------------------------------------------------------------------ marketing events

    def _insert_participation(
        self, event_id: str, contact_id: str, state: str, at: datetime
    ) -> dict[str, Any]:
        if state not in settings.PARTICIPATION_STATES:
            raise validation(
                f"Unknown attendance state {state}; one of {', '.join(settings.PARTICIPATION_STATES)}"
            )
        part = {
            "id": str(len(self.participations) + 1),
            "eventId": str(event_id),
            "contactId": self.resolve_id(contact_id),
            "state": state,
            "occurredAt": ms(at),
            "createdAt": at,
        }
        self.participations.append(part)
        return part

    def add_participation(
        self, event_id: str, contact_id: str, state: str, *, at: datetime | None = None
    ) -> dict[str, Any]:
        """Record a webinar participation state change for a contact."""
        with self.lock:
            if str(event_id) not in self.marketing_events:
                raise not_found(f"Marketing event {event_id} does not exist")
            return self._insert_participation(event_id, contact_id, state, at or self.clock.now())

    def add_marketing_event(self, event: MarketingEventSeed) -> None:
        """Register a marketing event (webinar)."""
        with self.lock:
            self.marketing_events[event.id] = event
            self.marketing_event_meta[event.id] = {
                "createdAt": self.clock.now(),
                "cancelled": False,
            }

    # ------------------------------------------------------------------ lists

    def create_list(self, name: str, processing_type: str, object_type_id: str) -> ListRecord:
        """A contact list; only MANUAL and SNAPSHOT lists take explicit memberships."""
        with self.lock:
            if object_type_id != "0-1":
                raise validation(
                    f"Unsupported objectTypeId {object_type_id}; the sandbox holds contacts (0-1)"
                )
            if processing_type not in ("MANUAL", "SNAPSHOT", "DYNAMIC"):
                raise validation(f"Invalid processingType {processing_type}")
            # names are unique whatever their case: HubSpot finds a list by name ignoring it
            if any(lst.name.casefold() == name.casefold() for lst in self.lists.values()):
                raise HubSpotApiError(
                    400,
                    "VALIDATION_ERROR",
                    f"A list named '{name}' already exists.",
                    sub_category="ILS.LIST_NAME_ALREADY_EXISTS",
                )
            now = self.clock.now()
            lst = ListRecord(str(self._next_list_id), name, processing_type, now, now)
            self._next_list_id += 1
            self.lists[lst.list_id] = lst
            return lst

    def find_list(self, object_type_id: str, name: str) -> ListRecord:
        """A list by object type and name, the name's case ignored (404 otherwise)."""
        with self.lock:
            for lst in self.lists.values():
                if object_type_id == "0-1" and lst.name.casefold() == name.casefold():
                    return lst
        raise not_found(f"List with name {name} and object type {object_type_id} does not exist")

    def get_list(self, list_id: str) -> ListRecord:
        """A list by id (404 otherwise)."""
        lst = self.lists.get(str(list_id))
        if lst is None:
            raise not_found(f"List {list_id} does not exist")
        return lst

    def change_memberships(
        self, list_id: str, add: Iterable[str], remove: Iterable[str]
    ) -> dict[str, list[str]]:
        """Add/remove record ids; answers `MembershipsUpdateResponse`."""
        with self.lock:
            lst = self.get_list(list_id)
            if lst.processing_type not in ("MANUAL", "SNAPSHOT"):
                raise validation(
                    f"List {list_id} is a {lst.processing_type} list; memberships can only be "
                    "changed for MANUAL or SNAPSHOT lists"
                )
            added, removed, missing = [], [], []
            now = self.clock.now()
            for rid in add:
                cid = self.resolve_id(str(rid))
                rec = self.contacts.get(cid)
                if rec is None or rec.archived:
                    missing.append(str(rid))
                    continue
                if cid not in lst.members:
                    lst.members[cid] = now
                    added.append(cid)
            for rid in remove:
                cid = self.resolve_id(str(rid))
                if cid in lst.members:
                    del lst.members[cid]
                    removed.append(cid)
                elif cid not in self.contacts:
                    missing.append(str(rid))
            if added or removed:
                lst.updated_at = now
                lst.version += 1
            return {
                "recordsIdsAdded": added,
                "recordIdsRemoved": removed,
                "recordIdsMissing": missing,
            }

    def list_json(self, lst: ListRecord) -> dict[str, Any]:
        """`PublicObjectList`."""
        return {
            "listId": lst.list_id,
            "listVersion": lst.version,
            "name": lst.name,
            "objectTypeId": "0-1",
            "processingStatus": "COMPLETE",
            "processingType": lst.processing_type,
            "size": len(lst.members),
            "createdAt": iso(lst.created_at),
            "updatedAt": iso(lst.updated_at),
            "filtersUpdatedAt": iso(lst.created_at),
        }

    # ------------------------------------------------------------------ stats / dumps

    def record_counts(self) -> dict[str, int]:
        """Counts by object for `/__sandbox__/stats`."""
        with self.lock:
            return {
                "contacts": len(self._live),
                "contacts_archived": len(self._archived),
                "contacts_merged": sum(1 for c in self.contacts.values() if c.merged_into),
                "owners": len(self.owners),
                "email_events": len(self.email_events),
                "forms": len(self.forms),
                "form_submissions": sum(len(s) for s in self.form_submissions.values()),
                "page_views": sum(len(v) for v in self.page_views.values()),
                "marketing_events": len(self.marketing_events),
                "participations": len(self.participations),
                "lists": len(self.lists),
                "properties": len(self.properties),
            }

    def dump(self, obj: str) -> list[dict[str, Any]] | None:
        """Everything of one object type as JSON-ready dicts (None for an unknown type)."""
        with self.lock:
            if obj == "contacts":
                return [
                    {
                        "id": c.id,
                        "properties": dict(c.props),
                        "createdAt": iso(c.created_at),
                        "updatedAt": iso(c.updated_at),
                        "archived": c.archived,
                        "mergedInto": c.merged_into,
                        "mergedIds": list(c.merged_ids),
                    }
                    for c in sorted(self.contacts.values(), key=lambda c: int(c.id))
                ]
            if obj == "email_events":
                return [self._email_event_json(ev) for ev in self.email_events]
            if obj == "form_submissions":
                return [
                    {
                        "formGuid": guid,
                        "contactId": s.contact_id,
                        **s.json(),
                    }
                    for guid, subs in self.form_submissions.items()
                    for s in subs
                ]
            if obj == "page_views":
                return [
                    {
                        "id": p.id,
                        "contactId": p.contact_id,
                        "occurredAt": iso(p.occurred_at),
                        "url": p.url,
                        "title": p.title,
                        "sessionId": p.session_id,
                    }
                    for views in self.page_views.values()
                    for p in views
                ]
            if obj == "participations":
                return [
                    {k: (iso(v) if isinstance(v, datetime) else v) for k, v in p.items()}
                    for p in self.participations
                ]
            if obj == "lists":
                return [
                    {**self.list_json(lst), "members": sorted(lst.members, key=int)}
                    for lst in self.lists.values()
                ]
            if obj == "properties":
                return list(self.properties.values())
            if obj == "owners":
                return list(self.owners)
            if obj == "forms":
                return list(self.forms.values())
            if obj == "marketing_events":
                return [
                    {
                        "id": e.id,
                        "externalEventId": e.external_event_id,
                        "name": e.name,
                        "eventType": e.event_type,
                        "start": iso(e.start),
                        "end": iso(e.end),
                        "organizer": e.organizer,
                    }
                    for e in self.marketing_events.values()
                ]
            return None


def _unsubscribes(event: Mapping[str, Any]) -> bool:
    """A STATUSCHANGE that unsubscribes the recipient from all email."""
    return (
        event.get("type") == "STATUSCHANGE"
        and event.get("portalSubscriptionStatus") == "UNSUBSCRIBED"
    )


@dataclass(slots=True)
class Submission:
    """A form submission as the portal files it: its legacy JSON is `json()`, built when read
    (a 100,000-contact portal holds over 100,000 of them)."""

    conversion_id: str
    submitted_at: int  # ms
    values: Mapping[str, Any]  # field name -> value (rendered with str())
    page_url: str
    contact_id: str | None  # the contact it counts for (resolved through merges)

    def key(self) -> tuple[int, str]:
        """The legacy endpoint's order (newest first when reversed) and its cursor."""
        return self.submitted_at, self.conversion_id

    def json(self) -> dict[str, Any]:
        return {
            "conversionId": self.conversion_id,
            "submittedAt": self.submitted_at,
            "values": [{"name": k, "value": str(v)} for k, v in self.values.items()],
            "pageUrl": self.page_url,
        }


def _event_key(ev: EmailEventSeed) -> tuple[int, str]:
    """The v1 API's order of email events: created (ms), then id."""
    return ms(ev.created), ev.id


def _view_key(pv: PageViewSeed) -> tuple[int, str]:
    """The events API's order of page views: occurredAt (ms), then id."""
    return ms(pv.occurred_at), pv.id


def _view_ms(pv: PageViewSeed) -> int:
    return ms(pv.occurred_at)


def _view_id(pv: PageViewSeed) -> str:
    return pv.id


def _in_order(items: Iterable[T], key: Callable[[T], Any]) -> list[T]:
    """`items` sorted by `key`, without building every key when they are in order already
    (a generated dataset's events are)."""
    out = list(items)
    keys = map(key, out)
    prev = next(keys, None)
    for k in keys:
        if k < prev:
            out.sort(key=key)
            break
        prev = k
    return out


# the rendered fields an email event's `extra` could override (see `_email_event_json`)
_CORE_EVENT_FIELDS = frozenset(("type", "recipient", "created", "emailCampaignId"))


@dataclass(slots=True)
class _EventView:
    """The fields of an email event as its rendered JSON has them, without rendering it
    (unless its `extra` overrides one of them, which only a hand-made event can do)."""

    type: str
    recipient: str
    created: int  # ms
    campaign_id: Any
    unsubscribes: bool

    @classmethod
    def of(cls, ev: EmailEventSeed, state: HubSpotState) -> _EventView:
        if ev.extra and not _CORE_EVENT_FIELDS.isdisjoint(ev.extra):
            d = state._email_event_json(ev)
            return cls(str(d["type"]), str(d["recipient"]), int(d["created"]),
                       d["emailCampaignId"], _unsubscribes(d))
        return cls(
            ev.type, ev.recipient, ms(ev.created), int(ev.email_campaign_id),
            ev.type == "STATUSCHANGE"
            and bool(ev.extra) and ev.extra.get("portalSubscriptionStatus") == "UNSUBSCRIBED",
        )


_FIELD_TYPES = {
    "email": "email",
    "text": "single_line_text",
    "string": "single_line_text",
    "single_line_text": "single_line_text",
    "textarea": "multi_line_text",
    "multi_line_text": "multi_line_text",
    "select": "dropdown",
    "dropdown": "dropdown",
    "radio": "radio",
    "checkbox": "multiple_checkboxes",
    "multiple_checkboxes": "multiple_checkboxes",
    "phone": "phone",
    "phonenumber": "phone",
    "number": "number",
    "booleancheckbox": "single_checkbox",
    "single_checkbox": "single_checkbox",
    "date": "datepicker",
    "datepicker": "datepicker",
}


def _form_field(fd: Mapping[str, Any]) -> dict[str, Any]:
    """A form field of the seed as a v3 form field (one of the spec's field schemas)."""
    ftype = _FIELD_TYPES.get(str(fd.get("fieldType", "text")).lower(), "single_line_text")
    name = str(fd.get("name"))
    out: dict[str, Any] = {
        "objectTypeId": "0-1",
        "name": name,
        "label": str(fd.get("label", name)),
        "required": bool(fd.get("required", name == "email")),
        "hidden": False,
        "fieldType": ftype,
        "dependentFields": [],
    }
    if ftype == "email":
        out["validation"] = {"blockedEmailDomains": [], "useDefaultBlockList": False}
    if ftype == "phone":
        out["validation"] = {"minAllowedDigits": 7, "maxAllowedDigits": 20}
        out["useCountryCodeSelect"] = False
    if ftype in ("dropdown", "radio", "multiple_checkboxes"):
        opts = fd.get("options") or []
        out["options"] = [
            {
                "label": str(o.get("label", o.get("value")) if isinstance(o, dict) else o),
                "value": str(o.get("value") if isinstance(o, dict) else o),
                "displayOrder": i,
            }
            for i, o in enumerate(opts)
        ]
        out["defaultValues"] = []
    if ftype == "number":
        out["validation"] = {"minAllowedDigits": 0, "maxAllowedDigits": 20}
    return out
