"""Salesforce over simple-salesforce, every call through the shared HTTP policy and the
allocation governor. The only module (besides the sandbox) that imports simple-salesforce.

    client = SalesforceClient.from_config(config)
    found = client.match_emails(["ada@example.com", ...])      # batched SOQL, escaped
    results = client.upsert("Lead", records, auto_assign=False)  # in order, 1,000 a call
    client.calls                                               # REST calls this run

What it gives the push engine: `describe` (cached per run), `lead_statuses` (read from the
LeadStatus object), matching by email and by external id, and sObject Collections writes
whose per-record failures come back classified (`WriteResult.rejection`) while the rest of the
batch succeeds: up to 200 records in one collection call, more as composite calls carrying 5
collections of 200 each (one API call for 1,000 records). A whole-call failure, or a collection
subrequest refused as a whole, raises the policy's error; a spent share raises
`QuotaExhausted` before anything is sent. Once an object's describe is read, a record naming a
field the object lacks is refused without being sent (INVALID_FIELD, as Salesforce answers it),
since Salesforce would refuse the whole call of 200 over it.
"""

from __future__ import annotations

import json
import logging
import string
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import Any, Self, TypeVar
from urllib.parse import quote_plus, urlsplit

import orjson
import requests
from simple_salesforce.api import Salesforce
from simple_salesforce.exceptions import SalesforceError
from simple_salesforce.format import format_soql, quote_soql_value

from connector.clock import Clock, SystemClock
from connector.config import Config
from connector.errors import HandshakeError, RequestFailed, RetriableError
from connector.http import HttpPolicy, ResponseView, make_requests_session
from connector.salesforce import settings as ss
from connector.salesforce.auth import (
    Credentials,
    Login,
    PinnedCAAdapter,
    credentials_from_config,
    login,
)
from connector.salesforce.bulk import bulk_upsert
from connector.salesforce.errors import classify_record_errors
from connector.salesforce.governor import AllocationGovernor, GovernorSnapshot
from connector.salesforce.policy import build_salesforce_policy
from connector.salesforce.reads import CompositeReads
from connector.salesforce.records import (
    ChangePage,
    ContactMatch,
    EmailMatches,
    ExternalIdMatches,
    LeadMatch,
    LeadStatus,
    SalesVocabulary,
    WriteResult,
    email_key,
)
from connector.salesforce.settings import SALESFORCE_SYSTEM

__all__ = [
    "ContactMatch",
    "EmailMatches",
    "ExternalIdMatches",
    "LeadMatch",
    "LeadStatus",
    "SalesVocabulary",
    "SalesforceClient",
    "WriteResult",
    "build_salesforce_policy",
]

# What `quote_plus` leaves as it is (a space becomes "+"): every other ASCII character becomes
# "%XX", three characters for one.
_PLAIN = (string.ascii_letters + string.digits + "_.-~ ").encode()
_COMMA_QUOTED = len(quote_plus(","))


def quoted_length(text: str) -> int:
    """`len(quote_plus(text))` without building the quoted text (measured for every value a
    chunked query carries): an ASCII text's length plus two for each character quoted."""
    if text.isascii():
        return len(text) + 2 * len(text.encode().translate(None, _PLAIN))
    return len(quote_plus(text))


T = TypeVar("T")

log = logging.getLogger("connector.salesforce")


class _Salesforce(Salesforce):
    """simple-salesforce with its answers decoded by orjson into plain dicts (it decodes
    them into OrderedDicts through a Python hook, a cost on every query page and write)."""

    def parse_result_to_json(self, result: requests.Response) -> Any:
        return orjson.loads(result.content)


def _without_attributes(record: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k != "attributes"}


def _unknown_columns(sobject: str, names: Sequence[str]) -> dict[str, Any]:
    """The answer Salesforce gives for columns the object lacks, as one record's result."""
    return {
        "success": False,
        "errors": [
            {
                "statusCode": "INVALID_FIELD",
                "message": f"No such column '{name}' on sobject of type {sobject}",
                "fields": [name],
            }
            for name in names
        ],
    }


def _composite_groups(batches: Sequence[_Batch], step: int) -> Iterator[list[_Batch]]:
    """Batches `step` at a time, a group also closed before its body passes
    COMPOSITE_MAX_BODY_BYTES (long Task descriptions make large bodies)."""
    group: list[_Batch] = []
    size = 0
    for batch in batches:
        cost = len(batch.encoded)
        if group and (len(group) >= step or size + cost > ss.COMPOSITE_MAX_BODY_BYTES):
            yield group
            group, size = [], 0
        group.append(batch)
        size += cost
    if group:
        yield group


