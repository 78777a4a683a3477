"""Reads batched into composite calls: many queries, their next pages and the deleted
resource in one API call (Salesforce counts a composite call once, whatever it carries).

    reads = client.reads()
    reads.add(ChangeQuery("Lead", "Lead", fields, since=bookmark))
    reads.check_deleted(DeletedCheck("Lead", start, end))
    while reads.pending:
        for answer in reads.call():       # one composite call
            ...                           # ChangePage or Deleted, in the order added

A composite call carries at most 25 subrequests, of which at most 5 query operations (Query,
QueryAll, and the next page of either). Each call takes the query operations whose chains are
longest first (a query's pages must be read one after another; `totalSize` says how many are
left), so a read of many pages starts early and the calls stay at the fewest the chains and
the 5-a-call limit allow. Queries and checks added while reading go into the next call.
"""

from __future__ import annotations

import json
import logging
import math
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from simple_salesforce.format import format_soql

from connector.errors import RequestFailed, RetriableError
from connector.http import HttpPolicy, ResponseView
from connector.salesforce import settings as ss
from connector.salesforce.records import ChangePage, ChangeQuery, Deleted, DeletedCheck

# (what, composite body) -> the composite answer: one API call, counted and governed
Send = Callable[[str, dict[str, Any]], Any]
# (head, values, tail, repeats) -> the values split under the URI and SOQL limits
Chunks = Callable[[str, Sequence[str], str, int], Iterator[list[str]]]

__all__ = ["CompositeReads", "soql_datetime"]

log = logging.getLogger("connector.salesforce")

# a subrequest refused as retriable is sent again in a later call this many times at most
SUBREQUEST_ATTEMPTS = 3


def soql_datetime(when: datetime) -> str:
    """A SOQL datetime literal: ISO-8601 UTC, seconds precision (flooring keeps `>=` safe)."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _replication_time(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


@dataclass
class _Op:
    """One subrequest to send: a query, a query's next page, or a deleted check."""

    tag: str
    url: str  # relative to the REST root
    query: bool  # counts against the 5 query operations of a call
    left: int = 1  # pages this chain still has to read (this one included)
    read: int = 0  # rows the chain's pages before this one gave
    check: DeletedCheck | None = None
    attempts: int = 0


