"""Logging in to Salesforce: the four ways the config allows, each giving a session id and
the instance URL.

    password            SOAP partner login() with username, password + security token
    jwt                 OAuth 2.0 JWT bearer flow (connected app certificate)
    client_credentials  OAuth 2.0 client credentials flow (connected app run-as user)
    session             a session id given in the environment (cannot be renewed)

Logins are sent to the configured `login_url` (simple-salesforce would build
`https://{domain}.salesforce.com` itself), under the HTTP policy, and never counted in the API
allocation (Salesforce does not count them). Every secret is registered with the policy so it
never shows in an error.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from xml.etree import ElementTree
from xml.sax.saxutils import escape

import jwt
import requests
from requests.adapters import HTTPAdapter

from connector.clock import utcnow
from connector.config import Config, SalesforceAuth
from connector.errors import AuthError, ConfigError, ConfigProblem, ServerError
from connector.http import HttpPolicy
from connector.salesforce import settings as ss
from connector.salesforce.settings import SALESFORCE_SYSTEM

__all__ = ["Credentials", "Login", "PinnedCAAdapter", "credentials_from_config", "login"]


class PinnedCAAdapter(HTTPAdapter):
    """A plain requests adapter (no urllib3 retries) that always verifies with `ca_bundle` and
    reads the whole body before returning.

    requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE in the environment override a session's
    `verify`; a configured CA bundle must win, so it is pinned here. requests reads a body only
    after the adapter returned, outside the policy around it; reading it here makes a
    connection dropped mid-body a transport error the policy retries.
    """

    def __init__(self, ca_bundle: str = "", *, pool_maxsize: int = 10) -> None:
        super().__init__(max_retries=0, pool_maxsize=pool_maxsize)
        self.ca_bundle = ca_bundle

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: float | tuple[float | None, float | None] | None = None,
        verify: bool | str = True,
        cert: str | tuple[str, str] | None = None,
        proxies: dict[str, str] | None = None,
    ) -> requests.Response:
        """Send with the pinned CA bundle (when one is configured); read the body unless the
        caller streams it."""
        response = super().send(
            request,
            stream=stream,
            timeout=timeout,
            verify=self.ca_bundle or verify,
            cert=cert,
            proxies=proxies,
        )
        if not stream:
            response.content  # noqa: B018 - the read itself is the point
        return response


@dataclass(frozen=True)
class Credentials:
    """What one auth method needs; secrets stay out of `repr`."""

    method: SalesforceAuth
    login_url: str
    instance_url: str
    api_version: str
    username: str | None = None
    password: str | None = None
    security_token: str | None = None
    consumer_key: str | None = None
    private_key_file: str | None = None
    client_id: str | None = None
    client_secret: str | None = None
    session_id: str | None = None

    def __repr__(self) -> str:
        return f"Credentials({self.method.value}, login_url={self.login_url!r})"

    def secrets(self) -> list[str]:
        """Every secret value, for the policy's redactor."""
        values = [self.password, self.security_token, self.client_secret, self.session_id]
        if self.password and self.security_token:
            values.append(self.password + self.security_token)
        return [v for v in values if v]

    @property
    def renewable(self) -> bool:
        """Whether a new session can be had when this one expires."""
        return self.method is not SalesforceAuth.SESSION


def credentials_from_config(config: Config) -> Credentials:
    """The credentials of the configured auth method; `ConfigError` names what is missing."""
    sf = config.salesforce
    sec = config.secrets

    def secret(value: Any) -> str | None:
        return value.get_secret_value() if value is not None else None

    creds = Credentials(
        method=sf.auth,
        login_url=sf.login_url,
        instance_url=sf.instance_url,
        api_version=sf.api_version,
        username=sec.sf_username,
        password=secret(sec.sf_password),
        security_token=secret(sec.sf_security_token),
        consumer_key=sec.sf_consumer_key,
        private_key_file=sec.sf_private_key_file,
        client_id=sec.sf_client_id,
        client_secret=secret(sec.sf_client_secret),
        session_id=secret(sec.sf_session_id),
    )
    needed = {
        SalesforceAuth.PASSWORD: ("username", "password", "security_token"),
        SalesforceAuth.JWT: ("username", "consumer_key", "private_key_file"),
        SalesforceAuth.CLIENT_CREDENTIALS: ("client_id", "client_secret"),
        SalesforceAuth.SESSION: ("session_id",),
    }[sf.auth]
    missing = [name for name in needed if not getattr(creds, name)]
    if missing:
        raise ConfigError(
            [
                ConfigProblem(
                    "environment",
                    f"HANDSHAKE_SF_{name.upper()}",
                    f"needed for salesforce.auth = {sf.auth.value!r} but not set",
                    f"export HANDSHAKE_SF_{name.upper()}, or choose another salesforce.auth",
                )
                for name in missing
            ]
        )
    return creds


@dataclass(frozen=True)
class Login:
    """A session: its id (a secret) and the instance every REST call goes to."""

    session_id: str
    instance_url: str
    user_id: str | None = None  # the integration user (None for a given session id)

    def __repr__(self) -> str:
        return f"Login(instance_url={self.instance_url!r})"


