"""The stage lease on each backend: one holder at a time, a fencing number that rises when the
holder changes, a wait that ends in `StageBusy` naming the holder, a dead local holder taken over
at once, and a lost lease that stops the run's next write."""

from __future__ import annotations

import subprocess
import sys

import pytest

from connector.clock import FrozenClock
from connector.control import checkpoint, guarded
from connector.errors import LeaseLost, StageBusy
from connector.runtime.lease import StageLease, instance_name, is_dead_here
from connector.store import Store


def test_one_holder_at_a_time_and_the_fence_rises_with_each_new_holder(
        store: Store, clock: FrozenClock) -> None:
    assert store.take_lease("push", "run-a", ttl_seconds=30) == 1
    assert store.take_lease("push", "run-b", ttl_seconds=30) is None
    assert store.take_lease("push", "run-a", ttl_seconds=30) == 1  # a renewal keeps the fence
    clock.advance(31)
    assert store.take_lease("push", "run-b", ttl_seconds=30) == 2  # expired: b takes over
    assert not store.renew_lease("push", "run-a", 1, ttl_seconds=30)  # a lost it
    assert store.renew_lease("push", "run-b", 2, ttl_seconds=30)
    store.release_lease("push", "run-b")
    assert store.take_lease("push", "run-a", ttl_seconds=30) == 3  # never goes back
    assert store.take_lease("pull", "run-b", ttl_seconds=30) == 1  # one lease per stage


def test_a_second_run_waits_then_gives_up_naming_the_holder(store: Store) -> None:
    store.start_run("push", run_id="holder-run", instance="elsewhere:1:1")
    first = StageLease(store, "push", "holder-run", ttl=60, wait=0, heartbeat=False).acquire()
    second = StageLease(store, "push", "waiting-run", ttl=60, wait=0.6, heartbeat=False)
    with pytest.raises(StageBusy) as caught:
        second.acquire()
    assert "holder-run" in str(caught.value) and "elsewhere:1:1" in str(caught.value)
    assert caught.value.fix and "lease_wait_seconds" in caught.value.fix
    first.release()
    assert second.acquire().fence == 2


def test_a_lease_held_by_a_dead_process_of_this_machine_is_taken_over_at_once(
        store: Store) -> None:
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    host, _pid, ns = instance_name().split(":")
    dead = f"{host}:{gone.stdout.strip()}:{ns}"
    assert is_dead_here(dead) and not is_dead_here(instance_name())
    assert not is_dead_here(f"another-host:{gone.stdout.strip()}:{ns}")
    store.start_run("push", run_id="killed-run", instance=dead)
    assert store.take_lease("push", "killed-run", ttl_seconds=3600) == 1
    lease = StageLease(store, "push", "next-run", ttl=60, wait=0, heartbeat=False).acquire()
    assert lease.fence == 2


def test_a_lost_lease_stops_the_next_write(store: Store, clock: FrozenClock) -> None:
    lease = StageLease(store, "score", "run-a", ttl=10, wait=0, heartbeat=False).acquire()
    with guarded(lease.ensure):
        checkpoint()  # held: goes on
        clock.advance(11)
        assert store.take_lease("score", "run-b", ttl_seconds=10) == 2
        lease._safe_until = 0.0  # the renewal window passed (as after a long pause)
        with pytest.raises(LeaseLost):
            checkpoint()
    lease.release()
    assert store.lease("score").holder == "run-b"  # type: ignore[union-attr]
