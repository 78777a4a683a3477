"""The console-script entry point: every command group mounted, and every failure turned into
its message and one of the README's exit codes (connector/cli/failures.py)."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

import typer

from connector.cli import config as _config  # noqa: F401  (mounts `config`)
from connector.cli import db as _db  # noqa: F401  (mounts `db`)
from connector.cli import demo as _demo  # noqa: F401  (mounts `demo`)
from connector.cli import dlq as _dlq  # noqa: F401  (mounts `dlq`)
from connector.cli import init as _init  # noqa: F401  (mounts `init`)
from connector.cli import plan as _plan  # noqa: F401  (mounts `plan`)
from connector.cli import recycled as _recycled  # noqa: F401  (mounts `recycled`)
from connector.cli import report as _report  # noqa: F401  (mounts `report`)
from connector.cli import run as _run  # noqa: F401  (mounts `run`)
from connector.cli import score as _score  # noqa: F401  (mounts `score`, `mappings`)
from connector.cli import sla as _sla  # noqa: F401  (mounts `sla`)
from connector.cli import status as _status  # noqa: F401  (mounts `status`, `mappings preview`)
from connector.cli import sync as _sync  # noqa: F401  (mounts `sync`, `backfill`)
from connector.cli._app import CommandInterrupted, app, state
from connector.cli.failures import report
from connector.errors import ExitCode
from connector.sandbox.cli import app as sandbox_app

__all__ = ["app", "command_path", "main"]

app.add_typer(sandbox_app, name="sandbox", help="Local emulations of HubSpot and Salesforce.")


def command_path(args: Sequence[str]) -> str:
    """The command `args` name, such as "sync pull" (options and their values skipped)."""
    command: Any = typer.main.get_command(app)
    names = []
    for arg in args:
        subcommands = getattr(command, "commands", None)  # a group
        if subcommands is None:
            break
        if arg in subcommands:
            names.append(arg)
            command = subcommands[arg]
    return " ".join(names) or "handshake"


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Console-script entry point: run the command `argv` (default: the process's arguments)
    and exit with its code; any failure is printed as its message, never as a traceback.
    Usage errors stay click's (exit 2); typer's standalone mode exits for every other outcome
    but an exception, which lands here."""
    args = list(sys.argv[1:] if argv is None else argv)
    state.reset()
    code: int = ExitCode.OK
    try:
        app(args=args)
    except CommandInterrupted as exc:
        code = report(exc.__cause__ or KeyboardInterrupt(), command_path(args), state.config)
    except (Exception, KeyboardInterrupt) as exc:  # noqa: BLE001  (every failure, as a message)
        code = report(exc, command_path(args), state.config)
    if code in (ExitCode.SIGINT, ExitCode.SIGTERM):
        _exit_at_once(int(code))
    sys.exit(int(code))


def _exit_at_once(code: int) -> NoReturn:
    """Exit without tearing the interpreter down: the run is recorded and what it opened is
    closed, and the teardown (a second or more on a busy machine) could push a stop cut short
    at `[runtime] stop_timeout_seconds` past the 10 s a stop may take (`docker stop`)."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
