"""The emulated portal's app webhooks: signed v3 notifications POSTed to a target URL.

    sender = WebhookSender("http://127.0.0.1:8787/webhooks/hubspot", app_secret=..., clock=...)
    state.listener = sender.emit        # the state calls it on every change; it never blocks
    sender.start() ... sender.stop()

As HubSpot sends them (developers.hubspot.com, "Webhooks API"): a POST with a JSON array of
up to 100 events, each with `eventId`, `subscriptionId`, `portalId`, `appId`, `occurredAt`
(ms), `subscriptionType` (`contact.creation`, `contact.propertyChange`, `contact.deletion`,
`contact.merge`), `attemptNumber` (0 on the first try), `objectId`, `changeSource`, and
per type `propertyName`/`propertyValue`, `changeFlag` ("CREATED", "DELETED") or
`primaryObjectId`/`mergedObjectIds`/`newObjectId`/`numberOfPropertiesMoved`. Headers
`X-HubSpot-Signature-v3` (base64 HMAC-SHA256 with the app secret of method + URI + body +
timestamp), `X-HubSpot-Signature-Version: v3` and `X-HubSpot-Request-Timestamp` (ms, the
sandbox clock: HubSpot's time).

Events are collected for `batch_delay` seconds (HubSpot batches what happens together) and
sent from a background thread, so the API handlers never wait for a receiver. A batch that
fails (no connection, a timeout, 429 or 5xx; HubSpot does not retry 400, 401, 403, 404 or 405)
is sent again after each of `retry_delays` with `attemptNumber` raised, then dropped: HubSpot
retries up to 10 times over 24 hours; the sandbox keeps it short for tests. One subscription
per property as on HubSpot, unless `properties` is None (every property: a sandbox shortcut).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import logging
import threading
from collections import deque
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from ..base import SandboxClock

__all__ = ["CONTACT_SUBSCRIPTIONS", "NO_RETRY_STATUSES", "WebhookSender", "sign_v3"]

log = logging.getLogger("connector.sandbox.webhooks")

CONTACT_SUBSCRIPTIONS = ("contact.creation", "contact.propertyChange", "contact.deletion",
                         "contact.merge")
NO_RETRY_STATUSES = frozenset({400, 401, 403, 404, 405})
MAX_BATCH = 100
# propertyChange events are not sent for what HubSpot itself stamps on every change
UNSUBSCRIBABLE = frozenset({"hs_object_id", "createdate", "lastmodifieddate"})


def sign_v3(secret: str, method: str, uri: str, body: bytes, timestamp: str) -> str:
    """HubSpot's v3 signature of a request."""
    message = method.encode() + uri.encode() + body + timestamp.encode()
    return base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()


@dataclass
class DeliveryStats:
    """What the sender did, for tests and benchmarks."""

    requests: int = 0  # POSTs made, retries included
    delivered_batches: int = 0
    delivered_events: int = 0
    retries: int = 0
    dropped_events: int = 0
    statuses: list[int | None] = field(default_factory=list)  # None: no answer
    batch_sizes: list[int] = field(default_factory=list)  # of every request


