"""httpx under the policy: `PolicyTransport` wraps any transport; `make_httpx_client` builds a
client with timeouts set.

Per request, the caller may steer the policy through request extensions:
`client.get(url, extensions={LIMITER: "search", DESCRIBE: "search contacts", ACCEPT: (404,)})`.
respx still mocks underneath: it patches the transport the policy wraps.
"""

from __future__ import annotations

import os
import ssl
import threading
from collections.abc import Mapping
from typing import Any

import httpx

from connector.http.policy import HttpPolicy

__all__ = ["ACCEPT", "DESCRIBE", "LIMITER", "PolicyTransport", "make_httpx_client"]

LIMITER = "handshake.limiter"
DESCRIBE = "handshake.describe"
ACCEPT = "handshake.accept"

_AUTH_SCHEMES = ("bearer ", "basic ")
_CONTEXTS: dict[tuple[str | None, str | None], ssl.SSLContext] = {}
_CONTEXTS_LOCK = threading.Lock()


def _verifying_context() -> ssl.SSLContext:
    """httpx's TLS context for `verify=True` (certifi's bundle, or SSL_CERT_FILE /
    SSL_CERT_DIR when set), made once a process and shared by the clients that verify so:
    reading the bundle took about 0.1 s of CPU for every client built (each stage builds
    its own). A context is safe to share between connections and threads; no client here
    loads a client certificate into it or speaks HTTP/2 (httpcore sets ALPN on it)."""
    key = (os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))
    with _CONTEXTS_LOCK:
        context = _CONTEXTS.get(key)
        if context is None:
            context = _CONTEXTS[key] = httpx.create_ssl_context()
        return context


class PolicyTransport(httpx.BaseTransport):
    """An httpx transport that sends every request through `policy.execute`."""

    def __init__(self, policy: HttpPolicy, inner: httpx.BaseTransport | None = None) -> None:
        self.policy = policy
        self.inner = inner if inner is not None else httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Send `request` with limiters, classification and retries."""
        extensions = request.extensions
        target = f"{request.method} {request.url.path}"
        describe = str(extensions.get(DESCRIBE) or "")
        describe = f"{describe} ({target})" if describe else target

        def send() -> httpx.Response:
            response = self.inner.handle_request(request)
            # Read the body under the policy: a connection dropped mid-body is retried too.
            try:
                response.read()
            finally:
                response.close()
            return response

        def refreshed(headers: Mapping[str, str]) -> None:
            request.headers.update(headers)

        return self.policy.execute(
            send,
            limiter=extensions.get(LIMITER),
            describe=describe,
            accept=tuple(extensions.get(ACCEPT, ())),
            on_refreshed=refreshed,
        )

    def close(self) -> None:
        """Close the wrapped transport."""
        self.inner.close()


def make_httpx_client(
    policy: HttpPolicy,
    base_url: str,
    headers: Mapping[str, str] | None = None,
    transport: httpx.BaseTransport | None = None,
    verify: Any = True,
    **client_options: Any,
) -> httpx.Client:
    """An `httpx.Client` whose requests all go through `policy`, with its timeouts.

    `transport` is the one wrapped (default: `httpx.HTTPTransport(verify=verify)`); a bearer
    token in `headers` is registered with the policy so it never shows in an error message.
    """
    for name, value in (headers or {}).items():
        if name.lower() == "authorization":
            lowered = value.lower()
            token = value.split(" ", 1)[1] if lowered.startswith(_AUTH_SCHEMES) else value
            policy.add_secret(token)
    if transport is not None:
        inner = transport
    else:
        inner = httpx.HTTPTransport(verify=_verifying_context() if verify is True else verify)
    return httpx.Client(
        base_url=base_url,
        headers=dict(headers or {}),
        timeout=policy.timeouts.httpx(),
        transport=PolicyTransport(policy, inner),
        **client_options,
    )
