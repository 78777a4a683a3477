"""The sandbox sends HubSpot's webhooks: signed v3 (checked with the SDK's helper), batched up
to 100 events a request, retried on failure (not on the statuses HubSpot does not retry)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from hubspot.utils.signature import Signature
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from connector.sandbox import Sandbox, ServedApp

PATH = "/hooks/hubspot"


@dataclass
class Catcher:
    """A webhook target that records every request and answers from a script (then 200)."""

    script: list[int] = field(default_factory=list)
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def receive(self, request: Request) -> Response:
        body = await request.body()
        with self.lock:
            self.requests.append((dict(request.headers), body))
            status = self.script.pop(0) if self.script else 200
        return Response(status_code=status)

    def events(self) -> list[list[dict[str, Any]]]:
        with self.lock:
            return [json.loads(body) for _, body in self.requests]


@pytest.fixture(scope="module")
def catcher() -> Iterator[tuple[Catcher, str]]:
    c = Catcher()
    with ServedApp(Starlette(routes=[Route(PATH, c.receive, methods=["POST"])])) as server:
        yield c, f"{server.base_url}{PATH}"


@pytest.fixture(scope="module")
def sandbox(catcher: tuple[Catcher, str], tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[Sandbox]:
    _, url = catcher
    with Sandbox(contacts=30, seed=7, workdir=tmp_path_factory.mktemp("sb"), webhook_url=url,
                 webhook_retry_delays=(0.2, 0.2)) as sb:
        yield sb


@pytest.fixture
def fresh(catcher: tuple[Catcher, str], sandbox: Sandbox) -> Catcher:
    c, _ = catcher
    assert sandbox.webhooks is not None and sandbox.webhooks.wait_idle()
    with c.lock:
        c.requests.clear()
        c.script.clear()
    return c


def _idle(sb: Sandbox) -> None:
    assert sb.webhooks is not None and sb.webhooks.wait_idle(10)


def test_contact_changes_arrive_signed_v3(sandbox: Sandbox, fresh: Catcher) -> None:
    hs = sandbox.hubspot.state  # type: ignore[union-attr]
    info = sandbox.info()["hubspot"]
    live = [cid for cid, rec in hs.contacts.items() if not rec.archived and not rec.merged_into]
    # a change through the API (the connector's own writes are sent too, as on HubSpot)
    answer = httpx.patch(f"{info['base_url']}/crm/v3/objects/contacts/{live[0]}",
                         json={"properties": {"jobtitle": "Chief Webhook Officer"}},
                         headers={"Authorization": f"Bearer {info['access_token']}"})
    assert answer.status_code == 200, answer.text
    created = hs.create_contact({"email": "new.person@example.org", "firstname": "New"})
    hs.archive_contact(live[1])
    hs.merge_contacts(live[2], live[3])
    _idle(sandbox)
    assert fresh.requests
    url = sandbox.webhook_url
    for headers, body in fresh.requests:
        assert headers["x-hubspot-signature-version"] == "v3"
        assert Signature.is_valid(headers["x-hubspot-signature-v3"], info["app_secret"],
                                  body.decode(), http_uri=url, signature_version="v3",
                                  timestamp=headers["x-hubspot-request-timestamp"])
        assert not Signature.is_valid(headers["x-hubspot-signature-v3"], "wrong-secret",
                                      body.decode(), http_uri=url, signature_version="v3",
                                      timestamp=headers["x-hubspot-request-timestamp"])
    events = [e for batch in fresh.events() for e in batch]
    for e in events:
        assert {"eventId", "subscriptionId", "portalId", "appId", "occurredAt",
                "subscriptionType", "attemptNumber", "objectId", "changeSource"} <= set(e)
        assert e["attemptNumber"] == 0 and e["portalId"] == hs.portal_id
    assert len({e["eventId"] for e in events}) == len(events)
    by_kind = {(e["subscriptionType"], e["objectId"]): e for e in events}
    change = by_kind[("contact.propertyChange", int(live[0]))]
    assert (change["propertyName"], change["propertyValue"], change["changeSource"]) == (
        "jobtitle", "Chief Webhook Officer", "INTEGRATION")
    assert by_kind[("contact.creation", int(created.id))]["changeFlag"] == "CREATED"
    assert by_kind[("contact.deletion", int(live[1]))]["changeFlag"] == "DELETED"
    merge = by_kind[("contact.merge", int(live[2]))]
    assert (merge["primaryObjectId"], merge["mergedObjectIds"]) == (int(live[2]), [int(live[3])])


def test_changes_made_together_go_in_batches_of_100(sandbox: Sandbox, fresh: Catcher) -> None:
    hs = sandbox.hubspot.state  # type: ignore[union-attr]
    live = [cid for cid, rec in hs.contacts.items() if not rec.archived and not rec.merged_into]
    with hs.lock:  # 150 changes at once, as a bulk import would make them
        for i in range(150):
            hs.update_contact(live[i % len(live)], {"city": f"Town {i}"})
    _idle(sandbox)
    sizes = [len(batch) for batch in fresh.events()]
    assert sum(sizes) == 150
    assert max(sizes) == 100 and len(sizes) == 2


def test_a_failed_delivery_is_retried_with_the_attempt_number(sandbox: Sandbox,
                                                              fresh: Catcher) -> None:
    hs = sandbox.hubspot.state  # type: ignore[union-attr]
    cid = next(c for c, rec in hs.contacts.items() if not rec.archived and not rec.merged_into)
    with fresh.lock:
        fresh.script[:] = [503, 500]
    hs.update_contact(cid, {"city": "Retryville"})
    _idle(sandbox)
    batches = fresh.events()
    assert [b[0]["attemptNumber"] for b in batches] == [0, 1, 2]
    assert len({b[0]["eventId"] for b in batches}) == 1  # the same event, sent again


def test_statuses_hubspot_does_not_retry(sandbox: Sandbox, fresh: Catcher) -> None:
    hs = sandbox.hubspot.state  # type: ignore[union-attr]
    cid = next(c for c, rec in hs.contacts.items() if not rec.archived and not rec.merged_into)
    with fresh.lock:
        fresh.script[:] = [401]
    hs.update_contact(cid, {"city": "Nowhere"})
    _idle(sandbox)
    assert len(fresh.events()) == 1


def test_serve_takes_a_webhook_url_and_refuses_anything_else() -> None:
    from typer.testing import CliRunner

    from connector.cli import app

    runner = CliRunner()
    help_text = runner.invoke(app, ["sandbox", "serve", "--help"],
                              env={"COLUMNS": "200"}).stdout
    assert "--webhook-url" in help_text and "URL" in help_text
    refused = runner.invoke(app, ["sandbox", "serve", "--webhook-url", "localhost:8787"],
                            env={"COLUMNS": "200"})
    assert refused.exit_code == 2
    assert "not an http(s) URL" in refused.output
