"""Leadership on one SQLite file: a leader whose lease is taken away mid-cycle writes nothing
more (its run is recorded failed with LeaseLost and it waits as standby); a second daemon on
the same file says it waits as standby, and takes over when the first stops."""

from __future__ import annotations

import json
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from connector.errors import StoreError
from connector.runtime.lease import LEADER
from connector.sandbox import Fault, FaultPlan
from connector.store import Lease, Store
from tests.daemon.helpers import (
    HubSpotWrites,
    handshake_leads,
    start_daemon,
    stop,
    task_refs,
    wait_for,
    wall_sandbox,
    write_config,
)

pytestmark = pytest.mark.slow

LEAD_UPSERT = r"^PATCH /services/data/v[\d.]+/composite/sobjects/Lead/"
HELD = 4.0  # the first Lead upsert is held this long: the lease is taken meanwhile


def _holder(store: Store) -> str:
    try:
        row = store.lease(LEADER)
    except StoreError:  # the daemon is still creating the schema
        return ""
    return row.holder if row is not None else ""


def _role(store: Store, pid: int) -> str | None:
    for key, value in store.bookmarks("daemon.instance.").items():
        if f":{pid}:" in key:
            return str(json.loads(value)["role"])
    return None


def test_a_leader_whose_lease_is_taken_mid_cycle_writes_nothing_more(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    url = f"sqlite:///{db}"
    plan = FaultPlan()
    plan.schedule(LEAD_UPSERT, Fault("slow", HELD))
    with wall_sandbox(tmp_path, 150, salesforce_faults=plan) as sb:
        hubspot = HubSpotWrites(sb)
        config = write_config(sb, tmp_path, database_url=url)
        log = tmp_path / "daemon.log"
        proc = start_daemon(sb, config, log)
        store = Store(url)
        try:
            # the first push's Lead upsert is in flight (held by the sandbox): take the lease
            wait_for("the first Lead upsert in flight", lambda: plan.script[LEAD_UPSERT] == [],
                     90, (proc,), (log,))
            with store.transaction() as s:
                s.execute(update(Lease).where(Lease.name == LEADER).values(
                    holder="elsewhere:1:1#thief", fence=Lease.fence + 1,
                    expires_at=datetime.now(UTC) + timedelta(hours=1)))
            tasks_then, hubspot_then = sum(task_refs(sb).values()), hubspot.calls

            def recorded() -> list[tuple[str, str, str | None]]:
                return [(r.stage, r.status, r.error) for r in store.runs(stage="push")
                        if r.status != "running"]

            ended = wait_for("the push recorded as ended", recorded, 30, (proc,), (log,))
            assert [(stage, status) for stage, status, _ in ended] == [("push", "failed")]
            assert "LeaseLost" in (ended[0][2] or ""), ended
            wait_for("the daemon waits as standby", lambda: _role(store, proc.pid) == "standby",
                     30, (proc,), (log,))
            # three of its intervals later, still nothing more
            time.sleep(10)
            assert sum(task_refs(sb).values()) == tasks_then == 0, "Tasks written after the loss"
            assert hubspot.calls == hubspot_then, "HubSpot written after the loss"
            leads = handshake_leads(sb)
            assert len(leads) == len({r["Handshake_Id__c"] for r in leads})
            runs = store.runs(limit=200)
            assert [r.id for r in runs if r.status == "running"] == []
            assert [r for r in runs if r.started_at > ended_at(store)] == []
            assert _holder(store) == "elsewhere:1:1#thief"
            text = log.read_text()
            assert "no longer the active one" in text
            assert "Traceback" not in text
            code, took = stop(proc, signal.SIGTERM)
            assert code == 143 and took < 10, text[-3000:]
        finally:
            if proc.poll() is None:
                proc.kill()
            store.close()


def ended_at(store: Store) -> datetime:
    [push] = store.runs(stage="push")
    assert push.finished_at is not None
    return push.finished_at


def test_a_second_daemon_on_one_sqlite_file_waits_as_standby(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    url = f"sqlite:///{db}"
    with wall_sandbox(tmp_path, 60) as sb:
        config = write_config(sb, tmp_path, database_url=url, interval_s=6, ttl=5)
        first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
        first = start_daemon(sb, config, first_log)
        store = Store(url)
        second = None
        try:
            wait_for("the first daemon leads", lambda: db.exists() and _holder(store)
                     .startswith(f"{_host()}:{first.pid}:"), 60, (first,), (first_log,))
            second = start_daemon(sb, config, second_log)
            both = (first, second)
            logs = (first_log, second_log)
            wait_for("the second says it waits", lambda: "waits as standby" in
                     second_log.read_text(), 60, both, logs)
            wait_for("its record says standby", lambda: _role(store, second.pid) == "standby",
                     30, both, logs)
            said = second_log.read_text()
            assert said.count("waits as standby") == 1
            assert "SQLite file" in said
            assert _holder(store).startswith(f"{_host()}:{first.pid}:")
            assert {r.instance.split(":")[1] for r in store.runs(limit=500)} <= {str(first.pid)}
            # the first stops: the second takes over (the lease was given up)
            code, took = stop(first, signal.SIGTERM)
            assert code == 143 and took < 10
            wait_for("the second leads", lambda: _holder(store).startswith(
                f"{_host()}:{second.pid}:"), 15, (second,), (second_log,))
            wait_for("the second runs a stage", lambda: any(
                r.instance.split(":")[1] == str(second.pid) for r in store.runs(limit=500)),
                30, (second,), (second_log,))
            code, took = stop(second, signal.SIGINT)  # Ctrl-C: 130
            # within the 30 s (the 10 s line is test_daemon_sandbox's SIGTERM): on a
            # loaded CI machine this stop once took 25 s, the stage in flight on the SQLite file
            # not reaching its checkpoint within the stop timeout
            assert code == 130 and took < 30, (took, second_log.read_text()[-3000:])
        finally:
            for proc in (first, second):
                if proc is not None and proc.poll() is None:
                    proc.kill()
            store.close()


def _host() -> str:
    import socket

    return socket.gethostname()
