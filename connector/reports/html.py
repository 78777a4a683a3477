"""The report as one self-contained HTML page: inline CSS and SVG charts, no script and nothing
fetched, readable on a laptop and a phone. Each key number carries `data-figure="path"` (the
path of the same number in `report --json`) so that a reader or a test can find it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

__all__ = ["render_html"]

_CSS = """
:root { --ink:#1d2733; --muted:#5b6b7c; --line:#d9e0e7; --bar:#2f6fde; --warn:#c62828;
        --warnbg:#fdecea; --bg:#ffffff; }
* { box-sizing: border-box; }
body { margin:0; font:15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color:var(--ink); background:var(--bg); }
main { max-width: 960px; margin: 0 auto; padding: 16px; }
h1 { font-size: 1.5rem; margin: 0 0 4px; } h2 { font-size: 1.15rem; margin: 28px 0 8px; }
p.meta { color: var(--muted); margin: 0 0 16px; }
.cards { display:grid; grid-template-columns: repeat(auto-fit, minmax(130px, 1fr)); gap: 8px; }
.card { border:1px solid var(--line); border-radius:8px; padding:10px; }
.card b { display:block; font-size:1.4rem; } .card span { color:var(--muted); font-size:.85rem; }
.scroll { overflow-x:auto; }
table { border-collapse: collapse; width: 100%; font-size: .9rem; }
th, td { padding: 6px 8px; border-bottom: 1px solid var(--line); text-align: right;
         white-space: nowrap; }
th:first-child, td:first-child { text-align: left; }
tr.breach td { background: var(--warnbg); } tr.breach td.b { color: var(--warn); font-weight: 600; }
svg.chart { width: 100%; max-width: 560px; height: auto; display: block; margin: 8px 0; }
svg text { font: 13px system-ui, sans-serif; fill: var(--ink); }
"""


def _fmt(value: Any, suffix: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.2f}".rstrip("0").rstrip(".") + suffix
    if isinstance(value, int):
        return f"{value:,}{suffix}"
    return f"{value}{suffix}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _num(path: str, value: Any, text: str | None = None) -> str:
    return f'<span data-figure="{escape(path)}">{escape(text if text is not None else _fmt(value))}</span>'


def _bars(rows: Sequence[tuple[str, int, str]], title: str) -> str:
    """A horizontal bar chart, each bar under its label (readable on a phone's width): (label,
    value, data-figure path) per bar."""
    if not rows:
        return "<p>Nothing to show yet.</p>"
    top = max(v for _, v, _ in rows) or 1
    width, bar_w, row_h = 400, 330, 40
    height = row_h * len(rows) + 4
    parts = [(f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
              f'aria-label="{escape(title)}"><title>{escape(title)}</title>')]
    for i, (label, value, path) in enumerate(rows):
        y = 2 + i * row_h
        w = max(2, round(bar_w * value / top)) if value else 0
        parts.append(f'<text x="0" y="{y + 13}">{escape(label[:60])}</text>')
        parts.append(f'<rect x="0" y="{y + 18}" width="{w}" height="16" rx="3" '
                     f'fill="#2f6fde"/>')
        parts.append(f'<text x="{w + 6}" y="{y + 31}" data-figure="{escape(path)}">'
                     f'{value:,}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _funnel_chart(funnel: Mapping[str, Any]) -> str:
    counts = funnel["counts"]
    labels = {"leads": "Leads", "mqls": "MQLs", "sqls": "Sales-accepted (SQL)",
              "opportunities": "Opportunities", "won": "Won"}
    return _bars([(labels[k], int(counts[k]), f"funnel.overall.counts.{k}") for k in labels],
                 "The funnel: leads to won deals")


def _table(head: Sequence[str], rows: Sequence[tuple[str, Sequence[str]]]) -> str:
    out = ['<div class="scroll"><table><thead><tr>']
    out += [f"<th>{escape(h)}</th>" for h in head]
    out.append("</tr></thead><tbody>")
    for css, cells in rows:
        out.append(f'<tr class="{css}">' if css else "<tr>")
        marked = ' class="b"'
        out += [f"<td{marked if css and i == len(cells) - 2 else ''}>{c}</td>"
                for i, c in enumerate(cells)]
        out.append("</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


def render_html(report: Mapping[str, Any], *, title: str = "Handshake report") -> str:
    """The page for `report` (the object `build_report` returns)."""
    overall = report["funnel"]["overall"]
    counts, rates = overall["counts"], overall["rates"]
    window = report["window"]
    cards = [
        ("Leads", _num("funnel.overall.counts.leads", counts["leads"])),
        ("MQLs", _num("funnel.overall.counts.mqls", counts["mqls"])),
        ("Sales-accepted", _num("funnel.overall.counts.sqls", counts["sqls"])),
        ("Opportunities", _num("funnel.overall.counts.opportunities", counts["opportunities"])),
        ("Won", _num("funnel.overall.counts.won", counts["won"])),
        ("Lead work rate", _num("work_rate.rate", report["work_rate"]["rate"],
                                _pct(report["work_rate"]["rate"]))),
        ("Sales cycle", _num("funnel.overall.sales_cycle_days", overall["sales_cycle_days"],
                             _fmt(overall["sales_cycle_days"], " d"))),
        ("List decay / year", _num("list_decay.lost_per_year_pct",
                                   report["list_decay"]["lost_per_year_pct"],
                                   _fmt(report["list_decay"]["lost_per_year_pct"], "%"))),
    ]
    body = [f"<h1>{escape(title)}</h1>",
            (f'<p class="meta">As of {escape(report["as_of"][:16].replace("T", " "))} UTC; '
            f'leads created {escape(window["since"][:10] if window["since"] else "from the start")} to '
            f'{escape(window["until"][:10])}</p>'),
            '<div class="cards">'
            + "".join(f"<div class=\"card\"><b>{v}</b><span>{escape(k)}</span></div>"
                      for k, v in cards) + "</div>",
            "<h2>Funnel</h2>", _funnel_chart(overall)]
    rate_rows = [(name.replace("_", " "), [
        _num(f"funnel.overall.rates.{name}", rates[name], _pct(rates[name])),
        _num(f"funnel.overall.median_days.{name}", overall["median_days"][name])])
        for name in rates]
    body.append(_table(["Step", "Conversion", "Median days"],
                       [("", [escape(n), *cells]) for n, cells in rate_rows]))
    for key, heading in (("by_source", "By source"), ("by_segment", "By segment (fit grade)")):
        rows = []
        for name, f in report["funnel"][key].items():
            c = f["counts"]
            rows.append(("", [escape(name), *(_fmt(c[k]) for k in
                                              ("leads", "mqls", "sqls", "opportunities", "won")),
                              _pct(f["rates"]["lead_to_mql"])]))
        body += [f"<h2>{heading}</h2>",
                 _table(["", "Leads", "MQLs", "SQLs", "Opps", "Won", "Lead to MQL"], rows)]
    sla_rows = []
    for rep, r in report["sla_by_rep"].items():
        breaches = int(r["open_breaches"]) + int(r["past_breaches"])
        sla_rows.append(("breach" if breaches else "", [
            escape(rep), _fmt(r["leads"]), _fmt(r["median_first_touch_hours"], " h"),
            _fmt(r["first_touch_within_pct"], "%"), _fmt(r["worked_within_pct"], "%"),
            _num(f"sla_by_rep.{rep}.breaches", breaches,
                 f"{r['open_breaches']} open / {r['past_breaches']} past"),
            _fmt(r["reassignments"])]))
    body += ["<h2>SLA by rep</h2>",
             _table(["Rep", "Leads", "First touch", "Touched in time", "Worked in time",
                     "Breaches", "Moved"], sla_rows) if sla_rows
             else "<p>No hand-off has an SLA yet.</p>"]
    dead = report["dead"]
    body += ["<h2>Why leads died</h2>",
             _bars([(k, int(v), f"dead.by_reason.{k}") for k, v in dead["by_reason"].items()],
                   "Dead and recycled leads by reason"),
             "<h2>Did they come too late? First touch against outcome</h2>",
             _table(["Outcome", "Hand-offs", "Touched", "Median first touch"],
                    [("", [escape(k), _fmt(v["handoffs"]), _fmt(v["touched"]),
                           _fmt(v["median_first_touch_hours"], " h")])
                     for k, v in report["outcomes"].items()]),
             "<h2>Dead leads by score band at hand-off</h2>",
             _table(["Band", "Leads"], [("", [escape(k), _fmt(v)])
                                        for k, v in dead["by_score_band"].items()]),
             "<h2>Returned leads</h2>",
             f"<p>{_num('returned.handoffs', report['returned']['handoffs'])} hand-offs came "
             "back after a recycle: "
             + (", ".join(f"{escape(k)} {v}" for k, v in report["returned"]["became"].items())
                or "none yet") + ".</p>",
             "<h2>Nurture tracks</h2>",
             _table(["Track", "Leads", "MQLs", "MQL rate", "Opps", "Won"],
                    [("", [escape(k), _fmt(v["leads"]), _fmt(v["mqls"]), _pct(v["mql_rate"]),
                           _fmt(v["opportunities"]), _fmt(v["won"])])
                     for k, v in report["nurture"].items()]),
             "<h2>List decay</h2>",
             (f"<p>{_num('list_decay.lost', report['list_decay']['lost'])} of "
             f"{_fmt(report['list_decay']['contacts'])} contacts lost to bounces, unsubscribes "
             f"and spam reports: {_fmt(report['list_decay']['lost_per_year_pct'], '%')} a year "
             "(the seeds expect about 25%).</p>")]
    return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{escape(title)}</title><style>{_CSS}</style></head><body><main>"
            + "\n".join(body) + "</main></body></html>\n")
