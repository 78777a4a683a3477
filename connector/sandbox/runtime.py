"""One object that runs the whole sandbox: a seeded dataset loaded into the emulated HubSpot
portal (plain HTTP) and Salesforce org (HTTPS with a throw-away CA), on one sandbox clock.

    with Sandbox(contacts=1000, seed=42) as sb:
        sb.info()            # base URLs and credentials for the connector's config
        sb.simulator().run(48)   # let the sales team work the Leads for two days

With `webhook_url`, the HubSpot portal POSTs signed v3 webhooks of its contact changes there
(`sb.webhooks`: the sender and its delivery stats; `start_webhooks(url)` starts it later).
"""

from __future__ import annotations

import socket
import tempfile
from collections.abc import Collection
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

from connector.sandbox.base import FaultPlan, SandboxClock, ServedApp, TLSFiles, make_tls
from connector.sandbox.dataset import SandboxDataset
from connector.sandbox.generator import generate
from connector.sandbox.hubspot import HubSpotSandbox
from connector.sandbox.hubspot.state import APP_ID
from connector.sandbox.hubspot.webhooks import WebhookSender
from connector.sandbox.salesforce import SalesforceSandbox
from connector.sandbox.simulator import SalesTeamSimulator

__all__ = [
    "HUBSPOT_ACCESS_TOKEN",
    "HUBSPOT_APP_SECRET",
    "SALESFORCE_CONSUMER_KEY",
    "SALESFORCE_CONSUMER_SECRET",
    "SALESFORCE_PASSWORD",
    "SALESFORCE_SECURITY_TOKEN",
    "SALESFORCE_USERNAME",
    "Sandbox",
]

# The sandbox's credentials: fixed, public, useless anywhere else.
HUBSPOT_ACCESS_TOKEN = "pat-sandbox-0000"
HUBSPOT_APP_SECRET = "sandbox-app-secret-0000"  # the app's client secret: signs its webhooks
SALESFORCE_USERNAME = "integration@handshake.sandbox"
SALESFORCE_PASSWORD = "sandbox-pass"
SALESFORCE_SECURITY_TOKEN = "sandboxtoken"
SALESFORCE_CONSUMER_KEY = "handshake-sandbox-key"
SALESFORCE_CONSUMER_SECRET = "handshake-sandbox-secret"
TLS_SUBDIR = "tls"


