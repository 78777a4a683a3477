"""`handshake recycled`: the leads handed back to marketing, with the reason, count and time
(HubSpot ids only: no emails or names in the output)."""

from __future__ import annotations

import json
import sys
from datetime import UTC, date, datetime
from typing import Annotated

import typer

from connector.cli._app import ConfigOption, app, err, exit_with, load_checked_config, out
from connector.errors import ExitCode

__all__ = ["recycled"]


@app.command("recycled")
def recycled(
    config: ConfigOption = None,
    since: Annotated[str | None, typer.Option("--since", metavar="DATE",
                                              help="Only leads recycled on or after this day "
                                                   "(YYYY-MM-DD, UTC).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="A JSON array.")] = False,
) -> None:
    """List the recycled and disqualified leads: HubSpot id, reason, count, when."""
    from connector.pullback.outcomes_step import RECYCLE_KINDS
    from connector.store import Store

    start: datetime | None = None
    if since is not None:
        try:
            start = datetime.combine(date.fromisoformat(since), datetime.min.time(), UTC)
        except ValueError:
            err.print(f"--since {since!r} is not a date: give it as YYYY-MM-DD",
                      markup=False, highlight=False)
            raise exit_with(ExitCode.CONFIG) from None
    loaded = load_checked_config(config, require_secrets=False)
    store = Store(loaded.state.database_url)
    try:
        found = [o for kind in RECYCLE_KINDS for o in store.outcomes(kind=kind)]
    finally:
        store.close()
    rows = []
    for o in sorted(found, key=lambda o: (o.occurred_at, o.id)):
        at = o.occurred_at if o.occurred_at.tzinfo else o.occurred_at.replace(tzinfo=UTC)
        if start is not None and at < start:
            continue
        details = o.details or {}
        rows.append({"hubspot_id": o.hubspot_id, "lead_id": o.sf_id, "action": o.kind,
                     "reason": details.get("reason"), "detail": o.reason,
                     "count": details.get("count"), "recycled_at": at.isoformat()})
    if as_json:
        sys.stdout.write(json.dumps(rows) + "\n")
        return
    for r in rows:
        out.print(f"{r['recycled_at']} contact {r['hubspot_id']} (Lead {r['lead_id']}) "
                  f"{r['action']} #{r['count']}: {r['reason']} — {r['detail']}",
                  markup=False, highlight=False, soft_wrap=True)
    out.print(f"{len(rows)} recycled lead(s)")
