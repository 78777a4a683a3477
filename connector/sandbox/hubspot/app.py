"""The emulated HubSpot API: Starlette routes over `HubSpotState`, behind a gate that
authenticates bearer tokens and applies HubSpot's per-token rate limits, wrapped in the
shared `SandboxMiddleware` (fault injection + statistics)."""

from __future__ import annotations

import base64
import json
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import urlencode

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..base import Fault, FaultPlan, RequestStats, SandboxClock, SandboxMiddleware, ServedApp
from ..dataset import SandboxDataset
from . import settings
from .bodies import check_body, request_validator
from .errors import HubSpotApiError, error_body, not_found, rate_limit_body, validation
from .ratelimit import RateLimiter
from .search import parse_search_request, to_ms
from .settings import RateLimits
from .state import APP_ID, APP_NAME, ContactRecord, HubSpotState, Submission, iso, ms

__all__ = ["HubSpotSandbox"]

Handler = Callable[[Request], Awaitable[Response]]
CONTACT_OBJECT_TYPES = ("contacts", "contact", "0-1")
# where a checked route leaves the parsed body for its handler (parsed once per request)
PARSED_BODY = "sandbox.parsed_body"


# ---------------------------------------------------------------------- request helpers


def _json(data: Any, status: int = 200) -> Response:
    # orjson: a third of the sandbox's CPU serving a pull went to encoding pages with json
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


