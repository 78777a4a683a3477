"""Fixtures for the emulated Salesforce org: a tiny hand-made dataset and a sandbox served
over HTTPS with a session-wide throw-away CA."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
from simple_salesforce import Salesforce

from connector.sandbox.base import SandboxClock, ServedApp, TLSFiles, make_tls
from connector.sandbox.dataset import (
    GroundTruth,
    SalesforceRecordSeed,
    SalesforceUserSeed,
    SandboxDataset,
)
from connector.sandbox.salesforce import SalesforceSandbox, salesforce_session
from connector.sandbox.salesforce.ids import to_18

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
USERNAME = "integration@handshake.sandbox"
PASSWORD = "sandbox-pass"
TOKEN = "sandboxtoken"
USER_NA = to_18("0055g0000NAeast")
USER_NA2 = to_18("0055g0000NAwest")
USER_EMEA = to_18("0055g0000EMEAa1")
USER_APAC = to_18("0055g0000APACa1")
ACCOUNT_ID = to_18("0015g0000Acme01")
CONTACT_ID = to_18("0035g0000Jane01")
LEAD_ID = to_18("00Q5g0000Bob001")


def tiny_dataset() -> SandboxDataset:
    """Four reps in three regions, one Account with a Contact, one open Lead."""
    users = [
        SalesforceUserSeed(
            USER_NA, "nina@acme.test", "nina@acme.test", "Nina", "East", "NA-East", "SDR-NA"
        ),
        SalesforceUserSeed(
            USER_NA2, "will@acme.test", "will@acme.test", "Will", "West", "NA-West", "SDR-NA"
        ),
        SalesforceUserSeed(
            USER_EMEA, "emma@acme.test", "emma@acme.test", "Emma", "Meyer", "EMEA", "SDR-EMEA"
        ),
        SalesforceUserSeed(
            USER_APAC, "aki@acme.test", "aki@acme.test", "Aki", "Tanaka", "APAC", "SDR-APAC"
        ),
    ]
    records = [
        SalesforceRecordSeed(
            "Account", {"Id": ACCOUNT_ID, "Name": "Acme Corp", "OwnerId": USER_NA}
        ),
        SalesforceRecordSeed(
            "Contact",
            {
                "Id": CONTACT_ID,
                "FirstName": "Jane",
                "LastName": "Doe",
                "Email": "jane@acme.test",
                "AccountId": ACCOUNT_ID,
                "OwnerId": USER_NA,
            },
        ),
        SalesforceRecordSeed(
            "Lead",
            {
                "Id": LEAD_ID,
                "FirstName": "Bob",
                "LastName": "Stone",
                "Company": "Stone Ltd",
                "Email": "bob@stone.test",
                "Status": "Working - Contacted",
                "Country": "UK",
                "OwnerId": USER_EMEA,
                "CreatedDate": datetime(2026, 2, 1, tzinfo=UTC),
            },
        ),
    ]
    truth = GroundTruth([], [], {}, {}, {}, [], ["jane@acme.test"], ["bob@stone.test"], {})
    return SandboxDataset(
        seed=1,
        generated_at=START,
        contacts=[],
        owners=[],
        email_events=[],
        forms=[],
        form_submissions=[],
        page_views=[],
        marketing_events=[],
        participations=[],
        sf_users=users,
        sf_records=records,
        ground_truth=truth,
    )


@pytest.fixture(scope="session")
def sf_tls(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    return make_tls(tmp_path_factory.mktemp("sf-tls"))


@dataclass
class SFEnv:
    sandbox: SalesforceSandbox
    served: ServedApp
    clock: SandboxClock
    tls: TLSFiles
    sessions: list[requests.Session] = field(default_factory=list)

    def close(self) -> None:
        """Close client connections first: uvicorn waits for open keep-alive connections."""
        for session in self.sessions:
            session.close()
        self.served.stop()

    @property
    def base_url(self) -> str:
        return self.served.base_url

    @property
    def ca(self) -> str:
        return str(self.tls.ca_bundle)

    def session(self) -> requests.Session:
        """A requests session routing *.salesforce.com here and trusting the sandbox CA."""
        session = salesforce_session(self.base_url, self.ca)
        self.sessions.append(session)
        return session

    def sf(self, **kwargs: Any) -> Salesforce:
        """simple-salesforce logged in with username, password and security token."""
        return Salesforce(
            username=USERNAME,
            password=PASSWORD,
            security_token=TOKEN,
            session=self.session(),
            version="62.0",
            **kwargs,
        )

    def url(self, path: str, version: str = "62.0") -> str:
        return f"{self.base_url}/services/data/v{version}{path}"

    def call(
        self, method: str, path: str, *, token: str | None = None, **kwargs: Any
    ) -> requests.Response:
        """One REST call with the fixed session (or `token`)."""
        headers = {
            "Authorization": f"Bearer {token or self.sandbox.session_id}",
            **kwargs.pop("headers", {}),
        }
        if not self.sessions:
            self.session()
        return self.sessions[0].request(method, self.url(path), headers=headers, **kwargs)


def make_env(tls: TLSFiles, **kwargs: Any) -> SFEnv:
    clock = SandboxClock(START, frozen=True)
    sandbox = SalesforceSandbox(clock, **kwargs)
    sandbox.load(tiny_dataset())
    served = sandbox.serve(tls=tls)
    return SFEnv(sandbox, served, clock, tls)


@pytest.fixture
def sf_env(sf_tls: TLSFiles) -> Iterator[SFEnv]:
    env = make_env(sf_tls)
    try:
        yield env
    finally:
        env.close()
