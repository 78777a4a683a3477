"""Error handling as data: one table per API from status / error code / exception to action.

A table is a tuple of `Rule`s read top to bottom; the first that matches decides. Each rule
names an `Action` and the error class raised when the policy gives up (or at once). The tree of
what each table does:

    HUBSPOT
    ├── 429 policyName DAILY ............ QUOTA       QuotaExhausted, resets_at = next midnight
    │                                                 (account time zone): no retry
    ├── 429 policyName TEN_SECONDLY_ROLLING RATE_LIMIT wait Retry-After / interval header / 10 s
    ├── 429 policyName SECONDLY (search)  RATE_LIMIT  wait Retry-After / 1 s
    ├── 429 (other) ..................... RATE_LIMIT  wait Retry-After or backoff
    ├── 401 ............................. FAIL        AuthError (HubSpot: a 401 is no reason to
    │                                                 refresh; tokens are refreshed by their TTL)
    ├── 403 ............................. FAIL        AuthError (missing scopes, app uninstalled)
    ├── 409 CONFLICT .................... SKIP        RecordRejected (the record already exists)
    ├── 400 404 405 413 414 415 422 4xx . FAIL        RequestFailed
    ├── 500 502 503 504 5xx ............. RETRY       ServerError
    └── transport (timeout, reset, drop)  RETRY       TransportError

    SALESFORCE
    ├── 401 INVALID_SESSION_ID .......... REFRESH     SessionExpired: `on_session_expired` once,
    │                                                 then retry; without a hook, fail
    ├── 401 / OAuth invalid_grant ....... FAIL        AuthError
    ├── 403 REQUEST_LIMIT_EXCEEDED
    │   ├── "ConcurrentPerOrgLongTxn" ... RATE_LIMIT  RateLimited (the org's 25 long requests)
    │   └── "TotalRequests" / other ..... QUOTA       QuotaExhausted, resets_at = now + cool-down
    │                                                 (rolling 24 h allocation)
    ├── 403 (other) ..................... FAIL        AuthError (insufficient access, API off)
    ├── 429 (some services, proxies) .... RATE_LIMIT  wait Retry-After or backoff
    ├── 400 DUPLICATES_DETECTED,
    │   FIELD_CUSTOM_VALIDATION_EXCEPTION,
    │   REQUIRED_FIELD_MISSING,
    │   STRING_TOO_LONG ................. SKIP        RecordRejected (single-record writes)
    ├── 400 404 405 415 4xx ............. FAIL        RequestFailed
    ├── 500 502 503 504 5xx ............. RETRY       ServerError
    └── transport (timeout, reset, drop)  RETRY       TransportError

    WEBHOOK (an admin's alert endpoint)
    ├── 408 429 ......................... RETRY       ServerError (the endpoint is busy)
    ├── 4xx ............................. FAIL        RequestFailed (URL or endpoint to fix)
    ├── 5xx ............................. RETRY       ServerError
    └── transport (timeout, reset, drop)  RETRY       TransportError

    all: a TLS failure is FAIL (TlsError): retrying a bad certificate cannot help.

Per-record errors inside a 200 answer (HubSpot batch `errors`, Salesforce collection results)
are not the policy's business: the adapters read those.
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
    QuotaExhausted,
    RateLimited,
    RecordRejected,
    RequestFailed,
    ServerError,
    TransportError,
)
from connector.http import settings as s

__all__ = [
    "HUBSPOT",
    "SALESFORCE",
    "WEBHOOK",
    "Action",
    "ErrorInfo",
    "ResponseView",
    "Rule",
    "SessionExpired",
    "TlsError",
    "Verdict",
    "classify_error",
    "daily_usage",
    "exception_chain",
    "headers_of",
    "parse_retry_after",
    "status_of",
    "view_of",
]


class SessionExpired(AuthError):
    """The session (Salesforce INVALID_SESSION_ID) expired; a fresh login may fix it."""


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


def _statuses(*items: int | range) -> frozenset[int]:
    out: set[int] = set()
    for item in items:
        out.update(item if isinstance(item, range) else (item,))
    return frozenset(out)


def _codes(*names: str) -> frozenset[str]:
    return frozenset(names)


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
    """What a remote error body says: its codes (HubSpot `category`, `errorType`, `policyName`;
    Salesforce `errorCode`; OAuth `error`) and its human message."""

    codes: frozenset[str]
    message: str
    policy_name: str | None = None


_CODE_KEYS = ("category", "subCategory", "errorType", "policyName", "errorCode", "error")
_MESSAGE_KEYS = ("message", "error_description")


def error_info(view: ResponseView) -> ErrorInfo:
    """Parse the remote error out of an answer's body (JSON object or Salesforce array)."""
    payload = view.json()
    items: list[Mapping[str, Any]] = []
    if isinstance(payload, Mapping):
        items = [payload]
    elif isinstance(payload, list):
        items = [item for item in payload if isinstance(item, Mapping)]
    codes: set[str] = set()
    messages: list[str] = []
    policy_name: str | None = None
    for item in items:
        for key in _CODE_KEYS:
            value = item.get(key)
            if isinstance(value, str) and value:
                codes.add(value)
        for key in _MESSAGE_KEYS:
            value = item.get(key)
            if isinstance(value, str) and value:
                messages.append(value)
                break
        name = item.get("policyName")
        if isinstance(name, str):
            policy_name = name
    message = "; ".join(messages)
    if not message and payload is None:
        message = " ".join(view.text().split())  # plain-text or HTML error page, squeezed
    return ErrorInfo(frozenset(codes), message[: s.MAX_REMOTE_MESSAGE_CHARS], policy_name)


