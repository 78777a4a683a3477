"""The stage runtime: every stage (pull, score, push, pull-back, dead-letter retry, and the
daemon to come) runs inside `stage_run`, which records, leases, guards and closes it.

    stage_run(config, stage)        the one context: store, lease, run record, signals, cleanup
    ├── StageLease                  a lease row with expiry and fencing number, renewed, checked
    ├── stop_on_signals             SIGINT/SIGTERM -> stop after the batch in flight
    ├── run_*_stage                 the stage bodies (connector.runtime.stages)
    └── run_backfill                a window of every stage, resumable (connector.runtime.backfill)
"""

from __future__ import annotations

from connector.runtime.run import LEASES, StageResult, StageRun, lease_name, stage_run
from connector.runtime.stages import (
    GOVERNOR_BOOKMARK,
    retry_dead_letters,
    run_pull_stage,
    run_pullback_stage,
    run_push_stage,
    run_score_stage,
)
from connector.runtime.wiring import lift_pacing, open_store, pull_context

__all__ = [
    "GOVERNOR_BOOKMARK",
    "LEASES",
    "StageResult",
    "StageRun",
    "lease_name",
    "lift_pacing",
    "open_store",
    "pull_context",
    "retry_dead_letters",
    "run_pull_stage",
    "run_pullback_stage",
    "run_push_stage",
    "run_score_stage",
    "stage_run",
]
