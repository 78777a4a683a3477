"""`handshake sla`: how fast each rep follows up on the leads Handshake hands over."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich import box
from rich.table import Table

from connector.cli._app import (
    ConfigOption,
    app,
    err,
    exit_with,
    load_checked_config,
    out,
    parse_date,
)
from connector.errors import ExitCode

__all__ = ["sla"]


def _cell(value: Any, suffix: str = "") -> str:
    return "-" if value is None else f"{value}{suffix}"


@app.command("sla")
def sla(
    config: ConfigOption = None,
    rep: Annotated[str | None, typer.Option(
        "--rep", metavar="EMAIL", help="Only this rep (their Salesforce email or user id).")] = None,
    since: Annotated[str | None, typer.Option(
        "--since", metavar="DATE", help="Only leads assigned on or after this date.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
) -> None:
    """Per rep: leads, median first touch, % first touched and % worked within the SLA
    windows (mappings/sla.toml), open and past breaches, reassignments; as of the last
    pull-back."""
    from connector.mapping import load_sla
    from connector.pullback.sla_step import as_of, sla_report
    from connector.store import Store

    loaded = load_checked_config(config, require_secrets=rep is not None and "@" in rep)
    start = parse_date(since, "--since") if since else None
    spec = load_sla(loaded.mapping_path("sla")).spec
    store = Store(loaded.state.database_url)
    try:
        now = as_of(store) or datetime.now(UTC)
        report = sla_report(store, spec, now, since=start)
    finally:
        store.close()
    if rep is not None:
        wanted = _rep_id(loaded, rep)
        report = {k: v for k, v in report.items() if k[:15] == wanted[:15]}
    if as_json:
        sys.stdout.write(json.dumps({"as_of": now.isoformat(), "reps": report}) + "\n")
        return
    table = Table(title=f"Lead SLA per rep, as of {now:%Y-%m-%d %H:%M} UTC",
                  box=box.SIMPLE_HEAD,
                  caption="first touch: median hours; in time: % of the rep's leads within "
                          "the sla.toml window; breaches: open / past; moved: reassigned away")
    table.add_column("Rep", no_wrap=True, min_width=18)  # a user id, whole
    for column in ("Leads", "First touch", "Touched in time", "Worked in time", "Breaches",
                   "Moved"):
        table.add_column(column, justify="right", min_width=8)
    for rep_id, row in report.items():
        table.add_row(rep_id, str(row["leads"]), _cell(row["median_first_touch_hours"], " h"),
                      _cell(row["first_touch_within_pct"], "%"),
                      _cell(row["worked_within_pct"], "%"),
                      f"{row['open_breaches']} / {row['past_breaches']}",
                      str(row["reassignments"]))
    out.print(table)
    if not report:
        out.print("No handed-off lead has an SLA yet" + (" for this rep" if rep else "")
                  + ": run `handshake sync pullback` after a push.")


def _rep_id(config: Any, rep: str) -> str:
    """A rep's Salesforce user id: given as is, or found by email among the org's users."""
    if "@" not in rep:
        return rep
    from connector.salesforce import SalesforceClient

    with SalesforceClient.from_config(config) as client:
        users = client.users()
    found = next((str(u["Id"]) for u in users
                  if str(u.get("Email") or "").lower() == rep.lower()
                  or str(u.get("Username") or "").lower() == rep.lower()), None)
    if found is None:
        err.print(f"--rep {rep}: no Salesforce user has this email or username; "
                  "give a user's email, username or id", markup=False, highlight=False)
        raise exit_with(ExitCode.CONFIG)
    return found
