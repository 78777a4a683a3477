"""Every error Handshake raises, sorted by what the caller must do about it.

    HandshakeError
    ├── FatalError                 stop the run and tell an admin
    │   ├── ConfigError            a config or mapping file is wrong (file, key, fix)
    │   ├── AuthError              credentials refused or expired beyond refresh
    │   ├── StoreError             the state database cannot be reached, read or written
    │   ├── LeaseLost              another run took this stage's lease: stop writing at once
    │   └── QuotaExhausted         a daily allocation is spent: stop the stream until `resets_at`
    ├── StageBusy                  another run of the stage holds its lease (waited, gave up)
    ├── StopRequested              SIGINT/SIGTERM: the batch in flight finished, the run stops
    ├── RetriableError             wait and try again (bounded, with backoff)
    │   ├── RateLimited            429 / REQUEST_LIMIT burst; honours `retry_after`
    │   ├── ServerError            5xx answered by the remote system
    │   └── TransportError         timeout, refused or dropped connection
    └── SkippableError             one record is unusable: park it as a dead letter, go on
        └── RecordRejected         the remote system refused this record (validation, duplicate)

A `RequestError` that is neither retriable nor skippable (a 400 on a whole request, a 404 on
an endpoint) is a `FatalError`: retrying cannot help and the admin must look.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from enum import IntEnum, StrEnum
from typing import Any

__all__ = [
    "AccessRefused",
    "Actor",
    "AuthError",
    "ConfigError",
    "ConfigProblem",
    "ExitCode",
    "FatalError",
    "HandshakeError",
    "LeaseLost",
    "QuotaExhausted",
    "RateLimited",
    "RecordRejected",
    "RequestFailed",
    "RetriableError",
    "ServerError",
    "SkippableError",
    "StageBusy",
    "StopRequested",
    "StoreError",
    "TransportError",
]


class ExitCode(IntEnum):
    """The process exit codes every command and job uses (listed in the README)."""

    OK = 0
    FAILED = 1  # a fatal error: auth, remote refusal, unreachable system or database
    CONFIG = 2  # a bad config or mapping file, or a bad command-line value
    DEGRADED = 3  # finished, but records were parked for an admin (dead letters)
    BUSY = 4  # another run of the stage held its lease for longer than we would wait
    QUOTA = 5  # stopped at a daily quota; the next cycle resumes where it stopped
    SIGINT = 130  # interrupted by Ctrl-C: the batch in flight was committed
    SIGTERM = 143  # stopped by SIGTERM: the batch in flight was committed


class Actor(StrEnum):
    """Who must act for an error to go away."""

    ADMIN = "admin"  # a mapping, a validation rule, a credential, a setting
    DATA = "data"  # the record itself is wrong at its source
    WAIT = "wait"  # nobody: time heals it


class HandshakeError(Exception):
    """Base of every Handshake error. `system` names the remote system when there is one;
    `fix` (class default or set on the instance) tells the reader what to do about it."""

    actor: Actor = Actor.ADMIN
    fix: str | None = None

    def __init__(self, message: str, *, system: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.system = system

    def __str__(self) -> str:
        return f"{self.system}: {self.message}" if self.system else self.message


# --- fatal ---------------------------------------------------------------------------------


class FatalError(HandshakeError):
    """Stop the run; an admin has to fix something before it can succeed."""


class ConfigProblem:
    """One problem in a config or mapping file: where, what, and how to fix it."""

    __slots__ = ("file", "fix", "key", "line", "problem")

    def __init__(
        self, file: str, key: str, problem: str, fix: str, line: int | None = None
    ) -> None:
        self.file = file
        self.key = key
        self.problem = problem
        self.fix = fix
        self.line = line

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: [{self.key}] {self.problem}. Fix: {self.fix}"

    def __repr__(self) -> str:
        return f"ConfigProblem({str(self)!r})"

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "line": self.line,
            "key": self.key,
            "problem": self.problem,
            "fix": self.fix,
        }


class ConfigError(FatalError):
    """A config or mapping file is invalid; carries every problem found, not just the first."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{len(problems)} configuration problem(s):\n{lines}")


class AuthError(FatalError):
    """Credentials were refused (401/403 on login, revoked token)."""


class AccessRefused(AuthError):
    """A 403: the token is valid but this API is outside its scopes or the account's tier.
    Fatal for the call; a stream with another way to the same data may degrade instead."""


class StoreError(FatalError):
    """The state database cannot be reached, read or written (unreachable server, read-only or
    corrupt file). Never carries record data: the message names the database and the fix."""

    def __init__(self, message: str, *, fix: str | None = None) -> None:
        super().__init__(message, system="state database")
        self.fix = fix


class LeaseLost(FatalError):
    """This run no longer holds its stage's lease (it expired and another run took it): the run
    stops before its next write so two runs never write at once."""

    actor = Actor.WAIT


class RequestFailed(FatalError):
    """A whole request was refused in a way retrying cannot fix (400, 404, 405...)."""

    def __init__(
        self,
        message: str,
        *,
        system: str | None = None,
        status: int | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(message, system=system)
        self.status = status
        self.body = body


class QuotaExhausted(FatalError):
    """A daily allocation is spent (HubSpot DAILY 429, Salesforce REQUEST_LIMIT_EXCEEDED, or
    Handshake's own share of it). The stream stops until `resets_at`; other streams may go on."""

    actor = Actor.WAIT

    def __init__(
        self, message: str, *, system: str | None = None, resets_at: datetime | None = None
    ) -> None:
        super().__init__(message, system=system)
        self.resets_at = resets_at

    def __str__(self) -> str:
        # a run records only the text: it says when the quota resets
        text = super().__str__()
        if self.resets_at is None:
            return text
        return f"{text} (resets at {self.resets_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC)"


# --- run control ---------------------------------------------------------------------------


class StageBusy(HandshakeError):
    """Another run of the same stage holds its lease and did not finish within the wait."""

    actor = Actor.WAIT

    def __init__(self, message: str, *, stage: str, holder: str | None = None) -> None:
        super().__init__(message)
        self.stage = stage
        self.holder = holder


class StopRequested(HandshakeError):
    """A stop signal arrived; raised at the next batch boundary after the batch committed."""

    actor = Actor.WAIT

    def __init__(self, message: str = "stop requested", *, signum: int | None = None) -> None:
        super().__init__(message)
        self.signum = signum


# --- retriable -----------------------------------------------------------------------------


class RetriableError(HandshakeError):
    """Transient: back off and try again."""

    actor = Actor.WAIT

    def __init__(
        self,
        message: str,
        *,
        system: str | None = None,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, system=system)
        self.status = status
        self.retry_after = retry_after


class RateLimited(RetriableError):
    """The remote system asked us to slow down (HubSpot 10-second or secondly limit)."""


class ServerError(RetriableError):
    """The remote system failed (5xx)."""


class TransportError(RetriableError):
    """No usable answer: timeout, refused, reset or dropped connection."""


# --- skippable -----------------------------------------------------------------------------


class SkippableError(HandshakeError):
    """One record cannot be processed; park it as a dead letter and carry on with the rest."""

    actor = Actor.DATA

    def __init__(
        self,
        message: str,
        *,
        system: str | None = None,
        record_key: str | None = None,
        actor: Actor | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message, system=system)
        self.record_key = record_key
        if actor is not None:
            self.actor = actor
        self.details = dict(details or {})


class RecordRejected(SkippableError):
    """The remote system refused this one record (validation error, duplicate rule...)."""
