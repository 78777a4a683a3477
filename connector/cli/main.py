"""The console-script entry point: every command group mounted, admin-facing errors turned into
messages and the README's exit codes."""

from __future__ import annotations

import logging
import sys

from connector.cli import config as _config  # noqa: F401  (mounts `config`)
from connector.cli import db as _db  # noqa: F401  (mounts `db`)
from connector.cli import demo as _demo  # noqa: F401  (mounts `demo`)
from connector.cli import dlq as _dlq  # noqa: F401  (mounts `dlq`)
from connector.cli import init as _init  # noqa: F401  (mounts `init`)
from connector.cli import score as _score  # noqa: F401  (mounts `score`, `mappings`)
from connector.cli import sync as _sync  # noqa: F401  (mounts `sync`, `backfill`)
from connector.cli._app import app, err, report_config_error
from connector.errors import ConfigError, ExitCode, FatalError
from connector.sandbox.cli import app as sandbox_app

__all__ = ["app", "main"]

app.add_typer(sandbox_app, name="sandbox", help="Local emulations of HubSpot and Salesforce.")


def main() -> None:
    """Console-script entry point: admin-facing errors become messages and exit codes."""
    try:
        app()
    except ConfigError as exc:
        report_config_error(exc)
        sys.exit(ExitCode.CONFIG)
    except FatalError as exc:
        logging.getLogger("connector").error("stopped: %s", exc)
        err.print(f"[bold red]stopped:[/] {exc}")
        sys.exit(ExitCode.FAILED)
