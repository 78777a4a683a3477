"""The daemons' `leader` lease on each backend: one leader at a time, never a wait; a lease
taken away is noticed at the next check (the leader stops writing); a leader of this machine
that died is replaced at once; and a stage run started under the leader's guard checks it
before it starts and before each write batch (`LeaseLost`, the run recorded failed)."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from sqlalchemy import update

from connector.clock import FrozenClock
from connector.config import Config
from connector.control import checkpoint, guarded
from connector.demo import sandbox_config
from connector.errors import LeaseLost
from connector.runtime import stage_run
from connector.runtime.lease import LEADER, LeaderLease, instance_name
from connector.store import Lease, Store


def _steal(store: Store) -> None:
    with store.transaction() as s:
        s.execute(update(Lease).where(Lease.name == LEADER).values(
            holder="elsewhere:1:1#thief", fence=Lease.fence + 1))


def test_one_leader_at_a_time_without_waiting(store: Store, clock: FrozenClock) -> None:
    first = LeaderLease(store, ttl=15)
    second = LeaderLease(store, ttl=15)
    try:
        assert first.holder.startswith(instance_name() + "#")
        assert first.holder != second.holder  # two daemons in one process stay two holders
        began = time.monotonic()
        assert first.try_acquire() and first.held
        assert not second.try_acquire() and not second.held
        assert time.monotonic() - began < 5
        assert first.try_acquire()  # already held: still ours
        first.release()
        assert store.lease(LEADER).holder == ""  # type: ignore[union-attr]
        assert second.try_acquire()
        assert second.previous is None  # it was free
        clock.advance(16)
        assert first.try_acquire(), "an expired lease is free for the next daemon"
        assert first.previous == instance_name()
        assert not second.renew() and not second.held
    finally:
        first.release()
        second.release()


def test_a_stolen_lease_is_noticed_at_the_next_check(store: Store) -> None:
    leader = LeaderLease(store, ttl=15, check_seconds=0.0)
    try:
        assert leader.try_acquire()
        leader.ensure()
        _steal(store)
        with pytest.raises(LeaseLost) as caught:
            leader.ensure()
        assert "no longer the active one" in str(caught.value)
        assert caught.value.fix and "standby" in caught.value.fix
        assert not leader.held
        with pytest.raises(LeaseLost):  # and stays lost
            leader.ensure()
        assert not leader.try_acquire()  # the thief holds it
    finally:
        leader.release()
    assert store.lease(LEADER).holder == "elsewhere:1:1#thief"  # type: ignore[union-attr]


def test_a_dead_leader_of_this_machine_is_replaced_at_once(store: Store) -> None:
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    host, _pid, ns = instance_name().split(":")
    dead = f"{host}:{gone.stdout.strip()}:{ns}"
    assert store.take_lease(LEADER, f"{dead}#abcd", ttl_seconds=3600) == 1
    leader = LeaderLease(store, ttl=15)
    try:
        assert leader.try_acquire()
        assert leader.fence == 2
        assert leader.previous == dead
    finally:
        leader.release()


def test_a_live_leader_elsewhere_is_not_replaced(store: Store) -> None:
    assert store.take_lease(LEADER, "another-host:1:1#abcd", ttl_seconds=3600) == 1
    leader = LeaderLease(store, ttl=15)
    assert not leader.try_acquire()


def _config(tmp_path: object) -> Config:
    from pathlib import Path

    info = {"hubspot": {"base_url": "http://127.0.0.1:9", "access_token": "x"},
            "salesforce": {"instance_url": "https://127.0.0.1:9", "login_url":
                           "https://127.0.0.1:9", "ca_bundle": "", "username": "u",
                           "password": "p", "security_token": "t"}}
    return sandbox_config(info, Path(str(tmp_path)) / "state.db")


def test_a_stage_run_under_the_leader_guard_stops_when_the_lease_is_taken(
        tmp_path: object) -> None:
    config = _config(tmp_path)
    store = Store(config.state.database_url)
    store.migrate()
    leader = LeaderLease(store, ttl=15, check_seconds=0.0)
    assert leader.try_acquire()
    written = []
    try:
        with guarded(leader.ensure), pytest.raises(LeaseLost), \
                stage_run(config, "push") as run:
            checkpoint()
            written.append(1)  # a write batch while leading
            _steal(store)
            checkpoint()  # before the next write batch
            written.append(2)
        assert written == [1]
        [recorded] = store.runs(stage="push")
        assert recorded.status == "failed"
        assert recorded.error and recorded.error.startswith("LeaseLost")
        assert recorded.id == run.run_id
        # a daemon no longer leading starts nothing: no run recorded
        with guarded(leader.ensure), pytest.raises(LeaseLost), stage_run(config, "pull"):
            written.append(3)
        assert written == [1]
        assert store.runs(stage="pull") == []
        # the stage's own lease was given back either way
        assert store.lease("push").holder == ""  # type: ignore[union-attr]
    finally:
        leader.release()
        store.close()
