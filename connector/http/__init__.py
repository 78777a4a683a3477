"""The one HTTP policy every outbound call goes through, whichever library makes it.

The mechanism only; each remote system's table, limits and policy constructor live with its
adapter (`connector.hubspot`, `connector.salesforce`).

- `settings`: `PolicySettings`, `RollingLimit`, the shared defaults, the alert webhook's settings.
- `limits`: `RollingWindowLimiter` (N per W seconds) and `ConcurrencyLimiter`.
- `classify`: `Rule` / `Action` tables, `Dialect` (a table with what an API's answers say beyond
  HTTP), `classify_error`, the transport rules every table ends with, the `WEBHOOK` dialect.
- `policy`: `HttpPolicy.execute(send, limiter=, describe=)` with tenacity retries.
- adapters: `PolicyTransport` / `make_httpx_client` (httpx), `PolicyAdapter` /
  `make_requests_session` (requests, simple-salesforce).
"""

from __future__ import annotations

from connector.http.classify import (
    CLIENT_ERRORS,
    SERVER_ERRORS,
    TRANSPORT_RULES,
    WEBHOOK,
    Action,
    Dialect,
    ResponseView,
    Rule,
    SessionExpired,
    TlsError,
    Verdict,
    classify_error,
    codes,
    parse_retry_after,
    statuses,
)
from connector.http.limits import ConcurrencyLimiter, Limiter, LimiterBusy, RollingWindowLimiter
from connector.http.policy import HttpPolicy, RefreshHook, Timeouts, redact
from connector.http.session import PolicyAdapter, make_requests_session
from connector.http.settings import PolicySettings, RollingLimit, webhook_settings
from connector.http.transport import (
    ACCEPT,
    DESCRIBE,
    LIMITER,
    PolicyTransport,
    make_httpx_client,
)

__all__ = [
    "ACCEPT",
    "CLIENT_ERRORS",
    "DESCRIBE",
    "LIMITER",
    "SERVER_ERRORS",
    "TRANSPORT_RULES",
    "WEBHOOK",
    "Action",
    "ConcurrencyLimiter",
    "Dialect",
    "HttpPolicy",
    "Limiter",
    "LimiterBusy",
    "PolicyAdapter",
    "PolicySettings",
    "PolicyTransport",
    "RefreshHook",
    "ResponseView",
    "RollingLimit",
    "RollingWindowLimiter",
    "Rule",
    "SessionExpired",
    "Timeouts",
    "TlsError",
    "Verdict",
    "classify_error",
    "codes",
    "make_httpx_client",
    "make_requests_session",
    "parse_retry_after",
    "redact",
    "statuses",
    "webhook_settings",
]
