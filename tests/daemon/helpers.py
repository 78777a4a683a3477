"""Shared pieces of the daemon tests: a sandbox on the wall clock, a config with second-scale
intervals, `handshake run` as a subprocess, and what the sandbox was written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from connector.sandbox import Sandbox
from tests.pull.helpers import sandbox_env, unthrottle
from tests.push.test_push_sandbox import push_toml

ROOT = Path(__file__).resolve().parents[2]
REF = re.compile(r"\[(hs-[0-9A-Za-z-]+)\]\s*$")


@contextmanager
def wall_sandbox(folder: Path, contacts: int, *, seed: int = 42,
                 **sandbox: Any) -> Iterator[Sandbox]:
    """A sandbox whose data ends an hour ago and whose clock is the wall clock (a daemon on
    the real clock sees what it changes as it happens), rate limits lifted."""
    start = (datetime.now(UTC) - timedelta(hours=1)).replace(microsecond=0)
    with Sandbox(contacts=contacts, seed=seed, start=start, workdir=folder / "sb",
                 **sandbox) as sb:
        unthrottle(sb)
        sb.clock.advance(timedelta(hours=1))
        yield sb


def write_config(sb: Sandbox, folder: Path, *, database_url: str, interval_s: float = 3,
                 pullback_s: float = 6, ttl: float = 5, listen: str = "127.0.0.1:0",
                 name: str = "handshake") -> Path:
    """The daemon's config file: the shipped mappings, second-scale intervals."""
    path = folder / f"{name}.toml"
    minutes = interval_s / 60
    text = push_toml(sb, folder / "unused.db").replace(
        f'database_url = "sqlite:///{folder / "unused.db"}"', f'database_url = "{database_url}"')
    text = (f"""
[schedule]
pull_interval_minutes = {minutes}
score_interval_minutes = {minutes}
push_interval_minutes = {minutes}
pullback_interval_minutes = {pullback_s / 60}
sla_interval_minutes = 10
dlq_interval_minutes = 10
[daemon]
listen = "{listen}"
leader_ttl_seconds = {ttl}
[runtime]
lease_wait_seconds = 5
""" + text)
    path.write_text(text)
    return path


def start_daemon(sb: Sandbox, config: Path, log: Path, *args: str) -> subprocess.Popen[bytes]:
    """`handshake run -c CONFIG` on the sandbox, its output in `log`."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **sandbox_env(sb),
           "PYTHONPATH": str(ROOT)}
    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, "-m", "connector.cli", "run", "-c",
                                 str(config), *args], cwd=ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT)


def wait_for(what: str, cond: Callable[[], Any], timeout: float,
             procs: tuple[subprocess.Popen[bytes], ...] = (), logs: tuple[Path, ...] = ()) -> Any:
    """Poll `cond` until it is truthy (its value returned) or fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        for proc in procs:
            if proc.poll() is not None:
                pytest.fail(f"a daemon exited ({proc.returncode}) while waiting for {what}:\n"
                            + "\n".join(p.read_text()[-3000:] for p in logs))
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout:.0f} s: {what}\n"
                        + "\n".join(p.read_text()[-3000:] for p in logs))
        time.sleep(0.2)


def stop(proc: subprocess.Popen[bytes], sig: int, timeout: float = 10) -> tuple[int, float]:
    """Send `sig`; (exit code, seconds it took)."""
    began = time.monotonic()
    proc.send_signal(sig)
    code = proc.wait(timeout=timeout + 20)
    return code, time.monotonic() - began


def handshake_leads(sb: Sandbox) -> list[dict[str, Any]]:
    return [r for r in sb.salesforce.state.records("Lead")  # type: ignore[union-attr]
            if r.get("Handshake_Id__c")]


def task_refs(sb: Sandbox) -> Counter[str]:
    """Handshake's Tasks by the ledger reference at the end of their Subject."""
    refs: Counter[str] = Counter()
    for task in sb.salesforce.state.records("Task"):  # type: ignore[union-attr]
        found = REF.search(task.get("Subject") or "")
        if found:
            refs[found.group(1)] += 1
    return refs


class HubSpotWrites:
    """Counts the API's writes to HubSpot contacts by (contact, property, value), wrapping
    the in-process sandbox's state."""

    def __init__(self, sb: Sandbox) -> None:
        state = sb.hubspot.state  # type: ignore[union-attr]
        self.writes: Counter[tuple[str, str, str]] = Counter()
        self.calls = 0
        original = state.update_contact

        def update_contact(contact_id: str, props: Any, **kwargs: Any) -> Any:
            if kwargs.get("validate"):
                self.calls += 1
                for name, value in dict(props).items():
                    self.writes[(str(contact_id), name, str(value))] += 1
            return original(contact_id, props, **kwargs)

        state.update_contact = update_contact

    def twice(self) -> list[tuple[str, str, str]]:
        return [key for key, n in self.writes.items() if n > 1]


def make_mqls(sb: Sandbox, database_url: str, n: int) -> list[str]:
    """Ask for a demo and a consultation for `n` contacts of fit grade A or B that are not
    MQLs (as last scored in the store): each becomes an MQL. Their HubSpot ids."""
    from sqlalchemy import text

    from connector.store import Store

    store = Store(database_url)
    try:
        with store.engine.connect() as conn:
            rows = conn.execute(text(
                "SELECT s.contact_id FROM scores s JOIN (SELECT contact_id, MAX(scored_at) m "
                "FROM scores GROUP BY contact_id) l ON l.contact_id = s.contact_id "
                "AND l.m = s.scored_at JOIN contacts c ON c.hubspot_id = s.contact_id "
                "WHERE s.fit_grade IN ('A', 'B') AND NOT s.is_mql AND NOT c.archived "
                "AND c.merged_into IS NULL ORDER BY s.contact_id")).fetchall()
    finally:
        store.close()
    hs = sb.hubspot.state  # type: ignore[union-attr]
    forms = {form["name"]: guid for guid, form in hs.forms.items()}
    chosen = []
    for (contact_id,) in rows:
        contact = hs.contacts.get(contact_id)
        if contact is None or not contact.props.get("email"):
            continue
        for form in ("Request a demo", "Request a consultation"):
            hs.add_form_submission(forms[form], {"email": contact.props["email"]},
                                   contact_id=contact_id, page_url="https://example.com/demo")
        chosen.append(contact_id)
        if len(chosen) == n:
            break
    return chosen
