"""`handshake status [--json]` and `handshake mappings preview`: what the sync is doing, read
from the state store and the mapping files (status never calls HubSpot or Salesforce, and
works with no daemon running); what the mapping files would write next to what Salesforce
holds (preview reads Salesforce, writes nothing)."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import Annotated, Any

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from connector.cli._app import ConfigOption, app, err, exit_with, load_checked_config, out
from connector.cli.score import mappings_app
from connector.errors import ExitCode

__all__ = ["mappings_preview", "status"]


def _cell(value: Any) -> str:
    return "-" if value is None else str(value)


def _when(iso: str | None) -> str:
    if not iso:
        return "-"
    return f"{datetime.fromisoformat(iso):%Y-%m-%d %H:%M:%S}"


def _ago(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    sign, seconds = ("-" if seconds < 0 else ""), abs(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{sign}{seconds / size:.1f} {unit}"
    return f"{sign}{seconds:.0f} s"


@app.command("status")
def status(
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
) -> None:
    """Leader and standbys, each stage's last and next run, bookmarks and their lag, dead
    letters, API usage against the caps, open SLA breaches, mapping-file health and the
    webhook queue; read from the state store alone."""
    from connector.runtime.status import collect_status
    from connector.store import Store

    loaded = load_checked_config(config, require_secrets=False)
    store = Store(loaded.state.database_url)
    try:
        if store.schema_revision() is None:
            err.print(f"the state database ({store.location}) holds nothing yet: no stage has "
                      "run. Fix: run `handshake db upgrade`, a `handshake sync` command or "
                      "`handshake run`", markup=False, highlight=False)
            raise exit_with(ExitCode.FAILED)
        found = collect_status(loaded, store)
    finally:
        store.close()
    if as_json:
        sys.stdout.write(json.dumps(found) + "\n")
        return
    _print(found)


def _print(found: dict[str, Any]) -> None:
    out.print(f"[bold]Handshake status[/] at {_when(found['generated_at'])} UTC")
    daemons = found["daemons"]
    table = Table(title="Daemons", box=box.SIMPLE_HEAD, title_justify="left")
    for column in ("Instance", "State", "Listen", "Seen", "Last cycle", "Mappings"):
        table.add_column(column, overflow="fold")  # names wrapped, never cut short
    for i in daemons["instances"]:
        cycle = i["last_cycle"] or {}
        mappings = i["mappings"] or {}
        table.add_row(escape(i["instance"]), i["state"] + (" (leads)" if i["leader"] else ""),
                      escape(str(i["listen"] or "-")), _ago(i["seen_seconds_ago"]) + " ago",
                      ("ok" if cycle.get("ok") else f"failed: {cycle.get('error')}")
                      if cycle else "-",
                      "-" if not mappings else "ok" if mappings.get("ok") else "refused edit")
    if daemons["instances"]:
        out.print(table)
    else:
        out.print("Daemons: none recorded (`handshake run` starts one)")
    lease = daemons["leader"]
    if lease is not None:
        out.print(f"  leader lease: {escape(str(lease['holder'] or '-'))}, "
                  f"{'held' if lease['held'] else 'free'} until {_when(lease['expires_at'])}")
    table = Table(title="Stages", box=box.SIMPLE_HEAD, title_justify="left")
    for column in ("Stage", "Last run", "Result", "Took", "Last success", "Next run"):
        table.add_column(column, overflow="fold")
    for stage, row in found["stages"].items():
        run = row["last_run"] or {}
        took = run.get("duration_seconds")
        result = run.get("status", "never ran")
        if run.get("error"):
            result += f": {run['error'][:60]}"
        source = f" ({row['next_run_source']})" if row["next_run_source"] else ""
        table.add_row(stage, _when(run.get("started_at")), escape(result),
                      "-" if took is None else f"{took:.1f} s", _when(row["last_success_at"]),
                      _when(row["next_run"]) + source)
    out.print(table)
    table = Table(title="Bookmarks", box=box.SIMPLE_HEAD, title_justify="left")
    for column in ("Stream", "Position", "Lag"):
        table.add_column(column, overflow="fold")
    bookmarks = found["bookmarks"]
    for stream, row in bookmarks["streams"].items():
        table.add_row(escape(stream), escape(row["value"]), _ago(row["lag_seconds"]))
    for stream, row in bookmarks["groups"].items():
        table.add_row(escape(stream), f"{row['count']} records, newest {_when(row['newest'])}",
                      _ago(row["lag_seconds"]))
    out.print(table)
    letters = found["dead_letters"]
    out.print(f"[bold]Dead letters[/]: {letters['open']} open"
              + "".join(f"\n  {escape(k)}: {n}" for k, n in letters["by_reason"].items())
              + ("\n  who must act: " + ", ".join(f"{k} {n}" for k, n in
                                                  letters["by_actor"].items())
                 if letters["by_actor"] else ""))
    table = Table(title="API usage", box=box.SIMPLE_HEAD, title_justify="left")
    for column in ("System", "Used", "Cap", "%", "Window"):
        table.add_column(column)
    for system, usage in found["api_usage"].items():
        table.add_row(system, f"{usage['used']:,}",
                      "unknown" if usage["cap"] is None else f"{usage['cap']:,}",
                      "-" if usage["used_pct"] is None else f"{usage['used_pct']:g}",
                      escape(usage["window"]))
    out.print(table)
    sla = found["sla"]
    out.print(f"[bold]SLA[/]: {sla['open_breaches'] if sla['open_breaches'] is not None else '?'}"
              f" open breach(es)" + (f" ({escape(sla['error'])})" if sla.get("error") else ""))
    mappings = found["mappings"]
    out.print("[bold]Mapping files[/] (as they are now):")
    for row in mappings["files"].values():
        mark = "[green]✓[/]" if row["ok"] else "[red]✗[/]"
        out.print(f"{mark} {escape(row['path'])}" + ("" if row["ok"] else
                                                     f": {len(row['errors'])} problem(s)"))
        for p in row["errors"]:
            where = f"{p['file']}:{p['line']}" if p.get("line") else p["file"]
            out.print(f"    {escape(where)} [bold]{escape(p['key'])}[/]: {escape(p['problem'])}"
                      f" — fix: {escape(p['fix'])}", highlight=False)
    running = mappings["daemon"]
    if isinstance(running, dict) and not running.get("ok"):
        out.print(f"[red]the daemon refused the last mapping edit[/] (checked "
                  f"{_when(running.get('checked_at'))}); it runs the last good version:")
        for line in running.get("errors") or []:
            out.print(f"    {escape(str(line))}", highlight=False)
    depth = found["webhooks"]["queue_depth"]
    out.print(f"[bold]Webhook queue[/]: {'-' if depth is None else depth}")
    for stream, flag in (found.get("limited_streams") or {}).items():
        out.print(f"[yellow]stream {escape(stream)} is limited[/] since {_when(flag['since'])}: "
                  f"{escape(str(flag['reason']))}", highlight=False)


@mappings_app.command("preview")
def mappings_preview(
    config: ConfigOption = None,
    sample: Annotated[int, typer.Option("--sample", min=1, max=200, metavar="N",
                                        help="How many MQLs from the store (1-200).")] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
) -> None:
    """Field by field, what the mapping files would write for sample MQLs next to what
    Salesforce holds now (reads Salesforce; writes nothing)."""
    from connector.runtime.preview import preview_mappings

    loaded = load_checked_config(config)
    found = preview_mappings(loaded, sample=sample)
    if as_json:
        sys.stdout.write(json.dumps(found) + "\n")
        return
    if not found["records"]:
        out.print("No MQL in the state store yet: run `handshake sync pull` and "
                  "`handshake sync score` first.")
        return
    for record in found["records"]:
        table = Table(title=f"contact {record['hubspot_id']}: {record['action']} "
                            f"{record['sf_object']} {record['sf_id'] or ''} — {record['why']}",
                      box=box.SIMPLE_HEAD, title_justify="left")
        for column in ("Field", "Would write", "Salesforce now", ""):
            table.add_column(column)
        for f in record["fields"]:
            table.add_row(escape(f["field"]), escape(_cell(f["would_write"])),
                          escape(_cell(f["salesforce"])), "=" if f["same"] else "≠")
        out.print(table)
        for fixed in record["fixed"]:
            out.print(f"  transform: {escape(fixed)}", highlight=False)
