"""`handshake report`: the funnel, SLA by rep, why leads died, returns, nurture tracks and list
decay, as tables, one JSON object, or a self-contained HTML page."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
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

__all__ = ["report"]


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _cell(value: Any, suffix: str = "") -> str:
    return "-" if value is None else f"{value}{suffix}"


def build(config: Any, *, since: datetime | None = None,
          until: datetime | None = None) -> dict[str, Any]:
    """The report of `config`'s store, as of its newest pull-back (else now)."""
    from connector.reports.report import config_report
    from connector.store import Store

    store = Store(config.state.database_url)
    try:
        return config_report(config, store, since=since, until=until)
    finally:
        store.close()


@app.command("report")
def report(
    config: ConfigOption = None,
    since: Annotated[str | None, typer.Option(
        "--since", metavar="DATE", help="Only leads created (hand-offs begun, leads lost) "
                                        "on or after this date.")] = None,
    until: Annotated[str | None, typer.Option(
        "--until", metavar="DATE", help="... and before this date.")] = None,
    html: Annotated[Path | None, typer.Option(
        "--html", metavar="PATH", help="Also write the report as one HTML page.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
) -> None:
    """The funnel (counts, conversion, median days per stage, sales cycle; by source and by
    segment), lead work rate, SLA by rep, dead leads by reason, source and score band, first
    touch against outcome, returned leads, nurture tracks and list decay."""
    from connector.reports.html import render_html

    loaded = load_checked_config(config, require_secrets=False)
    start = parse_date(since, "--since") if since else None
    end = parse_date(until, "--until") if until else None
    if start and end and end <= start:
        err.print("--until: give a date after --since", markup=False, highlight=False)
        raise exit_with(ExitCode.CONFIG)
    data = build(loaded, since=start, until=end)
    if html is not None:
        try:
            html.parent.mkdir(parents=True, exist_ok=True)
            html.write_text(render_html(data), encoding="utf-8")
        except OSError as exc:
            err.print(f"--html {html}: cannot write it ({exc.strerror}); give a writable path",
                      markup=False, highlight=False)
            raise exit_with(ExitCode.CONFIG) from None
    if as_json:
        sys.stdout.write(json.dumps(data) + "\n")
        return
    _print_tables(data)
    if html is not None:
        out.print(f"HTML report: {html}", markup=False, highlight=False, soft_wrap=True)


def _print_tables(data: dict[str, Any]) -> None:
    overall = data["funnel"]["overall"]
    funnel = Table(title=f"Funnel, as of {data['as_of'][:16].replace('T', ' ')} UTC",
                   box=box.SIMPLE_HEAD,
                   caption=f"sales cycle (MQL to won): {_cell(overall['sales_cycle_days'], ' d')}"
                           f" median; lead work rate {_pct(data['work_rate']['rate'])} of "
                           f"{data['work_rate']['handoffs']} hand-offs")
    for column in ("Stage", "Count", "Next step", "Conversion", "Median days"):
        funnel.add_column(column, justify="left" if column in ("Stage", "Next step")
                          else "right")
    stages = list(overall["counts"].items())
    rates = list(overall["rates"].items())
    for i, (stage, count) in enumerate(stages):
        rate = rates[i] if i < len(rates) else None
        funnel.add_row(stage, str(count), rate[0].replace("_", " ") if rate else "",
                       _pct(rate[1]) if rate else "",
                       _cell(overall["median_days"][rate[0]]) if rate else "")
    out.print(funnel)
    for key, title in (("by_source", "By source"), ("by_segment", "By segment (fit grade)")):
        table = Table(title=title, box=box.SIMPLE_HEAD)
        for column in ("", "Leads", "MQLs", "SQLs", "Opps", "Won", "Lead to MQL", "Cycle d"):
            table.add_column(column, justify="left" if not column else "right")
        for name, f in data["funnel"][key].items():
            c = f["counts"]
            table.add_row(name, *(str(c[k]) for k in ("leads", "mqls", "sqls", "opportunities",
                                                       "won")),
                          _pct(f["rates"]["lead_to_mql"]), _cell(f["sales_cycle_days"]))
        out.print(table)
    sla = Table(title="SLA by rep", box=box.SIMPLE_HEAD)
    for column in ("Rep", "Leads", "First touch", "Touched in time", "Worked in time",
                   "Breaches", "Moved"):
        sla.add_column(column, justify="left" if column == "Rep" else "right", no_wrap=True)
    for rep, r in data["sla_by_rep"].items():
        breached = r["open_breaches"] or r["past_breaches"]
        sla.add_row(rep, str(r["leads"]), _cell(r["median_first_touch_hours"], " h"),
                    _cell(r["first_touch_within_pct"], "%"), _cell(r["worked_within_pct"], "%"),
                    f"{r['open_breaches']} / {r['past_breaches']}", str(r["reassignments"]),
                    style="red" if breached else None)
    out.print(sla)
    outcomes = Table(title="First touch against outcome", box=box.SIMPLE_HEAD)
    for column in ("Outcome", "Hand-offs", "Touched", "Median first touch"):
        outcomes.add_column(column, justify="left" if column == "Outcome" else "right")
    for name, o in data["outcomes"].items():
        outcomes.add_row(name, str(o["handoffs"]), str(o["touched"]),
                         _cell(o["median_first_touch_hours"], " h"))
    out.print(outcomes)
    dead = data["dead"]
    for key, title in (("by_reason", "Dead leads by reason"), ("by_source", "... by source"),
                       ("by_score_band", "... by score band at hand-off")):
        table = Table(title=title, box=box.SIMPLE_HEAD)
        table.add_column("")
        table.add_column("Leads", justify="right")
        for name, n in dead[key].items():
            table.add_row(name, str(n))
        out.print(table)
    returned = data["returned"]
    out.print(f"Returned after a recycle: {returned['handoffs']} hand-offs"
              + "".join(f", {k} {v}" for k, v in returned["became"].items()),
              markup=False, highlight=False)
    nurture = Table(title="Nurture tracks", box=box.SIMPLE_HEAD)
    for column in ("Track", "Leads", "MQLs", "MQL rate", "Opps", "Won"):
        nurture.add_column(column, justify="left" if column == "Track" else "right")
    for name, t in data["nurture"].items():
        nurture.add_row(name, str(t["leads"]), str(t["mqls"]), _pct(t["mql_rate"]),
                        str(t["opportunities"]), str(t["won"]))
    out.print(nurture)
    decay = data["list_decay"]
    out.print(f"List decay: {decay['lost']} of {decay['contacts']} contacts lost "
              f"({', '.join(f'{k} {v}' for k, v in decay['by_kind'].items()) or 'none'}): "
              f"{_cell(decay['lost_per_year_pct'], '%')} a year", markup=False, highlight=False)
