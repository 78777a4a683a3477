"""`POST /webhooks/hubspot` (in a minimal Starlette app served by uvicorn): a signed request within 5 minutes queues its contacts once and
answers 200 at once; a bad signature, a stale timestamp, a missing secret (401) or an oversized
body (413) queue nothing."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from starlette.applications import Starlette

from connector.config import (
    Config,
    DaemonSettings,
    HubSpotSettings,
    SalesforceSettings,
    Secrets,
    StateSettings,
)
from connector.daemon.webhooks import WEBHOOK_PATH, webhook_route
from connector.runtime import open_store
from connector.sandbox import ServedApp
from connector.store import Store
from tests.webhooks.helpers import SECRET, event
from tests.webhooks.helpers import signed as sign

CAP = 40_000  # 100 events are about 25 kB


def _config(db: Path, secret: str | None = SECRET) -> Config:
    config = Config(hubspot=HubSpotSettings(), salesforce=SalesforceSettings(
        instance_url="https://example.my.salesforce.com"),
        state=StateSettings(database_url=f"sqlite:///{db}"),
        daemon=DaemonSettings(webhook_max_body_bytes=CAP))
    secrets = Secrets(hubspot_app_secret=SecretStr(secret) if secret else None)
    return config.model_copy(update={"secrets": secrets})


def signed(receiver: Receiver, events: object, **kw: object) -> tuple[bytes, dict[str, str]]:
    return sign(events, url=receiver.url, **kw)  # type: ignore[arg-type]


class Receiver:
    """The route in a minimal Starlette app, served by uvicorn in a thread."""

    def __init__(self, tmp_path: Path, secret: str | None = SECRET) -> None:
        config = _config(tmp_path / "state.db", secret)
        self.store: Store = open_store(config)
        self.queued: list[int] = []
        app = Starlette(routes=[webhook_route(config, lambda: self.store, self.queued.append)])
        self.server = ServedApp(app).start()
        self.url = f"{self.server.base_url}{WEBHOOK_PATH}"
        self.client = httpx.Client(timeout=10)

    def post(self, body: bytes, headers: dict[str, str], **kw: str) -> int:
        return self.client.post(self.url, content=body, headers={**headers, **kw}).status_code

    def depth(self) -> int:
        return self.store.webhook_queue_depth()

    def close(self) -> None:
        self.client.close()
        self.server.stop()
        self.store.close()


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    r = Receiver(tmp_path)
    yield r
    r.close()


def test_a_good_request_queues_each_contact_once_and_answers_at_once(receiver: Receiver) -> None:
    events = [event(7), event(7, propertyName="email"), event(8, "contact.creation"),
              *[event(1000 + i) for i in range(97)]]
    body, headers = signed(receiver, events)
    began = time.monotonic()
    assert receiver.post(body, headers) == 200
    assert time.monotonic() - began < 1.0  # HubSpot waits 1 s before it retries
    assert receiver.depth() == 99
    assert receiver.queued == [99]
    # the same events again (HubSpot retried): still one row per contact
    assert receiver.post(*signed(receiver, events)) == 200
    assert receiver.depth() == 99
    assert sorted(receiver.store.take_webhook_batch("run", limit=200), key=int)[:2] == ["7", "8"]


def test_merges_deletions_and_other_objects(receiver: Receiver) -> None:
    events = [event(5, "contact.merge", primaryObjectId=5, mergedObjectIds=[6], newObjectId=5),
              event(9, "contact.deletion", changeFlag="DELETED"),
              event(11, "company.propertyChange"), event(12, "deal.creation")]
    assert receiver.post(*signed(receiver, events)) == 200
    assert sorted(receiver.store.take_webhook_batch("run")) == ["5", "9"]


def test_a_bad_signature_is_refused(receiver: Receiver) -> None:
    body, headers = signed(receiver, [event(7)], secret="another-secret")
    assert receiver.post(body, headers) == 401
    body, headers = signed(receiver, [event(7)])
    assert receiver.post(body.replace(b"7", b"8"), headers) == 401  # body changed in transit
    assert receiver.post(body, {k: v for k, v in headers.items()
                                if k != "X-HubSpot-Signature-v3"}) == 401
    assert receiver.depth() == 0 and receiver.queued == []


def test_a_stale_timestamp_is_refused(receiver: Receiver) -> None:
    six_minutes_ago = int((time.time() - 6 * 60) * 1000)
    assert receiver.post(*signed(receiver, [event(7)], timestamp_ms=six_minutes_ago)) == 401
    four_minutes_ago = int((time.time() - 4 * 60) * 1000)
    assert receiver.post(*signed(receiver, [event(8)], timestamp_ms=four_minutes_ago)) == 200
    assert receiver.store.take_webhook_batch("run") == ["8"]


def test_no_secret_configured_is_refused_with_the_fix(tmp_path: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    r = Receiver(tmp_path, secret=None)
    try:
        with caplog.at_level(logging.INFO, logger="connector.daemon.webhooks"):
            assert r.post(*signed(r, [event(7)])) == 401
        assert r.depth() == 0 and r.queued == []
        assert "HANDSHAKE_HUBSPOT_APP_SECRET" in caplog.text
    finally:
        r.close()


def test_an_oversized_body_is_refused_unread(receiver: Receiver) -> None:
    events = [event(i) for i in range(1, 400)]
    body, headers = signed(receiver, events)
    assert len(body) > CAP
    assert receiver.post(body, headers) == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: the stream is cut past the cap
        for start in range(0, len(body), 4096):
            yield body[start:start + 4096]

    answer = receiver.client.post(receiver.url, content=chunks(), headers=headers)
    assert answer.status_code == 413
    assert receiver.depth() == 0 and receiver.queued == []


def test_the_signed_url_is_the_one_the_proxy_was_called_on(receiver: Receiver) -> None:
    body, headers = sign([event(7)], url="https://hooks.example.com/webhooks/hubspot")
    assert receiver.post(body, headers) == 401  # verified against http://testserver/...
    assert receiver.post(body, headers, **{"X-Forwarded-Proto": "https",
                                           "X-Forwarded-Host": "hooks.example.com"}) == 200
    assert receiver.depth() == 1


def test_a_signed_body_that_is_no_event_list_is_a_400(receiver: Receiver) -> None:
    assert receiver.post(*signed(receiver, {"not": "a list"})) == 400
    assert receiver.depth() == 0


def test_handshake_s_own_properties_coming_back_queue_nothing(receiver: Receiver) -> None:
    """Handshake's write-backs (score, hand-off, outcomes) come back as property changes: alone
    they queue nothing (each would cost a targeted sync); with another change they do."""
    events = [event(21, propertyName="handshake_score", propertyValue="72"),
              event(21, propertyName="handshake_sales_outcome", propertyValue="working"),
              event(22, propertyName="handshake_salesforce_id", propertyValue="00Q000000000001"),
              event(23, propertyName="handshake_score", propertyValue="10"),
              event(23, propertyName="jobtitle", propertyValue="CTO")]
    assert receiver.post(*signed(receiver, events)) == 200
    assert receiver.store.take_webhook_batch("run") == ["23"]
    assert receiver.queued == [1]
