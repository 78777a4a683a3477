"""Scheduled job: one incremental pull from HubSpot into the state store.

Importable callable for the scheduler (`jobs.pull:run`), or run directly:
`python jobs/pull.py --config handshake.toml`.
"""

from __future__ import annotations

import sys
from collections import Counter

from connector.config import load_config, resolve_config_path
from connector.logs import bind_run, register_secrets
from connector.pull import pull
from connector.wiring import open_store, pull_context


def run(config_path: str | None = None) -> Counter[str]:
    """Pull once; returns the run's counts. Raises FatalError subclasses for the scheduler."""
    config = load_config(resolve_config_path(config_path))
    register_secrets(config.secrets.values())
    store = open_store(config)
    run_id = store.start_run("pull", trigger="schedule")
    with bind_run(run_id):
        ctx = pull_context(config, store, run_id=run_id)
        try:
            counts = pull(ctx)
        except Exception as exc:
            store.finish_run(run_id, status="failed", counts=dict(ctx.counts), error=str(exc))
            raise
        finally:
            ctx.client.close()
    store.finish_run(run_id, status="ok", counts=dict(counts))
    return counts


if __name__ == "__main__":
    args = sys.argv[1:]
    run(args[args.index("--config") + 1] if "--config" in args else None)
