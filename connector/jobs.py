"""Scheduled jobs: each stage as an importable callable (`jobs.pull:run` ...) that loads a config
file and runs the stage once through the runtime, recorded with trigger "schedule"."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass

from connector.config import Config, load_config, resolve_config_path
from connector.logs import register_secrets
from connector.runtime import (
    StageResult,
    run_pull_stage,
    run_pullback_stage,
    run_push_stage,
    run_score_stage,
)

__all__ = ["Job", "job"]

_STAGES: dict[str, Callable[..., StageResult]] = {
    "pull": run_pull_stage,
    "score": run_score_stage,
    "push": run_push_stage,
    "pullback": run_pullback_stage,
}


@dataclass(frozen=True)
class Job:
    """One stage as a scheduler calls it."""

    stage: str

    def __call__(self, config_path: str | None = None) -> StageResult:
        """Run the stage once from the config file (default: $HANDSHAKE_CONFIG or
        ./handshake.toml); errors propagate to the scheduler's listener."""
        config: Config = load_config(resolve_config_path(config_path))
        register_secrets(config.secrets.values())
        return _STAGES[self.stage](config, trigger="schedule")

    def main(self, argv: list[str] | None = None) -> None:
        """Run from a shell: the same as `handshake sync <stage> [--config FILE]`, with its
        messages and exit codes."""
        from connector.cli.main import main

        main(["sync", self.stage, *(sys.argv[1:] if argv is None else argv)])


def job(stage: str) -> Job:
    """The scheduled job for `stage` (pull, score, push or pullback)."""
    if stage not in _STAGES:
        raise ValueError(f"no job for stage {stage!r}; one of {', '.join(_STAGES)}")
    return Job(stage)
