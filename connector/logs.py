"""Structured logging: human lines by default, JSON lines on request, a run id on every line,
and every known secret (plus anything shaped like a token) redacted from the final text."""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TextIO

__all__ = [
    "CONSOLE_SHOWN",
    "LEVELS",
    "bind_run",
    "current_run_id",
    "get_logger",
    "redact",
    "register_secrets",
    "setup_logging",
]

_run_id: contextvars.ContextVar[str] = contextvars.ContextVar("handshake_run_id", default="-")
_secrets: set[str] = set()
# Shapes of credentials that may reach a message from a remote error or a URL.
_PATTERNS = [
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}"),
    re.compile(r"(?i)((?:access_token|client_secret|password|security_token|session_id|sessionid|"
               r"refresh_token|hapikey|assertion)[\"']?\s*[=:]\s*[\"']?)[^\s&\"',}]+"),
    re.compile(r"(<sessionId>)[^<]+"),
    re.compile(r"(?i)(authorization[\"']?\s*[=:]\s*[\"']?)[^\"',}\n]+"),
]
_REDACTED = "***"
# A record whose text the CLI has just printed on the terminal in its own words (a failure's
# message): the human stderr handler skips it, files and JSON lines keep it.
CONSOLE_SHOWN = "console_shown"
_STD_ATTRS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "run_id", CONSOLE_SHOWN}
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def register_secrets(values: Iterable[str]) -> None:
    """Make these exact values unprintable in any log line from now on."""
    for value in values:
        if value and len(value) >= 4:
            _secrets.add(value)


def redact(text: str) -> str:
    """Remove registered secrets and token-shaped values from `text`."""
    for secret in sorted(_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, _REDACTED)
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + _REDACTED, text)
    return text


def current_run_id() -> str:
    return _run_id.get()


@contextmanager
def bind_run(run_id: str | None = None) -> Iterator[str]:
    """Tag every log line inside the block with `run_id` (a new one if not given)."""
    rid = run_id or uuid.uuid4().hex[:12]
    token = _run_id.set(rid)
    try:
        yield rid
    finally:
        _run_id.reset(token)


class _RunIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.run_id = _run_id.get()
        return True


class _NotShownFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(record, CONSOLE_SHOWN, False)


class HumanFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s [%(run_id)s] %(name)s: %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z"

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        extras = {k: v for k, v in vars(record).items() if k not in _STD_ATTRS}
        if extras:
            text += " " + " ".join(f"{k}={v}" for k, v in extras.items())
        return redact(text)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "run_id": getattr(record, "run_id", _run_id.get()),
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STD_ATTRS:
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return redact(json.dumps(entry, default=str))


def setup_logging(
    *, level: str = "INFO", json_lines: bool = False, file: str | None = None,
    stream: TextIO | None = None,
) -> None:
    """Configure the `handshake` loggers (and the libraries' warnings) once per process.
    `level` is one of `LEVELS` (ValueError otherwise)."""
    if level not in LEVELS:
        raise ValueError(f"{level!r} is not a level; one of {', '.join(LEVELS)}")
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_handshake", False):
            root.removeHandler(handler)
            handler.close()
    formatter: logging.Formatter = JsonFormatter() if json_lines else HumanFormatter()
    console = logging.StreamHandler(stream or sys.stderr)
    if not json_lines:
        console.addFilter(_NotShownFilter())
    handlers: list[logging.Handler] = [console]
    if file:
        handlers.append(logging.FileHandler(file, encoding="utf-8"))
    for handler in handlers:
        handler.setFormatter(formatter)
        handler.addFilter(_RunIdFilter())
        handler._handshake = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger("connector").setLevel(level)
    # The SDKs log request details (headers included) at DEBUG; keep them quiet.
    for noisy in ("urllib3", "hubspot", "simple_salesforce", "httpx", "httpcore", "uvicorn"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def get_logger(name: str) -> logging.Logger:
    return logging.getLogger(name if name.startswith("connector") else f"connector.{name}")
