"""`SalesforceClient.users`: the org's users with the fields routing checks read, every page;
the command line asks the client for them instead of writing SOQL itself."""

from __future__ import annotations

import re
from pathlib import Path

from connector.sandbox import Sandbox
from tests.salesforce.conftest import make_client

CLI = Path(__file__).resolve().parents[2] / "connector" / "cli"


def test_users_are_every_user_and_active_only_the_active_ones(sandbox: Sandbox) -> None:
    state = sandbox.salesforce.state
    state.add_user(id=None, username="gone@handshake-demo.com", email="gone@handshake-demo.com",
                   first_name="Gone", last_name="Away", territory=None, team=None,
                   is_active=False)
    truth = {r["Id"]: r for r in state.records("User")}
    client = make_client(sandbox)
    try:
        users = client.users()
        active = client.users(active_only=True)
    finally:
        client.close()
    assert {u["Id"] for u in users} == set(truth)
    assert {u["Id"] for u in active} == {i for i, r in truth.items() if r["IsActive"]}
    assert len(active) < len(users)
    gone = next(u for u in users if u["Username"] == "gone@handshake-demo.com")
    assert gone == {"Id": gone["Id"], "Email": "gone@handshake-demo.com",
                    "Username": "gone@handshake-demo.com", "Name": "Gone Away",
                    "IsActive": False}


def test_the_command_line_writes_no_soql() -> None:
    soql = re.compile(r"\bSELECT\b[^\"']*\bFROM\b", re.IGNORECASE)
    found = [p.name for p in sorted(CLI.glob("*.py")) if soql.search(p.read_text())]
    assert found == []
