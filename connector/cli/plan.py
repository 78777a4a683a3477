"""`handshake plan`: the shared revenue goal worked backwards into the leads, MQLs,
sales-accepted leads and opportunities needed per month."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich import box
from rich.table import Table

from connector.cli._app import ConfigOption, app, err, exit_with, load_checked_config, out
from connector.errors import ExitCode

__all__ = ["plan"]

_LABELS = {"won": "Won deals", "opportunities": "Opportunities", "sqls": "Sales-accepted (SQL)",
           "mqls": "MQLs", "leads": "Leads"}
_ASSUMPTIONS = {"deal_size": "Average deal size", "win_rate": "Win rate (opportunity -> won)",
                "sql_to_opportunity": "SQL -> opportunity", "mql_to_sql": "MQL -> SQL (accepted)",
                "lead_to_mql": "Lead -> MQL"}


def _rate(value: float | None, option: str) -> float | None:
    if value is not None and not 0 < value <= 1:
        err.print(f"{option}: {value:g} is not a rate; give a share above 0 and at most 1 "
                  "(0.25 for 25%)", markup=False, highlight=False)
        raise exit_with(ExitCode.CONFIG)
    return value


@app.command("plan")
def plan(
    revenue_goal: Annotated[float, typer.Option(
        "--revenue-goal", metavar="AMOUNT", help="The revenue to win over the period.")],
    period: Annotated[str, typer.Option(
        "--period", metavar="month|quarter|year", help="The goal's period.")] = "quarter",
    deal_size: Annotated[float | None, typer.Option(
        "--deal-size", metavar="AMOUNT", help="Instead of the measured average won deal.")] = None,
    win_rate: Annotated[float | None, typer.Option(
        "--win-rate", metavar="P", help="Won of closed opportunities (0..1).")] = None,
    sql_to_opportunity: Annotated[float | None, typer.Option(
        "--sql-to-opportunity", metavar="P",
        help="Opportunities of sales-accepted leads (0..1).")] = None,
    mql_to_sql: Annotated[float | None, typer.Option(
        "--mql-to-sql", metavar="P", help="Sales-accepted of MQLs (0..1).")] = None,
    lead_to_mql: Annotated[float | None, typer.Option(
        "--lead-to-mql", metavar="P", help="MQLs of leads (0..1).")] = None,
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
) -> None:
    """Work a revenue goal back to the won deals, opportunities, sales-accepted leads, MQLs and
    leads needed per month, from the average deal size and conversion rates measured in the
    store (each can be given instead); every assumption is shown with what it rests on."""
    from connector.mapping import load_sla
    from connector.pullback.sla_step import as_of
    from connector.reports import PERIODS, measure_funnel, work_back
    from connector.store import Store

    if period not in PERIODS:
        err.print(f"--period: {period!r} is not a period; use month, quarter or year",
                  markup=False, highlight=False)
        raise exit_with(ExitCode.CONFIG)
    if not revenue_goal > 0:
        err.print("--revenue-goal: give an amount above zero", markup=False, highlight=False)
        raise exit_with(ExitCode.CONFIG)
    if deal_size is not None and not deal_size > 0:
        err.print("--deal-size: give an amount above zero", markup=False, highlight=False)
        raise exit_with(ExitCode.CONFIG)
    given = {"deal_size": deal_size, "win_rate": _rate(win_rate, "--win-rate"),
             "sql_to_opportunity": _rate(sql_to_opportunity, "--sql-to-opportunity"),
             "mql_to_sql": _rate(mql_to_sql, "--mql-to-sql"),
             "lead_to_mql": _rate(lead_to_mql, "--lead-to-mql")}
    loaded = load_checked_config(config, require_secrets=False)
    spec = load_sla(loaded.mapping_path("sla")).spec
    store = Store(loaded.state.database_url)
    try:
        funnel = measure_funnel(store, spec, as_of(store) or datetime.now(UTC))
    finally:
        store.close()
    result = work_back(revenue_goal, period, funnel, given=given)
    if as_json:
        sys.stdout.write(json.dumps(result.as_dict()) + "\n")
        return
    table = Table(title=f"Revenue goal {revenue_goal:,.0f} a {period}, worked back",
                  box=box.SIMPLE_HEAD, caption="each count rounded up from the exact need")
    table.add_column("Needed", no_wrap=True)
    table.add_column("Per month", justify="right")
    table.add_column(f"Per {period}", justify="right")
    for stage, label in _LABELS.items():
        table.add_row(label, f"{result.per_month[stage]:,}", f"{result.per_period[stage]:,}")
    out.print(table)
    basis = Table(title="Assumptions", box=box.SIMPLE_HEAD)
    for column in ("Assumption", "Value", "From"):
        basis.add_column(column)
    for name, a in result.assumptions.items():
        value = f"{a.value:,.2f}" if name == "deal_size" else f"{a.value:.1%}"
        source = (f"measured: {a.basis}" if a.source == "measured" else f"given: {a.basis}")
        basis.add_row(_ASSUMPTIONS[name], value, source)
    out.print(basis)
