"""What the daemon tells about itself: `/healthz`'s decision (`Health`), a minimal
`/metrics` (`basic_metrics`, until the status module's `render_metrics` is passed instead),
the mapping files' health, and a failure in one line for the log and the instance record."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from connector.config import Config
from connector.errors import ConfigError, ConfigProblem, HandshakeError
from connector.logs import redact
from connector.store import Store

__all__ = ["Cycle", "Health", "basic_metrics", "describe", "iso", "mapping_problems", "mtime"]


def mtime(path: Path) -> float:
    """A file's modification time (-1 when it cannot be read), to notice edits."""
    try:
        return path.stat().st_mtime
    except OSError:
        return -1.0


def iso(when: datetime | None) -> str | None:
    """A time as the instance record writes it (UTC, seconds)."""
    return when.astimezone(UTC).isoformat(timespec="seconds") if when is not None else None


@dataclass
class Cycle:
    """How the daemon's last job ended, and when one last succeeded."""

    at: datetime | None = None
    ok: bool = False
    error: str | None = None
    ok_at: datetime | None = None

    def record(self, at: datetime, ok: bool, error: str | None) -> None:
        self.at, self.ok, self.error = at, ok, error
        if ok:
            self.ok_at = at


@dataclass
class Health:
    """What /healthz decides from: the role, the last cycle and the last heartbeat."""

    role: str = "starting"
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    beat_at: datetime | None = None
    cycle: Cycle = field(default_factory=Cycle)

    def check(self, max_age: timedelta, beat_age: timedelta,
              now: datetime | None = None) -> tuple[bool, dict[str, Any]]:
        """(healthy, details): the leader is healthy when a cycle succeeded within `max_age`;
        a standby when its last heartbeat reached the state store within `beat_age`."""
        now = now or datetime.now(UTC)
        body: dict[str, Any] = {"role": self.role, "last_cycle": {
            "at": iso(self.cycle.at), "ok": self.cycle.ok, "error": self.cycle.error},
            "last_success": iso(self.cycle.ok_at)}
        if self.role == "leader":
            if self.cycle.ok_at is None:
                body["reason"] = "no cycle has succeeded yet"
                if self.cycle.error:
                    body["reason"] += f" (the last failed: {self.cycle.error})"
                return False, body
            if now - self.cycle.ok_at > max_age:
                body["reason"] = (f"no cycle succeeded for {max_age} (last success "
                                  f"{iso(self.cycle.ok_at)}; last error: {self.cycle.error})")
                return False, body
            return True, body
        if self.role == "standby":
            if self.beat_at is None or now - self.beat_at > beat_age:
                body["reason"] = "this standby has not reached the state database lately"
                return False, body
            return True, body
        body["reason"] = f"the daemon is {self.role}"
        return False, body


def basic_metrics(store_factory: Callable[[], Store], is_leader: Callable[[], bool],
                  ) -> Callable[[], tuple[bytes, str]]:
    """A minimal /metrics (until the status module's `render_metrics` is wired): the leader
    gauge and the runs recorded, by stage and status."""
    from prometheus_client import CollectorRegistry, Gauge, generate_latest
    from prometheus_client.exposition import CONTENT_TYPE_LATEST

    def render() -> tuple[bytes, str]:
        registry = CollectorRegistry()
        Gauge("handshake_leader", "1 when this instance is the active daemon",
              registry=registry).set(1 if is_leader() else 0)
        runs = Gauge("handshake_stage_runs", "Stage runs recorded in the state store",
                     ["stage", "status"], registry=registry)
        store = store_factory()
        try:
            counts: dict[tuple[str, str], int] = {}
            for run in store.runs(limit=1_000_000):
                key = (run.stage, run.status)
                counts[key] = counts.get(key, 0) + 1
        finally:
            store.close()
        for (stage, status), n in sorted(counts.items()):
            runs.labels(stage=stage, status=status).set(n)
        return generate_latest(registry), CONTENT_TYPE_LATEST

    return render


def mapping_problems(config: Config) -> list[ConfigProblem]:
    """Every problem of the mapping files the stages read (as `handshake mappings check`)."""
    from connector.mapping import fields as fields_file
    from connector.mapping import routing as routing_file
    from connector.mapping import sla as sla_file
    from connector.scoring.model import load_model

    problems: list[ConfigProblem] = []
    try:
        load_model(config.mapping_path("scoring"))
    except ConfigError as exc:
        problems.extend(exc.problems)
    problems.extend(fields_file.problems_of(config.mapping_path("fields")))
    problems.extend(routing_file.problems_of(config.mapping_path("routing")))
    sla = config.mapping_path("sla")
    if sla.exists():  # the push falls back to the shipped windows without one
        problems.extend(sla_file.problems_of(sla))
    return problems


def describe(exc: BaseException) -> str:
    """A failure in a line for the log and the instance record: no traceback, no record data
    (Handshake's messages carry ids only; anything else is named by its type)."""
    if isinstance(exc, HandshakeError):
        fix = f" (fix: {exc.fix})" if exc.fix else ""
        return redact(f"{type(exc).__name__}: {exc.message}{fix}")[:500]
    return type(exc).__name__
