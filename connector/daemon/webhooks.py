"""`POST /webhooks/hubspot`: HubSpot app webhooks in, contact ids queued for the targeted sync.

    route = webhook_route(config, lambda: store, on_queued=lambda n: wake_sync.set())
    app = Starlette(routes=[route])

A request is answered in milliseconds (HubSpot waits 1 s at most before it retries): the body
is read up to `[daemon] webhook_max_body_bytes` (413 past it, without reading further), the v3
signature is checked against `HANDSHAKE_HUBSPOT_APP_SECRET` (401 on any failure: no secret
configured, no or bad signature, a timestamp more than 5 minutes old), the contacts the events
name are queued in the store (one row per contact however many events name it), and
`on_queued(n)` tells the daemon to run the sync of those contacts now. Nothing else happens
in the request: the sync runs on the daemon's side, and polling stays the safety net.

The signature covers the URL HubSpot called. Behind a reverse proxy that terminates TLS, the
proxy must pass the scheme in `X-Forwarded-Proto` and the public host in `X-Forwarded-Host`
(or keep the `Host` header): the URL is rebuilt from them, else from the request itself.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from connector.clock import Clock, SystemClock
from connector.config import ENV_HUBSPOT_APP_SECRET, Config
from connector.hubspot.webhooks import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_v3
from connector.store import Store

__all__ = ["WEBHOOK_PATH", "contact_ids", "own_properties", "public_url", "webhook_route"]

log = logging.getLogger("connector.daemon.webhooks")

WEBHOOK_PATH = "/webhooks/hubspot"
# Events about a contact that change what Handshake holds: the contact is read again (a
# deleted one is read among the archived, a merge through its surviving contact).
CONTACT_EVENTS = ("contact.creation", "contact.propertyChange", "contact.deletion",
                  "contact.restore", "contact.merge", "contact.privacyDeletion")


class _TooLarge(Exception):
    pass


def public_url(request: Request) -> str:
    """The URL the sender called, as it saw it: scheme and host from the proxy's
    X-Forwarded-Proto / X-Forwarded-Host when present, else from the request."""
    headers = request.headers
    scheme = (headers.get("x-forwarded-proto") or request.url.scheme).split(",")[0].strip()
    host = (headers.get("x-forwarded-host") or headers.get("host")
            or request.url.netloc).split(",")[0].strip()
    query = request.url.query
    return f"{scheme}://{host}{request.url.path}" + (f"?{query}" if query else "")


def own_properties(config: Config) -> frozenset[str]:
    """The contact properties only Handshake writes (the score write-back, the hand-off and
    the outcomes): their changes are Handshake's own writes coming back, never news for the
    sync, and a webhook of them alone queues nothing (each would cost a targeted sync)."""
    from connector.hubspot.outcomes import OutcomeSettings, outcome_property_definitions
    from connector.hubspot.write import handoff_property_definitions, property_definitions
    from connector.scoring import load_model

    try:
        writeback = load_model(config.mapping_path("scoring")).writeback
    except Exception:  # noqa: BLE001  (a bad scoring file is reported by the stages; nothing ignored)
        return frozenset()
    return frozenset(str(d["name"]) for d in (
        *property_definitions(writeback), *handoff_property_definitions(writeback),
        *outcome_property_definitions(OutcomeSettings())))


def contact_ids(events: Any, ignore: frozenset[str] = frozenset()) -> tuple[dict[str, str], int]:
    """The contacts a webhook body names (id -> the newest event's kind), and how many events
    it held. Events about other objects are left out, and so are changes of the properties in
    `ignore` (Handshake's own); a merge names its surviving contact."""
    if not isinstance(events, list):
        raise TypeError("the body is not a JSON array of events")
    found: dict[str, str] = {}
    for event in events:
        if not isinstance(event, dict):
            raise TypeError("an event is not a JSON object")
        kind = str(event.get("subscriptionType") or "")
        if kind not in CONTACT_EVENTS:
            continue
        if kind == "contact.propertyChange" and str(event.get("propertyName")) in ignore:
            continue
        target = event.get("primaryObjectId") if kind == "contact.merge" else None
        target = target if target not in (None, "") else event.get("objectId")
        if target in (None, ""):
            continue
        found[str(target)] = kind
    return found, len(events)


async def _read_capped(request: Request, cap: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > cap:
        raise _TooLarge
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > cap:
            raise _TooLarge
    return bytes(body)


def webhook_route(config: Config, store_factory: Callable[[], Store],
                  on_queued: Callable[[int], None], *, clock: Clock | None = None) -> Route:
    """The `POST /webhooks/hubspot` route. `store_factory()` gives the daemon's open store
    (called per request, from a worker thread; never closed here); `on_queued(n)` is called
    with the number of contacts a request queued, on the server's event loop, so it must only
    signal (set an event, submit a job) for the daemon to run `run_contacts_sync` at once.
    `clock` decides whether a timestamp is stale (the system clock by default)."""
    clock = clock or SystemClock()
    cap = config.daemon.webhook_max_body_bytes
    secret = config.secrets.hubspot_app_secret
    ignore = own_properties(config)
    warned: set[str] = set()

    def refuse(status: int, why: str) -> Response:
        # the first refusal of each kind is a warning, the rest INFO: a misconfigured app
        # retries every event, and would fill the log
        level = logging.WARNING if why not in warned else logging.INFO
        warned.add(why)
        log.log(level, "HubSpot webhook refused (%d): %s", status, why)
        return JSONResponse({"status": "error", "message": why}, status_code=status)

    def enqueue(ids: dict[str, str]) -> int:
        store = store_factory()
        queued = 0
        for kind in dict.fromkeys(ids.values()):
            queued += store.enqueue_webhook_contacts(
                [cid for cid, k in ids.items() if k == kind], kind=kind)
        return queued

    async def receive(request: Request) -> Response:
        try:
            body = await _read_capped(request, cap)
        except _TooLarge:
            return refuse(413, f"the body is larger than [daemon] webhook_max_body_bytes "
                               f"({cap} bytes); raise it if HubSpot's batches need more")
        if secret is None or not secret.get_secret_value():
            return refuse(401, f"no HubSpot app secret is configured, so no webhook can be "
                               f"verified (fix: export {ENV_HUBSPOT_APP_SECRET} with the app's "
                               f"client secret and restart the daemon)")
        why = verify_v3(secret.get_secret_value(), method=request.method,
                        uri=public_url(request), body=body,
                        signature=request.headers.get(SIGNATURE_HEADER),
                        timestamp=request.headers.get(TIMESTAMP_HEADER), now=clock.now())
        if why is not None:
            return refuse(401, why)
        try:
            ids, events = contact_ids(json.loads(body), ignore)
        except (ValueError, TypeError) as exc:  # signed by HubSpot yet unreadable: a 400 is not retried
            return refuse(400, f"the webhook body cannot be read: {exc}")
        queued = await run_in_threadpool(enqueue, ids) if ids else 0
        log.info("HubSpot webhook: %d event(s), %d contact(s) queued", events, queued)
        if queued:
            on_queued(queued)
        return JSONResponse({"status": "ok", "queued": queued})

    return Route(WEBHOOK_PATH, receive, methods=["POST"], name="hubspot_webhooks")
