"""`handshake run` against the sandbox: cycles at second-scale intervals carry contacts changed
in HubSpot between cycles to Salesforce (score and push right after the pull that saw them),
and SIGTERM ends the daemon within 10 s with its runs recorded, nothing left running, the
bookmarks committed and the leadership given up."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from connector.runtime.lease import LEADER
from connector.store import Store
from tests.daemon.helpers import (
    handshake_leads,
    make_mqls,
    start_daemon,
    stop,
    task_refs,
    wait_for,
    wall_sandbox,
    write_config,
)

pytestmark = pytest.mark.slow


def _record(store: Store) -> dict | None:
    records = store.bookmarks("daemon.instance.")
    return json.loads(next(iter(records.values()))) if records else None


def test_daemon_carries_changes_to_salesforce_and_stops_on_sigterm(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    with wall_sandbox(tmp_path, 150) as sb:
        config = write_config(sb, tmp_path, database_url=f"sqlite:///{db}")
        log = tmp_path / "daemon.log"
        proc = start_daemon(sb, config, log)
        store = Store(f"sqlite:///{db}")
        try:
            def pushes_ok() -> int:
                return len([r for r in store.runs(stage="push", limit=500)
                            if r.status in ("ok", "degraded")]) if db.exists() else 0

            def ran() -> bool:
                try:
                    return pushes_ok() >= 1
                except Exception:  # noqa: BLE001  (the schema is not there yet)
                    return False

            wait_for("a first cycle pushed", ran, 90, (proc,), (log,))
            first_leads = {r["Handshake_Id__c"] for r in handshake_leads(sb)}
            assert first_leads, "the first cycle handed no MQL off"
            record = _record(store)
            assert record is not None and record["role"] == "leader", record
            port = int(record["listen"].rpartition(":")[2])
            assert port > 0

            # two more rounds of HubSpot changes, each reaching Salesforce in later cycles
            for round_ in range(2):
                new = make_mqls(sb, f"sqlite:///{db}", 3)
                assert len(new) == 3, "the sandbox has too few A/B contacts left"
                assert not set(new) & first_leads
                wait_for(f"round {round_}: the new MQLs' Leads in Salesforce",
                         lambda new=new: set(new) <= {r["Handshake_Id__c"]  # type: ignore[misc]
                                                      for r in handshake_leads(sb)},
                         60, (proc,), (log,))
            # (a push records its end after its writes: the third may still be finishing)
            wait_for("three cycles' pushes ended", lambda: pushes_ok() >= 3, 30, (proc,), (log,))

            health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10)
            assert health.status_code == 200, health.text
            assert health.json()["role"] == "leader"
            metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
            families = {f.name: f for f in text_string_to_metric_families(metrics.text)}
            assert [s.value for s in families["handshake_leader"].samples] == [1.0]

            # stopped while it works: within 10 s, everything recorded
            make_mqls(sb, f"sqlite:///{db}", 2)
            time.sleep(1.5)
            code, took = stop(proc, signal.SIGTERM)
            assert code == 143, log.read_text()[-3000:]
            assert took < 10, f"the daemon took {took:.1f} s to stop"
            runs = store.runs(limit=1000)
            assert [r.id for r in runs if r.status == "running"] == []
            assert {r.status for r in runs} <= {"ok", "degraded", "interrupted"}, \
                [(r.stage, r.status, r.error) for r in runs if r.status not in ("ok",)]
            assert {r.trigger for r in runs} <= {"schedule", "dlq-retry"}
            # each stream's bookmark was committed with the pages it covers
            streams = store.bookmarks()
            assert any(k.startswith("contacts") for k in streams), sorted(streams)[:20]
            assert any(k.startswith("email_events") for k in streams), sorted(streams)[:20]
            lease = store.lease(LEADER)
            assert lease is not None and lease.holder == "", "the leadership was not given up"
            record = _record(store)
            assert record is not None and record["role"] == "stopped"
            # nothing handed off twice
            refs = task_refs(sb)
            assert [ref for ref, n in refs.items() if n > 1] == []
            ids = [r["Handshake_Id__c"] for r in handshake_leads(sb)]
            assert len(ids) == len(set(ids))
            assert "Traceback" not in log.read_text()
        finally:
            if proc.poll() is None:
                proc.kill()
            store.close()