class Sandbox:
    """Both emulated APIs, loaded with `generate(seed, contacts, now=start)` and served on
    loopback. `start` is the sandbox clock's start and the dataset's "now" (default: the current
    minute, so a connector on the real clock sees fresh engagement; pass it for reproducible
    runs). `workdir` holds the TLS files (a temporary directory if not given). Use as a
    context manager, or call `start()` and `stop()`."""

    def __init__(
        self,
        contacts: int = 1000,
        seed: int = 42,
        *,
        hubspot_port: int = 0,
        salesforce_port: int = 0,
        tier: str = "professional",
        daily_allocation: int = 100_000,
        hubspot_faults: FaultPlan | None = None,
        salesforce_faults: FaultPlan | None = None,
        start: datetime | None = None,
        workdir: str | Path | None = None,
        frozen_clock: bool = False,
        webhook_url: str | None = None,
        webhook_properties: Collection[str] | None = None,
        webhook_batch_delay: float = 0.2,
        webhook_retry_delays: tuple[float, ...] = (0.5, 1.0, 2.0),
    ) -> None:
        self.contacts = contacts
        self.seed = seed
        self.hubspot_port = hubspot_port
        self.salesforce_port = salesforce_port
        self.tier = tier
        self.daily_allocation = daily_allocation
        self.hubspot_faults = hubspot_faults
        self.salesforce_faults = salesforce_faults
        minute = datetime.now(UTC).replace(second=0, microsecond=0)
        self.start_at = (start or minute).astimezone(UTC)
        self.frozen_clock = frozen_clock
        self._workdir_arg = Path(workdir) if workdir is not None else None
        self._tempdir: tempfile.TemporaryDirectory[str] | None = None
        self._servers: list[ServedApp] = []
        self.dataset: SandboxDataset | None = None
        self.clock = SandboxClock(self.start_at, frozen=frozen_clock)
        self.hubspot: HubSpotSandbox | None = None
        self.salesforce: SalesforceSandbox | None = None
        self.tls: TLSFiles | None = None
        self.hubspot_url = ""
        self.salesforce_url = ""
        self.webhook_url = webhook_url
        self.webhook_properties = webhook_properties
        self.webhook_batch_delay = webhook_batch_delay
        self.webhook_retry_delays = webhook_retry_delays
        self.webhooks: WebhookSender | None = None

    def start(self) -> Self:
        """Generate the dataset, load both servers and serve them; returns self."""
        if self._servers:
            raise RuntimeError("this sandbox is already running")
        for name, port in (("HubSpot", self.hubspot_port), ("Salesforce", self.salesforce_port)):
            _check_port_free(name, port)
        try:
            workdir = self._workdir_arg
            if workdir is None:
                self._tempdir = tempfile.TemporaryDirectory(prefix="handshake-sandbox-")
                workdir = Path(self._tempdir.name)
            self.tls = make_tls(workdir / TLS_SUBDIR)
            self.dataset = generate(self.seed, self.contacts, now=self.start_at)
            self.hubspot = HubSpotSandbox(
                self.clock,
                faults=self.hubspot_faults,
                tier=self.tier,
                access_tokens=(HUBSPOT_ACCESS_TOKEN,),
            )
            self.hubspot.load(self.dataset)
            self.salesforce = SalesforceSandbox(
                self.clock,
                faults=self.salesforce_faults,
                daily_allocation=self.daily_allocation,
                username=SALESFORCE_USERNAME,
                password=SALESFORCE_PASSWORD,
                security_token=SALESFORCE_SECURITY_TOKEN,
                consumer_key=SALESFORCE_CONSUMER_KEY,
                consumer_secret=SALESFORCE_CONSUMER_SECRET,
            )
            self.salesforce.load(self.dataset)
            hubspot_server = self.hubspot.serve(port=self.hubspot_port)
            self._servers.append(hubspot_server)
            salesforce_server = self.salesforce.serve(port=self.salesforce_port, tls=self.tls)
            self._servers.append(salesforce_server)
        except BaseException:
            self.stop()
            raise
        self.hubspot_url = hubspot_server.base_url
        self.salesforce_url = salesforce_server.base_url
        if self.webhook_url:
            self.start_webhooks(self.webhook_url)
        return self

    def start_webhooks(self, url: str) -> WebhookSender:
        """POST the portal's contact changes from now on to `url`, signed with the app secret
        (creations, property changes of `webhook_properties` or all, deletions, merges)."""
        if self.hubspot is None:
            raise RuntimeError("the sandbox is not running: call start() first")
        self.stop_webhooks()
        self.webhook_url = url
        self.webhooks = WebhookSender(
            url, app_secret=HUBSPOT_APP_SECRET, clock=self.clock,
            portal_id=self.hubspot.portal_id, app_id=APP_ID,
            properties=self.webhook_properties, batch_delay=self.webhook_batch_delay,
            retry_delays=self.webhook_retry_delays).start()
        self.hubspot.state.listener = self.webhooks.emit
        return self.webhooks

    def stop_webhooks(self) -> None:
        """Stop sending webhooks (events not yet sent are dropped)."""
        if self.hubspot is not None:
            self.hubspot.state.listener = None
        if self.webhooks is not None:
            self.webhooks.stop()
            self.webhooks = None

    def info(self) -> dict[str, dict[str, str]]:
        """Base URLs and credentials, in the shape the connector's configuration takes."""
        if self.tls is None or not self._servers:
            raise RuntimeError("the sandbox is not running: call start() first")
        return {
            "hubspot": {
                "base_url": self.hubspot_url,
                "access_token": HUBSPOT_ACCESS_TOKEN,
                "app_secret": HUBSPOT_APP_SECRET,
            },
            "salesforce": {
                "instance_url": self.salesforce_url,
                "login_url": self.salesforce_url,
                "username": SALESFORCE_USERNAME,
                "password": SALESFORCE_PASSWORD,
                "security_token": SALESFORCE_SECURITY_TOKEN,
                "ca_bundle": str(self.tls.ca_bundle),
            },
        }

    def simulator(
        self, *, seed: int | None = None, profile: dict[str, Any] | None = None
    ) -> SalesTeamSimulator:
        """A sales-team simulator on this sandbox's org and clock; its actions also go to
        `dataset.ground_truth.simulator`."""
        if self.salesforce is None:
            raise RuntimeError("the sandbox is not running: call start() first")
        return SalesTeamSimulator(
            self.salesforce.state,
            self.clock,
            seed=self.seed if seed is None else seed,
            profile=profile,
            dataset=self.dataset,
        )

    def stop(self) -> None:
        """Stop both servers and remove the temporary directory (if the sandbox made one)."""
        self.stop_webhooks()
        while self._servers:
            self._servers.pop().stop()
        if self._tempdir is not None:
            self._tempdir.cleanup()
            self._tempdir = None

    def __enter__(self) -> Self:
        return self if self._servers else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _check_port_free(name: str, port: int) -> None:
    """Fail early and clearly on a taken port (uvicorn would only exit its thread)."""
    if not port:
        return
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            raise RuntimeError(
                f"{name} port {port} on 127.0.0.1 is taken ({exc.strerror})"
            ) from exc
