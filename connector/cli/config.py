"""`handshake config check|show`: the configuration, validated and shown."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.markup import escape

from connector.cli._app import ConfigOption, app, err, exit_with, load_checked_config, out
from connector.config import Config
from connector.errors import ExitCode, StoreError
from connector.logs import CONSOLE_SHOWN, bind_run, get_logger

__all__ = ["config_app"]

config_app = typer.Typer(help="Check and show the configuration.", no_args_is_help=True)
app.add_typer(config_app, name="config")
log = get_logger("cli")


@config_app.command("check")
def config_check(config: ConfigOption = None) -> None:
    """Validate the config file and the secrets in the environment (exit 2 listing every
    problem), then reach the state database and prove it can be written, changing nothing
    (exit 1 when it cannot, 2 when its URL is not one)."""
    with bind_run():
        loaded = load_checked_config(config)
        where = _check_database(loaded)
        log.info("configuration is valid", extra={"file": loaded.source, "database": where})
        out.print(f"[green]✓[/] {escape(str(loaded.source))}: configuration is valid; {escape(where)} "
                  "can be reached and written", highlight=False, soft_wrap=True)


def _check_database(loaded: Config) -> str:
    """Where the state database is, once proven reachable and writable; on a problem, print
    it as a config problem and exit 1 (2 when the URL itself is wrong)."""
    from connector.store import Store

    code = ExitCode.CONFIG  # until the URL is parsed: a URL Handshake cannot use is the file's
    try:
        store = Store(loaded.state.database_url)
        code = ExitCode.FAILED
        try:
            store.check_writable()
        finally:
            store.close()
    except StoreError as exc:
        if isinstance(exc.__cause__, OSError):  # the SQLite file's folder, not the URL
            code = ExitCode.FAILED
        err.print("the state database cannot be used:", highlight=False)
        err.print(f"  [red]✗[/] {escape(str(loaded.source))}  [bold]state.database_url[/]: "
                  f"{escape(exc.message)}", highlight=False)
        err.print(f"      fix: {escape(exc.fix or 'check [state] database_url')}", highlight=False)
        log.error("the state database cannot be used: %s", exc.message,
                  extra={"file": loaded.source, CONSOLE_SHOWN: True})
        raise exit_with(code) from None
    return str(store.location)


@config_app.command("show")
def config_show(
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print as one JSON object.")] = False,
) -> None:
    """Print the effective configuration; secrets appear only as set / not set."""
    loaded = load_checked_config(config, require_secrets=False)
    data: dict[str, Any] = loaded.model_dump(mode="json")
    data["secrets"] = {
        name: ("set" if getattr(loaded.secrets, name) else "not set")
        for name in type(loaded.secrets).model_fields
    }
    if as_json:
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
        return
    for section, values in data.items():
        out.print(f"[bold]{escape(f'[{section}]')}[/]")
        for key, value in values.items():
            out.print(f"  {key} = {value!r}", markup=False, highlight=False, soft_wrap=True)
