"""The whole sandbox on loopback: info shape, both APIs answering over HTTP(S) with the
credentials it hands out, the simulator bound to it, and the `sandbox serve` CLI."""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceAuthenticationFailed
from typer.testing import CliRunner

from connector.sandbox import Sandbox
from connector.sandbox.cli import app as sandbox_cli
from connector.sandbox.salesforce import salesforce_session

START = datetime(2026, 11, 1, tzinfo=UTC)
INFO_KEYS = {
    "hubspot": {"base_url", "access_token", "app_secret"},
    "salesforce": {"instance_url", "login_url", "username", "password", "security_token",
                   "ca_bundle"},
}


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(contacts=200, seed=3, start=START, frozen_clock=True) as sb:
        yield sb


def test_info_has_exactly_the_documented_shape(sandbox: Sandbox) -> None:
    info = sandbox.info()
    assert {k: set(v) for k, v in info.items()} == INFO_KEYS
    assert info["hubspot"]["base_url"] == sandbox.hubspot_url
    assert info["hubspot"]["base_url"].startswith("http://127.0.0.1:")
    assert info["salesforce"]["instance_url"].startswith("https://127.0.0.1:")
    assert os.path.exists(info["salesforce"]["ca_bundle"])
    assert all(isinstance(v, str) and v for part in info.values() for v in part.values())


def test_hubspot_serves_the_dataset_with_the_given_token(sandbox: Sandbox) -> None:
    info = sandbox.info()["hubspot"]
    headers = {"Authorization": f"Bearer {info['access_token']}"}
    seen: list[str] = []
    with httpx.Client(base_url=info["base_url"], headers=headers) as client:
        after = None
        while True:
            params = {"limit": 100, **({"after": after} if after else {})}
            resp = client.get("/crm/v3/objects/contacts", params=params)
            assert resp.status_code == 200, resp.text
            body = resp.json()
            seen += [r["id"] for r in body["results"]]
            after = body.get("paging", {}).get("next", {}).get("after")
            if not after:
                break
        denied = client.get("/crm/v3/objects/contacts", headers={"Authorization": "Bearer nope"})
    assert sorted(seen, key=int) == sorted(sandbox.dataset.ground_truth.contact_ids, key=int)
    assert denied.status_code == 401


def test_salesforce_serves_the_org_over_verified_tls(sandbox: Sandbox) -> None:
    info = sandbox.info()["salesforce"]
    session = salesforce_session(info["login_url"], info["ca_bundle"])
    sf = Salesforce(username=info["username"], password=info["password"],
                    security_token=info["security_token"], session=session)
    leads = sf.query_all("SELECT Id, Email FROM Lead")["records"]
    assert sorted(r["Email"] for r in leads) == sandbox.dataset.ground_truth.existing_sf_leads
    users = sf.query("SELECT Id FROM User WHERE IsActive = true")["totalSize"]
    assert users >= 11
    with httpx.Client(verify=info["ca_bundle"]) as client:
        assert client.get(info["instance_url"] + "/services/data/").status_code == 200
    with pytest.raises(SalesforceAuthenticationFailed):
        Salesforce(username=info["username"], password="wrong",
                   security_token=info["security_token"],
                   session=salesforce_session(info["login_url"], info["ca_bundle"]))


def test_simulator_works_the_seeded_leads_visible_over_the_api(sandbox: Sandbox) -> None:
    sim = sandbox.simulator()
    log = sim.run(72, step_hours=6)
    assert log and sandbox.dataset.ground_truth.simulator[-len(log):] == log
    info = sandbox.info()["salesforce"]
    sf = Salesforce(username=info["username"], password=info["password"],
                    security_token=info["security_token"],
                    session=salesforce_session(info["login_url"], info["ca_bundle"]))
    tasks = sf.query_all("SELECT Id, WhoId, TaskSubtype FROM Task")["records"]
    logged = {e["task_id"] for e in log if "task_id" in e}
    assert logged and logged <= {t["Id"] for t in tasks}


def test_stop_frees_the_ports_and_info_refuses() -> None:
    sb = Sandbox(contacts=20, seed=1, start=START).start()
    url = sb.hubspot_url
    sb.stop()
    with pytest.raises(RuntimeError, match="not running"):
        sb.info()
    with pytest.raises(httpx.TransportError):
        httpx.get(url + "/crm/v3/objects/contacts", timeout=2)


def test_cli_help_names_the_options() -> None:
    result = CliRunner().invoke(sandbox_cli, ["serve", "--help"])
    assert result.exit_code == 0
    for option in ("--contacts", "--seed", "--hubspot-port", "--salesforce-port", "--tier",
                   "--json"):
        assert option in result.output


def test_cli_rejects_an_unknown_tier() -> None:
    result = CliRunner().invoke(sandbox_cli, ["serve", "--tier", "platinum"])
    assert result.exit_code != 0
    assert "platinum" in result.output


def test_cli_serve_json_prints_one_object_then_serves_until_sigterm() -> None:
    code = "from connector.sandbox.cli import app; app()"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "serve", "--json", "--contacts", "30", "--seed", "5"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ)  # type: ignore[arg-type]
        assert sel.select(timeout=120), "sandbox serve printed nothing"
        line = proc.stdout.readline()  # type: ignore[union-attr]
        info = json.loads(line)
        assert {k: set(v) for k, v in info.items()} == INFO_KEYS
        resp = httpx.get(info["hubspot"]["base_url"] + "/crm/v3/objects/contacts",
                         headers={"Authorization": f"Bearer {info['hubspot']['access_token']}"})
        assert resp.status_code == 200 and resp.json()["results"]
        with httpx.Client(verify=info["salesforce"]["ca_bundle"]) as client:
            versions = client.get(info["salesforce"]["instance_url"] + "/services/data/")
            assert versions.status_code == 200
        proc.send_signal(signal.SIGTERM)
        out, _err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0
    assert out == ""  # nothing after the JSON object


def test_cli_tiers_mirror_the_hubspot_sandbox() -> None:
    from connector.sandbox.cli import TIERS
    from connector.sandbox.hubspot import TIERS as HUBSPOT_TIERS

    assert set(TIERS) == set(HUBSPOT_TIERS)


def test_cli_serve_prints_a_table_without_json() -> None:
    code = "from connector.sandbox.cli import app; app()"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "serve", "--contacts", "20", "--tier", "enterprise"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    try:
        sel = selectors.DefaultSelector()
        sel.register(proc.stderr, selectors.EVENT_READ)  # type: ignore[arg-type]
        assert sel.select(timeout=120), "sandbox serve never said it was running"
        assert "running" in proc.stderr.readline()  # type: ignore[union-attr]
        proc.send_signal(signal.SIGINT)
        out, _err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0
    for word in ("base_url", "access_token", "instance_url", "security_token", "ca_bundle",
                 "http://127.0.0.1:", "https://127.0.0.1:", "sales-ready"):
        assert word in out


@pytest.mark.timeout(120)
def test_cli_reports_a_taken_port_and_exits_1() -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(
            sandbox_cli, ["serve", "--contacts", "10", "--hubspot-port", str(port)]
        )
    assert result.exit_code == 1
    assert "did not start" in result.output and "--hubspot-port" in result.output
