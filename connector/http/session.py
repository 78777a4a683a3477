"""requests (and so simple-salesforce) under the policy: `PolicyAdapter` and
`make_requests_session`.

requests has no default timeout: the adapter puts the policy's on every request that has none.
requests-mock can sit underneath: pass `requests_mock.Adapter()` as `inner`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from connector.http.policy import HttpPolicy

__all__ = ["PolicyAdapter", "make_requests_session"]


class PolicyAdapter(HTTPAdapter):
    """A requests transport adapter (urllib3 retries off) that sends through `policy.execute`.

    `limiter` names the policy limiter every request of this adapter takes (default: the
    system's own); `inner` is another adapter to send with (default: this one's own pool).
    """

    def __init__(
        self,
        policy: HttpPolicy,
        *,
        inner: requests.adapters.BaseAdapter | None = None,
        limiter: str | None = None,
        pool_maxsize: int = 10,
        verify: bool | str | None = None,
    ) -> None:
        super().__init__(max_retries=0, pool_maxsize=pool_maxsize)
        self.policy = policy
        self.inner = inner
        self.limiter = limiter
        # requests lets REQUESTS_CA_BUNDLE override a session's `verify`; a CA bundle the
        # admin configured must win, so the adapter applies it itself.
        self.verify = verify

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: bool | str = True,
        cert: Any = None,
        proxies: dict[str, str] | None = None,
    ) -> requests.Response:
        """Send `request` with limiters, classification, retries and a timeout."""
        if timeout is None:
            timeout = self.policy.timeouts.pair()
        if self.verify is not None:
            verify = self.verify
        path = request.path_url.split("?", 1)[0]
        describe = f"{request.method} {path}"

        def send() -> requests.Response:
            if self.inner is not None:
                response = self.inner.send(
                    request,
                    stream=stream,
                    timeout=timeout,
                    verify=verify,
                    cert=cert,
                    proxies=proxies,
                )
            else:
                response = HTTPAdapter.send(
                    self,
                    request,
                    stream=stream,
                    timeout=timeout,
                    verify=verify,
                    cert=cert,
                    proxies=proxies,
                )
            if not stream:
                # Read the body under the policy: a connection dropped mid-body is retried too.
                _ = response.content
            return response

        def refreshed(headers: Mapping[str, str]) -> None:
            request.headers.update(headers)

        return self.policy.execute(
            send, limiter=self.limiter, describe=describe, on_refreshed=refreshed
        )

    def close(self) -> None:
        """Close this adapter's pools and the inner adapter."""
        super().close()
        if self.inner is not None:
            self.inner.close()


def make_requests_session(
    policy: HttpPolicy,
    *,
    verify: bool | str = True,
    inner: requests.adapters.BaseAdapter | None = None,
    limiter: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> requests.Session:
    """A `requests.Session` with a `PolicyAdapter` on http:// and https:// (pass it to
    `simple_salesforce.Salesforce(session=...)`)."""
    session = requests.Session()
    adapter = PolicyAdapter(policy, inner=inner, limiter=limiter,
                            verify=None if verify is True else verify)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.verify = verify
    if headers:
        session.headers.update(headers)
    return session
