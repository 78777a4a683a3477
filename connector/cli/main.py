"""The console-script entry point: every command group mounted, admin-facing errors turned into
messages and the README's exit codes."""

from __future__ import annotations

import logging
import os
import signal
import sys

from connector.cli import config as _config  # noqa: F401  (mounts `config`)
from connector.cli import db as _db  # noqa: F401  (mounts `db`)
from connector.cli import demo as _demo  # noqa: F401  (mounts `demo`)
from connector.cli import dlq as _dlq  # noqa: F401  (mounts `dlq`)
from connector.cli import score as _score  # noqa: F401  (mounts `score`, `mappings`)
from connector.cli import sync as _sync  # noqa: F401  (mounts `sync`, `backfill`)
from connector.cli._app import app, err, report_config_error
from connector.errors import ConfigError, ExitCode, FatalError, StageBusy, StopRequested
from connector.sandbox.cli import app as sandbox_app

__all__ = ["app", "main"]

app.add_typer(sandbox_app, name="sandbox", help="Local emulations of HubSpot and Salesforce.")


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: admin-facing errors become messages and exit codes."""
    try:
        app(args=argv)
    except ConfigError as exc:
        report_config_error(exc)
        sys.exit(ExitCode.CONFIG)
    except StageBusy as exc:
        err.print(f"[bold yellow]busy:[/] {exc}", highlight=False)
        if exc.fix:
            err.print(f"  fix: {exc.fix}", highlight=False)
        sys.exit(ExitCode.BUSY)
    except (StopRequested, KeyboardInterrupt) as exc:
        signum = getattr(exc, "signum", None) or signal.SIGINT
        err.print(f"stopped by {signal.Signals(signum).name}: what was written is committed; "
                  "the next run resumes where this one stopped", highlight=False)
        _exit_at_once(128 + signum)
    except FatalError as exc:
        logging.getLogger("connector").error("stopped: %s", exc)
        err.print(f"[bold red]stopped:[/] {exc}")
        sys.exit(ExitCode.FAILED)


def _exit_at_once(code: int) -> None:
    """Exit without tearing the interpreter down: the run is recorded and what it opened is
    closed, and the teardown (a second or more on a busy machine) could push a stop cut short
    at `[runtime] stop_timeout_seconds` past the 10 s a stop may take (`docker stop`)."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
