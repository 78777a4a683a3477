"""Two daemons on the local PostgreSQL (a fresh schema): exactly one is active; SIGKILL it and
the other takes over within 30 s; over the whole test no Lead, Task or HubSpot write happens
twice (counted in the sandbox)."""

from __future__ import annotations

import json
import signal
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from connector.runtime.lease import LEADER
from connector.store import Store
from tests.daemon.helpers import (
    HubSpotWrites,
    handshake_leads,
    make_mqls,
    start_daemon,
    stop,
    task_refs,
    wait_for,
    wall_sandbox,
    write_config,
)
from tests.runtime.helpers import database_url as fresh_database

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

TAKEOVER_SECONDS = 30  # the limit, with the default leader_ttl_seconds (15)


@pytest.fixture
def database_url(tmp_path: Path) -> Iterator[str]:
    """A throw-away schema of the test database, dropped afterwards."""
    with fresh_database("postgresql", tmp_path) as url:
        yield url


def _leader_pid(store: Store) -> int | None:
    try:
        row = store.lease(LEADER)
    except Exception:  # noqa: BLE001  (the schema is not migrated yet)
        return None
    if row is None or not row.holder:
        return None
    host, pid, _ = row.holder.split(":", 2)
    return int(pid) if host == socket.gethostname() else None


def _roles(store: Store) -> dict[int, str]:
    return {int(key.split(":")[1]): json.loads(value)["role"]
            for key, value in store.bookmarks("daemon.instance.").items()}


def test_one_active_daemon_and_a_standby_that_takes_over(tmp_path: Path,
                                                         database_url: str) -> None:
    with wall_sandbox(tmp_path, 150) as sb:
        hubspot = HubSpotWrites(sb)
        config = write_config(sb, tmp_path, database_url=database_url, ttl=15)
        logs = (tmp_path / "a.log", tmp_path / "b.log")
        a = start_daemon(sb, config, logs[0])
        b = start_daemon(sb, config, logs[1])
        procs = (a, b)
        store = Store(database_url)
        try:
            leader_pid = wait_for("one daemon leads", lambda: _leader_pid(store), 60, procs, logs)
            active, standby = (a, b) if leader_pid == a.pid else (b, a)
            standby_log = logs[procs.index(standby)]
            wait_for("both instance records", lambda: len(_roles(store)) == 2, 30, procs, logs)
            wait_for("a first cycle pushed", lambda: any(
                r.status == "ok" for r in store.runs(stage="push")), 60, procs, logs)
            assert _roles(store) == {active.pid: "leader", standby.pid: "standby"}
            assert standby_log.read_text().count("waits as standby") == 1
            assert {int(r.instance.split(":")[1]) for r in store.runs(limit=500)} == {active.pid}
            first = make_mqls(sb, database_url, 3)
            wait_for("the first MQLs' Leads", lambda: set(first) <= {
                r["Handshake_Id__c"] for r in handshake_leads(sb)}, 60, procs, logs)

            # the active daemon dies mid-work: the standby takes over within 30 s
            second = make_mqls(sb, database_url, 3)
            time.sleep(1.0)
            active.send_signal(signal.SIGKILL)
            active.wait(timeout=10)
            killed = time.monotonic()
            wait_for("the standby leads", lambda: _leader_pid(store) == standby.pid,
                     TAKEOVER_SECONDS, (standby,), logs)
            assert time.monotonic() - killed < TAKEOVER_SECONDS
            wait_for("the second MQLs' Leads", lambda: set(second) <= {
                r["Handshake_Id__c"] for r in handshake_leads(sb)}, 60, (standby,), logs)
            third = make_mqls(sb, database_url, 2)
            wait_for("the third MQLs' Leads", lambda: set(third) <= {
                r["Handshake_Id__c"] for r in handshake_leads(sb)}, 60, (standby,), logs)
            wait_for("a push of the new leader ended ok", lambda: any(
                r.status == "ok" and r.instance.split(":")[1] == str(standby.pid)
                for r in store.runs(stage="push")), 30, (standby,), logs)
            code, took = stop(standby, signal.SIGTERM)
            assert code == 143 and took < 10

            # nothing written twice, over the whole test
            ids = [r["Handshake_Id__c"] for r in handshake_leads(sb)]
            assert len(ids) == len(set(ids)), "a Lead written twice"
            assert [ref for ref, n in task_refs(sb).items() if n > 1] == [], "a Task twice"
            assert hubspot.twice() == [], "a HubSpot write made twice"
            assert hubspot.calls > 0
            runs = store.runs(limit=1000)
            assert [r.id for r in runs if r.status == "running"] == []
            # the killed leader's run in flight, if any, is recorded abandoned by the new one
            assert {r.status for r in runs} <= {"ok", "degraded", "abandoned", "interrupted"}
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
            store.close()


