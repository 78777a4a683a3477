"""Pieces both emulated APIs share: the sandbox clock, fault injection, request statistics,
and a uvicorn server running an app on loopback in a background thread (HTTP or HTTPS)."""

from __future__ import annotations

import asyncio
import random
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Self

import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "DroppedConnection",
    "Fault",
    "FaultPlan",
    "RequestStats",
    "SandboxClock",
    "SandboxMiddleware",
    "ServedApp",
    "TLSFiles",
    "make_tls",
]


class SandboxClock:
    """The sandbox's notion of "now". Starts at `start` and follows wall time unless frozen;
    `advance` jumps ahead (the sales-team simulator uses it to let days pass)."""

    def __init__(self, start: datetime | None = None, *, frozen: bool = False) -> None:
        self._base = start or datetime.now(UTC)
        self._mono = time.monotonic()
        self._offset = timedelta(0)
        self.frozen = frozen
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            elapsed = timedelta(0) if self.frozen else timedelta(
                seconds=time.monotonic() - self._mono
            )
            return self._base + self._offset + elapsed

    def advance(self, delta: timedelta) -> None:
        with self._lock:
            self._offset += delta

    def set(self, when: datetime) -> None:
        with self._lock:
            self._base = when
            self._offset = timedelta(0)
            self._mono = time.monotonic()

    def now_ms(self) -> int:
        return int(self.now().timestamp() * 1000)


@dataclass(frozen=True)
class Fault:
    """One injected failure: `kind` is "429", "500", "503", "slow" or "drop" (before the
    request is handled: nothing is applied; "drop" waits `seconds` first, a request that
    hangs), or "drop_after" / "stall_after" (the request is handled and applied first, then the
    connection is cut mid-body, or the answer held back `seconds`): a client cannot tell
    whether such a write happened."""

    kind: str
    seconds: float = 0.0


