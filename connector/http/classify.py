"""Error handling as data: a table per API from status / error code / exception to action.

A table is a tuple of `Rule`s read top to bottom; the first that matches decides. Each rule
names an `Action` and the error class raised when the policy gives up (or at once). A `Dialect`
is one API's table with what its answers say beyond HTTP (the keys of its error bodies, the
exceptions its SDK raises, the headers reporting its daily allocation or the wait it asks for).
The tables and dialects of HubSpot and Salesforce live with their adapters
(`connector.hubspot.errors`, `connector.salesforce.errors`); this module holds the mechanism,
the rules every table ends with, and the alert webhook's table:

    TRANSPORT_RULES (every table ends with them)
    ├── TLS: certificate refused ........ FAIL        TlsError: retrying a bad certificate
    │                                                 cannot help
    └── transport (timeout, reset, drop)  RETRY       TransportError

    WEBHOOK (an admin's alert endpoint)
    ├── 408 429 ......................... RETRY       ServerError (the endpoint is busy)
    ├── 4xx ............................. FAIL        RequestFailed (URL or endpoint to fix)
    ├── 5xx ............................. RETRY       ServerError
    └── TRANSPORT_RULES

An answer no rule matches is FAIL (RequestFailed); an exception no rule knows propagates (a
programming error to see, not to retry). Per-record errors inside a 200 answer (HubSpot batch
`errors`, Salesforce collection results) are not the policy's business: the adapters read those.
"""

from __future__ import annotations

import json
import re
import ssl
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

import httpx
import requests
import urllib3.exceptions

from connector.errors import (
    AuthError,
    FatalError,
    HandshakeError,
    RequestFailed,
    ServerError,
    TransportError,
)
from connector.http import settings as s

__all__ = [
    "CLIENT_ERRORS",
    "DEFAULT_CODE_KEYS",
    "DEFAULT_MESSAGE_KEYS",
    "SERVER_ERRORS",
    "TRANSPORT_RULES",
    "WEBHOOK",
    "WEBHOOK_RULES",
    "Action",
    "Dialect",
    "ErrorInfo",
    "ExceptionReader",
    "ResponseView",
    "Rule",
    "SessionExpired",
    "TlsError",
    "Verdict",
    "classify_error",
    "codes",
    "error_info",
    "exception_chain",
    "headers_of",
    "hinted_wait",
    "lower_headers",
    "next_midnight",
    "parse_retry_after",
    "status_of",
    "statuses",
    "view_of",
]


class SessionExpired(AuthError):
    """The session expired (a REFRESH rule matched, e.g. Salesforce INVALID_SESSION_ID); a fresh
    login may fix it."""


class TlsError(FatalError):
    """The TLS handshake failed (certificate not trusted, wrong host): a setting to fix."""


class Action(StrEnum):
    """What the policy does with an answer or an exception."""

    RETRY = "retry"  # back off exponentially with jitter, then try again
    RATE_LIMIT = "rate_limit"  # wait what the server says (or the window), then try again
    QUOTA = "quota"  # stop the stream until the quota resets; never retry
    REFRESH = "refresh"  # refresh the session once, then try again
    FAIL = "fail"  # raise a fatal error at once
    SKIP = "skip"  # raise a skippable error: this record is parked, the run goes on
    PASS = "pass"  # hand the answer back to the caller untouched


@dataclass(frozen=True)
class Rule:
    """One row of a classification table.

    Matches a response when its status is in `status` (None: any), one of its error codes is in
    `codes` (None: any) and `message` (a regex) is found in the remote message (None: any); or an
    exception that is an instance of one of `exceptions`.
    """

    action: Action
    error: type[HandshakeError]
    why: str
    status: frozenset[int] | None = None
    codes: frozenset[str] | None = None
    message: str | None = None
    exceptions: tuple[type[BaseException], ...] = ()
    wait: float | None = None  # rate limits: the wait when the server gives no hint

    def matches_response(self, view: ResponseView, info: ErrorInfo) -> bool:
        """Whether this rule decides for the answer `view`."""
        if self.exceptions:
            return False
        if self.status is not None and view.status not in self.status:
            return False
        if self.codes is not None and not (self.codes & info.codes):
            return False
        return self.message is None or re.search(self.message, info.message) is not None

    def matches_exception(self, exc: BaseException) -> bool:
        """Whether this rule decides for the exception `exc`."""
        return bool(self.exceptions) and isinstance(exc, self.exceptions)


