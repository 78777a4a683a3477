"""hubspot-api-client (urllib3) under the policy: the SDK's own retries off, timeouts on. The
only module of Handshake importing the SDK (the pull and write-back speak httpx).

    client = make_hubspot_client(policy, access_token=token, host=base_url)
    page = call_sdk(policy, client.crm.contacts.basic_api.get_page, limit=100,
                    describe="list contacts")

`ApiException` (`.status`, `.headers`, `.body`) goes through the same table as any answer
(the `HUBSPOT` dialect reads it).
The SDK's generic `client.api_request(options)` calls module-level `requests` with no timeout
and no session; `api_request(policy, client, options)` sends the same request through a policy
session instead (for legacy paths the typed APIs lack).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import hubspot  # type: ignore[import-untyped]
import requests
from hubspot.discovery.discovery_base import DiscoveryBase  # type: ignore[import-untyped]
from hubspot.utils.requests.http_request_builder import (  # type: ignore[import-untyped]
    Request as SdkRequest,
)
from urllib3.util.retry import Retry

from connector.http import HttpPolicy, make_requests_session

__all__ = ["api_request", "call_sdk", "make_hubspot_client", "no_retries"]

T = TypeVar("T")


def no_retries() -> Retry:
    """A urllib3 `Retry` that never retries nor follows redirects: the policy retries."""
    return Retry(
        total=0,
        connect=0,
        read=0,
        redirect=0,
        status=0,
        other=0,
        raise_on_redirect=False,
        raise_on_status=False,
    )


def _with_default_timeout(rest_client: Any, timeout: tuple[float, float]) -> None:
    # the generated client passes `timeout=None` (no timeout) unless each call names one
    original = rest_client.request

    def request(*args: Any, _request_timeout: Any = None, **kwargs: Any) -> Any:
        return original(*args, _request_timeout=_request_timeout or timeout, **kwargs)

    rest_client.request = request


def make_hubspot_client(
    policy: HttpPolicy,
    access_token: str,
    host: str | None = None,
    *,
    verify_ssl: bool = True,
    ssl_ca_cert: str | None = None,
) -> hubspot.Client:
    """`hubspot.Client.create(access_token=..., host=...)` with urllib3 retries off and the
    policy's timeouts on every API object it makes; the token is registered as a secret."""
    policy.add_secret(access_token)
    timeout = policy.timeouts.pair()

    def api_factory(api_client_package: Any, api_name: str, config: dict[str, Any]) -> Any:
        api = DiscoveryBase._default_api_factory(api_client_package, api_name, config)
        _with_default_timeout(api.api_client.rest_client, timeout)
        return api

    options: dict[str, Any] = {
        "access_token": access_token,
        "retry": no_retries(),
        "api_factory": api_factory,
        "verify_ssl": verify_ssl,
    }
    if host is not None:
        options["host"] = host.rstrip("/")
        options["base_url"] = host.rstrip("/")  # what `client.api_request` builds URLs from
    if ssl_ca_cert is not None:
        options["ssl_ca_cert"] = ssl_ca_cert
    return hubspot.Client.create(**options)


def call_sdk(
    policy: HttpPolicy,
    method: Callable[..., T],
    *args: Any,
    describe: str = "",
    limiter: str | None = None,
    **kwargs: Any,
) -> T:
    """`method(*args, **kwargs)` (an SDK call) under `policy`."""
    what = describe or getattr(method, "__qualname__", "hubspot call")
    return policy.execute(lambda: method(*args, **kwargs), describe=what, limiter=limiter)


def api_request(
    policy: HttpPolicy,
    client: hubspot.Client,
    options: dict[str, Any],
    *,
    session: requests.Session | None = None,
) -> requests.Response:
    """What `client.api_request(options)` sends (`method`, `path`, `qs`, `body`, auth from the
    client), sent through a policy session with timeouts instead of bare `requests`."""
    built = SdkRequest(client.config, options)
    own = session is None
    sender = session if session is not None else make_requests_session(policy)
    try:
        response: requests.Response = sender.request(
            built.get_method(), built.get_url(), **built.get_options_for_sending()
        )
        return response
    finally:
        if own:
            sender.close()