def _lower_headers(headers: Any) -> dict[str, str]:
    if headers is None:
        return {}
    items = headers.items() if hasattr(headers, "items") else headers
    return {str(k).lower(): str(v) for k, v in items}


def _is_sdk_api_exception(exc: object) -> bool:
    # every generated hubspot package has its own ApiException class: match on the name
    return isinstance(exc, Exception) and any(
        cls.__name__ == "ApiException" for cls in type(exc).__mro__
    )


def _is_salesforce_error(exc: object) -> bool:
    return isinstance(exc, Exception) and any(
        cls.__name__ == "SalesforceError" for cls in type(exc).__mro__
    )


def view_of(obj: object) -> ResponseView | None:
    """The `ResponseView` of a response or of an exception carrying one; None otherwise."""
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
            headers=_lower_headers(obj.headers),
            body=body,
            method=request.method if request is not None else None,
            path=request.url.path if request is not None else None,
            release=obj.close,
        )
    if isinstance(obj, requests.Response):
        prepared = obj.request
        return ResponseView(
            status=obj.status_code,
            headers=_lower_headers(obj.headers),
            body=obj.content,
            method=prepared.method if prepared is not None else None,
            path=urlsplit(obj.url).path if obj.url else None,
            release=obj.close,
        )
    if isinstance(obj, httpx.HTTPStatusError | requests.HTTPError):
        response = obj.response
        return view_of(response) if response is not None else None
    if _is_sdk_api_exception(obj):
        status = getattr(obj, "status", None)
        if not isinstance(status, int) or status <= 0:
            return None  # status 0: the SDK wraps a TLS failure or a local error
        return ResponseView(
            status=status,
            headers=_lower_headers(getattr(obj, "headers", None)),
            body=getattr(obj, "body", None),
        )
    if _is_salesforce_error(obj):
        url = getattr(obj, "url", None)
        return ResponseView(
            status=int(getattr(obj, "status", 0)),
            headers={},
            body=getattr(obj, "content", None),
            path=urlsplit(url).path if isinstance(url, str) else None,
        )
    return None


def headers_of(obj: object) -> Mapping[str, str] | None:
    """The response headers of a response object (lower-case names), without its body."""
    if isinstance(obj, httpx.Response | requests.Response):
        return _lower_headers(obj.headers)
    if _is_sdk_api_exception(obj):
        return _lower_headers(getattr(obj, "headers", None))
    return None


def daily_usage(headers: Mapping[str, str]) -> tuple[int, int] | None:
    """`(used, allowed)` of the daily allocation from HubSpot's `X-HubSpot-RateLimit-Daily*`
    or Salesforce's `Sforce-Limit-Info: api-usage=N/M`; None when the answer does not say."""
    info = headers.get(s.SALESFORCE_LIMIT_INFO_HEADER)
    if info is not None:
        found = re.search(s.SALESFORCE_API_USAGE, info)
        if found:
            return int(found.group(1)), int(found.group(2))
    allowed = headers.get(s.HUBSPOT_DAILY_HEADER)
    remaining = headers.get(s.HUBSPOT_DAILY_REMAINING_HEADER)
    if allowed is not None and remaining is not None:
        try:
            total, left = int(allowed), int(remaining)
        except ValueError:
            return None
        return max(0, total - left), total
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


def hinted_wait(view: ResponseView, now: datetime) -> float | None:
    """The wait a response asks for: `Retry-After`, else HubSpot's window length header."""
    wait = parse_retry_after(view.headers.get(s.RETRY_AFTER_HEADER), now)
    if wait is not None:
        return wait
    interval = view.headers.get(s.HUBSPOT_INTERVAL_HEADER)
    if interval is not None:
        try:
            return max(0.0, float(interval) / 1000.0)
        except ValueError:
            return None
    return None


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

