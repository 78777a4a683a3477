"""A backfill of every stage (`handshake backfill --stage all`, a subprocess on the real
clock) killed with SIGKILL at three points, then run to its end, ends as an uninterrupted one:
Salesforce, HubSpot and the store hold the same. The kill points are drawn from a seeded
random generator (so a failure reproduces; BACKFILL_KILL_SEED tries others): how far into the
pull, the score and the push, watched in the store (rows pulled, contacts scored) and in the
sandbox (Leads and Tasks written).
And a backfill of the push beside a scheduled `sync push` never writes a Lead twice: they
share the push's lease, so one waits for the other and the second finds everything written."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from connector.clock import FrozenClock
from connector.config import Config
from connector.runtime import open_store
from connector.runtime.backfill import Backfill, Window, run_backfill
from connector.sandbox import Sandbox
from tests.backfill.helpers import SINCE, everything, handshake_leads, org, run, start
from tests.push.helpers import tasks

KILL_SEED = int(os.environ.get("BACKFILL_KILL_SEED", "20261207"))
WAIT_SECONDS = 180.0  # a safety net only: each kill point is reached in seconds
PHASES = ("pull", "score", "push")


def db_path(config: Config) -> Path:
    return Path(config.state.database_url.removeprefix("sqlite:///"))


def count(config: Config, sql: str) -> int:
    """One number from the store, read while the backfill writes it (WAL: readers wait for
    nobody); 0 before the schema exists."""
    try:
        con = sqlite3.connect(f"file:{db_path(config)}?mode=ro", uri=True, timeout=5)
    except sqlite3.OperationalError:
        return 0
    try:
        return int(con.execute(sql).fetchone()[0])
    except sqlite3.OperationalError:
        return 0
    finally:
        con.close()


PULLED = "SELECT (SELECT count(*) FROM contacts) + (SELECT count(*) FROM activities)"
SCORED = "SELECT count(DISTINCT contact_id) FROM scores"


def handed_off(sb: Sandbox) -> int:
    state = sb.salesforce.state  # type: ignore[union-attr]
    return len(handshake_leads(sb)) + len(state.records("Task"))


def progress(sb: Sandbox, config: Config) -> dict[str, int]:
    return {"pull": count(config, PULLED), "score": count(config, SCORED),
            "push": handed_off(sb)}


@pytest.fixture(scope="module")
def calm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """What an uninterrupted backfill of every stage leaves, and how far each stage went."""
    with org(tmp_path_factory.mktemp("calm"), "calm") as (sb, config):
        result = run(sb, config, "backfill", "--since", SINCE)
        assert result.returncode in (0, 3), result.stderr[-3000:]
        state = everything(sb, config)
        state["progress"] = progress(sb, config)
        assert state["progress"]["push"] > 0 and state["store"]["pending"] == []
        yield state


def kill_when(proc: subprocess.Popen[bytes], reached: Callable[[], bool]) -> None:
    """SIGKILL the backfill as soon as `reached()` holds (it must still be running)."""
    deadline = time.monotonic() + WAIT_SECONDS
    while not reached():
        if proc.poll() is not None:
            _, err = proc.communicate()
            pytest.fail(f"the backfill ended (exit {proc.returncode}) before the kill point: "
                        f"{err.decode()[-2000:]}")
        assert time.monotonic() < deadline, "the kill point was never reached"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL
    proc.communicate()


def kill_points(rng: random.Random) -> list[tuple[str, float]]:
    """Three points in stage order, one in each of the pull, the score and the push: the
    share of the stage's work done when it is killed."""
    return [(phase, rng.uniform(0.1, 0.9)) for phase in PHASES]


def assert_same(state: dict[str, Any], calm: dict[str, Any]) -> None:
    assert state["leads"] == calm["leads"]
    assert state["tasks"] == calm["tasks"]
    ours, theirs = state["hubspot"], calm["hubspot"]
    assert ours.keys() == theirs.keys()
    differ = {cid: {k: (ours[cid].get(k), theirs[cid].get(k))
                    for k in ours[cid].keys() | theirs[cid].keys()
                    if ours[cid].get(k) != theirs[cid].get(k)}
              for cid in ours if ours[cid] != theirs[cid]}
    assert differ == {}
    for part in ("scores", "steps", "links", "ledger", "states", "dead_letters", "pending",
                 "contacts", "activities"):
        assert state["store"][part] == calm["store"][part], part


def test_killed_three_times_then_run_to_the_end_equals_an_uninterrupted_backfill(
        calm: dict[str, Any], tmp_path: Path) -> None:
    points = kill_points(random.Random(KILL_SEED))
    with org(tmp_path, "killed") as (sb, config):
        for phase, share in points:
            goal = max(1, int(calm["progress"][phase] * share))
            proc = start(sb, config, "backfill", "--since", SINCE)
            kill_when(proc, lambda p=phase, g=goal: progress(sb, config)[p] >= g)  # type: ignore[misc]
        last = run(sb, config, "backfill", "--since", SINCE)
        assert last.returncode in (0, 3), last.stderr[-3000:]
        assert_same(everything(sb, config), calm)
        again = run(sb, config, "backfill", "--since", SINCE)
        assert again.returncode == 0, again.stderr[-3000:]
        assert again.stdout.count("finished before") == 4
        store = open_store(config)
        try:
            statuses = Counter(r.status for r in store.runs(limit=50)
                               if r.stage.startswith("backfill-"))
        finally:
            store.close()
        assert statuses["abandoned"] >= 3  # each killed run, recorded by the next


def test_a_backfill_and_a_scheduled_push_never_write_a_lead_twice(tmp_path: Path) -> None:
    with org(tmp_path, "both") as (sb, config):
        clock = FrozenClock(datetime.now(UTC))
        window = Window(datetime.fromisoformat(SINCE + "T00:00:00+00:00"))
        for outcome in run_backfill(config, Backfill(window, ("pull", "score")), clock=clock):
            assert outcome.result is not None and outcome.result.status == "ok"
        backfill = start(sb, config, "backfill", "--since", SINCE, "--stage", "push")
        push = start(sb, config, "sync", "push")
        for proc in (backfill, push):
            _, err = proc.communicate(timeout=300)
            assert proc.returncode in (0, 3), err.decode()[-3000:]
        leads = handshake_leads(sb)  # one Lead per contact at most (it asserts so)
        store = open_store(config)
        try:
            mqls = {c.hubspot_id for c in store.iter_mqls()}
            runs = sorted((r for r in store.runs(limit=20)
                           if r.stage in ("push", "backfill-push")), key=lambda r: r.started_at)
            created = Counter(e.key for e in store.ledger_entries("sf:lead:"))
        finally:
            store.close()
        assert set(leads) == {h for h in mqls if h in leads} and len(leads) > 0
        handoffs = Counter(t[0] for t in tasks(sb) if t[1] == "handoff")
        assert max(handoffs.values()) == 1
        # the two runs held the push's lease one after the other
        assert [r.stage for r in runs] in (["push", "backfill-push"], ["backfill-push", "push"])
        first, second = runs
        assert first.finished_at is not None and second.started_at >= first.finished_at
        assert max(created.values()) == 1
