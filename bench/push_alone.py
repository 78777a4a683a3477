"""The push alone: pull and score a seeded sandbox once, then push a fresh copy of that store
against a fresh sandbox org as often as wanted (to profile it, or to compare two versions).

    .venv/bin/python bench/push_alone.py prepare --contacts 30000
    .venv/bin/python bench/push_alone.py push --contacts 30000 [--profile push.prof]

`prepare` runs the first pull and the score stage as `bench/run.py`'s worker does (the
sandbox's time, its pacing lifted) into `<workdir>/<contacts>/base.db` and notes the clock.
`push` copies that store, starts a new sandbox of the same seed (its Salesforce org as
untouched as the one the bench pushes to), and runs `run_push_stage` at the noted time, then
prints one JSON line: MQLs settled, Handshake's CPU and wall time, the sandbox's CPU, MQLs per
CPU second and the push's peak RSS (VmHWM from the push's start, as `bench/run.py` counts a
stage's). `--profile` writes a cProfile of the push on CPU time (`time.process_time`).
Run another checkout's code with `PYTHONPATH=<its root>`: the store prepared once serves both.
"""

from __future__ import annotations

import argparse
import cProfile
import importlib
import json
import os
import shutil
import sqlite3
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(os.environ.get("PYTHONPATH", "").split(os.pathsep)[0] or
            Path(__file__).resolve().parents[1]).resolve()
sys.path.insert(0, str(ROOT))

from bench.run import (
    ADVANCE_HOURS,
    SETTLED,
    START,
    cpu_seconds,
    own_cpu,
    peak_rss_of,
    serve,
)


def _clock(at: str) -> Any:
    from connector.clock import FrozenClock

    class SandboxTime(FrozenClock):
        """The sandbox's time, a microsecond on at each read (as in bench/run.py)."""

        def now(self) -> datetime:
            self.advance(timedelta(microseconds=1))
            return super().now()

    return SandboxTime(datetime.fromisoformat(at))


def _warm() -> None:
    """What a daemon imports once in its life, imported before anything is timed."""
    import httpx

    httpx.Client().close()
    for module in ("connector.hubspot.write", "connector.scoring.runner", "connector.push.engine",
                   "connector.salesforce", "connector.salesforce.governor"):
        importlib.import_module(module)


def prepare(work: Path, contacts: int, seed: int) -> None:
    from connector.demo import sandbox_config
    from connector.runtime import open_store, run_pull_stage, run_score_stage

    work.mkdir(parents=True, exist_ok=True)
    db = work / "base.db"
    for old in work.glob("base.db*"):
        old.unlink()
    proc, info, _ = serve(contacts, seed)
    try:
        config = sandbox_config(info, db)
        open_store(config).close()
        clock = _clock((datetime.fromisoformat(START) + timedelta(hours=ADVANCE_HOURS))
                       .isoformat())
        run_pull_stage(config, paced=False, clock=clock)
        scored = run_score_stage(config, clock=clock).counts.get("scored", 0)
        (work / "clock.txt").write_text(clock.now().isoformat())
    finally:
        proc.terminate()
        proc.wait()
    with sqlite3.connect(db) as conn:  # one file to copy
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    print(json.dumps({"store": str(db), "scored": scored}))


def push(work: Path, contacts: int, seed: int, profile: str | None) -> None:
    from connector.demo import sandbox_config
    from connector.runtime import open_store, run_push_stage

    db = work / "run.db"
    for old in work.glob("run.db*"):
        old.unlink()
    shutil.copy(work / "base.db", db)
    proc, info, _ = serve(contacts, seed)
    try:
        _warm()
        config = sandbox_config(info, db)
        clock = _clock((work / "clock.txt").read_text())
        open_store(config).close()
        with open("/proc/self/clear_refs", "w", encoding="ascii") as refs:
            refs.write("5")  # the peak counted from here
        prof = cProfile.Profile(time.process_time) if profile else None
        cpu, sandbox, began = own_cpu(), cpu_seconds(proc.pid), time.perf_counter()
        if prof is not None:
            prof.enable()
        result = run_push_stage(config, clock=clock)
        if prof is not None:
            prof.disable()
        cpu = own_cpu() - cpu
        settled = sum(result.counts.get(k, 0) for k in SETTLED)
        print(json.dumps({
            "status": result.status, "mqls_settled": settled, "cpu_seconds": round(cpu, 3),
            "wall_seconds": round(time.perf_counter() - began, 2),
            "sandbox_cpu_seconds": round(cpu_seconds(proc.pid) - sandbox, 2),
            "mqls_per_cpu_second": round(settled / max(cpu, 1e-9)),
            "peak_rss_mb": round(peak_rss_of(os.getpid())),
            "counts": dict(sorted(result.counts.items()))}))
        if prof is not None and profile:
            prof.dump_stats(profile)
    finally:
        proc.terminate()
        proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=("prepare", "push"))
    parser.add_argument("--contacts", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--workdir", default="/tmp/handshake-push-alone")
    parser.add_argument("--profile", help="push: write a cProfile (CPU time) here")
    args = parser.parse_args()
    work = Path(args.workdir) / str(args.contacts)
    if args.what == "prepare":
        prepare(work, args.contacts, args.seed)
    else:
        push(work, args.contacts, args.seed, args.profile)


if __name__ == "__main__":
    main()