def _jwt_audience(login_url: str) -> str:
    """The `aud` claim: login/test.salesforce.com for Salesforce hosts, else the login URL."""
    host = (urlsplit(login_url).hostname or "").lower()
    if not host.endswith(ss.SALESFORCE_HOST_SUFFIX):
        return login_url
    if host.startswith("test.") or ".sandbox." in host or "--" in host:
        return ss.JWT_AUDIENCE_SANDBOX
    return ss.JWT_AUDIENCE_PRODUCTION


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _soap_body(username: str, secret: str) -> str:
    return (
        '<?xml version="1.0" encoding="utf-8" ?>'
        f'<env:Envelope xmlns:env="{ss.SOAP_ENV_NS}" xmlns:urn="{ss.SOAP_NS}">'
        "<env:Body><urn:login>"
        f"<urn:username>{escape(username)}</urn:username>"
        f"<urn:password>{escape(secret)}</urn:password>"
        "</urn:login></env:Body></env:Envelope>"
    )


def _xml_text(body: bytes, tag: str) -> str | None:
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError:
        return None
    for element in root.iter():
        if element.tag.rsplit("}", 1)[-1] == tag:
            return (element.text or "").strip()
    return None


def login(creds: Credentials, policy: HttpPolicy, http: requests.Session) -> Login:
    """Log in by the configured method. `http` is a plain session (no policy adapter): each
    login is one `policy.execute` so a SOAP fault (HTTP 500) is read here, not retried."""
    for value in creds.secrets():
        policy.add_secret(value)
    timeout = policy.timeouts.pair()
    base = creds.login_url.rstrip("/")

    def post(url: str, *, accept: tuple[int, ...] = (), **kwargs: Any) -> requests.Response:
        send: Callable[[], requests.Response] = lambda: http.post(url, timeout=timeout, **kwargs)
        return policy.execute(send, describe="Salesforce login", accept=accept)

    if creds.method is SalesforceAuth.SESSION:
        assert creds.session_id is not None
        return Login(creds.session_id, creds.instance_url)
    if creds.method is SalesforceAuth.PASSWORD:
        assert creds.username and creds.password and creds.security_token
        response = post(
            base + ss.SOAP_LOGIN.format(version=creds.api_version),
            data=_soap_body(creds.username, creds.password + creds.security_token).encode(),
            headers={"Content-Type": "text/xml; charset=UTF-8", "SOAPAction": "login"},
            accept=(500,),
        )
        session_id = _xml_text(response.content, "sessionId")
        server_url = _xml_text(response.content, "serverUrl")
        if response.status_code != 200 or not session_id or not server_url:
            code = _xml_text(response.content, "exceptionCode")
            if code is None and response.status_code >= 500:
                raise ServerError(
                    f"Salesforce login: HTTP {response.status_code} without a SOAP fault",
                    system=SALESFORCE_SYSTEM,
                    status=response.status_code,
                )
            reason = _xml_text(response.content, "exceptionMessage") or "login refused"
            raise AuthError(
                policy.redact(
                    f"Salesforce login as {creds.username} refused: {code}: {reason}. Fix: check "
                    "HANDSHAKE_SF_USERNAME, HANDSHAKE_SF_PASSWORD and HANDSHAKE_SF_SECURITY_TOKEN"
                ),
                system=SALESFORCE_SYSTEM,
            )
        policy.add_secret(session_id)
        return Login(session_id, _origin(server_url), _xml_text(response.content, "userId"))
    if creds.method is SalesforceAuth.JWT:
        assert creds.username and creds.consumer_key and creds.private_key_file
        try:
            key = Path(creds.private_key_file).read_bytes()
        except OSError as exc:
            raise AuthError(
                f"cannot read the JWT private key {creds.private_key_file}: {exc.strerror}",
                system=SALESFORCE_SYSTEM,
            ) from None
        # the assertion is checked against Salesforce's wall clock, not an injected one
        expires = utcnow() + ss.JWT_LIFETIME
        assertion = jwt.encode(
            {
                "iss": creds.consumer_key,
                "sub": creds.username,
                "aud": _jwt_audience(base),
                "exp": int(expires.timestamp()),
            },
            key,
            algorithm="RS256",
        )
        policy.add_secret(assertion)
        response = post(
            base + ss.OAUTH_TOKEN, data={"grant_type": ss.JWT_GRANT, "assertion": assertion}
        )
    else:
        assert creds.client_id and creds.client_secret
        response = post(
            base + ss.OAUTH_TOKEN,
            data={"grant_type": "client_credentials"},
            auth=(creds.client_id, creds.client_secret),
        )
    body = response.json()
    token, instance = body.get("access_token"), body.get("instance_url")
    if not token or not instance:
        raise AuthError(
            "Salesforce login: the token answer has no session", system=SALESFORCE_SYSTEM
        )
    policy.add_secret(token)
    # the identity URL ends with the user's id: .../id/{orgId}/{userId} (OAuth token response)
    identity = str(body.get("id") or "").rstrip("/").rsplit("/", 1)[-1]
    return Login(str(token), str(instance).rstrip("/"), identity or None)
