"""`handshake dlq list|retry`: the dead letters, with who must act, and their retry."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.markup import escape

from connector.cli._app import ConfigOption, app, load_checked_config, out
from connector.logs import bind_run

__all__ = ["dlq_app"]


dlq_app = typer.Typer(help="Dead letters: records parked with the reason and who must act.",
                      no_args_is_help=True)
app.add_typer(dlq_app, name="dlq")


@dlq_app.command("list")
def dlq_list(
    config: ConfigOption = None,
    stage: Annotated[str | None, typer.Option("--stage", help="Only this stage.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object a line.")] = False,
) -> None:
    """List the open dead letters: stage, record, who must act, why, attempts."""
    from connector.store import Store

    loaded = load_checked_config(config, require_secrets=False)
    store = Store(loaded.state.database_url)
    letters = store.dead_letters(stage=stage)
    store.close()
    for d in letters:
        row = {"id": d.id, "stage": d.stage, "system": d.system, "record": d.record_key,
               "actor": d.actor, "code": d.error_code, "reason": d.reason,
               "attempts": d.attempts, "last_seen": d.last_seen_at.isoformat()}
        if as_json:
            sys.stdout.write(json.dumps(row) + "\n")
        else:
            out.print(f"#{d.id} [{d.stage}] {d.record_key} — {d.actor} must act: {escape(d.reason)}"
                      f" (code {d.error_code or '-'}, {d.attempts} attempt(s))", highlight=False)
    if not as_json:
        out.print(f"{len(letters)} open dead letter(s)")


@dlq_app.command("retry")
def dlq_retry(
    config: ConfigOption = None,
    ids: Annotated[list[int] | None, typer.Option("--id", help="Only this dead letter "
                                                  "(repeatable).")] = None,
) -> None:
    """Try dead letters again once their cause is fixed (mapping corrected, data repaired)."""
    from connector.runtime import retry_dead_letters

    loaded = load_checked_config(config)
    with bind_run():
        outcome = retry_dead_letters(loaded, ids or ())
    out.print(f"{outcome.get('selected', 0)} dead letter(s) retried: "
              f"{outcome.get('resolved', 0)} resolved, {outcome.get('still_open', 0)} still open")