_CLIENT_ERRORS = range(400, 500)
_SERVER_ERRORS = range(500, 600)

HUBSPOT: tuple[Rule, ...] = (
    Rule(
        Action.QUOTA,
        QuotaExhausted,
        "the daily allocation is spent; it resets at midnight in the account's time zone",
        status=_statuses(429),
        codes=_codes(s.HUBSPOT_POLICY_DAILY),
    ),
    Rule(
        Action.RATE_LIMIT,
        RateLimited,
        "the 10-second burst window is full: wait for it",
        status=_statuses(429),
        codes=_codes(s.HUBSPOT_POLICY_TEN_SECONDLY),
        wait=s.HUBSPOT_BURST_WINDOW_SECONDS,
    ),
    Rule(
        Action.RATE_LIMIT,
        RateLimited,
        "the per-second limit (search) is hit: wait a second",
        status=_statuses(429),
        codes=_codes(s.HUBSPOT_POLICY_SECONDLY),
        wait=s.HUBSPOT_SECONDLY_WINDOW_SECONDS,
    ),
    Rule(Action.RATE_LIMIT, RateLimited, "rate limited", status=_statuses(429)),
    Rule(Action.FAIL, AuthError, "the token was refused", status=_statuses(401)),
    Rule(Action.FAIL, AuthError, "the token lacks a scope or access", status=_statuses(403)),
    Rule(
        Action.SKIP,
        RecordRejected,
        "the record conflicts with an existing one",
        status=_statuses(409),
    ),
    Rule(Action.FAIL, RequestFailed, "the request was refused", status=_statuses(_CLIENT_ERRORS)),
    Rule(Action.RETRY, ServerError, "HubSpot failed", status=_statuses(_SERVER_ERRORS)),
    *TRANSPORT_RULES,
)

SALESFORCE: tuple[Rule, ...] = (
    Rule(
        Action.REFRESH,
        SessionExpired,
        "the session expired: log in again",
        status=_statuses(401),
        codes=_codes("INVALID_SESSION_ID"),
    ),
    Rule(Action.FAIL, AuthError, "the credentials were refused", status=_statuses(401)),
    Rule(
        Action.FAIL,
        AuthError,
        "the OAuth grant was refused",
        status=_statuses(400),
        codes=_codes("invalid_grant", "invalid_client", "invalid_client_id", "unauthorized_client"),
    ),
    Rule(
        Action.RATE_LIMIT,
        RateLimited,
        "too many concurrent long-running requests in the org",
        status=_statuses(403),
        codes=_codes(s.SALESFORCE_LIMIT_EXCEEDED),
        message=s.SALESFORCE_CONCURRENT_MESSAGE,
    ),
    Rule(
        Action.QUOTA,
        QuotaExhausted,
        "the org's rolling 24-hour API allocation is spent",
        status=_statuses(403),
        codes=_codes(s.SALESFORCE_LIMIT_EXCEEDED),
    ),
    Rule(Action.FAIL, AuthError, "access refused", status=_statuses(403)),
    Rule(Action.RATE_LIMIT, RateLimited, "too many requests", status=_statuses(429)),
    Rule(
        Action.SKIP,
        RecordRejected,
        "the record was refused",
        status=_statuses(400),
        codes=_codes(
            "DUPLICATES_DETECTED",
            "FIELD_CUSTOM_VALIDATION_EXCEPTION",
            "REQUIRED_FIELD_MISSING",
            "STRING_TOO_LONG",
        ),
    ),
    Rule(Action.FAIL, RequestFailed, "the request was refused", status=_statuses(_CLIENT_ERRORS)),
    Rule(Action.RETRY, ServerError, "Salesforce failed", status=_statuses(_SERVER_ERRORS)),
    *TRANSPORT_RULES,
)

WEBHOOK: tuple[Rule, ...] = (
    Rule(Action.RETRY, ServerError, "the endpoint is busy", status=_statuses(408, 429)),
    Rule(Action.FAIL, RequestFailed, "the endpoint refused the alert",
         status=_statuses(_CLIENT_ERRORS)),
    Rule(Action.RETRY, ServerError, "the endpoint failed", status=_statuses(_SERVER_ERRORS)),
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
) -> Verdict | None:
    """Decide what to do about an error answer (`view`) or an `exception`.

    Returns None for an exception no rule knows (a programming error: let it propagate).
    """
    rules = tuple(table)
    if view is not None:
        info = error_info(view)
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
