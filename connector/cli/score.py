"""`handshake score explain`, `handshake scoring calibrate` and `handshake mappings check`: the
scoring explained, calibrated from the sales outcomes, and the mapping files validated (every
problem listed by file, line and key; exit 2)."""

from __future__ import annotations

import difflib
import json
import os
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from connector.cli._app import (
    ConfigOption,
    app,
    err,
    exit_with,
    load_checked_config,
    out,
    parse_date,
    report_config_error,
)
from connector.errors import ConfigError, ConfigProblem, ExitCode

if TYPE_CHECKING:
    from connector.scoring.calibrate import Calibration

__all__ = ["mappings_check", "score_explain", "scoring_calibrate"]

score_app = typer.Typer(help="How a contact is scored, explained.", no_args_is_help=True)
scoring_app = typer.Typer(help="The scoring model, tuned from what sales did with the leads.",
                          no_args_is_help=True)
mappings_app = typer.Typer(help="The admin-edited mapping files.", no_args_is_help=True)
app.add_typer(score_app, name="score")
app.add_typer(scoring_app, name="scoring")
app.add_typer(mappings_app, name="mappings")


@score_app.command("explain")
def score_explain(
    email: Annotated[str, typer.Argument(metavar="EMAIL", help="The contact's email address.")],
    config: ConfigOption = None,
    at: Annotated[str | None, typer.Option("--at", metavar="DATE", help="Score as of this date "
                                           "or ISO-8601 time (default: now).")] = None,
) -> None:
    """Show how a contact's score is made: fit rules, interest by rule and the actions behind
    them, the MQL verdict and the lifecycle history."""
    from connector.scoring import Engine, load_model
    from connector.scoring.explain import render_explanation
    from connector.store import Store

    loaded = load_checked_config(config, require_secrets=False)
    path = loaded.mapping_path("scoring")
    try:
        model = load_model(path)
    except ConfigError as exc:
        report_config_error(exc)
        raise exit_with(ExitCode.CONFIG) from None
    now = parse_date(at, "--at") if at else datetime.now(UTC)
    store = Store(loaded.state.database_url)
    try:
        contact = store.get_contact_by_email(email)
        if contact is None:
            err.print(f"no contact with email {escape(email)} in the state store "
                          f"(run `handshake sync pull` first?)")
            raise exit_with(ExitCode.FAILED)
        activities = store.activities_for(contact.hubspot_id)
        transitions = store.transitions_for(contact.hubspot_id)
    finally:
        store.close()
    result = Engine(model).score(contact, activities, now)
    if at:  # as of a past time: what happened later is not part of the picture
        transitions = [t for t in transitions if t.at <= now]
    text = render_explanation(contact, result, transitions, model_file=str(path),
                              as_of=bool(at),
                              not_yet=sum(a.occurred_at > now for a in activities))
    for line in text.splitlines():
        out.print(escape(line), highlight=False, soft_wrap=True)