def statuses(*items: int | range) -> frozenset[int]:
    """The HTTP statuses a rule matches, from single statuses and ranges."""
    out: set[int] = set()
    for item in items:
        out.update(item if isinstance(item, range) else (item,))
    return frozenset(out)


def codes(*names: str) -> frozenset[str]:
    """The remote error codes a rule matches."""
    return frozenset(names)


CLIENT_ERRORS = range(400, 500)
SERVER_ERRORS = range(500, 600)


# --- reading answers ------------------------------------------------------------------------


@dataclass
class ResponseView:
    """An HTTP answer as the policy sees it, whichever library produced it."""

    status: int
    headers: Mapping[str, str]  # lower-case names
    body: bytes | str | None
    method: str | None = None
    path: str | None = None
    release: Callable[[], None] | None = field(default=None, repr=False)

    def text(self) -> str:
        """The body as text ('' when there is none)."""
        if self.body is None:
            return ""
        if isinstance(self.body, bytes):
            return self.body.decode("utf-8", errors="replace")
        return self.body

    def json(self) -> Any:
        """The body parsed as JSON, or None when it is not JSON."""
        try:
            return json.loads(self.text())
        except ValueError:
            return None


@dataclass(frozen=True)
class ErrorInfo:
    """What a remote error body says: its codes (the values of its dialect's code keys) and its
    human message."""

    codes: frozenset[str]
    message: str


# Keys of a JSON error body that commonly carry a code, and the human message (OAuth's included).
DEFAULT_CODE_KEYS = ("code", "error", "errorCode", "errorType")
DEFAULT_MESSAGE_KEYS = ("message", "error_description")


def error_info(
    view: ResponseView,
    code_keys: Iterable[str] = DEFAULT_CODE_KEYS,
    message_keys: Iterable[str] = DEFAULT_MESSAGE_KEYS,
) -> ErrorInfo:
    """Parse the remote error out of an answer's body (a JSON object or an array of them):
    the string values of `code_keys`, and the first of `message_keys` each item has."""
    code_keys, message_keys = tuple(code_keys), tuple(message_keys)
    payload = view.json()
    items: list[Mapping[str, Any]] = []
    if isinstance(payload, Mapping):
        items = [payload]
    elif isinstance(payload, list):
        items = [item for item in payload if isinstance(item, Mapping)]
    found: set[str] = set()
    messages: list[str] = []
    for item in items:
        for key in code_keys:
            value = item.get(key)
            if isinstance(value, str) and value:
                found.add(value)
        for key in message_keys:
            value = item.get(key)
            if isinstance(value, str) and value:
                messages.append(value)
                break
    message = "; ".join(messages)
    if not message and payload is None:
        message = " ".join(view.text().split())  # plain-text or HTML error page, squeezed
    return ErrorInfo(frozenset(found), message[: s.MAX_REMOTE_MESSAGE_CHARS])


def lower_headers(headers: Any) -> dict[str, str]:
    """Header names lower-cased, from a mapping or a list of pairs (None: no headers)."""
    if headers is None:
        return {}
    items = headers.items() if hasattr(headers, "items") else headers
    return {str(k).lower(): str(v) for k, v in items}


ExceptionReader = Callable[[BaseException], ResponseView | None]
"""Reads the answer an SDK's own exception carries (None: it carries none)."""


