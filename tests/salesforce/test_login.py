"""Logging in by each auth method the sandbox supports, session refresh, and secrets kept out
of every error, repr and log line."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import SecretStr

from connector.config import SalesforceAuth
from connector.errors import AuthError, ConfigError
from connector.http import SessionExpired
from connector.salesforce.auth import _jwt_audience
from connector.sandbox import Sandbox
from connector.sandbox.runtime import SALESFORCE_CONSUMER_KEY, SALESFORCE_CONSUMER_SECRET

from .conftest import make_client


def _lead_count(client: object) -> int:
    return sum(1 for _ in client.query("SELECT Id FROM Lead"))  # type: ignore[attr-defined]


def test_password_login_is_a_soap_login_to_the_configured_login_url(sandbox: Sandbox) -> None:
    with make_client(sandbox) as client:
        assert client.sf.base_url == f"{sandbox.salesforce_url}/services/data/v62.0/"
        assert client.sf.session_id != sandbox.salesforce.session_id
        assert client.logins == 1
        assert _lead_count(client) == len(sandbox.salesforce.state.records("Lead"))
        assert client.calls == 1


def test_jwt_bearer_login(sandbox: Sandbox, tmp_path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = tmp_path / "server.key"
    pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    sandbox.salesforce.auth.jwt_public_key_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    info = sandbox.info()["salesforce"]
    secrets = {
        "sf_username": info["username"],
        "sf_consumer_key": SALESFORCE_CONSUMER_KEY,
        "sf_private_key_file": str(pem),
    }
    with make_client(sandbox, auth=SalesforceAuth.JWT, secrets=secrets) as client:
        assert _lead_count(client) > 0
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem.write_bytes(
        other.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(AuthError, match="invalid_grant"):
        make_client(sandbox, auth=SalesforceAuth.JWT, secrets=secrets)


def test_client_credentials_login(sandbox: Sandbox) -> None:
    secrets = {
        "sf_client_id": SALESFORCE_CONSUMER_KEY,
        "sf_client_secret": SecretStr(SALESFORCE_CONSUMER_SECRET),
    }
    with make_client(sandbox, auth=SalesforceAuth.CLIENT_CREDENTIALS, secrets=secrets) as client:
        assert _lead_count(client) > 0
    wrong = {**secrets, "sf_client_secret": SecretStr("not-the-secret-4711")}
    with pytest.raises(AuthError) as info:
        make_client(sandbox, auth=SalesforceAuth.CLIENT_CREDENTIALS, secrets=wrong)
    assert "invalid_client" in str(info.value)
    assert "not-the-secret-4711" not in str(info.value)


def test_session_id_login_uses_the_instance_url(sandbox: Sandbox) -> None:
    secrets = {"sf_session_id": SecretStr(sandbox.salesforce.session_id)}
    with make_client(sandbox, auth=SalesforceAuth.SESSION, secrets=secrets) as client:
        assert client.logins == 1  # nothing sent: the session is given
        assert _lead_count(client) > 0
        assert client.policy.on_session_expired is None


def test_missing_secrets_are_named_as_config_problems(sandbox: Sandbox) -> None:
    with pytest.raises(ConfigError) as info:
        make_client(sandbox, auth=SalesforceAuth.CLIENT_CREDENTIALS, secrets={})
    keys = {p.key for p in info.value.problems}
    assert keys == {"HANDSHAKE_SF_CLIENT_ID", "HANDSHAKE_SF_CLIENT_SECRET"}


def test_expired_session_is_refreshed_once_transparently(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    info = sandbox.info()["salesforce"]
    with make_client(sandbox) as client:
        old = client.sf.session_id
        before = _lead_count(client)
        sandbox.salesforce.expire_sessions()
        with caplog.at_level(logging.DEBUG):
            assert _lead_count(client) == before
        assert client.logins == 2
        assert client.sf.session_id != old
        assert client.sf.headers["Authorization"] == f"Bearer {client.sf.session_id}"
        assert client.calls == 2  # the re-sent query is the same logical call
        # later calls use the new session directly: no further login
        assert client.describe("Lead")["name"] == "Lead"
        assert client.logins == 2
        logged = "\n".join(r.getMessage() for r in caplog.records)
        assert "session expired, refreshing once" in logged
        for secret in (old, client.sf.session_id, info["password"], info["security_token"]):
            assert secret not in logged


def test_an_expired_given_session_fails_clearly_without_showing_it(sandbox: Sandbox) -> None:
    session_id = sandbox.salesforce.issue_session()
    secrets = {"sf_session_id": SecretStr(session_id)}
    with make_client(sandbox, auth=SalesforceAuth.SESSION, secrets=secrets) as client:
        sandbox.salesforce.expire_sessions()
        with pytest.raises(SessionExpired) as err:
            _lead_count(client)
    assert "INVALID_SESSION_ID" in str(err.value)
    assert session_id not in str(err.value) and session_id not in repr(err.value)


def test_a_refused_password_names_the_user_and_hides_the_secrets(sandbox: Sandbox) -> None:
    info = sandbox.info()["salesforce"]
    secrets = {
        "sf_username": info["username"],
        "sf_password": SecretStr("Wr0ng-pass<&>"),
        "sf_security_token": SecretStr("tok-9876543"),
    }
    with pytest.raises(AuthError) as err:
        make_client(sandbox, secrets=secrets)
    text = f"{err.value} {err.value!r}"
    assert "INVALID_LOGIN" in text and info["username"] in text
    assert "HANDSHAKE_SF_PASSWORD" in text
    assert "Wr0ng-pass" not in text and "tok-9876543" not in text
    assert err.value.__cause__ is None


def test_client_and_credentials_reprs_hold_no_secret(sandbox: Sandbox) -> None:
    info = sandbox.info()["salesforce"]
    with make_client(sandbox) as client:
        shown = f"{client!r} {client.credentials!r}"
        for secret in (info["password"], info["security_token"], client.sf.session_id):
            assert secret not in shown


def test_threads_hitting_an_expired_session_together_log_in_once(sandbox: Sandbox) -> None:
    with make_client(sandbox) as client:
        client.describe("Lead")
        sandbox.salesforce.expire_sessions()
        with ThreadPoolExecutor(max_workers=4) as pool:
            counts = list(pool.map(lambda _: _lead_count(client), range(8)))
        assert len(set(counts)) == 1
        assert client.logins == 2  # one renewal for every call that met the expired session
        assert client.calls == 9


@pytest.mark.parametrize(
    ("login_url", "audience"),
    [
        ("https://login.salesforce.com", "https://login.salesforce.com"),
        ("https://acme.my.salesforce.com", "https://login.salesforce.com"),
        ("https://test.salesforce.com", "https://test.salesforce.com"),
        ("https://acme--uat.sandbox.my.salesforce.com", "https://test.salesforce.com"),
        ("https://127.0.0.1:8443", "https://127.0.0.1:8443"),
    ],
)
def test_the_jwt_audience_follows_the_login_url(login_url: str, audience: str) -> None:
    assert _jwt_audience(login_url) == audience
