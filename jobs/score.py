"""Scheduled job: score the contacts whose inputs changed (and stale scores), write changes back to HubSpot.

Importable callable for the scheduler (`jobs.score:run`), or run directly:
`python jobs/score.py --config handshake.toml`.
"""

from __future__ import annotations

import sys

from connector.config import load_config, resolve_config_path
from connector.logs import register_secrets
from connector.stages import StageResult, run_score_stage


def run(config_path: str | None = None) -> StageResult:
    """Run the score stage once, as the scheduler does."""
    config = load_config(resolve_config_path(config_path))
    register_secrets(config.secrets.values())
    return run_score_stage(config, trigger="schedule")


if __name__ == "__main__":
    args = sys.argv[1:]
    print(run(args[args.index("--config") + 1] if "--config" in args else None).status)