def view_of(obj: object, read_exception: ExceptionReader | None = None) -> ResponseView | None:
    """The `ResponseView` of an httpx or requests response, of an exception carrying one, or of
    an SDK exception `read_exception` knows; None otherwise."""
    if isinstance(obj, httpx.Response):
        try:
            request: httpx.Request | None = obj.request
        except RuntimeError:  # a Response built by hand has no request
            request = None
        try:
            body: bytes | None = obj.content
        except httpx.ResponseNotRead:  # left unread: the caller streams it
            body = None
        return ResponseView(
            status=obj.status_code,
            headers=lower_headers(obj.headers),
            body=body,
            method=request.method if request is not None else None,
            path=request.url.path if request is not None else None,
            release=obj.close,
        )
    if isinstance(obj, requests.Response):
        prepared = obj.request
        return ResponseView(
            status=obj.status_code,
            headers=lower_headers(obj.headers),
            body=obj.content,
            method=prepared.method if prepared is not None else None,
            path=urlsplit(obj.url).path if obj.url else None,
            release=obj.close,
        )
    if isinstance(obj, httpx.HTTPStatusError | requests.HTTPError):
        response = obj.response
        return view_of(response) if response is not None else None
    if read_exception is not None and isinstance(obj, BaseException):
        return read_exception(obj)
    return None


def headers_of(obj: object) -> Mapping[str, str] | None:
    """The response headers of a response object (lower-case names), without its body."""
    if isinstance(obj, httpx.Response | requests.Response):
        return lower_headers(obj.headers)
    return None


def status_of(obj: object) -> int | None:
    """The HTTP status of a response object, without reading its body; None if not one."""
    if isinstance(obj, httpx.Response):
        return obj.status_code
    if isinstance(obj, requests.Response):
        return obj.status_code
    view = view_of(obj)
    return view.status if view is not None else None


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a `Retry-After` value: delta-seconds or an HTTP-date."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # an HTTP-date is GMT by definition
        when = when.replace(tzinfo=now.tzinfo)
    return max(0.0, (when - now).total_seconds())


def hinted_wait(
    view: ResponseView,
    now: datetime,
    read_wait: Callable[[Mapping[str, str]], float | None] | None = None,
) -> float | None:
    """The wait a response asks for: `Retry-After`, else what `read_wait` (the dialect's own
    header) reads."""
    wait = parse_retry_after(view.headers.get(s.RETRY_AFTER_HEADER), now)
    if wait is not None:
        return wait
    return read_wait(view.headers) if read_wait is not None else None


# --- the tables -----------------------------------------------------------------------------

# only a refused certificate is fatal; other TLS errors (EOF mid-handshake) are drops
_TLS_EXCEPTIONS: tuple[type[BaseException], ...] = (ssl.SSLCertVerificationError,)
_TRANSPORT_EXCEPTIONS: tuple[type[BaseException], ...] = (
    httpx.TimeoutException,
    httpx.NetworkError,
    httpx.RemoteProtocolError,
    requests.exceptions.Timeout,
    requests.exceptions.ConnectionError,
    requests.exceptions.ChunkedEncodingError,
    urllib3.exceptions.TimeoutError,
    urllib3.exceptions.ProtocolError,
    urllib3.exceptions.NewConnectionError,
    urllib3.exceptions.MaxRetryError,
    ssl.SSLError,
    ConnectionError,
    TimeoutError,
)

TRANSPORT_RULES: tuple[Rule, ...] = (
    Rule(
        Action.FAIL,
        TlsError,
        "the server certificate was refused: fix the CA bundle or the host",
        exceptions=_TLS_EXCEPTIONS,
    ),
    Rule(
        Action.RETRY,
        TransportError,
        "no usable answer (timeout, refused, reset or dropped connection)",
        exceptions=_TRANSPORT_EXCEPTIONS,
    ),
)

