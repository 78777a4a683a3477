"""`handshake init [DIR]`: a commented handshake.toml and the four mapping files, written for an
admin to edit (the defaults Handshake ships), never over a file that exists unless `--force`."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from connector.cli._app import app, err, exit_with, out
from connector.defaults import CONFIG_EXAMPLE, DEFAULT_MAPPINGS
from connector.errors import ExitCode

__all__ = ["init_command", "starter_files"]

CONFIG_NAME = "handshake.toml"
MAPPINGS_FOLDER = "mappings"  # where the example config's [mappings] paths point


def starter_files(directory: Path) -> dict[Path, Path]:
    """Each file `init` writes into `directory`, with the shipped file it is copied from."""
    files = {directory / CONFIG_NAME: CONFIG_EXAMPLE}
    for name, shipped in DEFAULT_MAPPINGS.items():
        files[directory / MAPPINGS_FOLDER / f"{name}.toml"] = shipped
    return files


@app.command("init")
def init_command(
    directory: Annotated[Path, typer.Argument(
        help="Folder to write into (created if missing).", show_default=".")] = Path("."),
    force: Annotated[bool, typer.Option(
        "--force", help="Overwrite files that exist (their contents are lost).")] = False,
) -> None:
    """Write a commented handshake.toml and mappings/fields.toml, scoring.toml, routing.toml
    and sla.toml to edit; refuse (exit 2) if any exists, unless --force."""
    files = starter_files(directory)
    existing = [path for path in files if path.exists()]
    if existing and not force:
        for path in existing:
            err.print(f"[red]✗[/] {escape(str(path))} already exists", highlight=False)
        err.print("Nothing was written. Fix: edit the existing files, choose another folder "
                  "(`handshake init DIR`), or pass --force to overwrite them.", highlight=False)
        raise exit_with(ExitCode.CONFIG)
    for target, shipped in files.items():
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(shipped.read_bytes())
        except OSError as exc:
            err.print(f"[red]✗[/] could not write {escape(str(target))}: "
                      f"{escape(exc.strerror or str(exc))}. Fix: choose a folder you can write "
                      "to (`handshake init DIR`).", highlight=False)
            raise exit_with(ExitCode.FAILED) from None
        out.print(f"[green]✓[/] wrote {escape(str(target))}", highlight=False, soft_wrap=True)
    run_from = "" if directory.resolve() == Path.cwd().resolve() else f"cd {directory} && "
    out.print("\n[bold]Next[/]")
    for n, step in enumerate((
        (f"Edit {directory / CONFIG_NAME}: [hubspot] base_url and tier, [salesforce] "
         "instance_url and auth, [state] database_url for PostgreSQL (`handshake sandbox "
         "serve` prints URLs to try it against the sandbox)."),
        ("Export the secrets listed at the top of that file (HANDSHAKE_HUBSPOT_TOKEN, "
         "HANDSHAKE_SF_...): they are never read from a file."),
        (f"Edit {directory / MAPPINGS_FOLDER}/: fields.toml (HubSpot properties to Lead "
         "fields), scoring.toml (fit, interest, the MQL rule), routing.toml (Lead owners), sla.toml (follow-up windows, "
         "breaches, recycling)."),
        (f"{run_from}handshake config check && handshake mappings check, then "
         "`handshake db upgrade` and `handshake sync pull`."),
    ), start=1):
        for line in textwrap.wrap(step, 79, initial_indent=f"  {n}. ", subsequent_indent="     ",
                                  break_on_hyphens=False, break_long_words=False):
            out.print(escape(line), highlight=False, soft_wrap=True)
