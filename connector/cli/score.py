"""`handshake score explain` and `handshake mappings check`: the scoring explained, the mapping
files validated (every problem listed by file, line and key; exit 2)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

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

__all__ = ["mappings_check", "score_explain"]

score_app = typer.Typer(help="How a contact is scored, explained.", no_args_is_help=True)
mappings_app = typer.Typer(help="The admin-edited mapping files.", no_args_is_help=True)
app.add_typer(score_app, name="score")
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
