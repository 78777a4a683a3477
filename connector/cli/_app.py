"""The `handshake` application object and what every command shares: the consoles, the global
options, loading the config (every problem listed, exit 2) and printing counts."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from connector import __version__
from connector.config import CONFIG_ENV, Config, load_config, resolve_config_path
from connector.errors import ConfigError, ExitCode
from connector.logs import LEVELS, register_secrets, setup_logging

__all__ = [
    "CommandInterrupted",
    "ConfigOption",
    "app",
    "err",
    "exit_with",
    "load_checked_config",
    "out",
    "parse_date",
    "print_counts",
    "report_config_error",
    "state",
]

class CommandInterrupted(Exception):
    """Ctrl-C inside a command, carried to `main` (click would turn it into a silent exit 130);
    the KeyboardInterrupt is its `__cause__`."""


class _RootGroup(TyperGroup):
    """The `handshake` group. Typer's rich help (0.29.2; 0.27.1 still hid them) prints a flag's
    type as if it took a value (`--dry-run <bool>`): every flag of the whole command tree, built
    by the time the root is, gets an empty placeholder instead. Ctrl-C inside a command reaches
    `main` as `CommandInterrupted`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _blank_flag_placeholders(self)

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt as exc:
            raise CommandInterrupted from exc


def _blank_flag_placeholders(command: Any) -> None:
    # --help is made on first use and then kept: make it now so that it is the one changed.
    help_option = command.get_help_option(typer.Context(command))
    for param in [*command.params, *([help_option] if help_option is not None else [])]:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
    for sub in (getattr(command, "commands", None) or {}).values():
        _blank_flag_placeholders(sub)


app = typer.Typer(
    name="handshake",
    cls=_RootGroup,
    help="Hands HubSpot's marketing-qualified leads to Salesforce and brings sales outcomes back.",
    no_args_is_help=True,
    # Failures become messages in `main` (connector/cli/failures.py); a traceback is for
    # --log-level DEBUG only, and never with locals, which could hold secrets.
    pretty_exceptions_enable=False,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)

out = Console()
err = Console(stderr=True, soft_wrap=True)

ConfigOption = Annotated[
    str | None,
    typer.Option("--config", "-c", metavar="PATH",
                 help=f"Config file (default: ${CONFIG_ENV} or ./handshake.toml)."),
]


class _State:
    config_path: str | None = None
    log_json: bool = False
    log_level: str | None = None
    config: Config | None = None  # the config the command loaded: failures name its hosts

    def reset(self) -> None:
        self.config_path = self.log_level = self.config = None
        self.log_json = False


state = _State()


def _version(value: bool) -> None:
    if value:
        out.print(f"handshake {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    config: ConfigOption = None,
    log_json: Annotated[bool, typer.Option("--log-json", help="Log one JSON object a line.")] = False,
    log_level: Annotated[
        str | None, typer.Option("--log-level", metavar="LEVEL",
                                 help="DEBUG, INFO, WARNING or ERROR.")
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    level = (log_level or "INFO").upper()
    if level not in LEVELS:
        err.print(f"--log-level: {log_level!r} is not a level; one of {', '.join(LEVELS)}",
                  highlight=False, markup=False)
        raise exit_with(ExitCode.CONFIG)
    state.config_path = config
    state.log_json = log_json
    state.log_level = level if log_level else None  # else the config file's [logging] level
    setup_logging(level=level, json_lines=log_json)


def report_config_error(exc: ConfigError) -> None:
    """Print every problem of a bad config or mapping file to stderr."""
    err.print(f"[bold red]{len(exc.problems)} configuration problem(s):[/]")
    for p in exc.problems:
        where = f"{p.file}:{p.line}" if p.line else p.file
        err.print(
            f"  [red]✗[/] {escape(where)}  [bold]{escape(p.key)}[/]: {escape(p.problem)}",
            highlight=False,
        )
        err.print(f"      fix: {escape(p.fix)}", highlight=False)


def exit_with(code: ExitCode | int) -> typer.Exit:
    """A `typer.Exit` carrying one of the README's exit codes (raise it)."""
    return typer.Exit(int(code))


def load_checked_config(config: str | None = None, *, require_secrets: bool = True) -> Config:
    """Load the config for a command; on problems print them all and exit 2."""
    path = resolve_config_path(config or state.config_path)
    try:
        loaded = load_config(path, require_secrets=require_secrets)
    except ConfigError as exc:
        report_config_error(exc)
        raise exit_with(ExitCode.CONFIG) from None
    register_secrets(loaded.secrets.values())
    state.config = loaded
    setup_logging(
        level=(state.log_level or loaded.logging.level).upper(),
        json_lines=state.log_json or loaded.logging.json_lines,
        file=loaded.logging.file or None,
    )
    return loaded


def print_counts(title: str, counts: dict[str, int]) -> None:
    """A bold title, then one `key: n` line per count, sorted."""
    out.print(f"[bold]{escape(title)}[/]")
    for key in sorted(counts):
        out.print(f"  {key}: {counts[key]:,}", markup=False, highlight=False)


def parse_date(value: str, option: str) -> datetime:
    """A date or ISO-8601 time given on the command line (UTC when it has no zone); exit 2
    naming the option when it is not one."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        err.print(f"{option}: {value!r} is not a date; use YYYY-MM-DD or an ISO-8601 time",
                  markup=False, highlight=False)
        raise exit_with(ExitCode.CONFIG) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
