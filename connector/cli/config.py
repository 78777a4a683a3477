"""`handshake config check|show`: the configuration, validated and shown."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.markup import escape

from connector.cli._app import ConfigOption, app, load_checked_config, out
from connector.logs import bind_run, get_logger

__all__ = ["config_app"]

config_app = typer.Typer(help="Check and show the configuration.", no_args_is_help=True)
app.add_typer(config_app, name="config")
log = get_logger("cli")


@config_app.command("check")
def config_check(config: ConfigOption = None) -> None:
    """Validate the config file and the secrets in the environment; exit 2 listing every problem."""
    with bind_run():
        loaded = load_checked_config(config)
        log.info("configuration is valid", extra={"file": loaded.source})
        out.print(f"[green]✓[/] {escape(str(loaded.source))}: configuration is valid",
                  soft_wrap=True)


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
