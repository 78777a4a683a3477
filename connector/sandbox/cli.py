"""`handshake sandbox serve`: run both emulated APIs with a seeded dataset until stopped.

Mounted by the main CLI as `handshake sandbox`; runnable alone as
`python -c "from connector.sandbox.cli import app; app()" serve --json`.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

__all__ = ["app", "serve"]

# Mirrors the HubSpot sandbox's tier table; checked against it when the sandbox starts.
TIERS = ("free", "starter", "professional", "enterprise", "capacity_pack")

app = typer.Typer(
    help="Run the local HubSpot and Salesforce sandbox (emulated APIs, seeded synthetic data).",
    no_args_is_help=True,
)


@app.callback()
def _group() -> None:
    """Run the local HubSpot and Salesforce sandbox (emulated APIs, seeded synthetic data)."""


def _check_tier(value: str) -> str:
    if value not in TIERS:
        raise typer.BadParameter(f"unknown HubSpot tier {value!r}; one of {', '.join(TIERS)}")
    return value


def _check_url(value: str | None) -> str | None:
    if value is not None and not value.startswith(("http://", "https://")):
        raise typer.BadParameter(f"{value!r} is not an http(s) URL, e.g. "
                                 "http://127.0.0.1:8787/webhooks/hubspot")
    return value


@app.command()
def serve(
    contacts: Annotated[int, typer.Option(metavar="N", min=1,
                                          help="HubSpot contacts to generate.")] = 1000,
    seed: Annotated[int, typer.Option(metavar="N", help="Seed of the synthetic dataset.")] = 42,
    hubspot_port: Annotated[
        int, typer.Option(metavar="PORT", min=0, max=65535,
                          help="HubSpot HTTP port (0 = any free port).")
    ] = 0,
    salesforce_port: Annotated[
        int, typer.Option(metavar="PORT", min=0, max=65535,
                          help="Salesforce HTTPS port (0 = any free port).")
    ] = 0,
    tier: Annotated[
        str,
        typer.Option(metavar="TIER", callback=_check_tier,
                     help=f"HubSpot rate-limit tier: {', '.join(TIERS)}."),
    ] = "professional",
    webhook_url: Annotated[
        str | None,
        typer.Option(metavar="URL", callback=_check_url,
                     help="POST signed HubSpot v3 webhooks of contact changes to this URL "
                          "(e.g. http://127.0.0.1:8787/webhooks/hubspot); the app secret that "
                          "signs them is printed with the credentials."),
    ] = None,
    start: Annotated[
        datetime | None,
        typer.Option(metavar="ISO-TIME", formats=["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S"],
                     help="The dataset's \"now\" and the sandbox clock's start (default: the "
                          "current minute); the same seed, size and start give the same data."),
    ] = None,
    advance_hours: Annotated[
        float, typer.Option("--advance-hours", metavar="H", min=0,
                            help="Move the sandbox clock this far past the data once it is "
                                 "loaded, so the data is history when a sync starts.")
    ] = 0.0,
    unthrottled: Annotated[
        bool, typer.Option("--unthrottled",
                           help="Lift the HubSpot rate limits (window, daily, search) for "
                                "benchmarks: calls are still counted in /__sandbox__/stats.")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the URLs and credentials as one JSON object.")
    ] = False,
) -> None:
    """Start both emulated APIs, print their URLs and credentials, serve until Ctrl-C/SIGTERM."""
    from connector.sandbox.runtime import Sandbox  # the servers load only when serving

    err = Console(stderr=True)
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    # Ctrl-C and SIGTERM only set the event, so a signal during start-up still stops cleanly.
    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    sandbox = Sandbox(contacts, seed, hubspot_port=hubspot_port,
                      salesforce_port=salesforce_port, tier=tier, webhook_url=webhook_url,
                      start=start if start is None or start.tzinfo else start.replace(tzinfo=UTC))
    try:
        try:
            sandbox.start()
        except (RuntimeError, OSError) as exc:
            err.print(f"[red]The sandbox did not start: {exc}. Is the port taken? Pick another "
                      "with --hubspot-port / --salesforce-port, or 0 for any free port.[/red]")
            raise typer.Exit(1) from exc
        with sandbox:
            _tune(sandbox, advance_hours=advance_hours, unthrottled=unthrottled)
            info = sandbox.info()
            if as_json:
                sys.stdout.write(json.dumps(info, sort_keys=True) + "\n")
                sys.stdout.flush()
            else:
                _print_table(Console(), info, sandbox)
            if webhook_url:
                err.print(f"Webhooks of contact changes go to {webhook_url} (signed v3).")
            err.print("Sandbox running; Ctrl-C or SIGTERM stops it.")
            while not stop.wait(0.5):
                pass
            err.print("Stopping the sandbox.")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _tune(sandbox: object, *, advance_hours: float, unthrottled: bool) -> None:
    """Apply --unthrottled and --advance-hours to a started sandbox (before its URLs are
    printed, so no client sees it otherwise)."""
    from connector.sandbox.hubspot.settings import RateLimits
    from connector.sandbox.runtime import Sandbox

    assert isinstance(sandbox, Sandbox) and sandbox.hubspot is not None
    if unthrottled:
        sandbox.hubspot.limiter.configure(RateLimits(window_max=10**9, daily=10**9,
                                                     search_per_second=10**6))
    if advance_hours:
        sandbox.clock.advance(timedelta(hours=advance_hours))


def _print_table(console: Console, info: dict[str, dict[str, str]], sandbox: object) -> None:
    table = Table(title="Handshake sandbox", show_lines=False)
    table.add_column("API")
    table.add_column("Setting")
    table.add_column("Value", overflow="fold")
    for api, settings in info.items():
        for key, value in settings.items():
            table.add_row(api, key, value)
    console.print(table)
    dataset = getattr(sandbox, "dataset", None)
    if dataset is not None:
        truth = dataset.ground_truth
        console.print(
            f"{len(truth.contact_ids)} live contacts, {len(truth.sales_ready)} sales-ready, "
            f"{len(dataset.sf_users)} Salesforce users, seed {dataset.seed}, "
            f"now {dataset.generated_at.isoformat()}"
        )
