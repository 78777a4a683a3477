"""A requests transport adapter that sends `https://*.salesforce.com/...` to the sandbox, so
clients that hard-code Salesforce login hosts (simple-salesforce) run unchanged."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter

__all__ = ["SalesforceRoutingAdapter", "salesforce_session"]

SALESFORCE_HOST_SUFFIXES = (".salesforce.com", ".force.com")


class SalesforceRoutingAdapter(HTTPAdapter):
    """Rewrites the scheme and host of Salesforce URLs to `base_url` before sending."""

    def __init__(self, base_url: str, ca_bundle: str | Path | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        target = urlsplit(base_url)
        self._scheme, self._netloc = target.scheme, target.netloc
        self._ca_bundle = str(ca_bundle) if ca_bundle is not None else None

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: float | tuple[float | None, float | None] | None = None,
        verify: bool | str = True,
        cert: str | tuple[str, str] | None = None,
        proxies: dict[str, str] | None = None,
    ) -> requests.Response:
        parts = urlsplit(request.url or "")
        host = parts.hostname or ""
        if host.endswith(SALESFORCE_HOST_SUFFIXES):
            request.url = urlunsplit(
                (self._scheme, self._netloc, parts.path, parts.query, parts.fragment)
            )
            # the Host header must name the sandbox for its answers' URLs (instance_url)
            request.headers["Host"] = self._netloc
        if self._ca_bundle is not None and (request.url or "").startswith(
            f"{self._scheme}://{self._netloc}"
        ):
            # REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE in the environment override session.verify
            # (requests merges them per call), so the sandbox CA is pinned here
            verify = self._ca_bundle
        return super().send(
            request, stream=stream, timeout=timeout, verify=verify, cert=cert, proxies=proxies
        )


def salesforce_session(base_url: str, ca_bundle: str | Path | None = None) -> requests.Session:
    """A requests session that routes Salesforce hosts to `base_url` and verifies TLS with
    `ca_bundle` (the sandbox CA)."""
    session = requests.Session()
    adapter = SalesforceRoutingAdapter(base_url, ca_bundle)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    if ca_bundle is not None:
        session.verify = str(ca_bundle)
    return session
