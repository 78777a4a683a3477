"""The daemon's HTTP listener: `GET /healthz`, `GET /metrics` and the extra routes the daemon
mounts (the HubSpot webhooks), served by uvicorn in a thread of the daemon's process.

    app = create_app(WebHooks(health=..., metrics=..., routes=[...]))
    server = WebServer(app, "127.0.0.1:0").start()    # .port: the port it listens on
    server.stop()
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Self

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

__all__ = ["WebHooks", "WebServer", "create_app", "split_listen"]

log = logging.getLogger("connector.daemon")


@dataclass
class WebHooks:
    """What the listener serves: the health check (healthy?, details as JSON), the metrics
    (body, content type) and extra routes (e.g. `POST /webhooks/hubspot`)."""

    health: Callable[[], tuple[bool, dict[str, Any]]]
    metrics: Callable[[], tuple[bytes, str]]
    routes: list[Route] = field(default_factory=list)


def create_app(hooks: WebHooks) -> Starlette:
    """The daemon's ASGI app: `/healthz` (200 healthy, 503 with the reason), `/metrics`
    (Prometheus text) and `hooks.routes`."""

    def healthz(_request: Request) -> Response:
        try:
            healthy, body = hooks.health()
        except Exception as exc:  # noqa: BLE001  (a health check that fails is unhealthy)
            healthy, body = False, {"reason": f"the health check failed: {type(exc).__name__}"}
        return JSONResponse(body, status_code=200 if healthy else 503)

    def metrics(_request: Request) -> Response:
        body, content_type = hooks.metrics()
        return Response(body, media_type=content_type)

    routes: list[BaseRoute] = [Route("/healthz", healthz, methods=["GET"]),
                               Route("/metrics", metrics, methods=["GET"]), *hooks.routes]
    return Starlette(routes=routes)


def split_listen(listen: str) -> tuple[str, int]:
    """("host", port) of a "host:port" (validated by the config and the CLI)."""
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)


class WebServer:
    """Runs `app` with uvicorn on `listen` ("host:port"; port 0 = any free port) in a daemon
    thread. The socket is bound in `start()`, so a port in use fails there (`OSError`)."""

    def __init__(self, app: Starlette, listen: str) -> None:
        self.app = app
        self.host, self._wanted = split_listen(listen)
        self.port = self._wanted
        self._socket: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Self:
        """Bind, serve, and return once uvicorn answers."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self._wanted))
        except OSError:
            sock.close()
            raise
        sock.listen(128)
        self._socket = sock
        self.port = int(sock.getsockname()[1])
        config = uvicorn.Config(self.app, log_level="warning", access_log=False,
                                lifespan="off", timeout_graceful_shutdown=2)
        self._server = uvicorn.Server(config)
        # not the main thread: uvicorn leaves the signal handlers to the daemon
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]},
                                        name=f"web:{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise OSError(f"the HTTP listener on {self.host}:{self.port} did not start")
            time.sleep(0.01)
        return self

    @property
    def url(self) -> str:
        """The listener's base URL."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def stop(self) -> None:
        """Stop serving (requests in flight get two seconds) and close the socket."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._socket is not None:
            self._socket.close()
