"""Shared pieces of the webhook tests: HubSpot-shaped events and signed requests."""

from __future__ import annotations

import json
import time
from typing import Any

from hubspot.utils.signature import Signature

SECRET = "test-app-secret"
URL = "http://testserver/webhooks/hubspot"


def event(object_id: int | str, kind: str = "contact.propertyChange", **extra: Any) -> dict[str, Any]:
    """One event as HubSpot sends it."""
    base: dict[str, Any] = {
        "eventId": 100 + int(object_id), "subscriptionId": 1001, "portalId": 12345678,
        "appId": 1160452, "occurredAt": int(time.time() * 1000), "subscriptionType": kind,
        "attemptNumber": 0, "objectId": int(object_id), "changeSource": "CRM_UI",
    }
    if kind == "contact.propertyChange":
        base.update(propertyName="lifecyclestage", propertyValue="lead")
    return {**base, **extra}


def signed(events: Any, *, secret: str = SECRET, url: str = URL,
           timestamp_ms: int | None = None) -> tuple[bytes, dict[str, str]]:
    """A webhook body and its headers, signed v3 with the SDK's helper."""
    body = json.dumps(events).encode()
    timestamp = str(timestamp_ms if timestamp_ms is not None else int(time.time() * 1000))
    signature = Signature.get_signature(secret, body.decode(), "v3", http_uri=url,
                                        http_method="POST", timestamp=timestamp)
    return body, {"Content-Type": "application/json", "X-HubSpot-Signature-v3": signature,
                  "X-HubSpot-Signature-Version": "v3",
                  "X-HubSpot-Request-Timestamp": timestamp}
