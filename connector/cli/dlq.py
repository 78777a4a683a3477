"""`handshake dlq list|retry`: the dead letters, with who must act, and their retry."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from connector.cli._app import ConfigOption, app, err, exit_with, load_checked_config, out
from connector.errors import ExitCode
from connector.logs import bind_run

__all__ = ["STAGES", "dlq_app"]

# The stages that park records (`Store.dead_letter(stage=...)`): the pull, the score's write-back
# to HubSpot, the push and the pull-back (its SLA alerts, reassignments, recycled Leads and
# outcomes to HubSpot); a backfill and `dlq retry` park under "pull" or "push" too.
STAGES = ("pull", "score", "push", "pullback")


dlq_app = typer.Typer(help="Dead letters: records parked with the reason and who must act.",
                      no_args_is_help=True)
app.add_typer(dlq_app, name="dlq")


@dlq_app.command("list")
def dlq_list(
    config: ConfigOption = None,
    stage: Annotated[str | None, typer.Option("--stage", metavar="STAGE",
                                              help=f"Only this stage: {', '.join(STAGES)}.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object a line.")] = False,
) -> None:
    """List the open dead letters: stage, record, who must act, why, attempts."""
    from connector.store import Store

    loaded = load_checked_config(config, require_secrets=False)
    _check_stage(stage)
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
            out.print(f"#{d.id} [{d.stage}] {d.record_key} — {d.actor} must act: {d.reason}"
                      f" (code {d.error_code or '-'}, {d.attempts} attempt(s))",
                      markup=False, highlight=False, soft_wrap=True)
    if not as_json:
        out.print(f"{len(letters)} open dead letter(s)")


def _check_stage(stage: str | None) -> None:
    if stage is not None and stage not in STAGES:
        err.print(f"--stage {stage!r} is not a stage that parks records; "
                  f"known stages: {', '.join(STAGES)}", markup=False, highlight=False)
        raise exit_with(ExitCode.CONFIG)


@dlq_app.command("retry")
def dlq_retry(
    config: ConfigOption = None,
    ids: Annotated[list[int] | None, typer.Option("--id", metavar="ID", help="Only this dead "
                                                  "letter (repeatable).")] = None,
    stage: Annotated[str | None, typer.Option("--stage", metavar="STAGE",
                                              help=f"Only this stage: {', '.join(STAGES)}.")] = None,
) -> None:
    """Try dead letters again once their cause is fixed (mapping corrected, data repaired)."""
    from connector.runtime import retry_dead_letters
    from connector.store import Store

    _check_stage(stage)
    loaded = load_checked_config(config)
    if ids:
        ids = _open_ones(loaded.state.database_url, ids)
        if not ids:
            return
    if stage is not None:
        store = Store(loaded.state.database_url)
        try:
            staged = [d.id for d in store.dead_letters(stage=stage) if not ids or d.id in ids]
        finally:
            store.close()
        if not staged:
            out.print(f"no open dead letter of stage {stage}: nothing to retry", markup=False,
                      highlight=False)
            return
        ids = staged
    with bind_run():
        outcome = retry_dead_letters(loaded, ids or ())
    out.print(f"{outcome.get('selected', 0)} dead letter(s) retried: "
              f"{outcome.get('resolved', 0)} resolved, {outcome.get('still_open', 0)} still open")


def _open_ones(database_url: str, ids: list[int]) -> list[int]:
    """The open dead letters among `ids`; an id that names none stops the command (exit 2), one
    already resolved is reported and left out."""
    from connector.store import Store

    store = Store(database_url)
    try:
        known = {d.id: d for d in store.dead_letters(status=None)}
    finally:
        store.close()
    unknown = [i for i in dict.fromkeys(ids) if i not in known]
    if unknown:
        err.print(f"no dead letter with id {', '.join(f'#{i}' for i in unknown)}; "
                  "`handshake dlq list` shows the open ones with their ids",
                  markup=False, highlight=False)
        raise exit_with(ExitCode.CONFIG)
    for i in dict.fromkeys(ids):
        letter = known[i]
        if letter.status != "open":
            when = f" on {letter.resolved_at:%Y-%m-%d %H:%M} UTC" if letter.resolved_at else ""
            err.print(f"dead letter #{i} is already {letter.status}{when}: nothing to retry",
                      markup=False, highlight=False)
    return [i for i in dict.fromkeys(ids) if known[i].status == "open"]