def test_a_paused_leader_is_replaced_and_never_writes_again(tmp_path: Path,
                                                            database_url: str) -> None:
    """SIGSTOP stands for a lost network: the process lives, its lease is not renewed. The
    standby takes over when the lease expires; resumed, the old leader finds its lease taken,
    writes nothing more and waits as standby."""
    with wall_sandbox(tmp_path, 150) as sb:
        hubspot = HubSpotWrites(sb)
        config = write_config(sb, tmp_path, database_url=database_url, ttl=5)
        logs = (tmp_path / "a.log", tmp_path / "b.log")
        a = start_daemon(sb, config, logs[0])
        store = Store(database_url)
        b = None
        try:
            wait_for("the first daemon leads", lambda: _leader_pid(store) == a.pid, 60, (a,),
                     logs)
            wait_for("a first cycle pushed", lambda: any(
                r.status == "ok" for r in store.runs(stage="push")), 60, (a,), logs)
            b = start_daemon(sb, config, logs[1])
            wait_for("the second waits", lambda: _roles(store).get(b.pid) == "standby", 30,
                     (a, b), logs)
            new = make_mqls(sb, database_url, 3)
            time.sleep(0.5)
            a.send_signal(signal.SIGSTOP)
            paused = time.monotonic()
            wait_for("the standby leads", lambda: _leader_pid(store) == b.pid,
                     TAKEOVER_SECONDS, (b,), logs)
            assert time.monotonic() - paused < TAKEOVER_SECONDS
            took_over = datetime.now(UTC)
            a.send_signal(signal.SIGCONT)
            wait_for("the old leader says it lost", lambda: "no longer the active one" in
                     logs[0].read_text(), 30, (a, b), logs)
            wait_for("the old leader waits as standby", lambda: _roles(store).get(a.pid) ==
                     "standby", 30, (a, b), logs)
            wait_for("the MQLs' Leads", lambda: set(new) <= {
                r["Handshake_Id__c"] for r in handshake_leads(sb)}, 60, (a, b), logs)
            time.sleep(3)
            # runs the old leader started after the new one took over: none
            a_runs = [r for r in store.runs(limit=1000) if r.instance.split(":")[1] == str(a.pid)]
            late = [(r.stage, r.status, r.trigger, str(r.started_at), r.error)
                    for r in a_runs if _aware(r.started_at) > took_over]
            assert late == [], f"the old leader started runs after {took_over}: {late}"
            assert [r.status for r in a_runs if r.status == "running"] == []
            assert _leader_pid(store) == b.pid
            for proc in (a, b):
                code, took = stop(proc, signal.SIGTERM)
                assert code == 143 and took < 10
            ids = [r["Handshake_Id__c"] for r in handshake_leads(sb)]
            assert len(ids) == len(set(ids)), "a Lead written twice"
            assert [ref for ref, n in task_refs(sb).items() if n > 1] == [], "a Task twice"
            assert hubspot.twice() == [], "a HubSpot write made twice"
        finally:
            for proc in (a, b):
                if proc is not None and proc.poll() is None:
                    proc.send_signal(signal.SIGCONT)
                    proc.kill()
            store.close()


def _aware(when: datetime) -> datetime:
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)