async def _body(request: Request) -> Any:
    if PARSED_BODY in request.scope:
        return request.scope[PARSED_BODY]
    raw = await request.body()
    if not raw:
        return {}
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise validation(
            f"Invalid input JSON on line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from None


def _multi(request: Request, name: str) -> list[str] | None:
    """A list parameter sent either repeated (`a=1&a=2`) or comma-separated (`a=1,2`)."""
    values = request.query_params.getlist(name)
    if not values:
        return None
    return [v.strip() for item in values for v in item.split(",") if v.strip()]


def _bool(value: str | None) -> bool:
    return str(value).lower() == "true"


def _int(
    value: str | None, name: str, default: int, *, maximum: int | None = None, minimum: int = 1
) -> int:
    if value in (None, ""):
        return default
    try:
        number = int(str(value))
    except ValueError:
        raise validation(f"{name} must be an integer, was {value!r}") from None
    if number < minimum or (maximum is not None and number > maximum):
        raise validation(
            f"{name} must be between {minimum} and {maximum}, was {number}",
            context={name: [str(number)]},
        )
    return number


def _offset(value: str | None) -> int:
    if value in (None, ""):
        return 0
    try:
        number = int(str(value))
    except ValueError:
        raise validation(f"Invalid paging cursor: {value!r}") from None
    if number < 0:
        raise validation(f"Invalid paging cursor: {value!r}")
    return number


def _encode_cursor(when_ms: int, item_id: str) -> str:
    """An opaque keyset cursor (HubSpot's `after` tokens are opaque base64 too)."""
    return base64.urlsafe_b64encode(f"{when_ms}:{item_id}".encode()).decode().rstrip("=")


def _decode_cursor(value: str | None) -> tuple[int, str] | None:
    if value in (None, ""):
        return None
    try:
        text = base64.urlsafe_b64decode(str(value) + "=" * (-len(str(value)) % 4)).decode()
        when, _, item = text.partition(":")
        return int(when), item
    except (ValueError, UnicodeDecodeError):
        raise validation(f"Invalid paging cursor: {value!r}") from None


def _sub_key(sub: Submission) -> tuple[int, str]:
    return sub.key()


def _paging(request: Request, after: str | None, **extra: str) -> dict[str, Any]:
    if after is None:
        return {}
    params = [
        (k, v) for k, v in request.query_params.multi_items() if k != "after" and k not in extra
    ]
    params += [*extra.items(), ("after", after)]
    link = f"{request.url.scheme}://{request.url.netloc}{request.url.path}?{urlencode(params)}"
    return {"paging": {"next": {"after": after, "link": link}}}


def _dt_param(value: str | None, name: str) -> int | None:
    if value in (None, ""):
        return None
    parsed = to_ms(str(value))
    if parsed is None:
        raise validation(
            f"{name} must be an ISO-8601 date-time or epoch milliseconds, was {value!r}"
        )
    return parsed


def _batch_inputs(body: Any, *, with_history: bool = False) -> list[dict[str, Any]]:
    inputs = body.get("inputs") if isinstance(body, dict) else None
    if not isinstance(inputs, list):
        raise validation("Invalid input: 'inputs' must be an array")
    cap = settings.BATCH_MAX_INPUTS_WITH_HISTORY if with_history else settings.BATCH_MAX_INPUTS
    message = settings.MSG_BATCH_HISTORY_TOO_MANY if with_history else settings.MSG_BATCH_TOO_MANY
    if len(inputs) > cap:
        raise validation(message.format(max=cap), context={"inputs": [str(len(inputs))]})
    return [i if isinstance(i, dict) else {"id": i} for i in inputs]


def _no_duplicates(ids: list[str]) -> None:
    dup = sorted(i for i, n in Counter(ids).items() if n > 1)
    if dup:
        raise validation(f"Duplicate IDs found in batch input: {dup}. IDs must be unique")


class HubSpotSandbox:
    """An emulated HubSpot portal served over HTTP.

    `app` is the ASGI app (routes behind auth, rate limits, faults and statistics);
    `state` the data; `serve()` starts it on loopback. `rate_limits` overrides the tier's.
    """

    def __init__(
        self,
        clock: SandboxClock,
        *,
        faults: FaultPlan | None = None,
        tier: str = "professional",
        access_tokens: tuple[str, ...] = ("pat-sandbox-0000",),
        portal_id: int = 12345678,
        rate_limits: RateLimits | None = None,
        events_api: bool = True,
    ) -> None:
        if tier not in settings.TIERS:
            raise ValueError(f"unknown HubSpot tier {tier!r}; one of {', '.join(settings.TIERS)}")
        self.clock = clock
        self.tier = tier
        self.portal_id = portal_id
        # HubSpot serves the events API to Enterprise accounts and tokens with its scope only;
        # False answers 403 MISSING_SCOPES as an account without it gets.
        self.events_api = events_api
        self.faults = faults or FaultPlan()
        self.stats = RequestStats()
        self.state = HubSpotState(clock, portal_id=portal_id)
        self.access_tokens = set(access_tokens)
        self.limiter = RateLimiter(clock, rate_limits or settings.TIERS[tier])
        self.router = Starlette(
            routes=self._routes(),
            exception_handlers={
                HubSpotApiError: self._api_error,  # type: ignore[dict-item]
                HTTPException: self._http_error,  # type: ignore[dict-item]
            },
        )
        self.app: ASGIApp = _DateHeader(
            SandboxMiddleware(
                _Gate(self.router, self),
                faults=self.faults,
                stats=self.stats,
                render_fault=self._render_fault,
                route_of=self._route_of,
            ),
            clock,
        )

    # ------------------------------------------------------------------ public

    def load(self, dataset: SandboxDataset) -> None:
        """Load contacts, owners, email events, forms, submissions, page views, marketing events."""
        self.state.load(dataset)

    def serve(self, port: int = 0) -> ServedApp:
        """Start the app on 127.0.0.1 over plain HTTP and return the running server; stop it
        with `.stop()` (or leave a `with` block entered on it)."""
        # HubSpot's Date header is HubSpot's clock, here the sandbox clock (clients read it as
        # the server's "now"); the app writes it, so uvicorn must not add a wall-clock one too
        return ServedApp(self.app, port=port, date_header=False).start()

    def set_events_api(self, granted: bool) -> None:
        """Grant or refuse the events API (page views) at run time, as a tier or scope change."""
        self.events_api = granted

    def set_rate_limits(self, limits: RateLimits) -> None:
        """Change the per-token limits at run time (tests lower them to exceed them fast)."""
        self.limiter.configure(limits)

    # ------------------------------------------------------------------ plumbing

    async def _api_error(self, request: Request, exc: HubSpotApiError) -> Response:
        return _json(exc.body(), exc.status)

    async def _http_error(self, request: Request, exc: HTTPException) -> Response:
        if exc.status_code == 405:
            return _json(
                error_body(
                    "VALIDATION_ERROR", f"HTTP {request.method} is not supported by this resource"
                ),
                405,
            )
        return _json(error_body("OBJECT_NOT_FOUND", "resource not found"), exc.status_code)

    async def _render_fault(self, fault: Fault, scope: Scope) -> tuple[int, dict[str, str], bytes]:
        if fault.kind == "429" and _is_search(scope["method"], _normalise_path(scope["path"])):
            # search has its own per-second limit and its answers carry no rate-limit headers
            body = rate_limit_body(settings.POLICY_SECONDLY)
            return (
                429,
                {"Content-Type": "application/json;charset=utf-8"},
                json.dumps(body).encode(),
            )
        if fault.kind == "429":
            limits = self.limiter.limits
            headers = {
                "Content-Type": "application/json;charset=utf-8",
                settings.H_INTERVAL: str(int(limits.window_seconds * 1000)),
                settings.H_MAX: str(limits.window_max),
                settings.H_REMAINING: "0",
                settings.H_CORRELATION: str(uuid.uuid4()),
            }
            return 429, headers, json.dumps(rate_limit_body(settings.POLICY_TEN_SECONDLY)).encode()
        if fault.kind == "503":
            body = error_body("SERVICE_UNAVAILABLE", settings.MSG_UNAVAILABLE)
            return (
                503,
                {"Content-Type": "application/json;charset=utf-8"},
                json.dumps(body).encode(),
            )
        body = {
            "status": "error",
            "message": settings.MSG_INTERNAL,
            "correlationId": str(uuid.uuid4()),
        }
        return 500, {"Content-Type": "application/json;charset=utf-8"}, json.dumps(body).encode()

    def _route_of(self, scope: Scope) -> str:
        probe = dict(scope)
        probe["path"] = _normalise_path(scope["path"])
        partial = None
        for route in self.router.routes:
            match, _ = route.matches(probe)
            if match == Match.FULL:
                return str(getattr(route, "path", probe["path"]))
            if match == Match.PARTIAL and partial is None:
                partial = str(getattr(route, "path", probe["path"]))
        return partial or "unmatched"

    # ------------------------------------------------------------------ routes

    def _routes(self) -> list[Route]:
        routes: list[Route] = []
        for prefix in settings.CONTACTS_PREFIXES:
            routes += [
                Route(prefix, self.contacts_list, methods=["GET"]),
                Route(prefix, self.contacts_create, methods=["POST"]),
                Route(f"{prefix}/search", self.contacts_search, methods=["POST"]),
                Route(f"{prefix}/batch/read", self.contacts_batch_read, methods=["POST"]),
                Route(f"{prefix}/batch/update", self.contacts_batch_update, methods=["POST"]),
                Route(f"{prefix}/batch/upsert", self.contacts_batch_upsert, methods=["POST"]),
                Route(f"{prefix}/batch/create", self.contacts_batch_create, methods=["POST"]),
                Route(f"{prefix}/batch/archive", self.contacts_batch_archive, methods=["POST"]),
                Route(f"{prefix}/merge", self.contacts_merge, methods=["POST"]),
                Route(prefix + "/{contactId}", self.contacts_get, methods=["GET"]),
                Route(prefix + "/{contactId}", self.contacts_update, methods=["PATCH"]),
                Route(prefix + "/{contactId}", self.contacts_archive, methods=["DELETE"]),
            ]
        props = settings.PROPERTIES_PREFIX
        routes += [
            Route(props, self.properties_list, methods=["GET"]),
            Route(props, self.properties_create, methods=["POST"]),
            Route(props + "/groups", self.property_groups_list, methods=["GET"]),
            Route(props + "/groups", self.property_groups_create, methods=["POST"]),
            Route(props + "/{propertyName}", self.properties_get, methods=["GET"]),
            Route(settings.OWNERS_PATH, self.owners_list, methods=["GET"]),
            Route(settings.OWNERS_PATH + "/{ownerId}", self.owners_get, methods=["GET"]),
            Route(settings.LISTS_PATH, self.lists_create, methods=["POST"]),
            Route(settings.LISTS_PATH, self.lists_get_many, methods=["GET"]),
            Route(
                settings.LISTS_PATH + "/records/{objectTypeId}/{recordId}/memberships",
                self.lists_record_memberships,
                methods=["GET"],
            ),
            Route(settings.LISTS_PATH + "/{listId}", self.lists_get, methods=["GET"]),
            Route(
                settings.LISTS_PATH + "/object-type-id/{objectTypeId}/name/{listName}",
                self.lists_get_by_name,
                methods=["GET"],
            ),
            Route(
                settings.LISTS_PATH + "/{listId}/memberships",
                self.lists_memberships,
                methods=["GET"],
            ),
            Route(
                settings.LISTS_PATH + "/{listId}/memberships/add", self.lists_add, methods=["PUT"]
            ),
            Route(
                settings.LISTS_PATH + "/{listId}/memberships/remove",
                self.lists_remove,
                methods=["PUT"],
            ),
            Route(
                settings.LISTS_PATH + "/{listId}/memberships/add-and-remove",
                self.lists_add_and_remove,
                methods=["PUT"],
            ),
            Route(settings.EMAIL_EVENTS_PATH, self.email_events, methods=["GET"]),
            Route(settings.FORMS_PATH, self.forms_list, methods=["GET"]),
            Route(settings.FORMS_PATH + "/{formId}", self.forms_get, methods=["GET"]),
            Route(settings.FORM_SUBMISSIONS_PATH, self.form_submissions, methods=["GET"]),
            Route(settings.WEB_EVENTS_PATH, self.web_events, methods=["GET"]),
            Route(settings.WEB_EVENTS_PATH + "/event-types", self.web_event_types, methods=["GET"]),
            Route(settings.MARKETING_EVENTS_LIST_PATH, self.marketing_events_list, methods=["GET"]),
        ]
        me = settings.MARKETING_EVENTS_PREFIX
        routes += [
            Route(
                me + "/participations/contacts/{contactIdentifier}/breakdown",
                self.participations_by_contact,
                methods=["GET"],
            ),
            Route(
                me + "/participations/{marketingEventId}/breakdown",
                self.participations_by_event,
                methods=["GET"],
            ),
            Route(
                me + "/participations/{externalAccountId}/{externalEventId}/breakdown",
                self.participations_by_external_event,
                methods=["GET"],
            ),
            Route(
                me + "/participations/{externalAccountId}/{externalEventId}",
                self.participation_counters_external,
                methods=["GET"],
            ),
            Route(
                me + "/participations/{marketingEventId}",
                self.participation_counters,
                methods=["GET"],
            ),
            Route(me + "/{objectId}", self.marketing_events_get, methods=["GET"]),
            Route(settings.SANDBOX_PREFIX + "/stats", self.sandbox_stats, methods=["GET"]),
            Route(
                settings.SANDBOX_PREFIX + "/records/{object}", self.sandbox_records, methods=["GET"]
            ),
        ]
        return [_checked(route) for route in routes]

    # ------------------------------------------------------------------ contacts

    async def contacts_list(self, request: Request) -> Response:
        q = request.query_params
        history = _multi(request, "propertiesWithHistory")
        maximum = settings.CONTACTS_PAGE_MAX_WITH_HISTORY if history else settings.CONTACTS_PAGE_MAX
        limit = _int(q.get("limit"), "limit", settings.CONTACTS_PAGE_DEFAULT, maximum=maximum)
        props = _multi(request, "properties")
        records, nxt = self.state.page_contacts(
            q.get("after"), limit, archived=_bool(q.get("archived"))
        )
        with self.state.lock:
            results = [self.state.contact_json(r, props, with_history=history) for r in records]
        return _json({"results": results, **_paging(request, nxt)})

    async def contacts_get(self, request: Request) -> Response:
        q = request.query_params
        rec = self.state.get_contact(
            request.path_params["contactId"],
            archived=_bool(q.get("archived")),
            id_property=q.get("idProperty"),
        )
        with self.state.lock:
            body = self.state.contact_json(
                rec,
                _multi(request, "properties"),
                with_history=_multi(request, "propertiesWithHistory"),
            )
        return _json(body)

    async def contacts_create(self, request: Request) -> Response:
        body = await _body(request)
        props = dict((body or {}).get("properties") or {})
        rec = self.state.create_contact(props, validate=True, source="INTEGRATION")
        with self.state.lock:
            return _json(self.state.contact_json(rec, list(props)), 201)

    async def contacts_update(self, request: Request) -> Response:
        body = await _body(request)
        props = dict((body or {}).get("properties") or {})
        rec = self.state.update_contact(
            request.path_params["contactId"],
            props,
            validate=True,
            source="INTEGRATION",
            id_property=request.query_params.get("idProperty"),
        )
        with self.state.lock:
            return _json(self.state.contact_json(rec, list(props)))

    async def contacts_archive(self, request: Request) -> Response:
        try:
            self.state.archive_contact(request.path_params["contactId"])
        except HubSpotApiError as exc:
            if exc.status != 404:
                raise
        return Response(status_code=204)

    async def contacts_merge(self, request: Request) -> Response:
        body = await _body(request)
        primary, merged = body.get("primaryObjectId"), body.get("objectIdToMerge")
        if not primary or not merged:
            raise validation("primaryObjectId and objectIdToMerge are required")
        rec = self.state.merge_contacts(str(primary), str(merged))
        with self.state.lock:
            return _json(self.state.contact_json(rec, None))

    async def contacts_search(self, request: Request) -> Response:
        query = parse_search_request(await _body(request))
        if query.after >= settings.SEARCH_RESULT_CAP:
            raise validation(
                settings.MSG_SEARCH_CAP.format(cap=settings.SEARCH_RESULT_CAP),
                context={"after": [str(query.after)]},
            )
        records, total = self.state.search_contacts(query)
        records = records[: max(0, settings.SEARCH_RESULT_CAP - query.after)]
        with self.state.lock:
            results = [
                self.state.contact_json(
                    r, query.properties, defaults=settings.SEARCH_DEFAULT_PROPERTIES
                )
                for r in records
            ]
        body: dict[str, Any] = {"total": total, "results": results}
        nxt = query.after + len(records)
        if nxt < total and records:
            body["paging"] = {"next": {"after": str(nxt)}}
        return _json(body)

    def _batch_envelope(
        self, results: list[dict[str, Any]], missing: list[str], started: datetime
    ) -> Response:
        body: dict[str, Any] = {
            "status": "COMPLETE",
            "results": results,
            "startedAt": iso(started),
            "completedAt": iso(self.clock.now()),
        }
        if not missing:
            return _json(body)
        body["numErrors"] = 1
        body["errors"] = [
            {
                "status": "error",
                "category": "OBJECT_NOT_FOUND",
                "message": "Could not get some CONTACT objects, they may be deleted or not exist. "
                "Check that ids are valid.",
                "context": {"ids": missing},
                "errors": [],
                "links": {},
            }
        ]
        return _json(body, 207)

    async def contacts_batch_read(self, request: Request) -> Response:
        started = self.clock.now()
        body = await _body(request)
        history = body.get("propertiesWithHistory") or None
        inputs = _batch_inputs(body, with_history=bool(history))
        id_property = body.get("idProperty")
        archived = _bool(request.query_params.get("archived"))
        results, missing, seen = [], [], set()
        with self.state.lock:
            for item in inputs:
                try:
                    rec = self.state.get_contact(
                        str(item.get("id")), archived=archived, id_property=id_property
                    )
                except HubSpotApiError as exc:
                    if exc.status != 404:
                        raise
                    missing.append(str(item.get("id")))
                    continue
                if rec.id in seen:
                    continue
                seen.add(rec.id)
                results.append(
                    self.state.contact_json(
                        rec, body.get("properties") or None, with_history=history
                    )
                )
        return self._batch_envelope(results, missing, started)

    async def contacts_batch_update(self, request: Request) -> Response:
        started = self.clock.now()
        body = await _body(request)
        inputs = _batch_inputs(body)
        _no_duplicates([str(i.get("id")) for i in inputs])
        results, missing = [], []
        with self.state.lock:
            for item in inputs:
                self.state.check_writable(item.get("properties") or {})
            for item in inputs:
                props = dict(item.get("properties") or {})
                try:
                    rec = self.state.update_contact(
                        str(item.get("id")),
                        props,
                        validate=True,
                        source="INTEGRATION",
                        id_property=item.get("idProperty"),
                    )
                except HubSpotApiError as exc:
                    if exc.status != 404:
                        raise
                    missing.append(str(item.get("id")))
                    continue
                results.append(self.state.contact_json(rec, list(props)))
        return self._batch_envelope(results, missing, started)

    async def contacts_batch_upsert(self, request: Request) -> Response:
        started = self.clock.now()
        body = await _body(request)
        inputs = _batch_inputs(body)
        _no_duplicates([str(i.get("id")) for i in inputs])
        results = []
        with self.state.lock:
            for item in inputs:
                self.state.check_writable(item.get("properties") or {})
            for item in inputs:
                props = dict(item.get("properties") or {})
                key, id_property = str(item.get("id")), item.get("idProperty") or "hs_object_id"
                existing: ContactRecord | None
                if id_property == "email":
                    existing = self.state.find_by_email(key)
                else:
                    try:
                        existing = self.state.get_contact(key, id_property=id_property)
                    except HubSpotApiError as exc:
                        if exc.status != 404:
                            raise
                        existing = None
                if existing is None:
                    if id_property == "email":
                        props.setdefault("email", key)
                    elif id_property == "hs_object_id":
                        raise validation(
                            f"Cannot create a contact with hs_object_id {key}; use an idProperty"
                        )
                    rec = self.state.create_contact(props, validate=True, source="INTEGRATION")
                    new = True
                else:
                    rec = self.state.update_contact(
                        existing.id, props, validate=True, source="INTEGRATION"
                    )
                    new = False
                results.append({**self.state.contact_json(rec, list(props)), "new": new})
        return _json(
            {
                "status": "COMPLETE",
                "results": results,
                "startedAt": iso(started),
                "completedAt": iso(self.clock.now()),
            }
        )

    async def contacts_batch_create(self, request: Request) -> Response:
        started = self.clock.now()
        body = await _body(request)
        inputs = _batch_inputs(body)
        with self.state.lock:
            emails = [str((i.get("properties") or {}).get("email", "")).lower() for i in inputs]
            emails = [e for e in emails if e]
            if len(set(emails)) != len(emails):
                raise validation("Duplicate emails found in batch input")
            for item in inputs:
                props = item.get("properties") or {}
                self.state.check_writable(props)
                self.state.check_email_free(props.get("email"), None)
            results = []
            for item in inputs:
                props = dict(item.get("properties") or {})
                rec = self.state.create_contact(props, validate=True, source="INTEGRATION")
                results.append(self.state.contact_json(rec, list(props)))
        return _json(
            {
                "status": "COMPLETE",
                "results": results,
                "startedAt": iso(started),
                "completedAt": iso(self.clock.now()),
            },
            201,
        )

    async def contacts_batch_archive(self, request: Request) -> Response:
        body = await _body(request)
        for item in _batch_inputs(body):
            try:
                self.state.archive_contact(str(item.get("id")))
            except HubSpotApiError as exc:
                if exc.status != 404:
                    raise
        return Response(status_code=204)

    # ------------------------------------------------------------------ properties

    def _object_type(self, request: Request) -> None:
        object_type = request.path_params["objectType"]
        if object_type not in CONTACT_OBJECT_TYPES:
            raise validation(
                f"Unable to infer object type from: {object_type}. The sandbox emulates contacts."
            )

    async def properties_list(self, request: Request) -> Response:
        self._object_type(request)
        archived = _bool(request.query_params.get("archived"))
        with self.state.lock:
            results = [p for p in self.state.properties.values() if p["archived"] == archived]
        return _json({"results": results})

    async def properties_get(self, request: Request) -> Response:
        self._object_type(request)
        name = request.path_params["propertyName"]
        prop = self.state.properties.get(name)
        if prop is None:
            raise not_found(f"Unable to find property {name} on object type contacts")
        return _json(prop)

    async def properties_create(self, request: Request) -> Response:
        self._object_type(request)
        return _json(self.state.create_property(await _body(request)), 201)

    async def property_groups_list(self, request: Request) -> Response:
        self._object_type(request)
        return _json({"results": list(self.state.property_groups.values())})

    async def property_groups_create(self, request: Request) -> Response:
        self._object_type(request)
        return _json(self.state.create_property_group(await _body(request)), 201)

    # ------------------------------------------------------------------ owners

    async def owners_list(self, request: Request) -> Response:
        q = request.query_params
        limit = _int(
            q.get("limit"), "limit", settings.OWNERS_PAGE_DEFAULT, maximum=settings.OWNERS_PAGE_MAX
        )
        start = _offset(q.get("after"))
        owners = [] if _bool(q.get("archived")) else list(self.state.owners)
        if q.get("email"):
            owners = [o for o in owners if o["email"].lower() == q["email"].lower()]
        page = owners[start : start + limit]
        nxt = str(start + limit) if start + limit < len(owners) else None
        return _json({"results": page, **_paging(request, nxt)})

    async def owners_get(self, request: Request) -> Response:
        owner_id = request.path_params["ownerId"]
        key = "userId" if request.query_params.get("idProperty") == "userId" else "id"
        for owner in self.state.owners:
            if str(owner[key]) == owner_id:
                return _json(owner)
        raise not_found(f"Owner {owner_id} not found")

    # ------------------------------------------------------------------ lists

    async def lists_create(self, request: Request) -> Response:
        body = await _body(request)
        missing = [k for k in ("name", "objectTypeId", "processingType") if not body.get(k)]
        if missing:
            raise validation(f"Missing required fields: {', '.join(missing)}")
        lst = self.state.create_list(
            str(body["name"]), str(body["processingType"]), str(body["objectTypeId"])
        )
        return _json({"list": self.state.list_json(lst)})

    async def lists_get(self, request: Request) -> Response:
        lst = self.state.get_list(request.path_params["listId"])
        return _json({"list": self.state.list_json(lst)})

    async def lists_get_by_name(self, request: Request) -> Response:
        lst = self.state.find_list(
            request.path_params["objectTypeId"], request.path_params["listName"]
        )
        return _json({"list": self.state.list_json(lst)})

    async def lists_get_many(self, request: Request) -> Response:
        ids = _multi(request, "listIds") or []
        lists = [self.state.list_json(self.state.lists[i]) for i in ids if i in self.state.lists]
        return _json({"lists": lists})

    async def lists_memberships(self, request: Request) -> Response:
        lst = self.state.get_list(request.path_params["listId"])
        q = request.query_params
        limit = _int(
            q.get("limit"),
            "limit",
            settings.LIST_MEMBERSHIPS_PAGE_DEFAULT,
            maximum=settings.LIST_MEMBERSHIPS_PAGE_MAX,
        )
        start = _offset(q.get("after"))
        with self.state.lock:
            members = sorted(lst.members.items(), key=lambda kv: int(kv[0]))
        page = members[start : start + limit]
        nxt = str(start + limit) if start + limit < len(members) else None
        results = [{"recordId": rid, "membershipTimestamp": iso(at)} for rid, at in page]
        return _json({"results": results, "total": len(members), **_paging(request, nxt)})

    async def _change(self, request: Request, add: list[str], remove: list[str]) -> Response:
        return _json(self.state.change_memberships(request.path_params["listId"], add, remove))

    async def lists_add(self, request: Request) -> Response:
        body = await _body(request)
        if not isinstance(body, list):
            raise validation("The request body must be an array of record ids")
        return await self._change(request, [str(x) for x in body], [])

    async def lists_remove(self, request: Request) -> Response:
        body = await _body(request)
        if not isinstance(body, list):
            raise validation("The request body must be an array of record ids")
        return await self._change(request, [], [str(x) for x in body])

    async def lists_add_and_remove(self, request: Request) -> Response:
        body = await _body(request)
        return await self._change(
            request,
            [str(x) for x in body.get("recordIdsToAdd") or []],
            [str(x) for x in body.get("recordIdsToRemove") or []],
        )

    async def lists_record_memberships(self, request: Request) -> Response:
        rid = self.state.resolve_id(request.path_params["recordId"])
        with self.state.lock:
            results = [
                {
                    "listId": lst.list_id,
                    "listVersion": lst.version,
                    "isPublicList": False,
                    "firstAddedTimestamp": iso(lst.members[rid]),
                    "lastAddedTimestamp": iso(lst.members[rid]),
                }
                for lst in self.state.lists.values()
                if rid in lst.members
            ]
        return _json({"results": results, "total": len(results)})

    # ------------------------------------------------------------------ legacy email events

    async def email_events(self, request: Request) -> Response:
        q = request.query_params
        limit = min(
            _int(q.get("limit"), "limit", settings.EMAIL_EVENTS_LIMIT_DEFAULT),
            settings.EMAIL_EVENTS_LIMIT_MAX,
        )
        offset = _offset(q.get("offset"))
        start = _dt_param(q.get("startTimestamp"), "startTimestamp")
        end = _dt_param(q.get("endTimestamp"), "endTimestamp")
        campaign = q.get("campaignId")
        events, has_more = self.state.query_email_events(
            start=start,
            end=end,
            event_type=q.get("eventType"),
            recipient=q.get("recipient"),
            campaign_id=int(campaign) if campaign else None,
            offset=offset,
            limit=limit,
        )
        return _json({"events": events, "hasMore": has_more, "offset": str(offset + len(events))})

    # ------------------------------------------------------------------ forms

    async def forms_list(self, request: Request) -> Response:
        q = request.query_params
        limit = _int(
            q.get("limit"), "limit", settings.FORMS_PAGE_DEFAULT, maximum=settings.FORMS_PAGE_MAX
        )
        start = _offset(q.get("after"))
        forms = [f for f in self.state.forms.values() if f["archived"] == _bool(q.get("archived"))]
        page = forms[start : start + limit]
        nxt = str(start + limit) if start + limit < len(forms) else None
        return _json({"results": page, **_paging(request, nxt)})

    async def forms_get(self, request: Request) -> Response:
        form = self.state.forms.get(request.path_params["formId"])
        if form is None:
            raise not_found(f"Form {request.path_params['formId']} does not exist")
        return _json(form)

    async def form_submissions(self, request: Request) -> Response:
        guid = request.path_params["formGuid"]
        if guid not in self.state.forms:
            raise not_found(f"Form {guid} does not exist")
        q = request.query_params
        limit = _int(
            q.get("limit"),
            "limit",
            settings.FORM_SUBMISSIONS_LIMIT_DEFAULT,
            maximum=settings.FORM_SUBMISSIONS_LIMIT_MAX,
        )
        cursor = _decode_cursor(q.get("after"))
        with self.state.lock:
            subs = self.state.form_submissions.get(guid, [])
            # newest first; the cursor is the last (submittedAt, conversionId) served, so
            # submissions arriving while a client pages do not shift its pages
            start = 0
            if cursor is not None:
                while start < len(subs) and _sub_key(subs[start]) >= cursor:
                    start += 1
            chunk = subs[start : start + limit]
            page = [s.json() for s in chunk]
            more = start + limit < len(subs)
            nxt = _encode_cursor(*_sub_key(chunk[-1])) if more and chunk else None
        return _json({"results": page, **_paging(request, nxt)})

    # ------------------------------------------------------------------ web analytics

    async def web_events(self, request: Request) -> Response:
        if not self.events_api:
            raise HubSpotApiError(
                403,
                "MISSING_SCOPES",
                settings.MSG_MISSING_SCOPES,
                errors=[{"message": "One or more of the following scopes are required.",
                         "context": {"requiredGranularScopes": [settings.EVENTS_SCOPE]}}],
            )
        q = request.query_params
        limit = _int(
            q.get("limit"),
            "limit",
            settings.WEB_EVENTS_PAGE_DEFAULT,
            maximum=settings.WEB_EVENTS_PAGE_MAX,
        )
        cursor = _decode_cursor(q.get("after"))
        start = 0
        object_type = q.get("objectType")
        event_type = q.get("eventType")
        if object_type and object_type not in CONTACT_OBJECT_TYPES:
            return _json({"results": []})
        if event_type and event_type != settings.PAGE_VIEW_EVENT_TYPE:
            return _json({"results": []})
        # newest first unless asked otherwise ("ASCENDING", "occurredAt"; "-occurredAt", "DESCENDING")
        sort = (_multi(request, "sort") or ["DESCENDING"])[0]
        descending = sort.startswith("-") or sort.upper().startswith("DESC")
        object_id = q.get("objectId")
        if object_id is None and q.get("objectProperty.email"):
            found = self.state.find_by_email(q["objectProperty.email"])
            if found is None:
                return _json({"results": []})
            object_id = found.id
        occurred_after = _dt_param(q.get("occurredAfter"), "occurredAfter")
        occurred_before = _dt_param(q.get("occurredBefore"), "occurredBefore")
        if object_id is None:  # portal-wide: an index, not a sort of every view a page
            page, more = self.state.portal_page_views(
                occurred_after=occurred_after, occurred_before=occurred_before,
                after=cursor, descending=descending, limit=limit)
            return self._web_events_page(request, page, more)
        views = self.state.query_page_views(
            object_id,
            occurred_after=occurred_after,
            occurred_before=occurred_before,
            descending=descending,
        )
        if cursor is not None:
            keys = [(ms(p.occurred_at), p.id) for p in views]
            start = next(
                (i for i, k in enumerate(keys) if (k < cursor if descending else k > cursor)),
                len(views),
            )
        page = views[start : start + limit]
        return self._web_events_page(request, page, start + limit < len(views))

    def _web_events_page(self, request: Request, page: list[Any], more: bool) -> Response:
        results = [
            {
                "objectType": "CONTACT",
                "objectId": p.contact_id,
                "eventType": settings.PAGE_VIEW_EVENT_TYPE,
                "occurredAt": iso(p.occurred_at),
                "id": p.id,
                "properties": {"hs_url": p.url, "hs_title": p.title, "hs_session_id": p.session_id},
            }
            for p in page
        ]
        nxt = _encode_cursor(ms(page[-1].occurred_at), page[-1].id) if more and page else None
        return _json({"results": results, **_paging(request, nxt)})

    async def web_event_types(self, request: Request) -> Response:
        return _json({"eventTypes": [settings.PAGE_VIEW_EVENT_TYPE]})

    # ------------------------------------------------------------------ marketing events

    def _event_json(self, event_id: str) -> dict[str, Any]:
        e = self.state.marketing_events[event_id]
        meta = self.state.marketing_event_meta.get(event_id, {})
        counts = self._counters(event_id)
        created = meta.get("createdAt") or e.start
        return {
            "objectId": e.id,
            "externalEventId": e.external_event_id,
            "eventName": e.name,
            "eventType": e.event_type,
            "startDateTime": iso(e.start),
            "endDateTime": iso(e.end),
            "eventOrganizer": e.organizer,
            "eventDescription": "",
            "eventUrl": "",
            "eventCancelled": bool(meta.get("cancelled")),
            "eventCompleted": e.end <= self.clock.now(),
            "customProperties": [],
            "createdAt": iso(created),
            "updatedAt": iso(created),
            "appInfo": {"id": str(APP_ID), "name": APP_NAME},
            "registrants": counts["registered"],
            "attendees": counts["attended"],
            "cancellations": counts["cancelled"],
            "noShows": counts["noShows"],
        }

    def _counters(self, event_id: str) -> dict[str, int]:
        names = {
            "REGISTERED": "registered",
            "ATTENDED": "attended",
            "CANCELLED": "cancelled",
            "NO_SHOW": "noShows",
        }
        counts = dict.fromkeys(names.values(), 0)
        with self.state.lock:
            for p in self.state.participations:
                if p["eventId"] == event_id:
                    counts[names[p["state"]]] += 1
        return counts

    async def marketing_events_list(self, request: Request) -> Response:
        q = request.query_params
        limit = _int(
            q.get("limit"),
            "limit",
            settings.MARKETING_EVENTS_PAGE_DEFAULT,
            maximum=settings.MARKETING_EVENTS_PAGE_MAX,
        )
        start = _offset(q.get("after"))
        ids = sorted(self.state.marketing_events, key=lambda i: (len(i), i))
        page = [self._event_json(i) for i in ids[start : start + limit]]
        nxt = str(start + limit) if start + limit < len(ids) else None
        return _json({"results": page, **_paging(request, nxt)})

    async def marketing_events_get(self, request: Request) -> Response:
        event_id = request.path_params["objectId"]
        if event_id not in self.state.marketing_events:
            raise not_found(f"Marketing event {event_id} does not exist")
        return _json(self._event_json(event_id))

    def _event_by_external(self, request: Request) -> str:
        external = request.path_params["externalEventId"]
        if request.path_params["externalAccountId"] != str(APP_ID):
            raise not_found(
                f"No marketing event for account {request.path_params['externalAccountId']}"
            )
        for e in self.state.marketing_events.values():
            if e.external_event_id == external:
                return e.id
        raise not_found(f"Marketing event {external} does not exist")

    def _breakdown(self, request: Request, parts: list[dict[str, Any]]) -> Response:
        q = request.query_params
        limit = _int(
            q.get("limit"),
            "limit",
            settings.PARTICIPATIONS_PAGE_DEFAULT,
            maximum=settings.PARTICIPATIONS_PAGE_MAX,
        )
        start = _offset(q.get("after"))
        state = q.get("state")
        if state:
            parts = [p for p in parts if p["state"] == state.upper()]
        page = parts[start : start + limit]
        results = []
        for p in page:
            contact = self.state.contacts.get(p["contactId"])
            cprops = contact.props if contact else {}
            event = self.state.marketing_events.get(p["eventId"])
            results.append(
                {
                    "id": p["id"],
                    "createdAt": iso(p["createdAt"]),
                    "properties": {"attendanceState": p["state"], "occurredAt": p["occurredAt"]},
                    "associations": {
                        "contact": {
                            "contactId": p["contactId"],
                            "email": cprops.get("email", ""),
                            "firstname": cprops.get("firstname", ""),
                            "lastname": cprops.get("lastname", ""),
                        },
                        "marketingEvent": {
                            "marketingEventId": p["eventId"],
                            "name": event.name if event else "",
                            "externalEventId": event.external_event_id if event else "",
                            "externalAccountId": str(APP_ID),
                        },
                    },
                }
            )
        nxt = str(start + limit) if start + limit < len(parts) else None
        return _json({"total": len(parts), "results": results, **_paging(request, nxt)})

    def _contact_identifier(self, identifier: str) -> str | None:
        if "@" in identifier:
            rec = self.state.find_by_email(identifier)
            return rec.id if rec else None
        return self.state.resolve_id(identifier)

    async def participations_by_contact(self, request: Request) -> Response:
        cid = self._contact_identifier(request.path_params["contactIdentifier"])
        with self.state.lock:
            parts = [p for p in self.state.participations if p["contactId"] == cid]
        return self._breakdown(request, parts)

    async def participations_by_event(self, request: Request) -> Response:
        event_id = request.path_params["marketingEventId"]
        if event_id not in self.state.marketing_events:
            raise not_found(f"Marketing event {event_id} does not exist")
        return self._event_breakdown(request, event_id)

    def _event_breakdown(self, request: Request, event_id: str) -> Response:
        identifier = request.query_params.get("contactIdentifier")
        cid = self._contact_identifier(identifier) if identifier else None
        with self.state.lock:
            parts = [
                p
                for p in self.state.participations
                if p["eventId"] == event_id and (cid is None or p["contactId"] == cid)
            ]
        return self._breakdown(request, parts)

    async def participations_by_external_event(self, request: Request) -> Response:
        return self._event_breakdown(request, self._event_by_external(request))

    async def participation_counters(self, request: Request) -> Response:
        event_id = request.path_params["marketingEventId"]
        if event_id not in self.state.marketing_events:
            raise not_found(f"Marketing event {event_id} does not exist")
        return _json(self._counters(event_id))

    async def participation_counters_external(self, request: Request) -> Response:
        return _json(self._counters(self._event_by_external(request)))

    # ------------------------------------------------------------------ sandbox

    async def sandbox_stats(self, request: Request) -> Response:
        return _json({"requests": self.stats.snapshot(), "records": self.state.record_counts()})

    async def sandbox_records(self, request: Request) -> Response:
        data = self.state.dump(request.path_params["object"])
        if data is None:
            raise not_found(f"Unknown sandbox object {request.path_params['object']}")
        return _json(data)


def _checked(route: Route) -> Route:
    """The route, refusing first any body its official request schema refuses (HubSpot's 400);
    routes whose body no spec describes are returned as they are."""
    methods = (route.methods or set()) - {"HEAD"}
    validator = request_validator(next(iter(methods)), route.path) if len(methods) == 1 else None
    if validator is None:
        return route
    handler: Handler = route.endpoint

    async def checked(request: Request) -> Response:
        body = await _body(request)
        check_body(validator, body)
        request.scope[PARSED_BODY] = body
        return await handler(request)

    return Route(route.path, checked, methods=sorted(methods))


def _normalise_path(path: str) -> str:
    """HubSpot answers paths with or without a trailing slash (the SDK sends some with one)."""
    return path.rstrip("/") if len(path) > 1 and path.endswith("/") else path


def _is_search(method: str, path: str) -> bool:
    """Whether a request is a CRM search (its own rate limit, no rate-limit headers)."""
    return (
        method == "POST"
        and path.endswith("/search")
        and path.startswith(settings.CONTACTS_PREFIXES)
    )


def _bearer(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            text = value.decode("latin-1").strip()
            if text.lower().startswith("bearer "):
                return text[7:].strip() or None
            return None
    return None


class _Gate:
    """Authenticates, rate-limits and adds HubSpot's response headers before routing."""

    def __init__(self, app: ASGIApp, sandbox: HubSpotSandbox) -> None:
        self.app = app
        self.sandbox = sandbox

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = _normalise_path(scope["path"])
        if path != scope["path"]:
            scope = {**scope, "path": path, "raw_path": path.encode()}
        if path.startswith(settings.SANDBOX_PREFIX):
            await self.app(scope, receive, send)
            return
        target = len(scope.get("raw_path") or path) + len(scope.get("query_string") or b"") + 1
        if target > settings.URL_MAX_CHARS:
            payload = settings.MSG_URI_TOO_LONG.encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 414,
                    "headers": [
                        (b"content-type", b"text/html"),
                        (b"content-length", str(len(payload)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": payload})
            return
        correlation = str(uuid.uuid4())
        token = _bearer(scope)
        if token is None or token not in self.sandbox.access_tokens:
            body = {
                "status": "error",
                "message": settings.MSG_AUTH_MISSING,
                "correlationId": correlation,
                "category": "INVALID_AUTHENTICATION",
            }
            await _send_json(
                send,
                401,
                body,
                {settings.H_CORRELATION: correlation, "x-hubspot-auth-failure": "401 Unauthorized"},
            )
            return
        is_search = _is_search(scope["method"], path)
        decision = self.sandbox.limiter.check(token, is_search=is_search)
        extra = {**decision.headers, settings.H_CORRELATION: correlation}
        if decision.policy is not None:
            body = rate_limit_body(decision.policy)
            body["correlationId"] = correlation
            await _send_json(send, 429, body, extra)
            return
        raw_extra = [(k.lower().encode(), v.encode()) for k, v in extra.items()]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": list(message.get("headers", [])) + raw_extra}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class _DateHeader:
    """Writes the Date header of every answer from the sandbox clock (RFC 7231 format)."""

    def __init__(self, app: ASGIApp, clock: SandboxClock) -> None:
        self.app = app
        self.clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_date(message: Message) -> None:
            if message["type"] == "http.response.start":
                stamp = format_datetime(self.clock.now().astimezone(UTC), usegmt=True).encode()
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"date"]
                message = {**message, "headers": [*headers, (b"date", stamp)]}
            await send(message)

        await self.app(scope, receive, send_with_date)


async def _send_json(
    send: Send, status: int, body: dict[str, Any], headers: dict[str, str]
) -> None:
    payload = json.dumps(body).encode()
    raw = [
        (b"content-type", b"application/json;charset=utf-8"),
        (b"content-length", str(len(payload)).encode()),
    ]
    raw += [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": payload})
