"""The HTTP face of the emulated org: OAuth 2.0 and SOAP login, the REST API under
/services/data/vNN.N, the daily API allocation, and the /__sandbox__ inspection routes.

Shapes checked against the REST API Developer Guide
(https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/) and the OAuth
flows of https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_flows.htm.
"""

from __future__ import annotations

import base64
import collections
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs
from xml.etree import ElementTree

import jwt
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from . import settings, soql
from .bulk import BulkIngest, IngestJob
from .ids import IdFactory, is_valid_id
from .schema import describe_global, describe_object, object_def
from .state import RecordError, RequestError, SalesforceState, format_datetime, parse_datetime

__all__ = ["AuthConfig", "SalesforceApp", "route_of"]

_COMPILED = [(re.compile(pattern), name) for pattern, name in settings.ROUTES]


@dataclass
class AuthConfig:
    username: str
    password: str
    security_token: str
    consumer_key: str
    consumer_secret: str
    jwt_public_key_pem: bytes | None
    session_ttl_seconds: int


@dataclass
class _Session:
    user_id: str
    last_used: datetime
    pinned: bool = False  # the fixed session: only expire_sessions() ends it


@dataclass
class _Cursor:
    rows: list[dict[str, Any]]
    batch: int
    total: int
    last_used: datetime


def route_of(scope: Scope) -> str:
    """Route template of a request, for statistics."""
    path: str = scope["path"]
    m = settings.DATA_PREFIX_RE.match(path)
    if m:
        rest = m.group("rest") or "/"
        for pattern, name in _COMPILED:
            if pattern.match(rest):
                return f"{settings.DATA_ROOT}/vXX.X{name if name != '/' else ''}"
        return f"{settings.DATA_ROOT}/vXX.X/<unknown>"
    if settings.SOAP_LOGIN_RE.match(path):
        return f"{settings.SOAP_PARTNER_ROOT}/XX.X"
    return path


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        json.dumps(body),
        status_code=status,
        headers=headers,
        media_type="application/json;charset=UTF-8",
    )


def _error(status: int, code: str, message: str, **extra: Any) -> Response:
    return _json([{"message": message, "errorCode": code, **extra}], status)


def _record_error_response(err: RecordError, status: int = 400) -> Response:
    """A single-record REST failure: `[{"message","errorCode","fields"}]` (+ duplicateResult)."""
    body = []
    for e in err.errors:
        item = {"message": e["message"], "errorCode": e["statusCode"], "fields": e["fields"]}
        if "duplicateResult" in e:
            item["duplicateResult"] = e["duplicateResult"]
        body.append(item)
    return _json(body, status)


def _header_flag(request: Request, name: str, default: bool) -> bool:
    """A TRUE/FALSE header, case-insensitive; absent means `default` (Sforce-Auto-Assign is
    TRUE when absent, and an AssignmentRule id also runs the rule: headers_autoassign.htm)."""
    value = request.headers.get(name)
    if value is None:
        return default
    return value.strip().lower() not in ("false", "0")


def _allow_save(request: Request) -> bool:
    header = request.headers.get(settings.DUPLICATE_RULE_HEADER, "")
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key.strip().lower() == "allowsave":
            return value.strip().lower() == "true"
    return False


