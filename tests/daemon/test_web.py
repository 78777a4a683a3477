"""The daemon's HTTP listener: /healthz answers 200 only for a leader whose last success is
recent enough or a standby that reaches the state database, 503 with the reason otherwise;
/metrics parses with prometheus-client's parser and its counts match the run records; the
server listens on a free port when asked for port 0; extra routes are mounted."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from connector.daemon import Health, WebHooks, WebServer, basic_metrics, create_app
from connector.store import Store

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


class Client:
    """The app served on a free port (the listener the daemon runs), and GETs to it."""

    def __init__(self, url: str) -> None:
        self.url = url

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.url + path, timeout=10)


@contextmanager
def served(hooks: WebHooks) -> Iterator[Client]:
    server = WebServer(create_app(hooks), "127.0.0.1:0").start()
    try:
        yield Client(server.url)
    finally:
        server.stop()
MAX_AGE = timedelta(minutes=30)
BEAT_AGE = timedelta(seconds=45)


def _health(role: str, *, ok_ago: timedelta | None = None, failed: str | None = None,
            beat_ago: timedelta | None = None) -> Health:
    health = Health(role=role, started_at=NOW - timedelta(hours=1))
    if ok_ago is not None:
        health.cycle.record(NOW - ok_ago, True, None)
    if failed is not None:
        health.cycle.record(NOW - timedelta(seconds=5), False, failed)
    if beat_ago is not None:
        health.beat_at = NOW - beat_ago
    return health


@pytest.mark.parametrize(("health", "healthy", "reason"), [
    (_health("leader", ok_ago=timedelta(minutes=2)), True, None),
    (_health("leader", ok_ago=timedelta(minutes=10), failed="pull: AuthError"), True, None),
    (_health("leader", ok_ago=timedelta(minutes=31), failed="pull: AuthError"), False,
     "no cycle succeeded for 0:30:00"),
    (_health("leader"), False, "no cycle has succeeded yet"),
    (_health("leader", failed="push: StoreError"), False, "the last failed: push: StoreError"),
    (_health("standby", beat_ago=timedelta(seconds=5)), True, None),
    (_health("standby", beat_ago=timedelta(minutes=5)), False, "has not reached the state"),
    (_health("standby"), False, "has not reached the state"),
    (_health("stopped", ok_ago=timedelta(minutes=1)), False, "the daemon is stopped"),
    (_health("starting"), False, "the daemon is starting"),
])
def test_health(health: Health, healthy: bool, reason: str | None) -> None:
    ok, body = health.check(MAX_AGE, BEAT_AGE, now=NOW)
    assert ok is healthy
    assert body["role"] == health.role
    if reason is None:
        assert "reason" not in body
    else:
        assert reason in body["reason"]


def test_healthz_answers_200_or_503_with_the_reason_as_json() -> None:
    state = {"health": _health("leader", ok_ago=timedelta(minutes=1))}
    hooks = WebHooks(health=lambda: state["health"].check(MAX_AGE, BEAT_AGE, now=NOW),
                     metrics=lambda: (b"", "text/plain"))
    with served(hooks) as client:
        answer = client.get("/healthz")
        state["health"] = _health("leader", ok_ago=timedelta(hours=2), failed="pull: AuthError")
        later = client.get("/healthz")
    assert answer.status_code == 200
    assert answer.json()["last_cycle"]["ok"] is True
    answer = later
    assert answer.status_code == 503
    assert answer.headers["content-type"] == "application/json"
    assert "no cycle succeeded" in answer.json()["reason"]
    assert answer.json()["last_cycle"]["error"] == "pull: AuthError"


def test_a_health_check_that_raises_is_503() -> None:
    def broken() -> tuple[bool, dict[str, object]]:
        raise RuntimeError("boom")

    with served(WebHooks(health=broken, metrics=lambda: (b"", "x"))) as client:
        answer = client.get("/healthz")
    assert answer.status_code == 503
    assert answer.json() == {"reason": "the health check failed: RuntimeError"}


def test_metrics_parse_and_match_the_run_records(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    store = Store(url)
    store.migrate()
    expected = {("pull", "ok"): 3, ("pull", "failed"): 1, ("push", "degraded"): 2}
    for (stage, status), n in expected.items():
        for _ in range(n):
            run = store.start_run(stage, trigger="schedule")
            store.finish_run(run, status=status)
    store.start_run("score", trigger="schedule")  # still running
    expected[("score", "running")] = 1
    leading = {"now": True}
    render = basic_metrics(lambda: Store(url), lambda: leading["now"])
    with served(WebHooks(health=lambda: (True, {}), metrics=render)) as client:
        answer = client.get("/metrics")
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/plain")
        families = {f.name: f for f in text_string_to_metric_families(answer.text)}
        assert [s.value for s in families["handshake_leader"].samples] == [1.0]
        runs = {(s.labels["stage"], s.labels["status"]): s.value
                for s in families["handshake_stage_runs"].samples}
        assert runs == {k: float(v) for k, v in expected.items()}
        leading["now"] = False
        families = {f.name: f for f in
                    text_string_to_metric_families(client.get("/metrics").text)}
        assert [s.value for s in families["handshake_leader"].samples] == [0.0]
    store.close()


def test_the_server_listens_on_a_free_port_and_mounts_extra_routes() -> None:
    def hello(_request: Request) -> PlainTextResponse:
        return PlainTextResponse("queued")

    hooks = WebHooks(health=lambda: (True, {"role": "leader"}),
                     metrics=lambda: (b"# nothing\n", "text/plain; version=0.0.4"),
                     routes=[Route("/webhooks/hubspot", hello, methods=["POST"])])
    server = WebServer(create_app(hooks), "127.0.0.1:0").start()
    try:
        assert server.port > 0
        assert httpx.get(f"{server.url}/healthz", timeout=10).json() == {"role": "leader"}
        assert httpx.post(f"{server.url}/webhooks/hubspot", timeout=10).text == "queued"
        assert httpx.get(f"{server.url}/nothing", timeout=10).status_code == 404
        # a second server on the same port fails at start, not later
        with pytest.raises(OSError):
            WebServer(create_app(hooks), f"127.0.0.1:{server.port}").start()
    finally:
        server.stop()
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{server.url}/healthz", timeout=2)
