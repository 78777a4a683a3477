"""Creating the contact properties Handshake writes, once: shared by the score write-back and
the pull-back's outcomes, whichever client sends the requests."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from connector.errors import RecordRejected
from connector.hubspot import settings as hs

__all__ = ["RequestSender", "create_missing_properties"]


class RequestSender(Protocol):
    """The one method of `HubSpotClient` this needs (tests may pass a fake)."""

    def request(self, method: str, path: str, *, json: Any = None,
                describe: str = "") -> tuple[dict[str, Any], datetime | None]: ...


def create_missing_properties(sender: RequestSender,
                              definitions: Sequence[Mapping[str, Any]]) -> list[str]:
    """Create the contact properties of `definitions` HubSpot lacks (one read, one create
    each); returns the names created."""
    body, _ = sender.request("GET", hs.PROPERTIES, describe="list contact properties")
    existing = {p.get("name") for p in body.get("results") or []}
    created: list[str] = []
    for definition in definitions:
        if definition["name"] in existing:
            continue
        try:
            sender.request("POST", hs.PROPERTIES, json=dict(definition),
                           describe=f"create property {definition['name']}")
        except RecordRejected:
            continue  # created meanwhile by another instance: that is what we wanted
        created.append(str(definition["name"]))
    return created
