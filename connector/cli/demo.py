"""`handshake demo`: a full sync cycle against the bundled sandbox, then a summary."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from connector.cli._app import app, err, out
from connector.logs import bind_run

__all__ = ["demo_command"]


@app.command("demo")
def demo_command(
    contacts: Annotated[int, typer.Option("--contacts", metavar="N", min=10,
                                          help="Contacts to generate.")] = 2000,
    seed: Annotated[int, typer.Option("--seed", metavar="N",
                                      help="Seed of the synthetic data.")] = 42,
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
        out.print(f"  {label:<34} {value}", markup=False, highlight=False)
    for problem in checks:
        out.print(f"  - {problem}", markup=False, highlight=False)
