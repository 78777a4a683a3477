"""HubSpot's errors as data: the table from status / `policyName` / exception to action, and the
`HUBSPOT` dialect the policy reads HubSpot's answers with.

    HUBSPOT_RULES
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
    └── TRANSPORT_RULES (connector.http): a refused certificate FAILs (TlsError), a timeout,
        reset or dropped connection RETRYs (TransportError)

Besides the table, HubSpot's answers say: error codes in `category`, `subCategory`, `errorType`
and `policyName`; the daily allocation in `X-HubSpot-RateLimit-Daily` / `-Daily-Remaining`; the
burst window's length in `X-HubSpot-RateLimit-Interval-Milliseconds`. hubspot-api-client raises
an `ApiException` carrying the answer's `status`, `headers` and `body`.
"""

from __future__ import annotations

from collections.abc import Mapping

from connector.errors import (
    AccessRefused,
    AuthError,
    QuotaExhausted,
    RateLimited,
    RecordRejected,
    RequestFailed,
    ServerError,
)
from connector.http.classify import (
    CLIENT_ERRORS,
    SERVER_ERRORS,
    TRANSPORT_RULES,
    Action,
    Dialect,
    ResponseView,
    Rule,
    codes,
    lower_headers,
    statuses,
)
from connector.hubspot import settings as hs

__all__ = ["HUBSPOT", "HUBSPOT_RULES", "daily_usage", "interval_wait", "sdk_answer"]

HUBSPOT_RULES: tuple[Rule, ...] = (
    Rule(
        Action.QUOTA,
        QuotaExhausted,
        "the daily allocation is spent; it resets at midnight in the account's time zone",
        status=statuses(429),
        codes=codes(hs.HUBSPOT_POLICY_DAILY),
    ),
    Rule(
        Action.RATE_LIMIT,
        RateLimited,
        "the 10-second burst window is full: wait for it",
        status=statuses(429),
        codes=codes(hs.HUBSPOT_POLICY_TEN_SECONDLY),
        wait=hs.HUBSPOT_BURST_WINDOW_SECONDS,
    ),
    Rule(
        Action.RATE_LIMIT,
        RateLimited,
        "the per-second limit (search) is hit: wait a second",
        status=statuses(429),
        codes=codes(hs.HUBSPOT_POLICY_SECONDLY),
        wait=hs.HUBSPOT_SECONDLY_WINDOW_SECONDS,
    ),
    Rule(Action.RATE_LIMIT, RateLimited, "rate limited", status=statuses(429)),
    Rule(Action.FAIL, AuthError, "the token was refused", status=statuses(401)),
    Rule(Action.FAIL, AccessRefused, "the token lacks a scope or access",
         status=statuses(403)),
    Rule(
        Action.SKIP,
        RecordRejected,
        "the record conflicts with an existing one",
        status=statuses(409),
    ),
    Rule(Action.FAIL, RequestFailed, "the request was refused", status=statuses(CLIENT_ERRORS)),
    Rule(Action.RETRY, ServerError, "HubSpot failed", status=statuses(SERVER_ERRORS)),
    *TRANSPORT_RULES,
)


def daily_usage(headers: Mapping[str, str]) -> tuple[int, int] | None:
    """`(used, allowed)` of the daily allocation from `X-HubSpot-RateLimit-Daily` and
    `-Daily-Remaining`; None when the answer does not say."""
    allowed = headers.get(hs.HUBSPOT_DAILY_HEADER)
    remaining = headers.get(hs.HUBSPOT_DAILY_REMAINING_HEADER)
    if allowed is None or remaining is None:
        return None
    try:
        total, left = int(allowed), int(remaining)
    except ValueError:
        return None
    return max(0, total - left), total


def interval_wait(headers: Mapping[str, str]) -> float | None:
    """The burst window's length in seconds, as a 429 without `Retry-After` gives it."""
    interval = headers.get(hs.HUBSPOT_INTERVAL_HEADER)
    if interval is None:
        return None
    try:
        return max(0.0, float(interval) / 1000.0)
    except ValueError:
        return None


def sdk_answer(exc: BaseException) -> ResponseView | None:
    """The answer a hubspot-api-client `ApiException` carries; None for any other exception,
    and for status 0 (the SDK wraps a TLS failure or a local error: the exception decides)."""
    # every generated hubspot package has its own ApiException class: match on the name
    if not any(cls.__name__ == "ApiException" for cls in type(exc).__mro__):
        return None
    status = getattr(exc, "status", None)
    if not isinstance(status, int) or status <= 0:
        return None
    return ResponseView(
        status=status,
        headers=lower_headers(getattr(exc, "headers", None)),
        body=getattr(exc, "body", None),
    )


HUBSPOT = Dialect(
    "hubspot",
    HUBSPOT_RULES,
    code_keys=hs.HUBSPOT_ERROR_CODE_KEYS,
    read_exception=sdk_answer,
    read_usage=daily_usage,
    read_wait=interval_wait,
)
