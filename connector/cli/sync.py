"""`handshake sync pull|score|push|pullback` and `handshake backfill`: one stage, once."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from connector.cli._app import (
    ConfigOption,
    app,
    err,
    exit_with,
    load_checked_config,
    out,
    parse_date,
    print_counts,
    report_config_error,
)
from connector.cli.failures import report_stop
from connector.errors import ConfigError, ExitCode
from connector.runtime import StageResult

__all__ = ["finish", "print_pullback_plan", "sync_app"]

sync_app = typer.Typer(help="Run one stage of the sync once.", no_args_is_help=True)
app.add_typer(sync_app, name="sync")


def finish(result: StageResult) -> None:
    """After a stage's counts: say why it did not end `ok`, and exit with the README's code
    (3 degraded: records parked for an admin; 5 stopped at a quota)."""
    for problem in result.problems:
        err.print(f"[yellow]mapping problem:[/] {escape(problem)}", highlight=False)
    if result.parked:
        kinds = ", ".join(f"{code} {n:,}" for code, n in sorted(result.parked.items()))
        err.print(f"[yellow]{sum(result.parked.values()):,} record(s) parked for an admin "
                  f"({escape(kinds)})[/]; `handshake dlq list` shows each with its fix, "
                  f"`handshake dlq retry` sends them again once fixed", highlight=False)
    report_stop(result.status, result.error)  # a quota stop exits 5 saying when it resets
    if result.exit_code != ExitCode.OK:
        raise exit_with(result.exit_code)


def _run_pull(config_path: str | None, *, dry_run: bool, full: bool = False,
              streams: list[str] | None = None) -> None:
    from connector.progress import make_progress
    from connector.pull import STREAMS
    from connector.runtime import run_pull_stage

    loaded = load_checked_config(config_path)
    unknown = sorted(set(streams or []) - set(STREAMS))
    if unknown:
        err.print(f"unknown stream(s) {', '.join(unknown)}; known: {', '.join(STREAMS)}",
                  markup=False, highlight=False)
        raise exit_with(ExitCode.CONFIG)
    with make_progress() as progress:
        result = run_pull_stage(loaded, dry_run=dry_run, full=full,
                                streams=streams or STREAMS, progress=progress)
    print_counts(f"pull {'(dry run: nothing stored) ' if dry_run else ''}{result.status}",
                 dict(result.counts))
    finish(result)


@sync_app.command("pull")
def sync_pull(
    config: ConfigOption = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Read HubSpot, store nothing.")] = False,
    full: Annotated[bool, typer.Option("--full", help="Reload every contact (list endpoint).")] = False,
    stream: Annotated[
        list[str] | None, typer.Option("--stream", metavar="STREAM",
                                       help="Only these streams (repeatable).")
    ] = None,
) -> None:
    """Pull contacts and engagement from HubSpot into the state store (incremental)."""
    _run_pull(config, dry_run=dry_run, full=full, streams=stream)


@sync_app.command("score")
def sync_score(
    config: ConfigOption = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Score, store and send nothing.")]
    = False,
    everyone: Annotated[bool, typer.Option("--all", help="Re-score every live contact.")] = False,
) -> None:
    """Score contacts whose inputs changed (and yesterday's scores, which decay), record MQL
    decisions, and write changed values back to HubSpot."""
    from connector.runtime import run_score_stage

    loaded = load_checked_config(config)
    try:
        result = run_score_stage(loaded, dry_run=dry_run, everyone=everyone)
    except ConfigError as exc:
        report_config_error(exc)
        raise exit_with(ExitCode.CONFIG) from None
    print_counts(f"score {'(dry run: nothing stored or sent) ' if dry_run else ''}{result.status}",
                 dict(result.counts))
    finish(result)


@sync_app.command("push")
def sync_push(
    config: ConfigOption = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would be written, field "
                                          "by field; write nothing.")] = False,
) -> None:
    """Hand the MQLs to Salesforce: match, map, route, write Leads and Tasks once each."""
    from connector.runtime import run_push_stage

    loaded = load_checked_config(config)
    result = run_push_stage(loaded, dry_run=dry_run)
    for plan in result.planned:
        out.print(f"[bold]{escape(str(plan['action']))}[/] Lead for HubSpot contact "
                  f"{escape(str(plan['contact']))} "
                  f"({escape(str(plan['why']))})", highlight=False)
        for name, value in sorted(plan["values"].items()):
            out.print(f"    {name} = {escape(repr(value))}", highlight=False)
    print_counts(f"push {'(dry run: nothing written) ' if dry_run else ''}{result.status}",
                 dict(result.counts))
    finish(result)


@sync_app.command("pullback")
def sync_pullback(
    config: ConfigOption = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Read Salesforce and HubSpot, "
                                          "store and write nothing; list what would be "
                                          "written.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object: status, counts "
                                          "and (dry run) the writes planned.")] = False,
) -> None:
    """Pull back what sales did with the hand-offs: status, owner, conversion, opportunity
    outcome, calls, emails and meetings, since the last run; then the SLA, the outcomes to
    HubSpot and the dead leads back to marketing."""
    from connector.runtime import run_pullback_stage

    loaded = load_checked_config(config)
    result = run_pullback_stage(loaded, dry_run=dry_run)
    if as_json:
        sys.stdout.write(json.dumps({"status": result.status, "dry_run": dry_run,
                                     "counts": dict(sorted(result.counts.items())),
                                     "planned": result.planned}, default=str) + "\n")
    else:
        if dry_run:
            print_pullback_plan(result.planned)
        print_counts(f"pullback {'(dry run: nothing stored) ' if dry_run else ''}"
                     f"{result.status}", dict(result.counts))
    finish(result)


_SYSTEMS = (("salesforce", "Salesforce"), ("hubspot", "HubSpot"))


def _what(entry: dict[str, Any]) -> str:
    """One planned write as a person reads it (ids and values only: no contact data)."""
    action = entry["action"]
    if action == "alert_task":
        return (f"SLA alert Task ({entry['breach']} breach, due {entry['due_at'][:16]}) "
                f"to {entry['role']} {entry['to']}")
    if action == "reassign":
        return f"owner {entry['from']} -> {entry['to']} (team {entry['team']})"
    if action == "recycle":
        return f"status {entry['status']}; owner {entry['owner']}"
    if action == "update":
        return ", ".join(f"{k} = {v!r}" for k, v in entry["properties"].items())
    if action == "lifecycle":
        return f"lifecyclestage {entry['from'] or '(empty)'} -> {entry['to']} ({entry['how']})"
    if action == "list_add":
        return f"add to list {entry['list']!r}"
    return str({k: v for k, v in entry.items() if k not in ("system", "action", "record")})


def print_pullback_plan(planned: list[dict[str, Any]]) -> None:
    """A dry run's writes, one table per system."""
    for system, label in _SYSTEMS:
        rows = [p for p in planned if p["system"] == system]
        if not rows:
            out.print(f"{label}: nothing would be written", highlight=False)
            continue
        table = Table(title=f"{label}: {len(rows):,} write(s) the pull-back would make",
                      box=box.SIMPLE_HEAD, title_justify="left")
        table.add_column("Action", no_wrap=True)
        table.add_column("Record", no_wrap=True, min_width=18)  # an id, whole
        table.add_column("What")
        for row in rows:
            table.add_row(escape(row["action"]), escape(str(row["record"])),
                          escape(_what(row)))
        out.print(table)


_STAGE_CHOICES = ("pull", "score", "push", "pullback", "all")


@app.command("backfill")
def backfill_command(
    since: Annotated[str, typer.Option("--since", metavar="DATE",
                                       help="Start date (YYYY-MM-DD or ISO-8601).")],
    until: Annotated[str | None, typer.Option("--until", metavar="DATE",
                                              help="End date (default: now).")] = None,
    stage: Annotated[str | None, typer.Option(
        "--stage", metavar="STAGE",
        help="pull, score, push, pullback or all (default: all, in that order).")] = None,
    fields: Annotated[list[str] | None, typer.Option(
        "--fields", metavar="FIELD",
        help="Send these fields.toml fields (repeatable, or comma-separated) to every Lead "
             "linked in the window, and nothing else.")] = None,
    config: ConfigOption = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Write nothing; list what would "
                                          "be written.")] = False,
    restart: Annotated[bool, typer.Option("--restart", help="Run a backfill finished (or "
                                          "begun) before again from its start.")] = False,
) -> None:
    """Re-run stages over a date range without moving the scheduled bookmarks: resumable
    from its checkpoint, under the same leases as the scheduled runs, nothing written twice."""
    from connector.progress import make_progress
    from connector.runtime.backfill import STAGES, Backfill, Window, fields_wanted, run_backfill

    if stage is not None and stage not in _STAGE_CHOICES:
        err.print(f"--stage {stage!r}: use one of {', '.join(_STAGE_CHOICES)}", markup=False,
                  highlight=False)
        raise exit_with(ExitCode.CONFIG)
    names = [n.strip() for item in fields or [] for n in item.split(",") if n.strip()]
    if names and stage not in (None, "all"):
        err.print("--fields sends fields to the Leads already in Salesforce; it runs on its "
                  "own: leave out --stage", markup=False, highlight=False)
        raise exit_with(ExitCode.CONFIG)
    start = parse_date(since, "--since")
    end = parse_date(until, "--until") if until else None
    if end is not None and end <= start:
        err.print("--until must be after --since")
        raise exit_with(ExitCode.CONFIG)
    loaded = load_checked_config(config)
    try:
        if names:
            from connector.mapping import load_fields

            path = loaded.mapping_path("fields")
            fields_wanted(load_fields(path), names, str(path))
        job = Backfill(Window(start, end), STAGES if stage in (None, "all") else (stage,),
                       tuple(names), dry_run=dry_run, restart=restart)
        with make_progress() as progress:
            outcomes = run_backfill(loaded, job, progress=progress)
    except ConfigError as exc:
        report_config_error(exc)
        raise exit_with(ExitCode.CONFIG) from None
    for outcome in outcomes:
        result = outcome.result
        if result is None:
            out.print(f"backfill {outcome.stage}: finished before (checkpoint "
                      f"{escape(outcome.checkpoint)}); nothing to do — --restart runs it "
                      f"again", highlight=False)
            continue
        if dry_run and outcome.stage in ("push", "fields"):
            for plan in result.planned:
                out.print(f"[bold]{escape(str(plan['action']))}[/] Lead for HubSpot contact "
                          f"{escape(str(plan['contact']))} ({escape(str(plan['why']))})",
                          highlight=False)
                for name, value in sorted(plan["values"].items()):
                    out.print(f"    {name} = {escape(repr(value))}", highlight=False)
        elif dry_run and outcome.stage == "pullback":
            print_pullback_plan(result.planned)
        print_counts(f"backfill {outcome.stage} "
                     f"{'(dry run: nothing written) ' if dry_run else ''}{result.status}",
                     dict(result.counts))
    for outcome in outcomes:
        if outcome.result is not None:
            finish(outcome.result)