@dataclass(frozen=True)
class Dialect:
    """One remote API as the policy reads it: its table (`rules`, read top to bottom) and what
    its answers say beyond HTTP.

    `code_keys` / `message_keys`: the keys of its JSON error bodies carrying codes (matched by
    `Rule.codes`) and the human message. `read_exception`: the answer an SDK exception carries.
    `read_usage`: `(used, allowed)` of the daily allocation from an answer's headers.
    `read_wait`: a wait the API asks for besides `Retry-After`. Header names are lower-case.
    """

    name: str
    rules: tuple[Rule, ...]
    code_keys: tuple[str, ...] = DEFAULT_CODE_KEYS
    message_keys: tuple[str, ...] = DEFAULT_MESSAGE_KEYS
    read_exception: ExceptionReader | None = None
    read_usage: Callable[[Mapping[str, str]], tuple[int, int] | None] | None = None
    read_wait: Callable[[Mapping[str, str]], float | None] | None = None

    def classify(
        self, *, view: ResponseView | None = None, exception: BaseException | None = None
    ) -> Verdict | None:
        """`classify_error` with this dialect's rules and error body keys."""
        return classify_error(
            self.rules,
            view=view,
            exception=exception,
            code_keys=self.code_keys,
            message_keys=self.message_keys,
        )


WEBHOOK_RULES: tuple[Rule, ...] = (
    Rule(Action.RETRY, ServerError, "the endpoint is busy", status=statuses(408, 429)),
    Rule(Action.FAIL, RequestFailed, "the endpoint refused the alert",
         status=statuses(CLIENT_ERRORS)),
    Rule(Action.RETRY, ServerError, "the endpoint failed", status=statuses(SERVER_ERRORS)),
    *TRANSPORT_RULES,
)

_FALLBACK_RESPONSE_RULE = Rule(Action.FAIL, RequestFailed, "unexpected answer")


@dataclass(frozen=True)
class Verdict:
    """The rule that decided, with what it was decided on."""

    rule: Rule
    info: ErrorInfo | None = None
    view: ResponseView | None = None
    exception: BaseException | None = None


def exception_chain(exc: BaseException, limit: int = 8) -> list[BaseException]:
    """The exception with what it wraps: urllib3's `reason`, exceptions in `args`, causes."""
    seen: list[BaseException] = []
    todo = [exc]
    while todo and len(seen) < limit:
        current = todo.pop(0)
        if any(current is known for known in seen):
            continue
        seen.append(current)
        reason = getattr(current, "reason", None)
        wrapped = [reason, *current.args, current.__cause__, current.__context__]
        todo.extend(item for item in wrapped if isinstance(item, BaseException))
    return seen


def classify_error(
    table: Iterable[Rule],
    *,
    view: ResponseView | None = None,
    exception: BaseException | None = None,
    code_keys: Iterable[str] = DEFAULT_CODE_KEYS,
    message_keys: Iterable[str] = DEFAULT_MESSAGE_KEYS,
) -> Verdict | None:
    """Decide what to do about an error answer (`view`) or an `exception`.

    Returns None for an exception no rule knows (a programming error: let it propagate).
    """
    rules = tuple(table)
    if view is not None:
        info = error_info(view, code_keys, message_keys)
        for rule in rules:
            if rule.matches_response(view, info):
                return Verdict(rule, info, view, exception)
        return Verdict(_FALLBACK_RESPONSE_RULE, info, view, exception)
    if exception is not None:
        # rule order decides: a certificate failure deep in the chain beats "network error"
        chain = exception_chain(exception)
        for rule in rules:
            if any(rule.matches_exception(candidate) for candidate in chain):
                return Verdict(rule, None, None, exception)
    return None


def next_midnight(now: datetime, timezone: Any) -> datetime:
    """The next midnight after `now` in `timezone` (a tzinfo), as an aware datetime."""
    local = now.astimezone(timezone)
    midnight = (local + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight.replace(tzinfo=timezone)


WEBHOOK = Dialect("webhook", WEBHOOK_RULES)