class WebhookSender:
    """Collects the portal's contact events and POSTs them, signed, in batches."""

    def __init__(
        self,
        url: str,
        *,
        app_secret: str,
        clock: SandboxClock,
        portal_id: int,
        app_id: int,
        properties: Collection[str] | None = None,
        subscriptions: Collection[str] = CONTACT_SUBSCRIPTIONS,
        batch_delay: float = 0.2,
        retry_delays: Sequence[float] = (0.5, 1.0, 2.0),
        timeout: float = 5.0,
    ) -> None:
        self.url = url
        self.app_secret = app_secret
        self.clock = clock
        self.portal_id = portal_id
        self.app_id = app_id
        self.properties = frozenset(properties) if properties is not None else None
        self.subscriptions = frozenset(subscriptions)
        self.batch_delay = batch_delay
        self.retry_delays = tuple(retry_delays)
        self.timeout = timeout
        self.stats = DeliveryStats()
        self._pending: deque[dict[str, Any]] = deque()
        self._wake = threading.Condition()
        self._stop = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._event_ids = itertools.count(1)
        self._subscription_ids: dict[tuple[str, str], int] = {}
        self._thread = threading.Thread(target=self._run, name="sandbox:webhooks", daemon=True)

    # ------------------------------------------------------------------ events in

    def subscribed(self, kind: str, prop: str | None = None) -> bool:
        """Whether the app subscribes to this event (and property)."""
        if kind not in self.subscriptions:
            return False
        if kind == "contact.propertyChange":
            return (prop is not None and prop not in UNSUBSCRIBABLE
                    and (self.properties is None or prop in self.properties))
        return True

    def emit(self, event: dict[str, Any]) -> None:
        """Queue one event (called by the portal's state under its lock: never blocks)."""
        kind = str(event["subscriptionType"])
        prop = event.get("propertyName")
        if not self.subscribed(kind, prop):
            return
        key = (kind, str(prop or ""))
        sub_id = self._subscription_ids.setdefault(key, 1000 + len(self._subscription_ids))
        full = {"eventId": next(self._event_ids), "subscriptionId": sub_id,
                "portalId": self.portal_id, "appId": self.app_id, "attemptNumber": 0, **event}
        with self._wake:
            self._pending.append(full)
            self._idle.clear()
            self._wake.notify()

    # ------------------------------------------------------------------ running

    def start(self) -> WebhookSender:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop sending (events still pending are dropped)."""
        self._stop.set()
        with self._wake:
            self._wake.notify()
        if self._thread.is_alive():
            self._thread.join(timeout=self.timeout + 2)

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until every event emitted so far was delivered or dropped."""
        return self._idle.wait(timeout)

    def _run(self) -> None:
        with httpx.Client(timeout=self.timeout) as client:
            while not self._stop.is_set():
                with self._wake:
                    while not self._pending and not self._stop.is_set():
                        self._idle.set()
                        self._wake.wait()
                if self._stop.is_set():
                    return
                # what happens together goes together: wait a moment for the rest
                self._stop.wait(self.batch_delay)
                with self._wake:
                    batch = [self._pending.popleft()
                             for _ in range(min(MAX_BATCH, len(self._pending)))]
                self._deliver(client, batch)

    def _deliver(self, client: httpx.Client, batch: list[dict[str, Any]]) -> None:
        for attempt in range(len(self.retry_delays) + 1):
            if attempt:
                self.stats.retries += 1
                if self._stop.wait(self.retry_delays[attempt - 1]):
                    return
            status = self._post(client, [{**e, "attemptNumber": attempt} for e in batch])
            if status is not None and (200 <= status < 300 or status in NO_RETRY_STATUSES):
                if 200 <= status < 300:
                    self.stats.delivered_batches += 1
                    self.stats.delivered_events += len(batch)
                else:
                    self.stats.dropped_events += len(batch)
                return
        self.stats.dropped_events += len(batch)
        log.warning("webhook batch of %d event(s) dropped after %d attempts", len(batch),
                    len(self.retry_delays) + 1)

    def _post(self, client: httpx.Client, events: list[dict[str, Any]]) -> int | None:
        body = json.dumps(events, separators=(",", ":")).encode()
        timestamp = str(self.clock.now_ms())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "HubSpot Connect 2.0 (http://dev.hubspot.com/) (sandbox)",
            "X-HubSpot-Signature-v3": sign_v3(self.app_secret, "POST", self.url, body, timestamp),
            "X-HubSpot-Signature-Version": "v3",
            "X-HubSpot-Request-Timestamp": timestamp,
            "X-HubSpot-Timeout-Millis": str(int(self.timeout * 1000)),
        }
        self.stats.requests += 1
        self.stats.batch_sizes.append(len(events))
        try:
            status = client.post(self.url, content=body, headers=headers).status_code
        except httpx.HTTPError as exc:
            log.info("webhook POST to %s failed: %s", self.url, type(exc).__name__)
            status = None
        self.stats.statuses.append(status)
        return status
