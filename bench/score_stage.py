"""The score stage alone, through the store, as `bench/run.py` runs it: one pull into a store
(kept, so later runs skip it), then the score stage on a fresh copy of it, timed in CPU (and
optionally profiled), a few times; the least CPU is the figure on a shared machine.

    PYTHONPATH=$PWD .venv/bin/python bench/score_stage.py [--contacts 10000] [--runs 3]
        [--profile out.prof] [--keep DIR]
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import importlib
import os
import resource
import shutil
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.run import ADVANCE_HOURS, START, serve
from connector.clock import FrozenClock
from connector.demo import sandbox_config
from connector.runtime import open_store, run_pull_stage, run_score_stage


class SandboxTime(FrozenClock):
    """The sandbox's time, a microsecond on each read (as bench/run.py's worker)."""

    def now(self) -> datetime:
        self.advance(timedelta(microseconds=1))
        return super().now()


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contacts", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--profile", metavar="FILE", help="cProfile the last run into FILE")
    parser.add_argument("--keep", metavar="DIR", default="/tmp/handshake-score-bench",
                        help="where the pulled store is kept between invocations")
    args = parser.parse_args()
    for module in ("connector.hubspot.write", "connector.scoring.runner"):
        importlib.import_module(module)  # paid once, as a daemon pays it
    collected = {"seconds": 0.0, "began": 0.0}

    def on_gc(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            collected["began"] = time.process_time()
        else:
            collected["seconds"] += time.process_time() - collected["began"]

    gc.callbacks.append(on_gc)
    proc, info, _ = serve(args.contacts, args.seed)
    try:
        keep = Path(args.keep)
        keep.mkdir(parents=True, exist_ok=True)
        pulled = keep / f"pulled-{args.contacts}-{args.seed}.db"
        clock = SandboxTime(datetime.fromisoformat(START) + timedelta(hours=ADVANCE_HOURS))
        if not pulled.exists():
            config = sandbox_config(info, pulled)
            open_store(config).close()
            run_pull_stage(config, paced=False, clock=clock)
        for n in range(args.runs):
            db = keep / "run.db"
            for suffix in ("", "-wal", "-shm"):
                if os.path.exists(f"{db}{suffix}"):
                    os.remove(f"{db}{suffix}")
            shutil.copy(pulled, db)
            config = sandbox_config(info, db)
            open_store(config).close()
            profiler = cProfile.Profile() if args.profile and n == args.runs - 1 else None
            collected["seconds"] = 0.0
            began, wall = cpu(), time.perf_counter()
            if profiler is not None:
                profiler.enable()
            result = run_score_stage(config, clock=clock)
            if profiler is not None:
                profiler.disable()
                profiler.dump_stats(args.profile)
            spent = cpu() - began
            scored = result.counts.get("scored", 0)
            print(f"run {n + 1}: {scored:,} scored ({result.counts.get('mql', 0):,} MQLs, "
                  f"{result.status}) in {spent:.3f} s CPU ({scored / spent:,.0f}/s), "
                  f"{time.perf_counter() - wall:.1f} s wall, collector {collected['seconds']:.3f}"
                  f" s; load average {os.getloadavg()[0]:.1f}", flush=True)
    finally:
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    main()
