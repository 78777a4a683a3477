"""HubSpot over httpx, every call through the shared HTTP policy. Read-side calls for the pull.

Pages are returned one at a time; callers stream them, so memory stays flat however large the
account. Every answer carries the server's time (`Date` header): bookmarks compare server
timestamps with server time, never with our clock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import orjson

from connector.clock import Clock, SystemClock
from connector.config import Config
from connector.errors import FatalError, RequestFailed
from connector.http import DESCRIBE, LIMITER, HttpPolicy, make_httpx_client
from connector.hubspot import settings as hs
from connector.hubspot.policy import build_hubspot_policy
from connector.hubspot.properties import create_missing_properties

__all__ = ["HubSpotClient", "ListMembershipChange", "Page", "build_hubspot_policy"]

_JSON_HEADERS = {"Content-Type": "application/json"}


@dataclass(frozen=True, slots=True)
class Page:
    """One page of an answer: its records, the cursor to the next page, and server time."""

    results: list[dict[str, Any]]
    next_after: str | None
    server_time: datetime | None
    total: int | None = None
    raw: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class ListMembershipChange:
    """What HubSpot reported for records sent to a list: added, and missing (unknown or
    deleted); ids already in the list are in neither."""

    added: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


def _server_time(response: httpx.Response) -> datetime | None:
    value = response.headers.get("date")
    if not value:
        return None
    try:
        return parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None


class HubSpotClient:
    """The HubSpot calls the pull makes. `transport` is the seam for tests."""

    def __init__(
        self,
        base_url: str,
        token: str,
        policy: HttpPolicy,
        *,
        api_version: str = "v3",
        transport: httpx.BaseTransport | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.policy = policy
        self.clock = clock or policy.clock or SystemClock()
        self.api_version = api_version
        self.http = make_httpx_client(
            policy,
            base_url,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            transport=transport,
        )
        self.calls = 0

    @classmethod
    def from_config(
        cls, config: Config, *, clock: Clock | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> HubSpotClient:
        token = config.secrets.hubspot_token
        if token is None:
            raise ValueError("HANDSHAKE_HUBSPOT_TOKEN is not set")
        return cls(
            config.hubspot.base_url,
            token.get_secret_value(),
            build_hubspot_policy(config, clock),
            api_version=config.hubspot.api_version,
            transport=transport,
            clock=clock,
        )

    def close(self) -> None:
        self.http.close()

    # --- plumbing ---------------------------------------------------------------------------

    @property
    def contacts_path(self) -> str:
        if self.api_version == "v3":
            return hs.CONTACTS_V3
        return hs.CONTACTS_DATED.format(version=self.api_version)

    def request(
        self, method: str, path: str, *, params: Sequence[tuple[str, Any]] | None = None,
        json: Any = None, limiter: str | None = None, describe: str = "",
    ) -> tuple[dict[str, Any], datetime | None]:
        extensions: dict[str, Any] = {DESCRIBE: describe}
        if limiter:
            extensions[LIMITER] = limiter
        self.calls += 1
        # orjson encodes a body as httpx's `json=` does (compact, UTF-8), several times faster:
        # a write-back sends a hundred contacts' properties a request
        response = self.http.request(
            method, path, params=list(params or []),
            content=None if json is None else orjson.dumps(json),
            headers=None if json is None else _JSON_HEADERS, extensions=extensions,
        )
        # orjson: a page of 1,000 email events decodes several times faster than with `json`
        body = orjson.loads(response.content) if response.content else {}
        # An httpx answer and the stream bound to it refer to each other, so its body (a page:
        # hundreds of kilobytes) outlived it until the cyclic collector came by, which a stage
        # runs rarely: untied, it is freed as soon as the page is.
        del response.stream
        return body, _server_time(response)

    @staticmethod
    def _next_after(body: dict[str, Any]) -> str | None:
        nxt = (body.get("paging") or {}).get("next") or {}
        after = nxt.get("after")
        return str(after) if after not in (None, "") else None

    # --- contacts -----------------------------------------------------------------------------

    def property_chunks(self, properties: Sequence[str]) -> list[list[str]]:
        """Split a property list so each GET stays under the URL length HubSpot accepts."""
        chunks: list[list[str]] = [[]]
        size = 0
        for name in properties:
            cost = len(urlencode({"properties": name})) + 1
            if chunks[-1] and size + cost > hs.MAX_QUERY_CHARS:
                chunks.append([])
                size = 0
            chunks[-1].append(name)
            size += cost
        return chunks

    def list_contacts(
        self, properties: Sequence[str], *, after: str | None = None, archived: bool = False
    ) -> Page:
        """One page of the contacts list (ordered by id), with every requested property.

        When the property list is too long for one URL, the page is read with the first chunk
        and completed by a batch read (POST) of the other properties.
        """
        chunks = self.property_chunks(properties)
        params: list[tuple[str, Any]] = [("limit", hs.CONTACTS_LIST_LIMIT),
                                         ("archived", str(archived).lower())]
        params += [("properties", p) for p in chunks[0]]
        if after:
            params.append(("after", after))
        body, when = self.request("GET", self.contacts_path, params=params,
                                   describe="list contacts")
        results = list(body.get("results") or [])
        if len(chunks) > 1 and results and not archived:
            rest = [p for chunk in chunks[1:] for p in chunk]
            extra = self.batch_read_contacts([r["id"] for r in results], rest)
            by_id = {r["id"]: r for r in extra}
            for record in results:
                record.setdefault("properties", {}).update(
                    (by_id.get(record["id"]) or {}).get("properties") or {}
                )
        return Page(results, self._next_after(body), when, raw=body)

    def batch_read_contacts(self, ids: Sequence[str], properties: Sequence[str], *,
                            archived: bool = False) -> list[dict[str, Any]]:
        """Contacts by id, 100 a call (`archived`: among the archived ones); a merged-away id
        answers with its surviving contact, an unknown one is left out."""
        out: list[dict[str, Any]] = []
        for start in range(0, len(ids), hs.BATCH_LIMIT):
            body, _ = self.request(
                "POST", f"{self.contacts_path}/batch/read",
                params=[("archived", "true")] if archived else None,
                json={"inputs": [{"id": i} for i in ids[start:start + hs.BATCH_LIMIT]],
                      "properties": list(properties), "propertiesWithHistory": []},
                describe="batch read contacts",
            )
            out.extend(body.get("results") or [])
        return out

    def search_contacts(self, body: dict[str, Any]) -> Page:
        """One page of a contacts search (its own per-second limit applies)."""
        answer, when = self.request(
            "POST", f"{self.contacts_path}/search", json=body, limiter="search",
            describe="search contacts",
        )
        return Page(list(answer.get("results") or []), self._next_after(answer), when,
                    total=answer.get("total"), raw=answer)

    # --- engagement ---------------------------------------------------------------------------

    def email_events(self, start_ms: int, end_ms: int, *, offset: str | None = None) -> Page:
        """Legacy email events in [start_ms, end_ms], paged by `offset` while `hasMore`."""
        params: list[tuple[str, Any]] = [("startTimestamp", start_ms), ("endTimestamp", end_ms),
                                         ("limit", hs.EMAIL_EVENTS_LIMIT)]
        if offset:
            params.append(("offset", offset))
        body, when = self.request("GET", hs.EMAIL_EVENTS, params=params,
                                   describe="email events")
        nxt = str(body["offset"]) if body.get("hasMore") and body.get("offset") else None
        return Page(list(body.get("events") or []), nxt, when, raw=body)

    def forms(self, *, after: str | None = None) -> Page:
        params: list[tuple[str, Any]] = [("limit", hs.FORMS_LIMIT)]
        if after:
            params.append(("after", after))
        body, when = self.request("GET", hs.FORMS, params=params, describe="forms")
        return Page(list(body.get("results") or []), self._next_after(body), when, raw=body)

    def form_submissions(self, guid: str, *, after: str | None = None) -> Page:
        """Submissions of one form, newest first."""
        params: list[tuple[str, Any]] = [("limit", hs.FORM_SUBMISSIONS_LIMIT)]
        if after:
            params.append(("after", after))
        body, when = self.request("GET", hs.FORM_SUBMISSIONS.format(guid=guid), params=params,
                                   describe="form submissions")
        return Page(list(body.get("results") or []), self._next_after(body), when, raw=body)

    def page_views(self, contact_id: str, *, occurred_after: str | None = None,
                   after: str | None = None) -> Page:
        params: list[tuple[str, Any]] = [
            ("objectType", "contact"), ("objectId", contact_id),
            ("eventType", hs.PAGE_VIEW_EVENT), ("limit", hs.WEB_EVENTS_LIMIT),
        ]
        if occurred_after:
            params.append(("occurredAfter", occurred_after))
        if after:
            params.append(("after", after))
        body, when = self.request("GET", hs.WEB_EVENTS, params=params, describe="page views")
        return Page(list(body.get("results") or []), self._next_after(body), when, raw=body)

    def portal_page_views(self, occurred_after: str, occurred_before: str, *,
                          after: str | None = None) -> Page:
        """Page views of every contact in [occurred_after, occurred_before], oldest first
        (the events API without `objectId`), paged by `after`."""
        params: list[tuple[str, Any]] = [
            ("objectType", "contact"), ("eventType", hs.PAGE_VIEW_EVENT),
            ("occurredAfter", occurred_after), ("occurredBefore", occurred_before),
            ("sort", "occurredAt"), ("limit", hs.WEB_EVENTS_LIMIT),
        ]
        if after:
            params.append(("after", after))
        body, when = self.request("GET", hs.WEB_EVENTS, params=params,
                                  describe="page views of the portal")
        return Page(list(body.get("results") or []), self._next_after(body), when, raw=body)

    def owner_emails(self) -> dict[str, str]:
        """HubSpot owner id -> email, for routing a Lead to its HubSpot owner in Salesforce."""
        out: dict[str, str] = {}
        after: str | None = None
        while True:
            params: list[tuple[str, Any]] = [("limit", hs.OWNERS_LIMIT)]
            if after:
                params.append(("after", after))
            body, _ = self.request("GET", hs.OWNERS, params=params, describe="owners")
            for owner in body.get("results") or []:
                if owner.get("id") and owner.get("email"):
                    out[str(owner["id"])] = str(owner["email"]).lower()
            after = self._next_after(body)
            if not after:
                return out

    def marketing_events(self, *, after: str | None = None) -> Page:
        params: list[tuple[str, Any]] = [("limit", hs.MARKETING_EVENTS_LIMIT)]
        if after:
            params.append(("after", after))
        body, when = self.request("GET", hs.MARKETING_EVENTS, params=params,
                                   describe="marketing events")
        return Page(list(body.get("results") or []), self._next_after(body), when, raw=body)

    def participations(self, event_id: str, *, after: str | None = None) -> Page:
        params: list[tuple[str, Any]] = [("limit", hs.PARTICIPATIONS_LIMIT)]
        if after:
            params.append(("after", after))
        body, when = self.request("GET", hs.PARTICIPATIONS.format(event_id=event_id),
                                   params=params, describe="webinar participations")
        return Page(list(body.get("results") or []), self._next_after(body), when, raw=body)

    # --- pull-back writes: properties, lifecycle moves, lists ------------------------------

    def property_options(self, name: str) -> list[str]:
        """The option values of a contact enumeration property (e.g. `hs_lead_status`), in
        HubSpot's display order; stages and statuses are customisable, so read, never assume."""
        body, _ = self.request("GET", hs.PROPERTY.format(name=quote(name, safe="")),
                               describe=f"read contact property {name}")
        options = sorted(body.get("options") or [], key=lambda o: o.get("displayOrder", 0))
        return [str(o["value"]) for o in options if o.get("value") not in (None, "")]

    def ensure_properties(self, definitions: Sequence[Mapping[str, Any]]) -> list[str]:
        """Create the contact properties of `definitions` HubSpot lacks (one read, one create
        each); returns the names created."""
        return create_missing_properties(self, definitions)

    def update_contacts(self, updates: Sequence[tuple[str, Mapping[str, str]]], *,
                        describe: str = "update contacts") -> int:
        """Batch-update contacts (id, properties), at most 100 a request; returns the number
        of requests made."""
        path = self.contacts_path + hs.CONTACTS_BATCH_UPDATE
        requests = 0
        for start in range(0, len(updates), hs.WRITE_BATCH_LIMIT):
            chunk = updates[start : start + hs.WRITE_BATCH_LIMIT]
            self.request("POST", path, json={"inputs": [
                {"id": cid, "properties": dict(props)} for cid, props in chunk]},
                describe=f"{describe} ({len(chunk)})")
            requests += 1
        return requests

    def move_lifecycle_back(self, updates: Sequence[tuple[str, Mapping[str, str]]],
                            stage: str) -> int:
        """Set an earlier lifecycle stage the way HubSpot allows it: per batch of at most 100,
        one request clearing the stage, then one setting `stage` with each contact's other
        properties (a backward set alone answers 200 and changes nothing). Returns the number
        of requests made."""
        requests = 0
        for start in range(0, len(updates), hs.WRITE_BATCH_LIMIT):
            chunk = updates[start : start + hs.WRITE_BATCH_LIMIT]
            requests += self.update_contacts(
                [(cid, {hs.LIFECYCLE_PROPERTY: ""}) for cid, _ in chunk],
                describe="clear the lifecycle stage of contacts")
            requests += self.update_contacts(
                [(cid, {**props, hs.LIFECYCLE_PROPERTY: stage}) for cid, props in chunk],
                describe=f"move contacts back to lifecycle stage {stage}")
        return requests

    def find_list(self, name: str) -> dict[str, Any] | None:
        """The contact list named `name` (HubSpot ignores the case), or None."""
        path = hs.LIST_BY_NAME.format(object_type_id=hs.CONTACT_OBJECT_TYPE_ID,
                                      name=quote(name, safe=""))
        try:
            body, _ = self.request("GET", path, describe=f"find contact list {name!r}")
        except RequestFailed as exc:
            if exc.status == 404:
                return None
            raise
        found = body.get("list")
        return found if isinstance(found, dict) else None

    def manual_list(self, name: str) -> str:
        """The id of the contact list named `name`, created as a MANUAL list when missing."""
        found = self.find_list(name)
        if found is None:
            body = {"name": name, "objectTypeId": hs.CONTACT_OBJECT_TYPE_ID,
                    "processingType": hs.LIST_PROCESSING_MANUAL}
            try:
                made, _ = self.request("POST", hs.LISTS, json=body,
                                       describe=f"create contact list {name!r}")
                found = made.get("list") or {}
            except RequestFailed as exc:
                taken = isinstance(exc.body, dict) and exc.body.get("subCategory") == hs.LIST_NAME_TAKEN
                if not taken:
                    raise
                found = self.find_list(name)  # created meanwhile by another instance
                if found is None:
                    raise
        kind = found.get("processingType")
        if kind not in hs.MEMBERSHIP_LISTS:
            error = FatalError(
                f"the HubSpot list {name!r} is a {kind} list: records can be added only to "
                f"MANUAL or SNAPSHOT lists", system=hs.HUBSPOT_SYSTEM)
            error.fix = ("rename that list in HubSpot, or name another list for re-engagement "
                         "in the configuration")
            raise error
        return str(found["listId"])

    def add_to_list(self, list_id: str, record_ids: Sequence[str]) -> ListMembershipChange:
        """Add records to a MANUAL or SNAPSHOT list, in batches; ids already in it are
        ignored by HubSpot, unknown ones come back as missing."""
        change = ListMembershipChange()
        path = hs.LIST_MEMBERSHIPS_ADD.format(list_id=quote(str(list_id), safe=""))
        for start in range(0, len(record_ids), hs.LIST_MEMBERSHIPS_BATCH):
            chunk = [str(i) for i in record_ids[start : start + hs.LIST_MEMBERSHIPS_BATCH]]
            body, _ = self.request("PUT", path, json=chunk,
                                   describe=f"add {len(chunk)} contacts to list {list_id}")
            change.added.extend(str(i) for i in body.get("recordsIdsAdded") or [])
            change.missing.extend(str(i) for i in body.get("recordIdsMissing") or [])
        return change