@scoring_app.command("calibrate")
def scoring_calibrate(
    config: ConfigOption = None,
    target_acceptance: Annotated[float, typer.Option(
        "--target-acceptance", metavar="P",
        help="The sales-acceptance rate the MQL threshold should meet: the share of handed-off "
             "leads with a verdict that sales converted (0 < P < 1).")] = 0.5,
    write: Annotated[bool, typer.Option(
        "--write", help="Set the recommended thresholds in scoring.toml (comments and layout "
                        "kept), after showing the diff.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
) -> None:
    """From the outcomes pulled back: each scoring rule's lift on conversion and on won, the
    scores of won, lost and recycled leads, and per fit grade the MQL threshold that meets the
    target acceptance, with its precision/recall table."""
    from connector.defaults import DEFAULTS_DIR
    from connector.mapping import sla as sla_file
    from connector.scoring import load_model, parse_model
    from connector.scoring.calibrate import MIN_VERDICTS_TO_WRITE, calibrate, edit_thresholds
    from connector.store import Store

    if not 0 < target_acceptance < 1:
        err.print(f"--target-acceptance {target_acceptance:g} is not a rate: give a number "
                  f"between 0 and 1, e.g. 0.5", markup=False, highlight=False)
        raise exit_with(ExitCode.CONFIG)
    loaded = load_checked_config(config, require_secrets=False)
    path = loaded.mapping_path("scoring")
    try:
        model = load_model(path)
        closed = sla_file.load_sla(loaded.mapping_path("sla")).spec.recycling.closed_statuses
    except ConfigError as exc:
        report_config_error(exc)
        raise exit_with(ExitCode.CONFIG) from None
    store = Store(loaded.state.database_url)
    try:
        rows = store.calibration_rows()
    finally:
        store.close()
    rules = [r.name for r in model.fit.rules] + [r.name for r in model.interest.rules]
    result = calibrate(rows, target=target_acceptance, current=model.mql.thresholds,
                       closed_statuses=closed, rules=rules)
    if not result.verdicts:
        err.print(f"nothing to calibrate from: {len(rows)} hand-off(s) in the state store, none "
                  f"with a sales verdict yet (converted, or closed without converting); the "
                  f"pull-back brings them back: `handshake sync pullback`",
                  markup=False, highlight=False)
        raise exit_with(ExitCode.FAILED)
    if not as_json:
        _print_calibration(result)
    if not write:
        if as_json:
            sys.stdout.write(json.dumps({**result.to_json(), "written": False}) + "\n")
        return
    ready = {r.grade: r.threshold for r in result.recommendations if r.enough}
    if not ready:
        counts = ", ".join(f"grade {r.grade} has {r.verdicts}" for r in result.recommendations)
        err.print(f"refusing to write {path}: a grade's threshold is written from at least "
                  f"{MIN_VERDICTS_TO_WRITE} hand-offs with a sales verdict, and {counts}; let "
                  f"the pull-back bring more outcomes back and run it again",
                  markup=False, highlight=False)
        raise exit_with(ExitCode.FAILED)
    if Path(path).resolve().is_relative_to(Path(DEFAULTS_DIR).resolve()):
        err.print(f"refusing to write {path}: it is the scoring model Handshake ships; "
                  f"`handshake init` copies the mapping files beside your config, to edit",
                  markup=False, highlight=False)
        raise exit_with(ExitCode.CONFIG)
    text = Path(path).read_text(encoding="utf-8")
    new_text, changed = edit_thresholds(text, ready)
    diff = "".join(difflib.unified_diff(text.splitlines(keepends=True),
                                        new_text.splitlines(keepends=True),
                                        fromfile=str(path), tofile=str(path)))
    if changed:
        try:  # the new text is validated before it replaces the file
            parse_model(new_text, str(path))
        except ConfigError as exc:
            report_config_error(exc)
            raise exit_with(ExitCode.CONFIG) from None
        _replace(Path(path), new_text)
    if as_json:
        sys.stdout.write(json.dumps({**result.to_json(), "written": bool(changed),
                                     "changed": changed, "diff": diff}) + "\n")
        return
    if not changed:
        out.print(f"{escape(str(path))} already has the recommended thresholds: nothing written")
        return
    out.print(escape(diff), highlight=False, soft_wrap=True)
    out.print(f"[green]✓[/] {escape(str(path))}: [mql] thresholds "
              + ", ".join(f"{g} = {v}" for g, v in changed.items()))


def _replace(path: Path, text: str) -> None:
    """Write `text` over `path` at once (a temporary file beside it, then renamed)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _rate(value: float | None) -> str:
    return "—" if value is None else f"{value:.0%}"


def _times(value: float | None) -> str:
    return "—" if value is None else f"×{value:.2f}"


def _print_calibration(result: Calibration) -> None:
    from rich import box
    from rich.table import Table

    out.print(f"{result.hand_offs} hand-offs, {result.verdicts} with a sales verdict "
              f"({result.accepted} converted); target acceptance {result.target_acceptance:.0%}")
    rules = Table(title="Rules by lift on conversion (among leads with a verdict)",
                  box=box.SIMPLE_HEAD, title_justify="left")
    for name in ("rule", "leads with", "without", "converted with", "without", "lift",
                 "won with", "without", "lift on won"):
        rules.add_column(name, justify="left" if name == "rule" else "right")
    for r in result.rules:
        if not r.leads_with:
            continue
        rules.add_row(escape(r.rule) + ("" if r.ranked else " [dim](too few)[/]"),
                      str(r.leads_with), str(r.leads_without), _rate(r.conversion_with),
                      _rate(r.conversion_without), _times(r.lift), _rate(r.won_with),
                      _rate(r.won_without), _times(r.won_lift))
    out.print(rules)
    dist = Table(title="Score at hand-off, by outcome", box=box.SIMPLE_HEAD,
                 title_justify="left")
    for name in ("outcome", "leads", "min", "p25", "median", "p75", "max", "mean"):
        dist.add_column(name, justify="left" if name == "outcome" else "right")
    for group, d in result.distribution.items():
        dist.add_row(group, str(d["count"]), *(f"{d[k]:.1f}" for k in
                                               ("min", "p25", "median", "p75", "max", "mean")))
    out.print(dist)
    for rec in result.recommendations:
        now = "none" if rec.current is None else f"{rec.current:g}"
        verdict = ("meets the target" if rec.meets_target
                   else "does not meet the target: the highest acceptance there is")
        table = Table(title=f"Grade {rec.grade}: {rec.verdicts} verdicts; threshold now {now}, "
                            f"recommended {rec.threshold} ({verdict})",
                      box=box.SIMPLE_HEAD, title_justify="left")
        for name in ("threshold", "leads", "converted", "acceptance (precision)", "recall"):
            table.add_column(name, justify="right")
        for row in rec.table:
            mark = " ←" if row.threshold == rec.threshold else ""
            table.add_row(f"{row.threshold}{mark}", str(row.leads), str(row.accepted),
                          _rate(row.acceptance), _rate(row.recall))
        out.print(table)


@mappings_app.command("check")
def mappings_check(
    config: ConfigOption = None,
    live: Annotated[bool, typer.Option("--live", help="Also check against HubSpot's properties "
                                       "and Salesforce's describe, users and Lead "
                                       "statuses.")] = False,
) -> None:
    """Validate scoring.toml, fields.toml, routing.toml and sla.toml; exit 2 listing every
    problem by file, line and key."""
    from connector.mapping import fields as fields_file
    from connector.mapping import load_fields, load_routing
    from connector.mapping import routing as routing_file
    from connector.mapping import sla as sla_file
    from connector.scoring.model import load_model, property_problems

    loaded = load_checked_config(config, require_secrets=live)
    paths = {name: loaded.mapping_path(name) for name in ("scoring", "fields", "routing",
                                                           "sla")}
    problems: list[ConfigProblem] = []
    model = None
    try:
        model = load_model(paths["scoring"])
    except ConfigError as exc:
        problems.extend(exc.problems)
    problems.extend(fields_file.problems_of(paths["fields"]))
    problems.extend(routing_file.problems_of(paths["routing"]))
    problems.extend(sla_file.problems_of(paths["sla"]))
    if problems:
        report_config_error(ConfigError(problems))
        raise exit_with(ExitCode.CONFIG)
    assert model is not None
    fields_map, routing = load_fields(paths["fields"]), load_routing(paths["routing"])
    sla = sla_file.load_sla(paths["sla"])
    if live:
        from connector.hubspot import settings as hs
        from connector.hubspot.client import HubSpotClient
        from connector.salesforce import SalesforceClient

        client = HubSpotClient.from_config(loaded)
        try:
            body, _ = client.request("GET", hs.PROPERTIES, describe="list contact properties")
        finally:
            client.close()
        known = {str(p.get("name")) for p in body.get("results") or []}
        problems.extend(property_problems(
            model, Path(paths["scoring"]).read_text(encoding="utf-8"), known,
            str(paths["scoring"])))
        with SalesforceClient.from_config(loaded) as sf:
            problems.extend(fields_map.live_problems(sf.fields(fields_map.sobject), known,
                                                     str(paths["fields"])))
            problems.extend(routing.live_problems(sf.users(), str(paths["routing"])))
            problems.extend(sla.live_problems([(s.label, s.api_name)
                                               for s in sf.lead_statuses()]))
        if problems:
            report_config_error(ConfigError(problems))
            raise exit_with(ExitCode.CONFIG)
    out.print(f"[green]✓[/] {escape(str(paths['scoring']))}: scoring model is valid "
                  f"({len(model.fit.rules)} fit rules, {len(model.interest.rules)} interest "
                  f"rules, {len(model.nurture.tracks)} nurture tracks)")
    out.print(f"[green]✓[/] {escape(str(paths['fields']))}: "
                  f"{len(fields_map.rules)} field mappings are valid")
    out.print(f"[green]✓[/] {escape(str(paths['routing']))}: routing is valid "
                  f"(mode {routing.mode})")
    windows = sla.spec.windows
    out.print(f"[green]✓[/] {escape(str(paths['sla']))}: SLA is valid (first touch "
              f"{windows.first_touch_hours:g} h, worked {windows.worked_hours:g} h"
              f"{', business hours' if windows.business_hours_only else ''})")