@dataclass(frozen=True)
class _Batch:
    """Up to 200 input records from `start`: those to send, and those refused unsent (by
    position in the batch) because they name columns the object lacks — Salesforce would
    refuse the whole collection call over one of them."""

    sobject: str
    start: int
    records: Sequence[Mapping[str, Any]]
    refused: dict[int, list[str]]
    sent: list[Mapping[str, Any]]

    @classmethod
    def of(
        cls,
        sobject: str,
        start: int,
        records: Sequence[Mapping[str, Any]],
        known: set[str] | None,
    ) -> _Batch:
        unknown = {
            i: [k for k in r if k != "attributes" and k.lower() not in known]
            for i, r in enumerate(records)
        } if known is not None else {}
        refused = {i: names for i, names in unknown.items() if names}
        sent = [r for i, r in enumerate(records) if i not in refused]
        return cls(sobject, start, records, refused, sent)

    def body(self) -> dict[str, Any]:
        """The sObject Collections body of the records to send."""
        return {
            "allOrNone": False,
            "records": [
                {"attributes": {"type": self.sobject}, **_without_attributes(r)}
                for r in self.sent
            ],
        }

    @cached_property
    def encoded(self) -> bytes:
        """`body()` as the JSON sent, encoded once: measured for the composite's size limit,
        then sent alone or embedded in a composite body."""
        return orjson.dumps(self.body())


def _answers(what: str, answer: Any, sent: int) -> list[Any]:
    """A collection call's answer: one result per record sent, else the call failed."""
    if not isinstance(answer, list) or len(answer) != sent:
        raise RequestFailed(
            f"{what}: Salesforce answered {len(answer or [])} results for {sent} records",
            system=SALESFORCE_SYSTEM,
        )
    return answer


# --- construction -----------------------------------------------------------------------


