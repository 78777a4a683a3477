"""The one HTTP policy every outbound call goes through, whichever library makes it.

- `settings`: tiers, limits, header names and default numbers (one place).
- `limits`: `RollingWindowLimiter` (N per W seconds) and `ConcurrencyLimiter`.
- `classify`: the `HUBSPOT` and `SALESFORCE` tables (status / code / exception -> action).
- `policy`: `HttpPolicy.execute(send, limiter=, describe=)` with tenacity retries.
- adapters: `PolicyTransport` / `make_httpx_client` (httpx), `PolicyAdapter` /
  `make_requests_session` (requests, simple-salesforce), `make_hubspot_client` / `call_sdk`
  (hubspot-api-client).
"""

from __future__ import annotations

from connector.http.classify import (
    HUBSPOT,
    SALESFORCE,
    WEBHOOK,
    Action,
    ResponseView,
    Rule,
    SessionExpired,
    TlsError,
    Verdict,
    classify_error,
    parse_retry_after,
)
from connector.http.hubspot_sdk import api_request, call_sdk, make_hubspot_client, no_retries
from connector.http.limits import ConcurrencyLimiter, Limiter, LimiterBusy, RollingWindowLimiter
from connector.http.policy import HttpPolicy, RefreshHook, Timeouts, redact
from connector.http.session import PolicyAdapter, make_requests_session
from connector.http.settings import (
    HUBSPOT_TIERS,
    HubSpotLimits,
    PolicySettings,
    RollingLimit,
    hubspot_limits,
    hubspot_settings,
    salesforce_settings,
    webhook_settings,
)
from connector.http.transport import (
    ACCEPT,
    DESCRIBE,
    LIMITER,
    PolicyTransport,
    make_httpx_client,
)

__all__ = [
    "ACCEPT",
    "DESCRIBE",
    "HUBSPOT",
    "HUBSPOT_TIERS",
    "LIMITER",
    "SALESFORCE",
    "WEBHOOK",
    "Action",
    "ConcurrencyLimiter",
    "HttpPolicy",
    "HubSpotLimits",
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
    "api_request",
    "call_sdk",
    "classify_error",
    "hubspot_limits",
    "hubspot_settings",
    "make_httpx_client",
    "make_hubspot_client",
    "make_requests_session",
    "no_retries",
    "parse_retry_after",
    "redact",
    "salesforce_settings",
    "webhook_settings",
]
