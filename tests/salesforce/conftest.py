"""Fixtures: one small sandbox per test module, and clients built from a `Config` as the
connector builds them, on the sandbox's clock."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import SecretStr

from connector.config import (
    Config,
    HubSpotSettings,
    SalesforceAuth,
    SalesforceSettings,
    Secrets,
)
from connector.salesforce import GovernorSnapshot, SalesforceClient
from connector.sandbox import Sandbox

START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


class SandboxTime:
    """The connector's clock on the sandbox's time; waiting is recorded, never slept."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.slept: list[float] = []
        self._mono = 0.0

    def now(self) -> datetime:
        return self.sandbox.clock.now()

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self._mono += max(0.0, seconds)

    def monotonic(self) -> float:
        return self._mono


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(contacts=30, seed=7, start=START, frozen_clock=True) as sb:
        yield sb


def make_config(
    sb: Sandbox,
    *,
    auth: SalesforceAuth = SalesforceAuth.PASSWORD,
    share: float = 0.25,
    secrets: dict[str, Any] | None = None,
    **salesforce: Any,
) -> Config:
    """The config a user would write for this sandbox, with secrets as from the environment."""
    info = sb.info()["salesforce"]
    given = secrets or {
        "sf_username": info["username"],
        "sf_password": SecretStr(info["password"]),
        "sf_security_token": SecretStr(info["security_token"]),
    }
    return Config(
        hubspot=HubSpotSettings(),
        salesforce=SalesforceSettings(
            instance_url=info["instance_url"],
            login_url=info["login_url"],
            auth=auth,
            daily_allocation_share=share,
            ca_bundle=info["ca_bundle"],
            max_attempts=3,
            **salesforce,
        ),
        secrets=Secrets(**given),
    )


def make_client(
    sb: Sandbox,
    *,
    snapshot: GovernorSnapshot | None = None,
    **config: Any,
) -> SalesforceClient:
    """A logged-in client on the sandbox's clock."""
    return SalesforceClient.from_config(
        make_config(sb, **config), clock=SandboxTime(sb), snapshot=snapshot
    )
