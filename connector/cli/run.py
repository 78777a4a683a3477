"""`handshake run`: the daemon (the stages on the `[schedule]` intervals, one active instance,
/healthz and /metrics at `[daemon] listen`)."""

from __future__ import annotations

from typing import Annotated

import typer

from connector.cli._app import (
    ConfigOption,
    app,
    err,
    exit_with,
    load_checked_config,
    report_config_error,
)
from connector.config import _listen
from connector.errors import ConfigError, ExitCode

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
) -> None:
    """Run the sync as a daemon: every stage on its interval from the config's schedule
    section, score and push right after a pull that brought changes. One daemon is active per state database; another waits
    as standby and takes over when it stops. SIGTERM/SIGINT finish the batch in flight."""
    from connector.daemon import Daemon, mapping_problems

    loaded = load_checked_config(config)
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
