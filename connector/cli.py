"""The `handshake` command line."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from connector import __version__
from connector.config import CONFIG_ENV, Config, load_config, resolve_config_path
from connector.errors import ConfigError, FatalError
from connector.logs import bind_run, get_logger, register_secrets, setup_logging

app = typer.Typer(
    name="handshake",
    help="Hands HubSpot's marketing-qualified leads to Salesforce and brings sales outcomes back.",
    no_args_is_help=True,
    # Locals in tracebacks could hold secrets: never show them.
    pretty_exceptions_show_locals=False,
    add_completion=False,
)
config_app = typer.Typer(help="Check and show the configuration.", no_args_is_help=True)
db_app = typer.Typer(help="The state database: schema upgrades and status.", no_args_is_help=True)
sync_app = typer.Typer(help="Run one stage of the sync once.", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(db_app, name="db")
app.add_typer(sync_app, name="sync")


def _mount_commands() -> None:
    from connector.sandbox.cli import app as sandbox_app
    from connector.scoring.commands import mappings_check, score_explain, sync_score

    score_app = typer.Typer(help="How a contact is scored, explained.", no_args_is_help=True)
    mappings_app = typer.Typer(help="The admin-edited mapping files.", no_args_is_help=True)
    app.add_typer(score_app, name="score")
    app.add_typer(mappings_app, name="mappings")
    app.add_typer(sandbox_app, name="sandbox", help="Local emulations of HubSpot and Salesforce.")
    sync_app.command("score")(sync_score)
    score_app.command("explain")(score_explain)
    mappings_app.command("check")(mappings_check)


_mount_commands()

out = Console()
err = Console(stderr=True, soft_wrap=True)
log = get_logger("cli")

EXIT_CONFIG = 2


ConfigOption = Annotated[
    str | None,
    typer.Option("--config", "-c", help=f"Config file (default: ${CONFIG_ENV} or ./handshake.toml)."),
]


class _State:
    config_path: str | None = None
    log_json: bool = False
    log_level: str | None = None


state = _State()


def _version(value: bool) -> None:
    if value:
        out.print(f"handshake {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    config: Annotated[
        str | None,
        typer.Option("--config", "-c", help=f"Config file (default: ${CONFIG_ENV} or ./handshake.toml)."),
    ] = None,
    log_json: Annotated[bool, typer.Option("--log-json", help="Log one JSON object a line.")] = False,
    log_level: Annotated[
        str | None, typer.Option("--log-level", help="DEBUG, INFO, WARNING or ERROR.")
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    state.config_path = config
    state.log_json = log_json
    state.log_level = log_level
    setup_logging(level=(log_level or "INFO").upper(), json_lines=log_json)


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


def load_checked_config(config: str | None = None, *, require_secrets: bool = True) -> Config:
    """Load the config for a command; on problems print them all and exit 2."""
    path = resolve_config_path(config or state.config_path)
    try:
        loaded = load_config(path, require_secrets=require_secrets)
    except ConfigError as exc:
        report_config_error(exc)
        raise typer.Exit(EXIT_CONFIG) from None
    register_secrets(loaded.secrets.values())
    setup_logging(
        level=(state.log_level or loaded.logging.level).upper(),
        json_lines=state.log_json or loaded.logging.json_lines,
        file=loaded.logging.file or None,
    )
    return loaded


@config_app.command("check")
def config_check(config: ConfigOption = None) -> None:
    """Validate the config file and the secrets in the environment; exit 2 listing every problem."""
    with bind_run():
        loaded = load_checked_config(config)
        log.info("configuration is valid", extra={"file": loaded.source})
        out.print(f"[green]✓[/] {loaded.source}: configuration is valid")


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
        out.print(f"[bold]\\[{section}][/]")
        for key, value in values.items():
            out.print(f"  {key} = {value!r}", highlight=False)


@db_app.command("upgrade")
def db_upgrade(config: ConfigOption = None) -> None:
    """Create the state database or upgrade its schema in place to the newest version."""
    from connector.store import Store

    with bind_run():
        loaded = load_checked_config(config, require_secrets=False)
        store = Store(loaded.state.database_url)
        before = store.schema_revision()
        store.migrate()
        after = store.schema_revision()
        store.close()
        log.info("schema upgraded", extra={"from_revision": before, "to_revision": after})
        out.print(f"schema: {before or 'empty'} → {after}")


@db_app.command("status")
def db_status(config: ConfigOption = None) -> None:
    """Show the schema revision of the state database and the newest one available."""
    from connector.store import Store

    loaded = load_checked_config(config, require_secrets=False)
    store = Store(loaded.state.database_url)
    current, head = store.schema_revision(), store.head_revision()
    store.close()
    out.print(f"schema revision: {current or 'none'} (newest: {head})")
    if current != head:
        out.print("run `handshake db upgrade` to upgrade in place")


def _print_counts(title: str, counts: dict[str, int]) -> None:
    out.print(f"[bold]{escape(title)}[/]")
    for key in sorted(counts):
        out.print(f"  {key}: {counts[key]:,}", highlight=False)


def _run_pull(config_path: str | None, *, dry_run: bool, since: datetime | None = None,
              until: datetime | None = None, full: bool = False,
              streams: list[str] | None = None) -> None:
    from connector.progress import make_progress
    from connector.pull import STREAMS
    from connector.stages import run_pull_stage

    loaded = load_checked_config(config_path)
    unknown = sorted(set(streams or []) - set(STREAMS))
    if unknown:
        err.print(f"unknown stream(s) {', '.join(unknown)}; known: {', '.join(STREAMS)}")
        raise typer.Exit(EXIT_CONFIG)
    with make_progress() as progress:
        result = run_pull_stage(
            loaded, trigger="backfill" if since else "manual", dry_run=dry_run, full=full,
            streams=streams or STREAMS, since=since, until=until, progress=progress,
        )
    title = "backfill" if since else "pull"
    _print_counts(f"{title} {'(dry run: nothing stored) ' if dry_run else ''}{result.status}",
                  dict(result.counts))
    if result.error:
        err.print(f"[yellow]{escape(result.error)}[/]")


@sync_app.command("pull")
def sync_pull(
    config: ConfigOption = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Read HubSpot, store nothing.")] = False,
    full: Annotated[bool, typer.Option("--full", help="Reload every contact (list endpoint).")] = False,
    stream: Annotated[
        list[str] | None, typer.Option("--stream", help="Only these streams (repeatable).")
    ] = None,
) -> None:
    """Pull contacts and engagement from HubSpot into the state store (incremental)."""
    _run_pull(config, dry_run=dry_run, full=full, streams=stream)


@sync_app.command("push")
def sync_push(
    config: ConfigOption = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would be written, field "
                                          "by field; write nothing.")] = False,
) -> None:
    """Hand the MQLs to Salesforce: match, map, route, write Leads and Tasks once each."""
    from connector.stages import run_push_stage

    loaded = load_checked_config(config)
    result = run_push_stage(loaded, dry_run=dry_run)
    for plan in result.planned:
        out.print(f"[bold]{plan['action']}[/] Lead for HubSpot contact {plan['contact']} "
                  f"({escape(str(plan['why']))})", highlight=False)
        for name, value in sorted(plan["values"].items()):
            out.print(f"    {name} = {escape(repr(value))}", highlight=False)
    _print_counts(f"push {'(dry run: nothing written) ' if dry_run else ''}{result.status}",
                  dict(result.counts))
    if result.error:
        err.print(f"[yellow]{escape(result.error)}[/]")


def _parse_date(value: str, option: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        err.print(f"{option}: {value!r} is not a date; use YYYY-MM-DD or an ISO-8601 time")
        raise typer.Exit(EXIT_CONFIG) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@app.command("backfill")
def backfill_command(
    since: Annotated[str, typer.Option("--since", help="Start date (YYYY-MM-DD or ISO-8601).")],
    until: Annotated[str | None, typer.Option("--until", help="End date (default: now).")] = None,
    stage: Annotated[str, typer.Option("--stage", help="Which stage to backfill: pull.")] = "pull",
    config: ConfigOption = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Read, store nothing.")] = False,
) -> None:
    """Re-read a date range without moving the scheduled bookmarks (nothing is duplicated)."""
    if stage != "pull":
        err.print(f"--stage {stage!r}: only 'pull' can be backfilled so far")
        raise typer.Exit(EXIT_CONFIG)
    start = _parse_date(since, "--since")
    end = _parse_date(until, "--until") if until else None
    if end is not None and end <= start:
        err.print("--until must be after --since")
        raise typer.Exit(EXIT_CONFIG)
    _run_pull(config, dry_run=dry_run, since=start, until=end)


@app.command("demo")
def demo_command(
    contacts: Annotated[int, typer.Option("--contacts", min=10, help="Contacts to generate.")] = 2000,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the synthetic data.")] = 42,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as one JSON object.")] = False,
) -> None:
    """A full sync cycle against the bundled sandbox: pull, score and push, then a summary."""
    from connector.demo import run_demo

    with bind_run():
        if not as_json:
            err.print(f"Starting the sandbox with {contacts:,} contacts (seed {seed})...")
        summary = run_demo(contacts=contacts, seed=seed)
    if as_json:
        sys.stdout.write(json.dumps(summary) + "\n")
        return
    rows = [
        ("contacts pulled", summary["contacts"]),
        ("activities pulled", summary["activities"]),
        ("MQLs (ground truth: sales-ready)", f"{summary['mqls']} ({summary['sales_ready_in_ground_truth']})"),
        ("Leads created / updated", f"{summary['leads_created']} / {summary['leads_updated']}"),
        ("linked to existing records", summary["linked_to_existing"]),
        ("Tasks created", summary["tasks_created"]),
        ("dead letters", summary["dead_letters"]),
    ]
    for system in ("hubspot", "salesforce"):
        calls, minimum = summary["api_calls"][system], summary["minimum_calls"][system]
        ratio = f"{calls / minimum:.2f}x minimum" if minimum else "-"
        rows.append((f"{system} API calls", f"{calls} ({ratio})"))
    checks = summary.get("checks") or []
    rows.append(("hand-off checked against the truth", "all correct" if not checks
                 else f"{len(checks)} problems"))
    for label, value in rows:
        out.print(f"  {label:<34} {value}", highlight=False)
    for problem in checks:
        out.print(f"  - {problem}", highlight=False)


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
    from connector.stages import retry_dead_letters

    loaded = load_checked_config(config)
    with bind_run():
        outcome = retry_dead_letters(loaded, ids or ())
    out.print(f"{outcome.get('selected', 0)} dead letter(s) retried: "
              f"{outcome.get('resolved', 0)} resolved, {outcome.get('still_open', 0)} still open")


def main() -> None:
    """Console-script entry point: admin-facing errors become messages and exit codes."""
    try:
        app()
    except ConfigError as exc:
        report_config_error(exc)
        sys.exit(EXIT_CONFIG)
    except FatalError as exc:
        logging.getLogger("connector").error("stopped: %s", exc)
        err.print(f"[bold red]stopped:[/] {exc}")
        sys.exit(1)


if __name__ == "__main__":
    main()


__all__ = ["app", "load_checked_config", "main", "report_config_error"]