class SalesforceClient:
    """The Salesforce calls the push makes. One instance per run: `describe` answers and
    `calls` are per run."""

    def __init__(
        self,
        credentials: Credentials,
        policy: HttpPolicy,
        *,
        governor: AllocationGovernor,
        ca_bundle: str = "",
        external_id_field: str = "Handshake_Id__c",
    ) -> None:
        self.credentials = credentials
        self.policy = policy
        self.governor = governor
        self.external_id_field = external_id_field
        self.calls = 0
        self.calls_by_kind: Counter[str] = Counter()
        self.logins = 0
        self._lock = threading.Lock()
        self._refresh_lock = threading.Lock()
        self._sent_with = threading.local()  # the session id this thread's call went out with
        self._describes: dict[str, dict[str, Any]] = {}
        self._lead_statuses: list[LeadStatus] | None = None
        self._vocabulary: SalesVocabulary | None = None
        self._assignment_rule: str | None = None  # "" once read and absent
        if credentials.renewable:
            policy.on_session_expired = self._refresh
        # logins go through their own plain session, each wrapped in one policy call
        self._login_http = requests.Session()
        self._login_http.mount("https://", PinnedCAAdapter(ca_bundle))
        self._login_http.mount("http://", PinnedCAAdapter(ca_bundle))
        # one pooled connection per request the concurrency cap lets through
        pool = max(policy.settings.concurrency.values(), default=10)
        self.http = make_requests_session(
            policy, verify=ca_bundle or True, inner=PinnedCAAdapter(ca_bundle, pool_maxsize=pool)
        )
        self.http.hooks["response"].append(self._observe)
        try:
            first = self._login()
        except BaseException:
            self.close()
            raise
        self.user_id = first.user_id  # the integration user: CreatedById of what we write
        self.sf = _Salesforce(
            session_id=first.session_id,
            instance_url=first.instance_url,
            version=credentials.api_version,
            session=self.http,
        )

    @classmethod
    def from_config(
        cls,
        config: Config,
        *,
        clock: Clock | None = None,
        snapshot: GovernorSnapshot | None = None,
    ) -> SalesforceClient:
        """A logged-in client for the configured org. `snapshot` is the previous run's
        `client.governor.snapshot()`, so Handshake's share holds across runs."""
        credentials = credentials_from_config(config)
        sf = config.salesforce
        clock = clock or SystemClock()
        return cls(
            credentials,
            build_salesforce_policy(config, clock=clock),
            governor=AllocationGovernor(sf.daily_allocation_share, clock=clock, snapshot=snapshot),
            ca_bundle=sf.ca_bundle,
            external_id_field=sf.external_id_field,
        )

    def close(self) -> None:
        """Close both HTTP sessions."""
        self.http.close()
        self._login_http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- plumbing ---------------------------------------------------------------------------

    def _login(self) -> Login:
        with self._lock:
            self.logins += 1
        return login(self.credentials, self.policy, self._login_http)

    def _refresh(self) -> Mapping[str, str]:
        """The policy's session-expired hook: log in again, tell simple-salesforce, and give
        the re-sent request its new Authorization header. Threads that hit the expiry together
        log in once: a call sent with a session another thread already renewed takes the new
        one."""
        with self._refresh_lock:
            if getattr(self._sent_with, "session", None) == self.sf.session_id:
                fresh = self._login()
                self.sf.session_id = fresh.session_id
                self.sf.headers["Authorization"] = f"Bearer {fresh.session_id}"
            self._sent_with.session = self.sf.session_id
            return {"Authorization": f"Bearer {self.sf.session_id}"}

    def _observe(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self.governor.observe(response.headers)

    def _call(self, kind: str, what: str, send: Callable[[], T]) -> T:
        """One REST call: refused before sending when the share is spent, then counted."""
        self.governor.take(what=what)
        with self._lock:
            self.calls += 1
            self.calls_by_kind[kind] += 1
        self._sent_with.session = self.sf.session_id
        try:
            return send()
        except SalesforceError as exc:
            # only a status the policy let through (none today) lands here; keep it redacted
            raise RequestFailed(
                self.policy.redact(f"{what}: HTTP {exc.status}: {exc.content!r}"),
                system=SALESFORCE_SYSTEM,
                status=exc.status,
            ) from None

    def rest_call(
        self, kind: str, what: str, method: str, path: str, **kwargs: Any
    ) -> requests.Response:
        """One REST request on the policy's session (for resources simple-salesforce has no
        call for), counted under `kind`; `path` is relative to the REST root. An error answer
        raises the policy's error."""
        headers = {"Authorization": f"Bearer {self.sf.session_id}", **kwargs.pop("headers", {})}
        url = f"{self.sf.base_url}{path}"

        def send() -> requests.Response:
            headers["Authorization"] = f"Bearer {self.sf.session_id}"
            return self.http.request(method, url, headers=headers, **kwargs)

        return self._call(kind, what, send)

    @property
    def write_calls(self) -> int:
        """Write calls (collection or composite: create, update, upsert) made this run."""
        return self.calls_by_kind["write"]

    # --- describe ---------------------------------------------------------------------------

    def describe(self, sobject: str) -> dict[str, Any]:
        """The object's describe, read once per client (run)."""
        cached = self._describes.get(sobject.lower())
        if cached is not None:
            return cached
        answer = self._call(
            "describe",
            f"describe {sobject}",
            lambda: self.sf.restful(ss.DESCRIBE.format(sobject=sobject)),
        )
        described: dict[str, Any] = dict(answer or {})
        self._describes[sobject.lower()] = described
        return described

    def known_fields(self, sobject: str) -> set[str] | None:
        """The object's field names in lower case if its describe was read this run, else
        None (no call is made for it)."""
        described = self._describes.get(sobject.lower())
        return {f["name"].lower() for f in described.get("fields", [])} if described else None

    def fields(self, sobject: str) -> dict[str, dict[str, Any]]:
        """The object's fields by API name (from the cached describe)."""
        return {f["name"]: f for f in self.describe(sobject).get("fields", [])}

    def lead_statuses(self) -> list[LeadStatus]:
        """The Lead Status values from the LeadStatus object, in their sort order (read once)."""
        if self._lead_statuses is None:
            soql = (
                f"SELECT {', '.join(ss.LEAD_STATUS_FIELDS)} FROM {ss.LEAD_STATUS} "
                "ORDER BY SortOrder"
            )
            self._lead_statuses = [
                LeadStatus(
                    label=row["MasterLabel"],
                    api_name=row.get("ApiName") or row["MasterLabel"],
                    sort_order=row.get("SortOrder"),
                    is_default=bool(row.get("IsDefault")),
                    is_converted=bool(row.get("IsConverted")),
                )
                for row in self.query(soql, what="lead statuses")
            ]
        return list(self._lead_statuses)

    def sales_vocabulary(self) -> SalesVocabulary:
        """Which Lead statuses convert, which Opportunity stages close and win, which Task
        statuses close, and every value of each: LeadStatus, OpportunityStage and TaskStatus
        read in one composite call (once per client)."""
        if self._vocabulary is None:
            reads = self.reads()
            for sobject, fields in ((ss.LEAD_STATUS, ss.LEAD_STATUS_FIELDS),
                                    (ss.OPPORTUNITY_STAGE, ss.OPPORTUNITY_STAGE_FIELDS),
                                    (ss.TASK_STATUS, ss.TASK_STATUS_FIELDS)):
                reads.add_soql(sobject, f"SELECT {', '.join(fields)} FROM {sobject}")
            rows: dict[str, list[dict[str, Any]]] = {}
            while reads.pending:
                for page in reads.call():
                    if isinstance(page, ChangePage):
                        rows.setdefault(page.tag, []).extend(page.rows)

            def names(found: Iterable[Mapping[str, Any]], flag: str = "") -> frozenset[str]:
                return frozenset(str(r.get("ApiName") or r["MasterLabel"])
                                 for r in found if not flag or r.get(flag))

            statuses, stages = rows.get(ss.LEAD_STATUS, []), rows.get(ss.OPPORTUNITY_STAGE, [])
            task_statuses = rows.get(ss.TASK_STATUS, [])
            if self._lead_statuses is None:
                self._lead_statuses = [
                    LeadStatus(label=r["MasterLabel"], api_name=r.get("ApiName")
                               or r["MasterLabel"], sort_order=r.get("SortOrder"),
                               is_default=bool(r.get("IsDefault")),
                               is_converted=bool(r.get("IsConverted")))
                    for r in sorted(statuses, key=lambda r: r.get("SortOrder") or 0)]
            self._vocabulary = SalesVocabulary(
                converted_statuses=names(statuses, "IsConverted"),
                closed_stages=names(stages, "IsClosed"),
                won_stages=names(stages, "IsWon"),
                closed_task_statuses=names(task_statuses, "IsClosed"),
                lead_statuses=names(statuses), stages=names(stages),
                task_statuses=names(task_statuses),
            )
        return self._vocabulary

    def forget_vocabulary(self) -> None:
        """Read the vocabulary again next time it is asked for (the org added a value)."""
        self._vocabulary = None

    def reads(self) -> CompositeReads:
        """A batch of reads sent as composite calls (queries, their pages, deleted checks)."""

        def send(what: str, body: dict[str, Any]) -> Any:
            return self._call("query", what,
                              self._send(ss.COMPOSITE, "POST", orjson.dumps(body), {}))

        def chunks(head: str, values: Sequence[str], tail: str,
                   repeats: int) -> Iterator[list[str]]:
            return self._chunks(head, values, tail=tail, repeats=repeats)

        return CompositeReads(root=urlsplit(self.sf.base_url).path, send=send,
                              policy=self.policy, chunks=chunks)

    # --- queries ----------------------------------------------------------------------------

    def query_pages(
        self, soql: str, *, what: str = "query", include_deleted: bool = False
    ) -> Iterator[list[dict[str, Any]]]:
        """A SOQL query's rows a page at a time (one call a page, by `nextRecordsUrl`), so the
        caller can store each page before the next is asked for. `include_deleted` goes through
        `queryAll`: deleted and merged records, and archived Tasks and Events, too."""
        page = self._call("query", what,
                          lambda: self.sf.query(soql, include_deleted=include_deleted))
        while True:
            yield [{k: v for k, v in row.items() if k != "attributes"}
                   for row in page.get("records") or []]
            next_url = page.get("nextRecordsUrl")
            if page.get("done", True) or not next_url:
                return
            page = self._call("query", f"{what} (next page)",
                              self._more(next_url, include_deleted=include_deleted))

    def modified_since(
        self,
        sobject: str,
        fields: Sequence[str],
        *,
        ids: Sequence[str],
        keys: Sequence[str] = (ss.ID,),
        since: datetime | None,
        include_deleted: bool = False,
    ) -> Iterator[list[dict[str, Any]]]:
        """Pages of the records of `sobject` whose `keys` (`Id`, or `WhoId` and `WhatId`) name
        one of `ids`, changed at or after `since` (every one when None), oldest change first:
        `SystemModstamp >= since ORDER BY SystemModstamp, Id` (many records share one
        stamp: the caller keeps a lookback and dedupes). The ids go in as few queries as the
        URI and SOQL limits allow."""
        wanted = list(dict.fromkeys(str(i) for i in ids if i))
        if not wanted:
            return
        where = ""
        if since is not None:
            # SOQL datetime literals: ISO-8601 UTC, seconds precision (flooring keeps `>=` safe)
            stamp = since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            where = format_soql(f"{ss.MODSTAMP} >= {{:literal}} AND ", stamp)
        select = ", ".join(dict.fromkeys([ss.ID, *fields]))
        head = f"SELECT {select} FROM {sobject} WHERE {where}"
        tail = f" ORDER BY {ss.MODSTAMP}, {ss.ID}"
        what = f"{sobject} changed since the bookmark"
        for chunk in self._chunks(head, wanted, tail=tail, repeats=len(keys)):
            matches = " OR ".join(format_soql(f"{key} IN {{}}", chunk) for key in keys)
            soql = head + (f"({matches})" if len(keys) > 1 else matches) + tail
            yield from self.query_pages(soql, what=what, include_deleted=include_deleted)

    def query(self, soql: str, *, what: str = "query") -> Iterator[dict[str, Any]]:
        """Every row of a SOQL query, page after page by `nextRecordsUrl` (one call a page)."""
        page = self._call("query", what, lambda: self.sf.query(soql))
        while True:
            for row in page.get("records") or []:
                yield {k: v for k, v in row.items() if k != "attributes"}
            next_url = page.get("nextRecordsUrl")
            if page.get("done", True) or not next_url:
                return
            page = self._call("query", f"{what} (next page)", self._more(next_url))

    def _more(self, next_url: str, *, include_deleted: bool = False) -> Callable[[], Any]:
        return lambda: self.sf.query_more(next_url, identifier_is_url=True,
                                          include_deleted=include_deleted)

    def _chunks(
        self, head: str, values: Sequence[str], *, tail: str = "", repeats: int = 1
    ) -> Iterator[list[str]]:
        """`values` split so `head + IN (...) + tail` stays under the URI and SOQL length
        limits (`repeats`: how many `IN` lists carry the same values)."""
        prefix = f"/services/data/v{self.credentials.api_version}/{ss.QUERY_ALL}/?q="
        clauses = " OR ".join(["WhatId IN ()"] * repeats)
        base_uri = len(prefix) + len(quote_plus(f"{head} ({clauses}){tail}"))
        base_soql = len(f"{head} ({clauses}){tail}")
        chunk: list[str] = []
        uri, soql = base_uri, base_soql
        for value in values:
            quoted = quote_soql_value(value)
            uri_cost = (quoted_length(quoted) + _COMMA_QUOTED) * repeats
            soql_cost = (len(quoted) + 1) * repeats
            if chunk and (
                uri + uri_cost > ss.MAX_QUERY_URI_CHARS or soql + soql_cost > ss.MAX_SOQL_CHARS
            ):
                yield chunk
                chunk, uri, soql = [], base_uri, base_soql
            chunk.append(value)
            uri += uri_cost
            soql += soql_cost
        if chunk:
            yield chunk

    def _match_query(
        self, sobject: str, fields: Sequence[str], where: str, values: Sequence[str]
    ) -> Iterator[dict[str, Any]]:
        select = list(dict.fromkeys([*fields, self.external_id_field]))
        head = f"SELECT {', '.join(select)} FROM {sobject} WHERE {where}"
        for chunk in self._chunks(head, values):
            soql = format_soql(head + " IN {values}", values=chunk)
            yield from self.query(soql, what=f"match {sobject} by {where}")

    def _contact(self, row: Mapping[str, Any]) -> ContactMatch:
        return ContactMatch(
            id=row["Id"],
            email=row.get("Email"),
            owner_id=row.get("OwnerId"),
            account_id=row.get("AccountId"),
            external_id=row.get(self.external_id_field),
        )

    def _lead(self, row: Mapping[str, Any]) -> LeadMatch:
        return LeadMatch(
            id=row["Id"],
            email=row.get("Email"),
            owner_id=row.get("OwnerId"),
            status=row.get("Status"),
            is_converted=bool(row.get("IsConverted")),
            converted_contact_id=row.get("ConvertedContactId"),
            converted_account_id=row.get("ConvertedAccountId"),
            external_id=row.get(self.external_id_field),
        )

    def open_leads_by_owner(
        self, owner_ids: Iterable[str], *, closed_statuses: Sequence[str] = ()
    ) -> dict[str, int]:
        """How many open Leads each of these users owns (not converted, Status not closed):
        the load routing's capacity caps are measured against. One aggregate query a chunk."""
        ids = sorted({i for i in owner_ids if i})
        if not ids:
            return {}
        where = f"{ss.LEAD} WHERE IsConverted = false"
        if closed_statuses:
            where += " AND " + format_soql("Status NOT IN {s}", s=list(closed_statuses))
        head = f"SELECT OwnerId, COUNT(Id) n FROM {where} AND OwnerId"
        load: dict[str, int] = {}
        for chunk in self._chunks(head, ids):
            soql = format_soql(head + " IN {ids}", ids=chunk) + " GROUP BY OwnerId"
            for row in self.query(soql, what="open Leads by owner"):
                load[row["OwnerId"]] = int(row.get("n") or 0)
        return load

    def match_emails(self, emails: Iterable[str]) -> EmailMatches:
        """Existing Contacts, open Leads and converted Leads for these emails.

        Two queries per chunk of emails (Contact, Lead), values escaped by `format_soql`.
        Emails are compared without case, as Salesforce does; an address longer than the
        Email field cannot be stored, so it is not asked for.
        """
        wanted = list(
            dict.fromkeys(
                email_key(e) for e in emails if e and e.strip() and len(e.strip()) <= ss.EMAIL_MAX_LENGTH
            )
        )
        found = EmailMatches()
        if not wanted:
            return found
        for row in self._match_query(ss.CONTACT, ss.CONTACT_MATCH_FIELDS, ss.EMAIL, wanted):
            contact = self._contact(row)
            if contact.email:
                found.contacts.setdefault(email_key(contact.email), []).append(contact)
        for row in self._match_query(ss.LEAD, ss.LEAD_MATCH_FIELDS, ss.EMAIL, wanted):
            lead = self._lead(row)
            if not lead.email:
                continue
            bucket = found.converted_leads if lead.is_converted else found.open_leads
            bucket.setdefault(email_key(lead.email), []).append(lead)
        return found

    def match_external_ids(self, values: Iterable[str]) -> ExternalIdMatches:
        """Existing Leads and Contacts whose external-id field holds one of `values`."""
        wanted = list(dict.fromkeys(str(v) for v in values if v))
        found = ExternalIdMatches()
        if not wanted:
            return found
        ext = self.external_id_field
        for row in self._match_query(ss.LEAD, ss.LEAD_MATCH_FIELDS, ext, wanted):
            if row.get(ext):
                found.leads[str(row[ext])] = self._lead(row)
        for row in self._match_query(ss.CONTACT, ss.CONTACT_MATCH_FIELDS, ext, wanted):
            if row.get(ext):
                found.contacts[str(row[ext])] = self._contact(row)
        return found

    def records_by_id(
        self, sobject: str, ids: Iterable[str], fields: Sequence[str], *, what: str = ""
    ) -> Iterator[dict[str, Any]]:
        """These records' `fields` (relationship paths such as `Owner.Email` too), read in
        batched SOQL chunked under the URI limit; `Id` is always read."""
        wanted = list(dict.fromkeys(str(i) for i in ids if i))
        if not wanted:
            return
        select = ", ".join(dict.fromkeys(["Id", *fields]))
        head = f"SELECT {select} FROM {sobject} WHERE Id"
        for chunk in self._chunks(head, wanted):
            yield from self.query(head + format_soql(" IN {}", chunk),
                                  what=what or f"{sobject} by id")

    def queue_id(self, name: str) -> str | None:
        """The id of the queue (Group of type Queue) with this name or developer name."""
        soql = format_soql("SELECT Id FROM Group WHERE Type = 'Queue' "
                           "AND (Name = {n} OR DeveloperName = {n})", n=name)
        return next((str(row["Id"]) for row in self.query(soql, what="queue")), None)

    def find_tasks(
        self, who_ids: Iterable[str], *, subject_contains: str, created_by: str | None = None,
        fields: Sequence[str] = ("Id", "WhoId", "Subject"),
    ) -> Iterator[dict[str, Any]]:
        """Tasks on these Leads/Contacts (`WhoId`) whose Subject contains `subject_contains`,
        created by `created_by` when given, with `fields`. Batched SOQL, values escaped by
        `format_soql` (Subject is filterable; Description is not, but can be read)."""
        wanted = list(dict.fromkeys(w for w in who_ids if w))
        if not wanted:
            return
        where = format_soql("Subject LIKE '%{:like}%'", subject_contains)
        if created_by:
            where += format_soql(" AND CreatedById = {}", created_by)
        head = f"SELECT {', '.join(fields)} FROM {ss.TASK} WHERE {where} AND WhoId"
        for chunk in self._chunks(head, wanted):
            soql = head + format_soql(" IN {}", chunk)
            yield from self.query(soql, what="find Tasks already written")

    # --- writes -----------------------------------------------------------------------------

    @staticmethod
    def _headers(auto_assign: bool, allow_duplicates: bool) -> dict[str, str]:
        headers: dict[str, str] = {}
        if not auto_assign:
            headers[ss.AUTO_ASSIGN_HEADER] = "FALSE"  # Handshake set the owners itself
        if allow_duplicates:
            headers[ss.DUPLICATE_RULE_HEADER] = "allowSave=true"
        return headers

    def _send(
        self, path: str, method: str, body: bytes, headers: Mapping[str, str]
    ) -> Callable[[], Any]:
        """The call sending `body`, JSON already encoded (simple-salesforce's headers say
        so)."""
        return lambda: self.sf.restful(path, method=method, data=body, headers=dict(headers))

    def _write(
        self,
        method: str,
        path: str,
        sobject: str,
        records: Sequence[Mapping[str, Any]],
        key_field: str,
        headers: Mapping[str, str],
        *,
        once: bool = False,
    ) -> Iterator[list[WriteResult]]:
        """Each 200 records' results, in order. Up to 200 records go in one collection call;
        more go 5 collections (1,000 records) a composite call, one API call each."""
        known = self.known_fields(sobject)
        batches = [
            _Batch.of(sobject, start, records[start : start + ss.COLLECTION_MAX_RECORDS], known)
            for start in range(0, len(records), ss.COLLECTION_MAX_RECORDS)
        ]
        step = ss.COMPOSITE_MAX_COLLECTIONS if len(records) > ss.COLLECTION_MAX_RECORDS else 1
        for group in _composite_groups(batches, step):
            if sum(1 for b in group if b.sent) > 1:
                yield from self._composite(method, path, sobject, group, key_field, headers, once)
                continue
            for batch in group:
                answer = self._collection(method, path, sobject, batch, headers, once)
                yield self._results(sobject, key_field, batch, answer)

    def _collection(
        self,
        method: str,
        path: str,
        sobject: str,
        batch: _Batch,
        headers: Mapping[str, str],
        once: bool,
    ) -> list[Any]:
        """One sObject Collections call for the batch's records to send (none: no call)."""
        if not batch.sent:
            return []
        what = f"{method} {len(batch.sent)} {sobject} records"
        with self.policy.sent_once() if once else nullcontext():
            answer = self._call("write", what, self._send(path, method, batch.encoded, headers))
        return _answers(what, answer, len(batch.sent))

    def _composite(
        self,
        method: str,
        path: str,
        sobject: str,
        group: Sequence[_Batch],
        key_field: str,
        headers: Mapping[str, str],
        once: bool,
    ) -> Iterator[list[WriteResult]]:
        """The group's collections as the subrequests of one composite call, each batch's
        results yielded as its own call's would be.

        A subrequest Salesforce refused is decided by the policy's table as its direct call
        would be: a retriable one is sent again alone as a collection call (the policy retries
        it), or, for creates (`once`), raises before any result of the call is yielded, so the
        caller reconciles the whole call as after a lost answer; any other refusal is raised
        after the results of the other subrequests, which Salesforce applied, are yielded."""
        root = urlsplit(self.sf.base_url).path  # subrequest urls are absolute paths
        refs = {n: f"batch{n}" for n, b in enumerate(group) if b.sent}
        body = {
            "allOrNone": False,
            "compositeRequest": [
                {
                    "method": method,
                    "url": root + path,
                    "referenceId": ref,
                    "body": orjson.Fragment(group[n].encoded),
                    **({"httpHeaders": dict(headers)} if headers else {}),
                }
                for n, ref in refs.items()
            ],
        }
        what = (f"{method} {sum(len(b.sent) for b in group)} {sobject} records in "
                f"{len(refs)} collections (composite)")
        with self.policy.sent_once() if once else nullcontext():
            answer = self._call("write", what,
                                self._send(ss.COMPOSITE, "POST", orjson.dumps(body), {}))
        answered = answer.get("compositeResponse") if isinstance(answer, dict) else None
        by_ref = {r.get("referenceId"): r for r in answered or [] if isinstance(r, dict)}
        outcomes: dict[int, list[Any] | HandshakeError] = {}
        for n, ref in refs.items():
            sent = len(group[n].sent)
            sub = by_ref.get(ref)
            if sub is None:
                raise RequestFailed(f"{what}: Salesforce answered nothing for subrequest {ref}",
                                    system=SALESFORCE_SYSTEM)
            status = sub.get("httpStatusCode")
            part = f"{method} {sent} {sobject} records (subrequest {ref})"
            if isinstance(status, int) and status < 400:
                outcomes[n] = _answers(part, sub.get("body"), sent)
                continue
            view = ResponseView(
                status=status if isinstance(status, int) else 500,
                headers={},
                body=json.dumps(sub.get("body")),
                method=method,
                path=root + path,
            )
            error = self.policy.error_for(view, describe=part, replayable=not once)
            if once and isinstance(error, RetriableError):
                raise error
            outcomes[n] = error
        refusal: HandshakeError | None = None
        for n, batch in enumerate(group):
            outcome = outcomes.get(n, [])
            if isinstance(outcome, RetriableError):
                log.info("%s; sending it again alone", outcome)
                outcome = self._collection(method, path, sobject, batch, headers, once)
            if isinstance(outcome, HandshakeError):
                refusal = refusal or outcome
                continue
            yield self._results(sobject, key_field, batch, outcome)
        if refusal is not None:
            raise refusal

    @staticmethod
    def _results(
        sobject: str, key_field: str, batch: _Batch, answer: Sequence[Any]
    ) -> list[WriteResult]:
        """The batch's `WriteResult`s: Salesforce's answers for the records sent, in order,
        the refusals made here for the others."""
        answers = iter(answer)
        results = [
            _unknown_columns(sobject, batch.refused[i]) if i in batch.refused else next(answers)
            for i in range(len(batch.records))
        ]
        out: list[WriteResult] = []
        for offset, (record, result) in enumerate(zip(batch.records, results, strict=True)):
            key = record.get(key_field)
            key_text = str(key) if key not in (None, "") else None
            index = batch.start + offset
            if result.get("success"):
                out.append(
                    WriteResult(index, key_text, result.get("id"), True, result.get("created"))
                )
                continue
            rejection = classify_record_errors(
                result.get("errors"), sobject=sobject, record_key=key_text, values=record
            )
            out.append(WriteResult(index, key_text, result.get("id"), False, None, rejection))
        return out

    def upsert_batches(
        self,
        sobject: str,
        records: Sequence[Mapping[str, Any]],
        external_id_field: str | None = None,
        *,
        auto_assign: bool = True,
        allow_duplicates: bool = False,
    ) -> Iterator[list[WriteResult]]:
        """Upsert by external id, yielding each 200 records' results (one collection call, or
        one subrequest of a composite call of 1,000) so the caller can record them before the
        next call is made."""
        ext = external_id_field or self.external_id_field
        path = ss.COLLECTIONS_UPSERT.format(sobject=sobject, field=ext)
        yield from self._write(
            "PATCH", path, sobject, records, ext, self._headers(auto_assign, allow_duplicates)
        )

    def upsert(
        self,
        sobject: str,
        records: Sequence[Mapping[str, Any]],
        external_id_field: str | None = None,
        *,
        auto_assign: bool = True,
        allow_duplicates: bool = False,
    ) -> list[WriteResult]:
        """Upsert by external id (`PATCH /composite/sobjects/{SObject}/{Field}`), 200 records
        a collection and 5 collections a composite call, `allOrNone` false; one result per
        input record, in order.

        `auto_assign=False` sends `Sforce-Auto-Assign: FALSE` (owners set by Handshake);
        `allow_duplicates=True` saves past a duplicate rule's alert.
        """
        return [
            result
            for batch in self.upsert_batches(
                sobject,
                records,
                external_id_field,
                auto_assign=auto_assign,
                allow_duplicates=allow_duplicates,
            )
            for result in batch
        ]

    def create_batches(
        self,
        sobject: str,
        records: Sequence[Mapping[str, Any]],
        *,
        auto_assign: bool = True,
        allow_duplicates: bool = False,
    ) -> Iterator[list[WriteResult]]:
        """Create, yielding each 200 records' results (one collection call, or one subrequest
        of a composite call of 1,000); record them before the next call: a create sent twice
        makes two records.

        A call whose answer is lost after it may have reached Salesforce (5xx, connection
        dropped), or a composite call with a subrequest failed that way, is not sent again:
        its `RetriableError` reaches the caller before any result of that call, and the caller
        must look for all of that call's records before creating them again."""
        yield from self._write(
            "POST",
            ss.COLLECTIONS,
            sobject,
            records,
            ss.ID,
            self._headers(auto_assign, allow_duplicates),
            once=True,
        )

    def create(
        self,
        sobject: str,
        records: Sequence[Mapping[str, Any]],
        *,
        auto_assign: bool = True,
        allow_duplicates: bool = False,
    ) -> list[WriteResult]:
        """Create through `POST /composite/sobjects` (Tasks: no external id), 200 a
        collection, 5 collections a composite call."""
        return [
            r
            for batch in self.create_batches(
                sobject, records, auto_assign=auto_assign, allow_duplicates=allow_duplicates
            )
            for r in batch
        ]

    def update_batches(
        self,
        sobject: str,
        records: Sequence[Mapping[str, Any]],
        *,
        auto_assign: bool = True,
        allow_duplicates: bool = False,
    ) -> Iterator[list[WriteResult]]:
        """Update by Id, yielding each 200 records' results (one collection call, or one
        subrequest of a composite call of 1,000)."""
        yield from self._write(
            "PATCH",
            ss.COLLECTIONS,
            sobject,
            records,
            ss.ID,
            self._headers(auto_assign, allow_duplicates),
        )

    def update(
        self,
        sobject: str,
        records: Sequence[Mapping[str, Any]],
        *,
        auto_assign: bool = True,
        allow_duplicates: bool = False,
    ) -> list[WriteResult]:
        """Update through `PATCH /composite/sobjects` (each record carries its Id), 200 a
        collection, 5 collections a composite call."""
        return [
            r
            for batch in self.update_batches(
                sobject, records, auto_assign=auto_assign, allow_duplicates=allow_duplicates
            )
            for r in batch
        ]

    def lead_assignment_rule(self) -> str | None:
        """The id of the org's active Lead assignment rule, or None (read once)."""
        if self._assignment_rule is None:
            soql = (
                f"SELECT Id FROM {ss.ASSIGNMENT_RULE} "
                "WHERE SobjectType = 'Lead' AND Active = true"
            )
            rows = list(self.query(soql, what="Lead assignment rule"))
            self._assignment_rule = str(rows[0]["Id"]) if rows else ""
        return self._assignment_rule or None

    def bulk_upsert(
        self,
        sobject: str,
        records: Sequence[Mapping[str, Any]],
        external_id_field: str | None = None,
        *,
        auto_assign: bool = True,
    ) -> list[WriteResult]:
        """Upsert by external id through Bulk API 2.0 (for backfills): one result per input
        record, in order, exactly as `upsert` gives them (see `connector.salesforce.bulk`).

        `auto_assign=True` runs the org's active Lead assignment rule, as collections do
        without `Sforce-Auto-Assign: FALSE`. Duplicate rules block as they do without
        `allowSave`: Bulk API 2.0 takes no duplicate rule header.
        """
        rule = self.lead_assignment_rule() if auto_assign and sobject == ss.LEAD else None
        return bulk_upsert(
            self,
            sobject,
            records,
            external_id_field or self.external_id_field,
            assignment_rule=rule,
        )

    def __repr__(self) -> str:
        return f"SalesforceClient({self.credentials!r}, calls={self.calls})"

    def users(self, *, active_only: bool = False) -> list[dict[str, Any]]:
        """The org's users (Id, Email, Username, Name, IsActive), every page; only the active
        ones with `active_only`."""
        soql = f"SELECT {', '.join(ss.USER_FIELDS)} FROM {ss.USER}"
        if active_only:
            soql += " WHERE IsActive = true"
        return list(self.query(soql, what="users"))
