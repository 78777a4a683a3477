"""Scheduled job: hand the MQLs to Salesforce (stops cleanly at Handshake's share of the allocation).

Importable callable for the scheduler (`jobs.push:run`), or run directly:
`python jobs/push.py --config handshake.toml`.
"""

from __future__ import annotations

import sys

from connector.config import load_config, resolve_config_path
from connector.logs import register_secrets
from connector.stages import StageResult, run_push_stage


def run(config_path: str | None = None) -> StageResult:
    """Run the push stage once, as the scheduler does."""
    config = load_config(resolve_config_path(config_path))
    register_secrets(config.secrets.values())
    return run_push_stage(config, trigger="schedule")


if __name__ == "__main__":
    args = sys.argv[1:]
    print(run(args[args.index("--config") + 1] if "--config" in args else None).status)
