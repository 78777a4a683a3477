"""`handshake run`: the daemon (the stages on the `[schedule]` intervals, one active instance,
/healthz and /metrics at `[daemon] listen`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from connector.cli._app import (
    ConfigOption,
    app,
    err,
    exit_with,
    load_checked_config,
    report_config_error,
    state,
)
from connector.config import Config, _listen
from connector.errors import ConfigError, ExitCode
from connector.logs import register_secrets, setup_logging

__all__ = ["run"]


@app.command("run")
def run(
    config: ConfigOption = None,
    listen: Annotated[str | None, typer.Option(
        "--listen", metavar="HOST:PORT",
        help="Serve /healthz and /metrics here (default: the daemon section's listen; "
             "port 0: any free port).")] = None,
    once: Annotated[bool, typer.Option(
        "--once", help="Run one cycle of every stage, then exit (for cron and tests).")] = False,
    sandbox: Annotated[Path | None, typer.Option(
        "--sandbox", metavar="FILE",
        help="Run against `handshake sandbox serve`: FILE holds what `serve --json` printed "
             "(URLs and credentials); the shipped mapping files, state in "
             "./handshake-sandbox.db. Instead of --config.")] = None,
) -> None:
    """Run the sync as a daemon: every stage on its interval from the config's schedule
    section, score and push right after a pull that brought changes. One daemon is active per state database; another waits
    as standby and takes over when it stops. SIGTERM/SIGINT finish the batch in flight."""
    from connector.daemon import Daemon, mapping_problems

    loaded = _sandbox_config(sandbox) if sandbox is not None else load_checked_config(config)
    if listen is not None:
        try:
            _listen(listen)
        except ValueError as exc:
            err.print(f"--listen: {listen!r} is {exc}; use host:port such as 127.0.0.1:8787",
                      markup=False, highlight=False)
            raise exit_with(ExitCode.CONFIG) from None
    problems = mapping_problems(loaded)
    if problems:
        report_config_error(ConfigError(problems))
        raise exit_with(ExitCode.CONFIG)
    code = Daemon(loaded, listen=listen, once=once).run()
    if code:
        raise exit_with(code)


def _sandbox_config(path: Path) -> Config:
    """The demo's config for a sandbox served apart (`handshake sandbox serve --json`)."""
    from connector.demo import sandbox_config

    try:
        info = json.loads(path.read_text())
        loaded = sandbox_config(info, Path("handshake-sandbox.db").resolve())
    except (OSError, ValueError, KeyError, TypeError) as exc:
        err.print(f"--sandbox {path}: not what `handshake sandbox serve --json` prints ({exc}); "
                  "start the sandbox with `handshake sandbox serve --json > FILE` and pass FILE",
                  markup=False, highlight=False)
        raise exit_with(ExitCode.CONFIG) from None
    register_secrets(loaded.secrets.values())
    state.config = loaded
    setup_logging(level=(state.log_level or loaded.logging.level).upper(),
                  json_lines=state.log_json)
    return loaded