@dataclass
class FaultPlan:
    """Random faults by probability, plus a script of faults for chosen calls.

    `script` maps a regex on "METHOD /path" to a list of faults served to the next matching
    calls in order (None = no fault for that call). Probabilities apply to every other call
    whose path does not start with `/__sandbox__`.
    """

    p429: float = 0.0
    p500: float = 0.0
    p503: float = 0.0
    p_slow: float = 0.0
    p_drop: float = 0.0
    p_drop_after: float = 0.0
    slow_seconds: float = 2.0
    seed: int = 0
    script: dict[str, list[Fault | None]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._lock = threading.Lock()

    def schedule(self, pattern: str, *faults: Fault | None) -> None:
        with self._lock:
            self.script.setdefault(pattern, []).extend(faults)

    def clear(self) -> None:
        with self._lock:
            self.script.clear()
            self.p429 = self.p500 = self.p503 = self.p_slow = self.p_drop = 0.0
            self.p_drop_after = 0.0

    def decide(self, method: str, path: str, subrequests: Sequence[str] = ()) -> Fault | None:
        """The fault for one call, if any. `subrequests` are the "METHOD /path" of the calls
        it carries (a Salesforce composite request): a scripted pattern matching one of them
        hits the whole call, so a script aimed at a write finds it whichever way it is sent."""
        keys = [f"{method} {path}", *subrequests]
        with self._lock:
            for pattern, queue in self.script.items():
                if queue and any(re.search(pattern, key) for key in keys):
                    return queue.pop(0)
            roll = self._rng.random()
        for kind, p in (
            ("429", self.p429),
            ("500", self.p500),
            ("503", self.p503),
            ("drop", self.p_drop),
            ("drop_after", self.p_drop_after),
            ("slow", self.p_slow),
        ):
            if roll < p:
                return Fault(kind, self.slow_seconds if kind == "slow" else 0.0)
            roll -= p
        return None


class RequestStats:
    """Counts requests by route template and status, for `/__sandbox__/stats`; the parts of
    a request that carries others (a Salesforce composite call) are counted apart, under
    `subrequests_by_route`, so `total` stays the number of HTTP calls. `by_method_route`
    counts them as "METHOD route" (a route template may take a read and a write)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.by_route: Counter[str] = Counter()
        self.by_status: Counter[int] = Counter()
        self.by_route_status: Counter[str] = Counter()
        self.subrequests_by_route: Counter[str] = Counter()
        self.by_method_route: Counter[str] = Counter()
        self.total = 0

    def record(self, route: str, status: int, method: str = "") -> None:
        with self._lock:
            self.total += 1
            self.by_route[route] += 1
            if method:
                self.by_method_route[f"{method} {route}"] += 1
            self.by_status[status] += 1
            self.by_route_status[f"{route} {status}"] += 1

    def record_subrequest(self, route: str, status: int) -> None:
        """One subrequest of a call already recorded (as "METHOD route status")."""
        with self._lock:
            self.subrequests_by_route[f"{route} {status}"] += 1

    def reset(self) -> None:
        with self._lock:
            self.by_route.clear()
            self.by_status.clear()
            self.by_route_status.clear()
            self.subrequests_by_route.clear()
            self.by_method_route.clear()
            self.total = 0

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "total": self.total,
                "by_route": dict(self.by_route),
                "by_status": {str(k): v for k, v in self.by_status.items()},
                "by_route_status": dict(self.by_route_status),
                "subrequests_by_route": dict(self.subrequests_by_route),
                "by_method_route": dict(self.by_method_route),
            }


class DroppedConnection(Exception):
    """Raised inside the app after the response started, so the server cuts the connection."""


FaultRenderer = Callable[[Fault, Scope], Awaitable[tuple[int, dict[str, str], bytes]]]


class SandboxMiddleware:
    """Applies injected faults and records statistics around an emulated API.

    `render_fault` builds the API-specific answer (status, headers, body) for "429"/"500"/"503";
    "slow" delays the real answer; "drop" starts a response and cuts the connection mid-body;
    "drop_after" and "stall_after" let the app handle (and apply) the request first, as a real
    network failure after the server committed can, then cut the answer mid-body or hold it.
    `route_of(scope)` names the route template for statistics. When `carries_subrequests(scope)`
    holds, the body is read first and `subrequest_keys(body)` names the calls it carries, for
    the fault script (see `FaultPlan.decide`).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        faults: FaultPlan,
        stats: RequestStats,
        render_fault: FaultRenderer,
        route_of: Callable[[Scope], str],
        clock: SandboxClock | None = None,
        carries_subrequests: Callable[[Scope], bool] | None = None,
        subrequest_keys: Callable[[bytes], list[str]] | None = None,
    ) -> None:
        self.app = app
        # With a clock, the `Date` header tells the sandbox's time (clients read it as the
        # server's "now"); serve such an app with `ServedApp(..., date_header=False)`.
        self.clock = clock
        self.faults = faults
        self.stats = stats
        self.render_fault = render_fault
        self.route_of = route_of
        self.carries_subrequests = carries_subrequests
        self.subrequest_keys = subrequest_keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path.startswith("/__sandbox__"):
            await self.app(scope, receive, send)
            return
        route = self.route_of(scope)
        inner: list[str] = []
        if self.carries_subrequests is not None and self.subrequest_keys is not None \
                and self.carries_subrequests(scope):
            body = await _read_body(receive)
            receive = _replay(body, receive)
            inner = self.subrequest_keys(body)
        fault = self.faults.decide(scope["method"], path, inner)
        if fault is not None and fault.kind == "drop":
            if fault.seconds:
                await asyncio.sleep(fault.seconds)
            self.stats.record(route, 0, scope["method"])
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", b"4096")],
                }
            )
            await send({"type": "http.response.body", "body": b'{"results": [', "more_body": True})
            raise DroppedConnection("sandbox fault injection: connection dropped")
        if fault is not None and fault.kind in ("429", "500", "503"):
            status, headers, body = await self.render_fault(fault, scope)
            self.stats.record(route, status, scope["method"])
            await send(
                {
                    "type": "http.response.start",
                    "status": status,
                    "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]
                    + [(b"content-length", str(len(body)).encode())],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        if fault is not None and fault.kind in ("drop_after", "stall_after"):
            await self._after_applied(fault, scope, receive, send, route)
            return
        if fault is not None and fault.kind == "slow":
            await asyncio.sleep(fault.seconds)

        status_seen = 500
        recorded = False

        async def send_wrapper(message: Message) -> None:
            nonlocal status_seen, recorded
            if message["type"] == "http.response.start":
                status_seen = message["status"]
                if self.clock is not None:
                    message = dict(message)
                    message["headers"] = [*message.get("headers", []), self._date_header()]
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                # counted before the client can read the whole answer, so a caller that looks
                # at the statistics right after its call sees it
                self.stats.record(route, status_seen, scope["method"])
                recorded = True
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            if not recorded:
                self.stats.record(route, status_seen, scope["method"])

    async def _after_applied(
        self, fault: Fault, scope: Scope, receive: Receive, send: Send, route: str
    ) -> None:
        """Handle the request for real, then lose (or hold back) the answer."""
        answer: list[Message] = []

        async def keep(message: Message) -> None:
            answer.append(message)

        await self.app(scope, receive, keep)
        start = next(m for m in answer if m["type"] == "http.response.start")
        if self.clock is not None:
            start = {**start, "headers": [*start.get("headers", []), self._date_header()]}
        body = b"".join(m.get("body", b"") for m in answer if m["type"] == "http.response.body")
        if fault.kind == "stall_after":
            await asyncio.sleep(fault.seconds)
            self.stats.record(route, int(start["status"]), scope["method"])
            await send(start)
            await send({"type": "http.response.body", "body": body})
            return
        self.stats.record(route, 0, scope["method"])
        await send(start)
        await send({"type": "http.response.body", "body": body[: len(body) // 2],
                    "more_body": True})
        raise DroppedConnection("sandbox fault injection: connection dropped after applying")

    def _date_header(self) -> tuple[bytes, bytes]:
        from email.utils import format_datetime

        assert self.clock is not None
        return (b"date", format_datetime(self.clock.now(), usegmt=True).encode())


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that hands the app the body already read, then listens as before."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


@dataclass
class TLSFiles:
    """A throw-away CA and a localhost certificate, written to `directory`."""

    ca_bundle: Path
    cert_file: Path
    key_file: Path


def make_tls(directory: Path) -> TLSFiles:
    """Create a CA and a certificate for 127.0.0.1/localhost (trustme), as PEM files."""
    import trustme

    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    ca_path = directory / "sandbox-ca.pem"
    cert_path = directory / "sandbox-cert.pem"
    key_path = directory / "sandbox-key.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    cert.private_key_and_cert_chain_pem.write_to_path(str(cert_path))
    cert.private_key_pem.write_to_path(str(key_path))
    return TLSFiles(ca_bundle=ca_path, cert_file=cert_path, key_file=key_path)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServedApp:
    """Runs an ASGI app with uvicorn on 127.0.0.1 in a daemon thread.

    Use as a context manager or call `start()`/`stop()`; entering one already started does not
    start it again. Port 0 picks a free port. `date_header=False` when the app writes its own
    `Date` (an emulated server's clock, which clients read as the server's "now").
    """

    def __init__(
        self, app: ASGIApp, *, port: int = 0, tls: TLSFiles | None = None,
        date_header: bool = True,
    ) -> None:
        self.port = port or _free_port()
        self.tls = tls
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_level="critical",
            access_log=False,
            lifespan="off",
            timeout_keep_alive=30,
            date_header=date_header,
            ssl_certfile=str(tls.cert_file) if tls else None,
            ssl_keyfile=str(tls.key_file) if tls else None,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name=f"sandbox:{self.port}", daemon=True)

    @property
    def base_url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def start(self) -> Self:
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"sandbox server on port {self.port} did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        # A sandbox need not drain: graceful shutdown would wait for idle keep-alive (TLS)
        # connections that clients left open.
        self._server.should_exit = True
        self._server.force_exit = True
        self._thread.join(timeout=10)

    def __enter__(self) -> Self:
        return self if self._thread.is_alive() else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
