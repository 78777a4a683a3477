"""Scheduled job: one incremental pull from HubSpot into the state store.

Importable callable for the scheduler (`jobs.pull:run`), or run directly:
`python jobs/pull.py --config handshake.toml`.
"""

from __future__ import annotations

import sys

from connector.config import load_config, resolve_config_path
from connector.logs import register_secrets
from connector.stages import StageResult, run_pull_stage


def run(config_path: str | None = None) -> StageResult:
    """Pull once, as the scheduler does."""
    config = load_config(resolve_config_path(config_path))
    register_secrets(config.secrets.values())
    return run_pull_stage(config, trigger="schedule")


if __name__ == "__main__":
    args = sys.argv[1:]
    print(run(args[args.index("--config") + 1] if "--config" in args else None).status)