class CompositeReads:
    """Queries and deleted checks waiting to be sent, packed into composite calls."""

    def __init__(self, *, root: str, send: Send, policy: HttpPolicy, chunks: Chunks) -> None:
        self.root = root  # the REST root's path: subrequest urls are absolute paths
        self._send = send
        self._policy = policy
        self._chunks = chunks
        self._ops: deque[_Op] = deque()
        self.calls = 0
        self.query_ops = 0
        self.subrequests = 0

    @property
    def pending(self) -> bool:
        """Something is left to send."""
        return bool(self._ops)

    def add(self, query: ChangeQuery) -> None:
        """Queue a query (its ids split over as few queries as the URI and SOQL limits allow:
        the first chunk with the `since` part, the others alone)."""
        for soql in self._soql(query):
            self.add_soql(query.tag, soql, include_deleted=query.include_deleted)

    def add_soql(self, tag: str, soql: str, *, include_deleted: bool = False) -> None:
        """Queue one SOQL query as it is."""
        resource = ss.QUERY_ALL if include_deleted else ss.QUERY
        self._ops.append(_Op(tag, f"{resource}/?{urlencode({'q': soql})}", True))

    def check_deleted(self, check: DeletedCheck) -> None:
        """Queue a deleted-records check."""
        params = urlencode({"start": _replication_time(check.start),
                            "end": _replication_time(check.end)})
        url = f"{ss.DELETED.format(sobject=check.sobject)}?{params}"
        self._ops.append(_Op(check.sobject, url, False, check=check))

    def _soql(self, query: ChangeQuery) -> list[str]:
        select = ", ".join(dict.fromkeys([ss.ID, *query.fields]))
        tail = f" ORDER BY {ss.MODSTAMP}, {ss.ID}"
        since = (format_soql(f"{ss.MODSTAMP} >= {{:literal}}", soql_datetime(query.since))
                 if query.since is not None else "")
        ids_since = (format_soql(f" AND {ss.MODSTAMP} >= {{:literal}}",
                                 soql_datetime(query.ids_since))
                     if query.ids_since is not None else "")
        head = f"SELECT {select} FROM {query.sobject} WHERE "
        wanted = list(dict.fromkeys(str(i) for i in query.ids if i))
        if not wanted:
            return [head + since + tail] if since else []
        out: list[str] = []
        prefix = head + (f"{since} OR " if since else "")
        for n, chunk in enumerate(self._chunks(prefix + ids_since, wanted, tail,
                                               len(query.keys))):
            matches = " OR ".join(format_soql(f"{key} IN {{}}", chunk) for key in query.keys)
            part = f"(({matches}){ids_since})"
            out.append((prefix if n == 0 else head) + part + tail)
        return out

    def _take(self) -> list[_Op]:
        """The next call's subrequests: the query operations of the longest chains first (5
        at most), then every deleted check that fits in the 25."""
        added = {id(op): n for n, op in enumerate(self._ops)}
        queries = sorted((op for op in self._ops if op.query), key=lambda op: -op.left)
        chosen = queries[:ss.COMPOSITE_MAX_QUERIES]
        room = ss.COMPOSITE_MAX_SUBREQUESTS - len(chosen)
        chosen += [op for op in self._ops if not op.query][:room]
        picked = {id(op) for op in chosen}
        self._ops = deque(op for op in self._ops if id(op) not in picked)
        # answered checks first, then pages in the order they were asked for
        return sorted(chosen, key=lambda op: (op.query, added[id(op)]))

    def call(self) -> Iterator[ChangePage | Deleted]:
        """Send one composite call; its answers in order: deleted checks, then pages."""
        ops = self._take()
        if not ops:
            return
        body = {
            "allOrNone": False,
            "compositeRequest": [
                {"method": "GET", "url": self.root + op.url, "referenceId": f"r{n}"}
                for n, op in enumerate(ops)
            ],
        }
        queries = sum(op.query for op in ops)
        what = (f"read {queries} queries and {len(ops) - queries} deleted checks "
                f"(composite)")
        answer = self._send(what, body)
        self.calls += 1
        self.query_ops += queries
        self.subrequests += len(ops)
        answered = answer.get("compositeResponse") if isinstance(answer, dict) else None
        by_ref = {r.get("referenceId"): r for r in answered or [] if isinstance(r, dict)}
        for n, op in enumerate(ops):
            sub = by_ref.get(f"r{n}")
            if sub is None:
                raise RequestFailed(f"{what}: Salesforce answered nothing for subrequest {n}",
                                    system=ss.SALESFORCE_SYSTEM)
            status = sub.get("httpStatusCode")
            body_ = sub.get("body")
            if isinstance(status, int) and status < 400:
                yield self._answer(op, body_)
                continue
            if op.check is not None and _codes(body_) & {"INVALID_REPLICATION_DATE"}:
                yield Deleted(op.check.sobject, window_gone=True)
                continue
            self._refused(op, status, body_)

    def _answer(self, op: _Op, body: Any) -> ChangePage | Deleted:
        if op.check is not None:
            found = body if isinstance(body, dict) else {}
            latest = found.get("latestDateCovered")
            return Deleted(
                op.check.sobject,
                tuple(str(r["id"]) for r in found.get("deletedRecords") or [] if r.get("id")),
                datetime.fromisoformat(str(latest)).astimezone(UTC) if latest else None,
            )
        page = body if isinstance(body, dict) else {}
        rows = [{k: v for k, v in r.items() if k != "attributes"}
                for r in page.get("records") or []]
        next_url = str(page.get("nextRecordsUrl") or "")
        if page.get("done", True) or not next_url:
            return ChangePage(op.tag, rows, True)
        read = op.read + len(rows)
        left = math.ceil(max(int(page.get("totalSize") or 0) - read, 1)
                         / max(len(rows), 1))
        # the next page's url is absolute; subrequest urls are kept relative to the REST root
        rest = next_url.removeprefix(self.root)
        self._ops.append(_Op(op.tag, rest.lstrip("/"), True, left=left, read=read))
        return ChangePage(op.tag, rows, False)

    def _refused(self, op: _Op, status: Any, body: Any) -> None:
        """A subrequest refused: a retriable refusal goes again in the next call (a few
        times), any other raises the policy's error."""
        view = ResponseView(status=status if isinstance(status, int) else 500, headers={},
                            body=json.dumps(body), method="GET", path=self.root + op.url)
        error = self._policy.error_for(view, describe=f"read {op.tag} (subrequest)")
        op.attempts += 1
        if isinstance(error, RetriableError) and op.attempts < SUBREQUEST_ATTEMPTS:
            log.info("%s; sending it again in the next call", error)
            self._ops.appendleft(op)
            return
        raise error


def _codes(body: Any) -> set[str]:
    items = body if isinstance(body, list) else [body]
    return {str(i.get("errorCode")) for i in items if isinstance(i, dict)}