class SalesforceApp:
    """ASGI app of the emulated org."""

    def __init__(
        self,
        state: SalesforceState,
        auth: AuthConfig,
        *,
        daily_allocation: int,
        stats: Any,
        bulk_batch_allocation: int = settings.DEFAULT_BULK_BATCH_ALLOCATION,
    ) -> None:
        self.state = state
        self.auth = auth
        self.daily_allocation = daily_allocation
        self.stats = stats
        self.bulk = BulkIngest(state.clock, batch_allocation=bulk_batch_allocation)
        self.throttle_style = "concurrency"  # how the "429" fault renders: or "unavailable"
        self._lock = threading.Lock()
        self._sessions: dict[str, _Session] = {}
        self._usage: collections.deque[datetime] = collections.deque()
        self._cursors: dict[str, _Cursor] = {}
        self._locators = IdFactory(pod="0AB")
        self.session_id = self.issue_session(pinned=True)

    # ----------------------------------------------------------------- sessions and usage
    def issue_session(self, user_id: str | None = None, *, pinned: bool = False) -> str:
        """A new valid session id (access token)."""
        token = f"{settings.ORG_ID[:15]}!AQ{secrets.token_urlsafe(72)[:96]}"
        with self._lock:
            self._sessions[token] = _Session(
                user_id or self.state.integration_user_id, self.state.clock.now(), pinned
            )
        return token

    def expire_sessions(self) -> None:
        """End every session; a new pinned session replaces `session_id`."""
        with self._lock:
            self._sessions.clear()
        self.session_id = self.issue_session(pinned=True)

    def _session(self, request: Request) -> _Session | None:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() not in ("bearer", "oauth") or not token:
            return None
        now = self.state.clock.now()
        with self._lock:
            session = self._sessions.get(token.strip())
            if session is None:
                return None
            ttl = timedelta(seconds=self.auth.session_ttl_seconds)
            if not session.pinned and now - session.last_used > ttl:
                del self._sessions[token.strip()]
                return None
            session.last_used = now
            return session

    def _prune(self, now: datetime) -> None:
        horizon = now - timedelta(seconds=settings.DAILY_WINDOW_SECONDS)
        while self._usage and self._usage[0] <= horizon:
            self._usage.popleft()

    def open_cursors(self) -> int:
        """Query cursors still held (not exhausted, not yet pruned)."""
        with self._lock:
            return len(self._cursors)

    def api_usage(self) -> int:
        """Calls counted in the rolling 24 hours of the sandbox clock."""
        with self._lock:
            self._prune(self.state.clock.now())
            return len(self._usage)

    def _count_call(self) -> bool:
        now = self.state.clock.now()
        with self._lock:
            self._prune(now)
            if len(self._usage) >= self.daily_allocation:
                return False
            self._usage.append(now)
            return True

    def _limit_header(self) -> dict[str, str]:
        return {settings.LIMIT_INFO_HEADER: f"api-usage={self.api_usage()}/{self.daily_allocation}"}

    # ----------------------------------------------------------------- faults
    async def render_fault(self, fault: Any, scope: Scope) -> tuple[int, dict[str, str], bytes]:
        """Salesforce's answers for injected faults. REST is not throttled with 429: the
        "429" kind renders as the over-concurrency 403 (or 503 SERVER_UNAVAILABLE)."""
        headers = {"content-type": "application/json;charset=UTF-8"}
        if fault.kind == "429" and self.throttle_style == "concurrency":
            body = [
                {"message": settings.MSG_CONCURRENT_LIMIT, "errorCode": "REQUEST_LIMIT_EXCEEDED"}
            ]
            return 403, headers, json.dumps(body).encode()
        if fault.kind == "500":
            body = [{"message": settings.MSG_UNKNOWN_EXCEPTION, "errorCode": "UNKNOWN_EXCEPTION"}]
            return 500, headers, json.dumps(body).encode()
        body = [{"message": settings.MSG_SERVER_UNAVAILABLE, "errorCode": "SERVER_UNAVAILABLE"}]
        return 503, headers, json.dumps(body).encode()

    # ----------------------------------------------------------------- ASGI
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        try:
            response = await self._dispatch(request)
        except RequestError as err:
            response = _json(err.body(), err.status)
        await response(scope, receive, send)

    async def _dispatch(self, request: Request) -> Response:
        path = request.url.path
        if path.startswith(settings.SANDBOX_PREFIX):
            return self._sandbox_route(request, path)
        if path == settings.OAUTH_TOKEN_PATH and request.method == "POST":
            return await self._oauth_token(request)
        soap = settings.SOAP_LOGIN_RE.match(path)
        if soap and request.method == "POST":
            return await self._soap_login(request, soap.group("version"))
        if path.rstrip("/") == settings.DATA_ROOT and request.method == "GET":
            return _json(
                [
                    {"label": label, "url": settings.data_path(v), "version": v}
                    for v, label in settings.VERSION_LABELS.items()
                ]
            )
        m = settings.DATA_PREFIX_RE.match(path)
        if not m or float(m.group("version")) < settings.MIN_API_VERSION:
            return _error(404, "NOT_FOUND", settings.MSG_NOT_FOUND)
        if self._session(request) is None:
            return _json(
                [{"message": settings.MSG_SESSION_INVALID, "errorCode": "INVALID_SESSION_ID"}],
                401,
                {"WWW-Authenticate": "Token"},
            )
        if not self._count_call():
            response = _error(403, "REQUEST_LIMIT_EXCEEDED", settings.MSG_REQUEST_LIMIT)
        else:
            try:
                response = await self._rest(request, m.group("version"), m.group("rest") or "/")
            except RequestError as err:
                response = _json(err.body(), err.status)
        response.headers[settings.LIMIT_INFO_HEADER] = (
            f"api-usage={self.api_usage()}/{self.daily_allocation}"
        )
        return response

    # ----------------------------------------------------------------- /__sandbox__
    def _sandbox_route(self, request: Request, path: str) -> Response:
        rest = path[len(settings.SANDBOX_PREFIX) :]
        if rest.rstrip("/") == "/stats":
            return _json(
                {
                    "requests": self.stats.snapshot(),
                    "records": self.state.counts(),
                    "api_usage": self.api_usage(),
                    "bulk": {
                        "jobs": len(self.bulk.jobs()),
                        "jobs_by_state": dict(
                            collections.Counter(job.state for job in self.bulk.jobs())
                        ),
                        "records_processed": sum(job.processed for job in self.bulk.jobs()),
                        "batches_used": self.bulk.batches_used(),
                    },
                }
            )
        m = re.match(r"^/records/(\w+)/?$", rest)
        if m and object_def(m.group(1)):
            return _json(self.state.records(m.group(1)))
        return _error(404, "NOT_FOUND", settings.MSG_NOT_FOUND)

    # ----------------------------------------------------------------- auth
    def _token_body(self, request: Request, user_id: str) -> dict[str, str]:
        token = self.issue_session(user_id)
        base = f"{request.url.scheme}://{request.url.netloc}"
        issued = str(int(time.time() * 1000))
        identity = f"{base}{settings.IDENTITY_ROOT}/{settings.ORG_ID}/{user_id}"
        signature = base64.b64encode(
            hmac.new(
                self.auth.consumer_secret.encode(), (identity + issued).encode(), hashlib.sha256
            ).digest()
        ).decode()
        return {
            "access_token": token,
            "instance_url": base,
            "id": identity,
            "token_type": "Bearer",
            "issued_at": issued,
            "signature": signature,
        }

    def _user_by_username(self, username: str | None) -> dict[str, Any] | None:
        if not username:
            return None
        return next((u for u in self.state.find("User", Username=username) if u["IsActive"]), None)

    async def _oauth_token(self, request: Request) -> Response:
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        grant = form.get("grant_type")

        def oauth_error(code: str, description: str) -> Response:
            return _json({"error": code, "error_description": description}, 400)

        if grant == "password":
            if form.get("client_id") != self.auth.consumer_key:
                return oauth_error("invalid_client_id", "client identifier invalid")
            if form.get("client_secret") != self.auth.consumer_secret:
                return oauth_error("invalid_client", "invalid client credentials")
            user = self._user_by_username(form.get("username"))
            secret = self.auth.password + self.auth.security_token
            if (
                user is None
                or form.get("username") != self.auth.username
                or form.get("password") != secret
            ):
                return oauth_error("invalid_grant", "authentication failure")
            return _json(self._token_body(request, user["Id"]))
        if grant == "urn:ietf:params:oauth:grant-type:jwt-bearer":
            if not self.auth.jwt_public_key_pem:
                return oauth_error("invalid_grant", "invalid assertion")
            base = f"{request.url.scheme}://{request.url.netloc}"
            try:
                claims = jwt.decode(
                    form.get("assertion", ""),
                    self.auth.jwt_public_key_pem,
                    algorithms=["RS256"],
                    audience=[*settings.JWT_AUDIENCES, base],
                    options={"require": ["iss", "sub", "aud", "exp"]},
                )
            except jwt.ExpiredSignatureError:
                return oauth_error("invalid_grant", "expired authorization code")
            except jwt.InvalidAudienceError:
                return oauth_error("invalid_grant", "audience is invalid")
            except jwt.PyJWTError:
                return oauth_error("invalid_grant", "invalid assertion")
            if claims.get("iss") != self.auth.consumer_key:
                return oauth_error("invalid_client_id", "client identifier invalid")
            user = self._user_by_username(claims.get("sub"))
            if user is None:
                return oauth_error("invalid_grant", "user hasn't approved this consumer")
            return _json(self._token_body(request, user["Id"]))
        if grant == "client_credentials":
            client_id, client_secret = form.get("client_id"), form.get("client_secret")
            basic = request.headers.get("authorization", "")
            if basic.lower().startswith("basic "):
                try:
                    decoded = base64.b64decode(basic[6:]).decode()
                except ValueError:
                    decoded = ":"
                client_id, _, client_secret = decoded.partition(":")
            if client_id != self.auth.consumer_key or client_secret != self.auth.consumer_secret:
                return oauth_error("invalid_client", "invalid client credentials")
            return _json(self._token_body(request, self.state.integration_user_id))
        return oauth_error("unsupported_grant_type", "grant type not supported")

    async def _soap_login(self, request: Request, version: str) -> Response:
        body = await request.body()
        username = password = None
        try:
            root = ElementTree.fromstring(body)
            for el in root.iter():
                tag = el.tag.rsplit("}", 1)[-1]
                if tag == "username":
                    username = (el.text or "").strip()
                elif tag == "password":
                    password = el.text or ""
        except ElementTree.ParseError:
            pass
        user = self._user_by_username(username)
        if (
            user is None
            or username != self.auth.username
            or password != self.auth.password + self.auth.security_token
        ):
            return Response(
                _soap_fault("INVALID_LOGIN", settings.SOAP_INVALID_LOGIN),
                status_code=500,
                media_type="text/xml;charset=UTF-8",
            )
        token = self.issue_session(user["Id"])
        base = f"{request.url.scheme}://{request.url.netloc}"
        return Response(
            _soap_login_ok(base, version, token, user), media_type="text/xml;charset=UTF-8"
        )

    # ----------------------------------------------------------------- REST dispatch
    async def _rest(self, request: Request, version: str, rest: str) -> Response:
        for pattern, name in _COMPILED:
            m = pattern.match(rest)
            if m:
                handler = getattr(self, "_r_" + re.sub(r"\W+", "_", name).strip("_"), None)
                if handler is not None:
                    response: Response = await handler(request, version, **m.groupdict())
                    return response
        return _error(404, "NOT_FOUND", settings.MSG_NOT_FOUND)

    async def _body(self, request: Request) -> Any:
        raw = await request.body()
        try:
            return json.loads(raw) if raw else {}
        except json.JSONDecodeError as exc:
            raise RequestError(
                400,
                "JSON_PARSER_ERROR",
                f"Unexpected character at [line:{exc.lineno}, column:{exc.colno}]",
            ) from exc

    def _obj(self, sobject: str) -> Any:
        obj = object_def(sobject)
        if obj is None:
            raise RequestError(404, "NOT_FOUND", settings.MSG_NOT_FOUND)
        return obj

    async def _r_(self, request: Request, version: str) -> Response:
        base = settings.data_path(version)
        return _json(
            {
                "limits": f"{base}/limits",
                "sobjects": f"{base}/sobjects",
                "query": f"{base}/query",
                "queryAll": f"{base}/queryAll",
                "composite": f"{base}/composite",
            }
        )

    async def _r_limits(self, request: Request, version: str) -> Response:
        used = self.api_usage()
        return _json(
            {
                "DailyApiRequests": {
                    "Max": self.daily_allocation,
                    "Remaining": max(self.daily_allocation - used, 0),
                },
                "DailyAsyncApexExecutions": {"Max": 250000, "Remaining": 250000},
                "DailyBulkApiBatches": {
                    "Max": self.bulk.batch_allocation,
                    "Remaining": max(self.bulk.batch_allocation - self.bulk.batches_used(), 0),
                },
                "DailyBulkV2QueryFileStorageMB": {"Max": 976562, "Remaining": 976562},
                "DailyBulkV2QueryJobs": {"Max": 10000, "Remaining": 10000},
                "DataStorageMB": {"Max": 1024, "Remaining": 1024},
                "FileStorageMB": {"Max": 1024, "Remaining": 1024},
                "HourlyTimeBasedWorkflow": {"Max": 1000, "Remaining": 1000},
            }
        )

    # -- query
    def _batch_size(self, request: Request) -> int:
        header = request.headers.get(settings.QUERY_OPTIONS_HEADER, "")
        m = re.search(r"batchSize\s*=\s*(\d+)", header, re.IGNORECASE)
        if not m:
            return settings.QUERY_DEFAULT_BATCH
        return max(settings.QUERY_MIN_BATCH, min(settings.QUERY_MAX_BATCH, int(m.group(1))))

    async def _query(self, request: Request, version: str, include_deleted: bool) -> Response:
        text = request.query_params.get("q")
        if not text:
            return _error(400, "MALFORMED_QUERY", "A query string must be provided.")
        query = soql.parse(text)
        total, rows = soql.execute(self.state, query, include_deleted=include_deleted)
        if query.count:
            return _json({"totalSize": total, "done": True, "records": []})
        batch = self._batch_size(request)
        if len(rows) <= batch:
            return _json({"totalSize": total, "done": True, "records": rows})
        locator = self._locators.new_raw(settings.QUERY_LOCATOR_PREFIX)
        now = self.state.clock.now()
        idle = timedelta(seconds=settings.QUERY_LOCATOR_IDLE_SECONDS)
        with self._lock:
            # abandoned cursors expire as the real ones do, and free their rows
            for stale in [k for k, c in self._cursors.items() if now - c.last_used > idle]:
                del self._cursors[stale]
            self._cursors[locator] = _Cursor(rows, batch, total, now)
        return self._page(version, include_deleted, locator, 0)

    def _page(self, version: str, include_deleted: bool, locator: str, pos: int) -> Response:
        with self._lock:
            cursor = self._cursors.get(locator)
            now = self.state.clock.now()
            idle = timedelta(seconds=settings.QUERY_LOCATOR_IDLE_SECONDS)
            if cursor is None or now - cursor.last_used > idle or pos >= len(cursor.rows):
                self._cursors.pop(locator, None)
                return _error(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
            cursor.last_used = now
            end = pos + cursor.batch
            body: dict[str, Any] = {"totalSize": cursor.total, "done": end >= len(cursor.rows)}
            if not body["done"]:
                endpoint = "queryAll" if include_deleted else "query"
                body["nextRecordsUrl"] = f"{settings.data_path(version)}/{endpoint}/{locator}-{end}"
            else:
                del self._cursors[locator]
            body["records"] = cursor.rows[pos:end]
        return _json(body)

    async def _r_query(self, request: Request, version: str) -> Response:
        return await self._query(request, version, False)

    async def _r_queryAll(self, request: Request, version: str) -> Response:
        return await self._query(request, version, True)

    async def _locator_page(self, version: str, locator: str, deleted: bool) -> Response:
        loc, _, pos = locator.partition("-")
        if not pos.isdigit():
            return _error(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        return self._page(version, deleted, loc, int(pos))

    async def _r_query_locator(self, request: Request, version: str, locator: str) -> Response:
        return await self._locator_page(version, locator, False)

    async def _r_queryAll_locator(self, request: Request, version: str, locator: str) -> Response:
        return await self._locator_page(version, locator, True)

    # -- describe
    async def _r_sobjects(self, request: Request, version: str) -> Response:
        return _json(describe_global(version))

    def _describe(self, obj: Any, version: str) -> dict[str, Any]:
        picklists = {
            f.name: self.state.picklist_values(obj, f)
            for f in obj.fields.values()
            if f.type in ("picklist", "combobox")
        }
        return describe_object(obj, version, picklists)

    async def _r_sobjects_sobject_describe(
        self, request: Request, version: str, sobject: str
    ) -> Response:
        return _json(self._describe(self._obj(sobject), version))

    # -- single records
    async def _r_sobjects_sobject(self, request: Request, version: str, sobject: str) -> Response:
        obj = self._obj(sobject)
        if request.method == "GET":
            describe = self._describe(obj, version)
            describe.pop("fields")
            return _json({"objectDescribe": describe, "recentItems": []})
        if request.method != "POST":
            return _error(
                405,
                "METHOD_NOT_ALLOWED",
                f"HTTP Method '{request.method}' not allowed. Allowed are GET,POST",
            )
        body = await self._body(request)
        if not isinstance(body, dict):
            raise RequestError(
                400,
                "JSON_PARSER_ERROR",
                f"Cannot deserialize instance of {obj.name} from START_ARRAY value",
            )
        self.state.check_types(obj.name, body)
        try:
            record_id = self.state.insert(
                obj.name,
                body,
                auto_assign=_header_flag(request, settings.AUTO_ASSIGN_HEADER, True)
                if obj.name == "Lead"
                else None,
                allow_duplicates=_allow_save(request),
            )
        except RecordError as err:
            return _record_error_response(err)
        return _json({"id": record_id, "success": True, "errors": []}, 201)

    def _fields_param(self, request: Request, obj: Any) -> list[str] | None:
        raw = request.query_params.get("fields")
        if not raw:
            return None
        names = []
        for part in raw.split(","):
            f = obj.field(part.strip())
            if f is None:
                raise RequestError(
                    400,
                    "INVALID_FIELD",
                    f"No such column '{part.strip()}' on sobject of type {obj.name}",
                )
            names.append(f.name)
        return names

    def _render(self, obj: Any, record: dict[str, Any], fields: list[str] | None) -> dict[str, Any]:
        if fields is None:
            return record
        return {"attributes": record["attributes"], **{n: record[n] for n in fields}}

    async def _r_sobjects_sobject_id(
        self, request: Request, version: str, sobject: str, id: str
    ) -> Response:
        obj = self._obj(sobject)
        found = self.state.lookup_any(id) if is_valid_id(id) else None
        if found is None or found[0] != obj.name:
            if not is_valid_id(id) and request.method == "GET":
                return _error(
                    404,
                    "NOT_FOUND",
                    f"Provided external ID field does not exist or is not accessible: {id}",
                )
            return _error(404, "NOT_FOUND", settings.MSG_NOT_FOUND)
        if found[1]["IsDeleted"]:
            return _error(404, "ENTITY_IS_DELETED", "entity is deleted")
        record_id = found[1]["Id"]
        if request.method == "GET":
            record = self.state.get(obj.name, record_id)
            assert record is not None
            return _json(self._render(obj, record, self._fields_param(request, obj)))
        if request.method == "PATCH":
            body = await self._body(request)
            self.state.check_types(obj.name, body)
            try:
                self.state.update(
                    obj.name,
                    record_id,
                    body,
                    auto_assign=obj.name == "Lead"
                    and _header_flag(request, settings.AUTO_ASSIGN_HEADER, True),
                    allow_duplicates=_allow_save(request),
                )
            except RecordError as err:
                return _record_error_response(err)
            return Response(status_code=204)
        if request.method == "DELETE":
            try:
                self.state.delete(obj.name, record_id)
            except RecordError as err:
                return _record_error_response(err)
            return Response(status_code=204)
        return _error(
            405,
            "METHOD_NOT_ALLOWED",
            f"HTTP Method '{request.method}' not allowed. Allowed are GET,PATCH,DELETE",
        )

    def _external_field(self, obj: Any, field: str) -> str:
        f = obj.field(field)
        if f is None or not (f.external_id or f.name == "Id"):
            raise RequestError(
                404,
                "NOT_FOUND",
                f"Provided external ID field does not exist or is not accessible: {field}",
            )
        return str(f.name)

    async def _r_sobjects_sobject_field_value(
        self, request: Request, version: str, sobject: str, field: str, value: str
    ) -> Response:
        obj = self._obj(sobject)
        ext = self._external_field(obj, field)
        if ext == "Id":
            found = self.state.get(obj.name, value) if is_valid_id(value) else None
            existing = found["Id"] if found else None
        else:
            existing = self.state.find_by_external_id(obj.name, ext, value)
        if request.method == "GET":
            record = self.state.get(obj.name, existing) if existing else None
            if record is None:
                return _error(404, "NOT_FOUND", settings.MSG_NOT_FOUND)
            return _json(self._render(obj, record, self._fields_param(request, obj)))
        if request.method == "DELETE":
            if existing is None:
                return _error(404, "NOT_FOUND", settings.MSG_NOT_FOUND)
            self.state.delete(obj.name, existing)
            return Response(status_code=204)
        if request.method not in ("PATCH", "POST"):
            return _error(
                405,
                "METHOD_NOT_ALLOWED",
                f"HTTP Method '{request.method}' not allowed. Allowed are GET,PATCH,DELETE",
            )
        body = await self._body(request)
        if ext in {k for k in body} and str(body[ext]) != value:
            return _error(
                400,
                "INVALID_FIELD",
                f"The value of the external ID field in the body ({body[ext]}) must "
                f"match the value in the URL ({value})",
            )
        self.state.check_types(obj.name, body)
        try:
            result = self._upsert_one(
                obj,
                ext,
                value,
                body,
                allow=_allow_save(request),
                assign=_header_flag(request, settings.AUTO_ASSIGN_HEADER, True),
            )
        except RecordError as err:
            return _record_error_response(err)
        return _json(result, 201 if result["created"] else 200)

    def _upsert_one(
        self,
        obj: Any,
        ext: str,
        value: str,
        body: dict[str, Any],
        *,
        allow: bool,
        assign: bool,
    ) -> dict[str, Any]:
        """Upsert one record by `ext` = `value`: the path single-record, collection and bulk
        upserts share. `allow` saves past a duplicate rule's alert; `assign` runs the Lead
        assignment rule."""
        fields = {k: v for k, v in body.items() if k not in ("attributes", ext)}
        existing = (
            self.state.find_by_external_id(obj.name, ext, value)
            if ext != "Id"
            else (value if self.state.get(obj.name, value) else None)
        )
        if existing:
            self.state.update(
                obj.name,
                existing,
                fields,
                auto_assign=obj.name == "Lead" and assign,
                allow_duplicates=allow,
            )
            return {"id": existing, "success": True, "errors": [], "created": False}
        if ext == "Id":
            raise RecordError.one("NOT_FOUND", settings.MSG_NOT_FOUND)
        new_id = self.state.insert(
            obj.name,
            {**fields, ext: value},
            auto_assign=assign if obj.name == "Lead" else None,
            allow_duplicates=allow,
        )
        return {"id": new_id, "success": True, "errors": [], "created": True}

    def _create_one(
        self, record: dict[str, Any], *, allow: bool, assign: bool | None
    ) -> dict[str, Any]:
        """Create one record (collections create and bulk insert)."""
        name = self._record_type(record)
        if record.get("Id"):
            raise RecordError.one(
                "INVALID_FIELD_FOR_INSERT_UPDATE", "cannot specify Id in an insert call", ["Id"]
            )
        new_id = self.state.insert(
            name,
            record,
            auto_assign=assign if name == "Lead" else None,
            allow_duplicates=allow,
        )
        return {"id": new_id, "success": True, "errors": []}

    def _update_one(self, record: dict[str, Any], *, allow: bool, assign: bool) -> dict[str, Any]:
        """Update one record by its Id (collections update and bulk update)."""
        name = self._record_type(record)
        record_id = record.get("Id")
        if not record_id:
            raise RecordError.one("MISSING_ARGUMENT", "Id not specified in an update call", [])
        found = self.state.lookup_any(record_id) if is_valid_id(record_id) else None
        if found is None or found[0] != name:
            raise RecordError.one(
                "MALFORMED_ID"
                if found is None and not is_valid_id(record_id)
                else "INVALID_CROSS_REFERENCE_KEY",
                f"malformed id {record_id}"
                if not is_valid_id(record_id)
                else "invalid cross reference id",
            )
        self.state.update(
            name,
            found[1]["Id"],
            record,
            auto_assign=name == "Lead" and assign,
            allow_duplicates=allow,
        )
        return {"id": found[1]["Id"], "success": True, "errors": []}

    async def _r_sobjects_sobject_updated(
        self, request: Request, version: str, sobject: str
    ) -> Response:
        obj = self._obj(sobject)
        start, end = self._window(request, settings.UPDATED_MAX_DAYS)
        ids = self.state.updated_ids(obj.name, start, end)
        if len(ids) > settings.REPLICATION_MAX_IDS:
            return _error(
                400, "EXCEEDED_ID_LIMIT", "record limit reached. Use a smaller date range"
            )
        return _json({"ids": ids, "latestDateCovered": format_datetime(end)})

    async def _r_sobjects_sobject_deleted(
        self, request: Request, version: str, sobject: str
    ) -> Response:
        obj = self._obj(sobject)
        start, end = self._window(request, settings.DELETED_MAX_DAYS)
        purged = self.state.purged_through
        if purged is not None and start < purged:
            # the delete log before `purged` is gone: what was deleted then cannot be listed
            raise RequestError(
                400, "INVALID_REPLICATION_DATE",
                f"startDate is before the earliest date available: {format_datetime(purged)}",
            )
        deleted = self.state.deletions(obj.name, start, end)
        earliest = self.state.earliest_deletion() or start
        return _json(
            {
                "deletedRecords": [
                    {"id": i, "deletedDate": format_datetime(w)} for i, w in deleted
                ],
                "earliestDateAvailable": format_datetime(earliest),
                "latestDateCovered": format_datetime(end),
            }
        )

    def _window(self, request: Request, max_days: int) -> tuple[datetime, datetime]:
        def parse(name: str) -> datetime:
            raw = request.query_params.get(name)
            if not raw:
                raise RequestError(400, "MISSING_ARGUMENT", f"{name} parameter is required")
            try:
                # an unencoded "+" in the offset arrives as a space
                return parse_datetime(raw.replace(" ", "+")).replace(second=0, microsecond=0)
            except ValueError as exc:
                raise RequestError(
                    400, "INVALID_DATE_FORMAT", f"Unable to parse {name} date: {raw}"
                ) from exc

        start, end = parse("start"), parse("end")
        now = self.state.clock.now()
        if end - start <= timedelta(minutes=1):
            # getDeleted()/getUpdated(): start must precede end by more than one minute
            raise RequestError(
                400, "INVALID_REPLICATION_DATE", "startDate must be before endDate by more "
                "than one minute")
        if start < now - timedelta(days=max_days):
            raise RequestError(
                400,
                "INVALID_REPLICATION_DATE",
                f"startDate cannot be more than {max_days} days ago",
            )
        return start, min(end, now.replace(second=0, microsecond=0))

    # -- sObject Collections
    def _collection_records(self, body: Any) -> tuple[list[Any], bool]:
        if not isinstance(body, dict) or not isinstance(body.get("records"), list):
            raise RequestError(
                400,
                "JSON_PARSER_ERROR",
                "Cannot deserialize instance of records: a records array is required",
            )
        records = body["records"]
        if len(records) > settings.COLLECTION_MAX_RECORDS:
            raise RequestError(400, "EXCEEDED_ID_LIMIT", settings.MSG_COLLECTION_LIMIT)
        return records, bool(body.get("allOrNone", False))

    def _record_type(self, record: Any, fixed: str | None = None) -> str:
        if not isinstance(record, dict):
            raise RequestError(400, "JSON_PARSER_ERROR", "Each record must be an object")
        declared = (record.get("attributes") or {}).get("type")
        if fixed is not None and declared and object_def(declared) is not object_def(fixed):
            raise RecordError.one("INVALID_TYPE", f"Record type {declared} does not match {fixed}")
        name = fixed or declared
        if not name:
            raise RecordError.one("INVALID_TYPE", "Must send a concrete entity type.")
        obj = object_def(name)
        if obj is None:
            raise RecordError.one("INVALID_TYPE", f"sObject type '{name}' is not supported.")
        return str(obj.name)

    def _run_collection(self, records: list[Any], all_or_none: bool, op: Any) -> Response:
        results: list[dict[str, Any]] = []
        with self.state.lock:
            for record in records:
                if isinstance(record, dict):
                    declared = (record.get("attributes") or {}).get("type")
                    if declared and object_def(declared):
                        self.state.check_columns(declared, record)
                        self.state.check_types(declared, record)
            if all_or_none:
                self.state.begin()
            failed = False
            self.state.begin_save()  # the records of one call are not each other's duplicates
            try:
                for record in records:
                    try:
                        results.append(op(record))
                    except RecordError as err:
                        failed = True
                        known = record.get("Id") if isinstance(record, dict) else None
                        item: dict[str, Any] = {"success": False, "errors": err.errors}
                        # the id is echoed only when it names an existing record
                        if known and is_valid_id(known) and self.state.lookup_any(known):
                            item = {"id": known, **item}
                        results.append(item)
            finally:
                self.state.end_save()
            if all_or_none:
                if failed:
                    self.state.rollback()
                    rolled = {
                        "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                        "message": settings.MSG_ROLLED_BACK,
                        "fields": [],
                    }
                    results = [
                        r
                        if not r["success"]
                        else {
                            **(
                                {"id": rec["Id"]} if isinstance(rec, dict) and rec.get("Id") else {}
                            ),
                            "success": False,
                            "errors": [rolled],
                        }
                        for r, rec in zip(results, records)
                    ]
                else:
                    self.state.commit()
        return _json(results)

    async def _r_composite_sobjects(self, request: Request, version: str) -> Response:
        allow = _allow_save(request)
        assign = _header_flag(request, settings.AUTO_ASSIGN_HEADER, True)
        if request.method == "DELETE":
            ids = [i for i in request.query_params.get("ids", "").split(",") if i]
            if len(ids) > settings.COLLECTION_MAX_RECORDS:
                raise RequestError(400, "EXCEEDED_ID_LIMIT", settings.MSG_COLLECTION_LIMIT)
            all_or_none = request.query_params.get("allOrNone", "false").lower() == "true"

            def delete(record: dict[str, Any]) -> dict[str, Any]:
                record_id = record["Id"]
                found = self.state.lookup_any(record_id) if is_valid_id(record_id) else None
                if found is None:
                    raise RecordError.one(
                        "MALFORMED_ID"
                        if not is_valid_id(record_id)
                        else "INVALID_CROSS_REFERENCE_KEY",
                        f"malformed id {record_id}"
                        if not is_valid_id(record_id)
                        else "invalid cross reference id",
                    )
                self.state.delete(found[0], record_id)
                return {"id": found[1]["Id"], "success": True, "errors": []}

            return self._run_collection([{"Id": i} for i in ids], all_or_none, delete)
        body = await self._body(request)
        records, all_or_none = self._collection_records(body)
        if request.method == "POST":

            def create(record: dict[str, Any]) -> dict[str, Any]:
                return self._create_one(record, allow=allow, assign=assign)

            return self._run_collection(records, all_or_none, create)
        if request.method == "PATCH":

            def update(record: dict[str, Any]) -> dict[str, Any]:
                return self._update_one(record, allow=allow, assign=assign)

            return self._run_collection(records, all_or_none, update)
        return _error(
            405,
            "METHOD_NOT_ALLOWED",
            f"HTTP Method '{request.method}' not allowed. Allowed are POST,PATCH,DELETE",
        )

    async def _r_composite_sobjects_sobject(
        self, request: Request, version: str, sobject: str
    ) -> Response:
        obj = self._obj(sobject)
        if request.method == "GET":
            ids = [i for i in request.query_params.get("ids", "").split(",") if i]
            limit = settings.COLLECTION_RETRIEVE_GET_MAX
            fields_raw = request.query_params.get("fields", "")
        elif request.method == "POST":
            body = await self._body(request)
            ids = list(body.get("ids") or [])
            limit = settings.COLLECTION_RETRIEVE_POST_MAX
            fields_raw = ",".join(body.get("fields") or [])
        else:
            return _error(
                405,
                "METHOD_NOT_ALLOWED",
                f"HTTP Method '{request.method}' not allowed. Allowed are GET,POST",
            )
        if not ids or not fields_raw:
            raise RequestError(400, "MISSING_ARGUMENT", "ids and fields are required")
        if len(ids) > limit:
            raise RequestError(
                400,
                "EXCEEDED_ID_LIMIT",
                f"record limit reached. cannot submit more than {limit} records into this call",
            )
        fields = []
        for name in fields_raw.split(","):
            f = obj.field(name.strip())
            if f is None:
                raise RequestError(
                    400,
                    "INVALID_FIELD",
                    f"No such column '{name.strip()}' on sobject of type {obj.name}",
                )
            fields.append(f.name)
        out: list[Any] = []
        for record_id in ids:
            record = self.state.get(obj.name, record_id) if is_valid_id(record_id) else None
            out.append(
                None
                if record is None
                else {"attributes": record["attributes"], **{n: record[n] for n in fields}}
            )
        return _json(out)

    async def _r_composite_sobjects_sobject_field(
        self, request: Request, version: str, sobject: str, field: str
    ) -> Response:
        obj = self._obj(sobject)
        if request.method != "PATCH":
            return _error(
                405,
                "METHOD_NOT_ALLOWED",
                f"HTTP Method '{request.method}' not allowed. Allowed are PATCH",
            )
        f = obj.field(field)
        # collections upsert takes external ids only, never record ids (resources_composite_
        # sobjects_collections_upsert.htm)
        if f is None or not f.external_id:
            raise RequestError(
                400,
                "INVALID_FIELD",
                f"Field name provided, {field} is not an "
                f"External ID or indexed field for {obj.name}",
            )
        body = await self._body(request)
        records, all_or_none = self._collection_records(body)
        allow = _allow_save(request)
        assign = _header_flag(request, settings.AUTO_ASSIGN_HEADER, True)

        def upsert(record: dict[str, Any]) -> dict[str, Any]:
            self._record_type(record, obj.name)
            key = next((k for k in record if k.lower() == f.name.lower()), None)
            value = record.get(key) if key else None
            if value in (None, ""):
                raise RecordError.one("MISSING_ARGUMENT", f"{f.name} not specified", [])
            return self._upsert_one(
                obj,
                f.name,
                str(value),
                {k: v for k, v in record.items() if k != key},
                allow=allow,
                assign=assign,
            )

        return self._run_collection(records, all_or_none, upsert)

    # -- Composite (resources_composite_composite_post.htm, requests_composite.htm)
    def carries_subrequests(self, scope: Scope) -> bool:
        """A composite POST: the fault script looks at the calls it carries."""
        return scope["method"] == "POST" and route_of(scope).endswith("/composite")

    def subrequest_keys(self, body: bytes) -> list[str]:
        """ "METHOD /path" of each subrequest of a composite body (none when unreadable)."""
        try:
            parsed = json.loads(body) if body else {}
        except ValueError:
            return []
        subs = parsed.get("compositeRequest") if isinstance(parsed, dict) else None
        return [
            f"{sub.get('method')} {str(sub.get('url') or '').split('?', 1)[0]}"
            for sub in subs or []
            if isinstance(sub, dict)
        ]

    def _subrequests(self, body: Any) -> tuple[list[dict[str, Any]], bool]:
        """The subrequests of a composite body, checked as a whole before any runs: a wrong
        shape, too many subrequests, or an inherited header set fails the request with 400."""
        subs = body.get("compositeRequest") if isinstance(body, dict) else None
        if not isinstance(subs, list) or not subs:
            raise RequestError(
                400, "JSON_PARSER_ERROR", "A compositeRequest array of subrequests is required"
            )
        if len(subs) > settings.COMPOSITE_MAX_SUBREQUESTS:
            raise RequestError(
                400, "LIMIT_EXCEEDED", settings.MSG_COMPOSITE_TOO_MANY.format(n=len(subs))
            )
        seen: set[str] = set()
        heavy = 0
        for sub in subs:
            if not isinstance(sub, dict) or not all(
                isinstance(sub.get(k), str) and sub.get(k) for k in ("method", "url", "referenceId")
            ):
                raise RequestError(
                    400,
                    "JSON_PARSER_ERROR",
                    "Each subrequest needs a method, a url and a referenceId",
                )
            ref = sub["referenceId"]
            if not settings.COMPOSITE_REFERENCE_ID_RE.match(ref) or ref in seen:
                raise RequestError(
                    400,
                    "INVALID_INPUT",
                    f"Invalid referenceId {ref!r}: use letters, digits and underscores, once each",
                )
            seen.add(ref)
            headers = sub.get("httpHeaders") or {}
            if not isinstance(headers, dict):
                raise RequestError(400, "JSON_PARSER_ERROR", "httpHeaders must be an object")
            for name in headers:
                if str(name).lower() in settings.COMPOSITE_INHERITED_HEADERS:
                    raise RequestError(
                        400,
                        "INVALID_INPUT",
                        settings.MSG_COMPOSITE_HEADER.format(ref=ref, header=name),
                    )
            route = self._sub_route(sub["url"])
            heavy += route is not None and route[2].startswith(settings.COMPOSITE_HEAVY)
        if heavy > settings.COMPOSITE_MAX_HEAVY:
            raise RequestError(
                400, "LIMIT_EXCEEDED", settings.MSG_COMPOSITE_TOO_HEAVY.format(n=heavy)
            )
        return subs, bool(body.get("allOrNone", False))

    @staticmethod
    def _sub_route(url: str) -> tuple[str, str, str] | None:
        """(version, rest, route name) of a subrequest url a composite request may name."""
        m = settings.DATA_PREFIX_RE.match(url.split("?", 1)[0])
        if not m or float(m.group("version")) < settings.MIN_API_VERSION:
            return None
        rest = m.group("rest") or "/"
        name = next((n for pattern, n in _COMPILED if pattern.match(rest)), None)
        if name is None or not name.startswith(settings.COMPOSITE_RESOURCES):
            return None
        return m.group("version"), rest, name

    async def _subrequest(self, request: Request, sub: dict[str, Any]) -> tuple[int, Any]:
        """Run one subrequest through the route a direct call takes: (status, body)."""
        url: str = sub["url"]
        route = self._sub_route(url)
        if route is None:
            return 404, [{"message": settings.MSG_NOT_FOUND, "errorCode": "NOT_FOUND"}]
        if "@{" in url or "@{" in json.dumps(sub.get("body")):
            # references between subrequests are not emulated (Handshake sends none)
            return 400, [
                {"message": "the sandbox does not resolve @{reference} values",
                 "errorCode": "INVALID_INPUT"}
            ]
        version, rest, name = route
        path, _, query = url.partition("?")
        raw = json.dumps(sub["body"]).encode() if "body" in sub else b""
        headers = [
            (k.lower().encode(), str(v).encode()) for k, v in (sub.get("httpHeaders") or {}).items()
        ]
        inherited = [
            (k, v) for k, v in request.scope["headers"]
            if k.decode().lower() in settings.COMPOSITE_INHERITED_HEADERS
        ]
        scope = {
            **request.scope,
            "method": sub["method"].upper(),
            "path": path,
            "raw_path": path.encode(),
            "query_string": query.encode(),
            "headers": inherited + headers,
        }
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": raw, "more_body": False}

        try:
            response = await self._rest(Request(scope, receive), version, rest)
        except RequestError as err:
            response = _json(err.body(), err.status)
        self.stats.record_subrequest(f"{sub['method'].upper()} {settings.DATA_ROOT}/vXX.X{name}",
                                     response.status_code)
        body = bytes(response.body)
        return response.status_code, json.loads(body) if body else None

    async def _r_composite(self, request: Request, version: str) -> Response:
        """Up to 25 subrequests run in order (as with collateSubrequests false), each through
        the route its direct call takes, so results are identical; the whole request is one
        API call (counted in `_dispatch`). Only `httpHeaders` reach a subrequest besides the
        three inherited headers. With allOrNone true the first failed subrequest rolls back
        every write and the others answer 400 PROCESSING_HALTED
        (resources_composite_subrequest_result.htm); with false the others run and keep theirs
        (an sObject Collections subrequest keeps its own allOrNone)."""
        if request.method == "GET":
            return _json({"sobjects": f"{settings.data_path(version)}/composite/sobjects"})
        if request.method != "POST":
            return _error(
                405,
                "METHOD_NOT_ALLOWED",
                f"HTTP Method '{request.method}' not allowed. Allowed are GET,POST",
            )
        subs, all_or_none = self._subrequests(await self._body(request))
        halted = [{"errorCode": "PROCESSING_HALTED", "message": settings.MSG_PROCESSING_HALTED}]
        answers: list[tuple[int, Any]] = []
        with self.state.lock:
            if all_or_none:
                self.state.begin()
            failed = False
            for sub in subs:
                if failed and all_or_none:
                    answers.append((400, halted))
                    continue
                status, body = await self._subrequest(request, sub)
                if status >= 400 and all_or_none and not failed:
                    failed = True
                    self.state.rollback()
                    answers = [(400, halted) for _ in answers]
                answers.append((status, body))
            if all_or_none and not failed:
                self.state.commit()
        return _json(
            {
                "compositeResponse": [
                    {
                        "body": body,
                        "httpHeaders": {},
                        "httpStatusCode": status,
                        "referenceId": sub["referenceId"],
                    }
                    for sub, (status, body) in zip(subs, answers, strict=True)
                ]
            }
        )

    # -- Bulk API 2.0 ingest (see bulk.py for what is emulated)
    def _bulk_external_id(self, obj: Any, field: str) -> str | None:
        f = obj.field(field)
        return str(f.name) if f is not None and (f.external_id or f.name == "Id") else None

    def _is_assignment_rule(self, rule_id: str) -> bool:
        found = self.state.lookup_any(rule_id) if is_valid_id(rule_id) else None
        return found is not None and found[0] == "AssignmentRule"

    async def _r_jobs_ingest(self, request: Request, version: str) -> Response:
        if request.method == "GET":
            jobs = [job.info(full=True) for job in self.bulk.jobs()]
            return _json({"done": True, "records": jobs, "nextRecordsUrl": None})
        if request.method != "POST":
            return _error(
                405,
                "METHOD_NOT_ALLOWED",
                f"HTTP Method '{request.method}' not allowed. Allowed are GET,POST",
            )
        session = self._session(request)
        job = self.bulk.create(
            await self._body(request),
            version=version,
            user_id=session.user_id if session else self.state.integration_user_id,
            external_id_ok=self._bulk_external_id,
            assignment_rule_ok=self._is_assignment_rule,
        )
        return _json(job.info(full=False))

    async def _r_jobs_ingest_job_id(self, request: Request, version: str, job_id: str) -> Response:
        job = self.bulk.job(job_id)
        if request.method == "GET":
            self.bulk.poll(job, self._process_job)
            return _json(job.info(full=True))
        if request.method == "PATCH":
            self.bulk.set_state(job, await self._body(request))
            return _json(job.info(full=False))
        if request.method == "DELETE":
            self.bulk.delete(job)
            return Response(status_code=204)
        return _error(
            405,
            "METHOD_NOT_ALLOWED",
            f"HTTP Method '{request.method}' not allowed. Allowed are GET,PATCH,DELETE",
        )

    async def _r_jobs_ingest_job_id_batches(
        self, request: Request, version: str, job_id: str
    ) -> Response:
        job = self.bulk.job(job_id)
        if request.method != "PUT":
            return _error(
                405,
                "METHOD_NOT_ALLOWED",
                f"HTTP Method '{request.method}' not allowed. Allowed are PUT",
            )
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media != "text/csv":
            return _error(
                415,
                "UNSUPPORTED_MEDIA_TYPE",
                f"Content type '{media}' is not supported for job data; send text/csv",
            )
        self.bulk.upload(job, await request.body())
        return Response(status_code=201)

    async def _r_jobs_ingest_job_id_results(
        self, request: Request, version: str, job_id: str, results: str
    ) -> Response:
        if results not in ("successfulResults", "failedResults", "unprocessedrecords"):
            return _error(404, "NOT_FOUND", settings.MSG_NOT_FOUND)
        job = self.bulk.job(job_id)
        if request.method != "GET":
            return _error(
                405,
                "METHOD_NOT_ALLOWED",
                f"HTTP Method '{request.method}' not allowed. Allowed are GET",
            )
        return Response(self.bulk.results(job, results), media_type="text/csv")

    def _process_job(self, job: IngestJob) -> None:
        obj = self._obj(job.object)
        self.bulk.process(job, obj, self._write_bulk_record, self.state)

    def _write_bulk_record(
        self, job: IngestJob, obj: Any, fields: dict[str, Any]
    ) -> dict[str, Any]:
        """One CSV row through the collections path. Bulk API 2.0 takes no duplicate rule
        header, so a duplicate rule's alert blocks the save; the Lead assignment rule runs
        only when the job names it."""
        assign = job.assignment_rule_id is not None
        known: str | None = None
        try:
            self._check_bulk_types(job, obj, fields)
            if job.operation == "insert":
                return {
                    **self._create_one(
                        {"attributes": {"type": obj.name}, **fields}, allow=False, assign=assign
                    ),
                    "created": True,
                }
            if job.operation == "update":
                record_id = str(fields.get("Id") or "")
                found = self.state.lookup_any(record_id) if is_valid_id(record_id) else None
                known = found[1]["Id"] if found and found[0] == obj.name else None
                return {
                    **self._update_one(
                        {"attributes": {"type": obj.name}, **fields}, allow=False, assign=assign
                    ),
                    "created": False,
                }
            ext = str(job.external_id_field)
            value = fields.pop(ext, None)
            if value in (None, ""):
                raise RecordError.one("MISSING_ARGUMENT", f"{ext} not specified", [])
            known = self.state.find_by_external_id(obj.name, ext, str(value))
            return self._upsert_one(obj, ext, str(value), fields, allow=False, assign=assign)
        except RecordError as err:
            return {"id": known, "success": False, "errors": err.errors}

    def _check_bulk_types(self, job: IngestJob, obj: Any, fields: dict[str, Any]) -> None:
        """A CSV value its field cannot take fails the record (not the job) with the column."""
        columns = [name.lower() for name in job.header]
        for name, value in fields.items():
            try:
                self.state.check_types(obj.name, {name: value})
            except RequestError:
                f = obj.field(name)
                xsd = {"int": "int", "double": "double", "currency": "double"}.get(
                    f.type, f.type if f.type in ("date", "datetime", "boolean") else "string"
                )
                raise RecordError.one(
                    "INVALID_FIELD",
                    f"Failed to deserialize field at col {columns.index(name.lower()) + 1}. "
                    f"Due to, '{value}' is not a valid value for the type xsd:{xsd}",
                    [f.name],
                ) from None


def _soap_fault(code: str, message: str) -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:sf="urn:fault.partner.soap.sforce.com" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><soapenv:Fault>'
        f"<faultcode>sf:{code}</faultcode><faultstring>{code}: {message}</faultstring>"
        f'<detail><sf:LoginFault xsi:type="sf:LoginFault"><sf:exceptionCode>{code}'
        f"</sf:exceptionCode><sf:exceptionMessage>{message}</sf:exceptionMessage>"
        "</sf:LoginFault></detail></soapenv:Fault></soapenv:Body></soapenv:Envelope>"
    )


def _soap_login_ok(base: str, version: str, token: str, user: dict[str, Any]) -> str:
    org = settings.ORG_ID
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns="urn:partner.soap.sforce.com" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><loginResponse>'
        f"<result><metadataServerUrl>{base}{settings.SOAP_METADATA_ROOT}/{version}/{org}"
        "</metadataServerUrl>"
        "<passwordExpired>false</passwordExpired><sandbox>true</sandbox>"
        f"<serverUrl>{base}{settings.SOAP_PARTNER_ROOT}/{version}/{org}</serverUrl>"
        f"<sessionId>{token}</sessionId><userId>{user['Id']}</userId>"
        f"<userInfo><organizationId>{org}</organizationId>"
        f"<userEmail>{user['Email']}</userEmail><userFullName>{user['Name']}</userFullName>"
        f"<userId>{user['Id']}</userId><userName>{user['Username']}</userName>"
        "</userInfo></result></loginResponse></soapenv:Body></soapenv:Envelope>"
    )
