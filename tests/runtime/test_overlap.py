"""Runs started together never write at once: two pushes, two pulls, and a push beside
`dlq retry` leave HubSpot, Salesforce and the store exactly as one run does, and the run that
waited says why; with no wait allowed the second exits 4 naming the holder. On SQLite and on
the local PostgreSQL, with `handshake` subprocesses against an in-process sandbox."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from connector.config import Config, load_config
from connector.pull import pull
from connector.runtime import open_store, run_score_stage
from connector.sandbox import Fault, Sandbox
from connector.sandbox.salesforce import ValidationRule
from connector.store import Store
from tests.pull.helpers import context, sandbox_env, unthrottle
from tests.push.helpers import LEAD_UPSERT, leads, tasks
from tests.push.test_push_sandbox import push_toml
from tests.runtime.helpers import BACKENDS, database_url, with_database

ROOT = Path(__file__).resolve().parents[2]
CONTACTS, SEED = 300, 7
# every org of a module holds the same data, dated alike, so their end states compare
START = datetime.now(UTC).replace(second=0, microsecond=0)


@dataclass
class Org:
    sb: Sandbox
    config: Config
    env: dict[str, str]


@contextmanager
def org(folder: Path, backend: str, name: str, **runtime: float) -> Iterator[Org]:
    folder.mkdir(parents=True, exist_ok=True)
    with database_url(backend, folder, name) as url, \
            Sandbox(contacts=CONTACTS, seed=SEED, start=START, workdir=folder / f"{name}-sb") as sb:
        unthrottle(sb)
        sb.clock.advance(timedelta(hours=1))
        path = folder / f"{name}.toml"
        path.write_text(with_database(push_toml(sb, folder / "unused.db"), url, **runtime))
        env = sandbox_env(sb)
        yield Org(sb, load_config(path, env), env)


def start(o: Org, *args: str) -> subprocess.Popen[str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **o.env}
    return subprocess.Popen([sys.executable, "-m", "connector.cli", *args, "-c", o.config.source],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def together(*procs: subprocess.Popen[str]) -> list[tuple[int, str]]:
    outs = [p.communicate(timeout=240) for p in procs]
    return [(p.returncode, out + err) for p, (out, err) in zip(procs, outs, strict=True)]


def pull_and_score(o: Org) -> None:
    store = open_store(o.config)
    pull(context(o.config, store))
    store.close()
    run_score_stage(o.config)


def stored(config: Config) -> tuple[int, int, dict[str, int]]:
    """Contacts, activities, and activities by type in the config's store."""
    store = Store(config.state.database_url)
    try:
        return (store.count_contacts(include_archived=True),
                sum(store.count_activities_by_type().values()),
                store.count_activities_by_type())
    finally:
        store.close()


def runs(config: Config, stage: str) -> list[str]:
    store = Store(config.state.database_url)
    try:
        return sorted(r.status for r in store.runs(stage=stage))
    finally:
        store.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_two_pushes_started_together_write_as_one(tmp_path: Path, backend: str) -> None:
    with org(tmp_path, backend, "calm") as calm:
        pull_and_score(calm)
        assert together(start(calm, "sync", "push"))[0][0] == 0
        want_leads, want_tasks = leads(calm.sb), tasks(calm.sb, with_handoff_text=False)
    assert want_leads and set(want_tasks.values()) == {1}

    with org(tmp_path, backend, "busy") as busy:
        pull_and_score(busy)
        # the first Lead write answers late, so the two runs surely overlap
        busy.sb.salesforce.faults.schedule(LEAD_UPSERT, Fault("slow", 3.0))  # type: ignore[union-attr]
        results = together(start(busy, "sync", "push"), start(busy, "sync", "push"))
        assert [code for code, _ in results] == [0, 0], results
        assert any("holds the lease; waiting" in text for _, text in results), results
        assert leads(busy.sb) == want_leads  # no Lead twice (leads() asserts it too)
        assert tasks(busy.sb, with_handoff_text=False) == want_tasks  # no Task twice
        assert runs(busy.config, "push") == ["ok", "ok"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_with_no_wait_the_second_run_exits_busy_naming_the_holder(
        tmp_path: Path, backend: str) -> None:
    with org(tmp_path, backend, "nowait", lease_wait_seconds=0) as o:
        pull_and_score(o)
        o.sb.salesforce.faults.schedule(LEAD_UPSERT, Fault("slow", 15.0))  # type: ignore[union-attr]
        first = start(o, "sync", "push")
        store = Store(o.config.state.database_url)
        try:
            while store.lease("push") is None or not store.lease("push").holder:  # type: ignore[union-attr]
                assert first.poll() is None, first.communicate()
        finally:
            store.close()
        (code2, text2), (code1, _) = together(start(o, "sync", "push"), first)
        assert (code1, code2) == (0, 4), text2
        assert re.search(r"another push run \([0-9a-f-]{36} on ", text2)
        assert "Traceback" not in text2 and "fix:" in text2
        assert len([line for line in text2.splitlines() if line.strip()]) <= 5, text2


@pytest.mark.parametrize("backend", BACKENDS)
def test_two_pulls_started_together_store_as_one(tmp_path: Path, backend: str) -> None:
    with org(tmp_path, backend, "calm") as calm:
        assert together(start(calm, "sync", "pull"))[0][0] == 0
        want = stored(calm.config)
    with org(tmp_path, backend, "busy") as busy:
        results = together(start(busy, "sync", "pull"), start(busy, "sync", "pull"))
        assert [code for code, _ in results] == [0, 0], results
        assert stored(busy.config) == want
        assert runs(busy.config, "pull") == ["ok", "ok"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_push_beside_dlq_retry_writes_as_one(tmp_path: Path, backend: str) -> None:
    rule = ValidationRule("Lead", "No_ACME", lambda r: "acme" in str(r.get("Company", "")).lower(),
                          "ACME leads go through the partner desk", "Company")

    def parked_then_fixed(o: Org) -> None:
        org_state = o.sb.salesforce.state  # type: ignore[union-attr]
        org_state.add_validation_rule(rule)
        pull_and_score(o)
        assert together(start(o, "sync", "push"))[0][0] in (0, 3)
        org_state.validation_rules.remove(rule)  # the admin relaxed the rule

    with org(tmp_path, backend, "calm") as calm:
        parked_then_fixed(calm)
        assert together(start(calm, "dlq", "retry"))[0][0] == 0
        want_leads, want_tasks = leads(calm.sb), tasks(calm.sb, with_handoff_text=False)
    with org(tmp_path, backend, "busy") as busy:
        parked_then_fixed(busy)
        busy.sb.salesforce.faults.schedule(LEAD_UPSERT, Fault("slow", 3.0))  # type: ignore[union-attr]
        results = together(start(busy, "dlq", "retry"), start(busy, "sync", "push"))
        assert [code for code, _ in results] == [0, 0], results
        assert leads(busy.sb) == want_leads
        assert tasks(busy.sb, with_handoff_text=False) == want_tasks
