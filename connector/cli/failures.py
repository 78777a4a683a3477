"""Every failure a command can meet, read as a message: what failed, where (system, host, file,
key), the fix, and the README's exit code. The only place an exception becomes output.

    describe(exc, command, config) -> Failure      one table lookup, by the exception's class
    report(exc, command)           -> exit code    the message on stderr (at most five lines),
                                                   logged once at ERROR, the traceback at DEBUG

Nothing printed above DEBUG quotes record data: Handshake's own messages carry ids, never
emails, names or field values; email addresses in any quoted text are masked; the answer to a
refused request and the reason a record was refused are logged at DEBUG only; an exception
Handshake did not anticipate is named by its type only.
"""

from __future__ import annotations

import logging
import re
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlsplit

from rich.markup import escape

from connector.cli._app import err, exit_with, report_config_error
from connector.config import Config
from connector.errors import (
    AuthError,
    ConfigError,
    ConfigProblem,
    ExitCode,
    FatalError,
    HandshakeError,
    LeaseLost,
    QuotaExhausted,
    RateLimited,
    RequestFailed,
    RetriableError,
    ServerError,
    SkippableError,
    StageBusy,
    StopRequested,
    StoreError,
    TransportError,
)
from connector.logs import CONSOLE_SHOWN, redact

__all__ = [
    "DEBUG_HINT",
    "FAILURES",
    "Failure",
    "database_where",
    "describe",
    "mask",
    "report",
    "report_stop",
]

log = logging.getLogger("connector.cli")

DEBUG_HINT = "run again with --log-level DEBUG for the traceback, and report it"
RESUMES = "run it again: it resumes where it stopped"
_EMAIL = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+")
_ERRNO = re.compile(r"\[Errno -?\d+\][^\"')(]*")
_STATUS = re.compile(r"^.*?: HTTP \d{3}(?: \[[^\]]*\])?")
_INLINE_FIX = re.compile(r"[.;,]?\s*(?:—\s*)?\b[Ff]ix:\s*")


@dataclass(frozen=True)
class Failure:
    """What the user reads about one failure, and the exit code it ends with."""

    what: str
    fix: str
    code: ExitCode
    where: str | None = None
    problems: list[ConfigProblem] = field(default_factory=list)  # a bad config: each problem

    def lines(self) -> list[str]:
        """The message: at most three lines (`problems` are printed one by one instead)."""
        lines = [f"error: {self.what}"]
        if self.where:
            lines.append(f"  where: {self.where}")
        lines.append(f"  fix: {self.fix}")
        return lines


@dataclass(frozen=True)
class _Scene:
    """What a describer may use besides the exception: the command and its loaded config."""

    command: str
    config: Config | None


Describer = Callable[[BaseException, _Scene], Failure]


def mask(text: str) -> str:
    """`text` fit for a line above DEBUG: secrets redacted, email addresses masked."""
    return _EMAIL.sub("<email>", redact(text))


def _split_fix(exc: HandshakeError) -> tuple[str, str | None]:
    """The message and the fix of a Handshake error; a message that carries its own
    "Fix: ..." is split there (the fix is printed on its own line)."""
    message = mask(exc.message)
    fix = exc.fix
    parts = _INLINE_FIX.split(message, maxsplit=1)
    if len(parts) == 2:
        message = parts[0]
        fix = fix or parts[1].rstrip(".")
    return message, (mask(fix) if fix else None)


# --- where ----------------------------------------------------------------------------------

_SYSTEM_NAMES = {"hubspot": "HubSpot", "salesforce": "Salesforce", "webhook": "the alert webhook",
                 "state database": "the state database"}


def _system_name(system: str | None) -> str:
    return _SYSTEM_NAMES.get(system or "", system or "a remote system")


def _host(url: str) -> str:
    """host[:port] of a URL, without any user or password in it."""
    parts = urlsplit(url)
    return (parts.netloc.rsplit("@", 1)[-1] or url) if parts.scheme else url


def _endpoint(exc: HandshakeError, config: Config | None) -> tuple[str, str] | None:
    """(the host the error came from, the config key that names it), when the config says."""
    if config is None:
        return None
    if exc.system == "hubspot":
        return _host(config.hubspot.base_url), "[hubspot] base_url"
    if exc.system == "salesforce":
        if "login" in exc.message.lower() and config.salesforce.auth.value != "session":
            return _host(config.salesforce.login_url), "[salesforce] login_url"
        return _host(config.salesforce.instance_url), "[salesforce] instance_url"
    if exc.system == "webhook" and config.alerts.webhook_url:
        return _host(config.alerts.webhook_url), "[alerts] webhook_url"
    return None


def _where(exc: HandshakeError, scene: _Scene) -> str:
    if exc.system == "state database":
        return database_where(scene.config)
    endpoint = _endpoint(exc, scene.config)
    name = _system_name(exc.system)
    return f"{name} at {endpoint[0]} ({endpoint[1]})" if endpoint else name


def database_where(config: Config | None) -> str:
    """The state database as a reader recognises it, never with its password."""
    if config is None:
        return "the state database ([state] database_url)"
    url = config.state.database_url
    parts = urlsplit(url)
    if parts.scheme.startswith("sqlite"):
        path = url.split("://", 1)[1].removeprefix("/").removeprefix("file:").split("?")[0]
        path = path or ":memory:"
        return f"SQLite file {path} ([state] database_url in {config.source})"
    host = parts.netloc.rsplit("@", 1)[-1]
    return f"PostgreSQL at {host}{parts.path} ([state] database_url in {config.source})"


def _attempts(exc: HandshakeError, config: Config | None) -> str:
    if config is None:
        return "after its retries"
    attempts = {"hubspot": ("hubspot", config.hubspot.max_attempts),
                "salesforce": ("salesforce", config.salesforce.max_attempts),
                "webhook": ("alerts", config.alerts.max_attempts)}.get(exc.system or "")
    if attempts is None:
        return "after its retries"
    return f"after {attempts[1]} attempt(s) ([{attempts[0]}] max_attempts)"


# --- the table ------------------------------------------------------------------------------


def _config_error(exc: BaseException, scene: _Scene) -> Failure:
    assert isinstance(exc, ConfigError)
    return Failure(f"{len(exc.problems)} configuration problem(s)", "fix each problem listed",
                   ExitCode.CONFIG, problems=exc.problems)


def _auth_error(exc: BaseException, scene: _Scene) -> Failure:
    assert isinstance(exc, AuthError)
    message, fix = _split_fix(exc)
    if fix is None:
        fix = ("check HANDSHAKE_HUBSPOT_TOKEN: a private-app token of this portal with the "
               "scopes the README lists" if exc.system == "hubspot" else
               "check the HANDSHAKE_SF_* variables [salesforce] auth needs, and that the "
               "integration user may use the API")
    return Failure(f"{_system_name(exc.system)} refused the credentials: {message}", fix,
                   ExitCode.FAILED, _where(exc, scene))


def _store_error(exc: BaseException, scene: _Scene) -> Failure:
    assert isinstance(exc, StoreError)
    message, fix = _split_fix(exc)
    return Failure(f"state database: {message}",
                   fix or "check [state] database_url and that the database is running, "
                   "reachable and writable (`handshake config check` tests it)",
                   ExitCode.FAILED, database_where(scene.config))


def _request_failed(exc: BaseException, scene: _Scene) -> Failure:
    assert isinstance(exc, RequestFailed)
    message, fix = _split_fix(exc)
    # the remote answer to a whole request may quote the values sent: shown at DEBUG only
    status = _STATUS.match(message)
    if status is not None:
        log.debug("%s answered: %s", _system_name(exc.system), exc.message)
        message = f"{status.group(0)} (its answer is logged at DEBUG: it may quote record data)"
    return Failure(f"{_system_name(exc.system)} refused a request: {message}",
                   fix or "retrying cannot help: check the integration user's permissions and "
                   "the mapping files against the README; --log-level DEBUG shows the answer",
                   ExitCode.FAILED, _where(exc, scene))


def _record_rejected(exc: BaseException, scene: _Scene) -> Failure:
    assert isinstance(exc, SkippableError)
    log.debug("%s refused a record: %s", _system_name(exc.system), exc.message)
    return Failure(f"{_system_name(exc.system)} refused a record (its reason is logged at DEBUG: "
                   "it may quote the record)",
                   "run again with --log-level DEBUG to see why, then fix the record at its "
                   "source (or report it if the record is right)", ExitCode.FAILED,
                   _where(exc, scene) if exc.system else None)


def _retriable(exc: BaseException, scene: _Scene) -> Failure:
    assert isinstance(exc, RetriableError)
    message, fix = _split_fix(exc)
    name = _system_name(exc.system)
    endpoint = _endpoint(exc, scene.config)
    if isinstance(exc, RateLimited):
        what = f"{name} kept answering 'too many requests'"
        share = " lower [hubspot] rate_limit_share, or" if exc.system == "hubspot" else ""
        fix = fix or f"another app is using {name}'s rate limit:{share} {RESUMES} later"
    elif isinstance(exc, ServerError):
        what = f"{name} kept failing on its side"
        fix = fix or f"check {name}'s status page; {RESUMES} later"
    else:
        what = f"{name} could not be reached"
        message = _socket_reason(message)
        place = f"{endpoint[0]} answers from this machine" if endpoint else "it answers"
        key = f" and that {endpoint[1]} is right" if endpoint else ""
        fix = fix or (f"check that {place} (network, proxy, firewall){key}; then {RESUMES}")
    return Failure(f"{what} {_attempts(exc, scene.config)}: {message}", fix, ExitCode.FAILED,
                   _where(exc, scene))


def _socket_reason(message: str) -> str:
    """"what: <library's exception text>" shortened to "what: [Errno 111] Connection refused"
    when the library quotes the socket's error inside its own."""
    found = _ERRNO.search(message)
    return f"{message.split(': ', 1)[0]}: {found.group(0).strip()}" if found else message


def _quota(exc: BaseException, scene: _Scene) -> Failure:
    assert isinstance(exc, QuotaExhausted)
    message, fix = _split_fix(exc)
    return Failure(f"{_system_name(exc.system)}'s daily API quota is spent: {message}",
                   fix or _quota_fix(exc.resets_at), ExitCode.QUOTA, _where(exc, scene))


def _quota_fix(resets_at: datetime | None) -> str:
    when = (f"after it resets at {resets_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
            if resets_at else "after the quota resets")
    return f"nothing to do: the next run {when} resumes where this one stopped"


def _busy(exc: BaseException, scene: _Scene) -> Failure:
    assert isinstance(exc, StageBusy)
    message, fix = _split_fix(exc)
    holder = f", held by {exc.holder}" if exc.holder else ""
    return Failure(message, fix or "wait for the other run to finish and run again; a lease "
                   "left by a killed run expires by itself",
                   ExitCode.BUSY, f"the {exc.stage} lease{holder}, in "
                   f"{database_where(scene.config)}")


def _lease_lost(exc: BaseException, scene: _Scene) -> Failure:
    assert isinstance(exc, LeaseLost)
    message, fix = _split_fix(exc)
    return Failure(message, fix or "another run took this stage over after its lease expired "
                   "(nothing was written twice); look for a stalled run, then run again",
                   ExitCode.FAILED, database_where(scene.config))


def _stopped(exc: BaseException, scene: _Scene) -> Failure:
    assert isinstance(exc, StopRequested)
    term = exc.signum == signal.SIGTERM
    return Failure(f"{scene.command} stopped by {'SIGTERM' if term else 'SIGINT'}: the batch in "
                   "flight was committed", RESUMES,
                   ExitCode.SIGTERM if term else ExitCode.SIGINT)


def _interrupted(exc: BaseException, scene: _Scene) -> Failure:
    return Failure(f"{scene.command} interrupted (Ctrl-C)",
                   "run it again: what was committed is kept", ExitCode.SIGINT)


def _fatal(exc: BaseException, scene: _Scene) -> Failure:
    assert isinstance(exc, HandshakeError)
    message, fix = _split_fix(exc)
    return Failure(message, fix or DEBUG_HINT, ExitCode.FAILED,
                   _where(exc, scene) if exc.system else None)


def _file_error(exc: BaseException, scene: _Scene) -> Failure:
    assert isinstance(exc, OSError)
    if exc.filename is None:
        return _internal(exc, scene)
    reason = exc.strerror or type(exc).__name__
    return Failure(f"{scene.command} cannot use a file: {reason}",
                   "check that the file exists and this user may read (and write) it",
                   ExitCode.FAILED, str(exc.filename))


def _internal(exc: BaseException, scene: _Scene) -> Failure:
    # str(exc) of an unforeseen exception may quote the record it failed on: the type only
    if _from_database_driver(exc):
        return Failure(f"the state database failed in {scene.command}: {_driver_reason(exc)}",
                       "check that the database is running, reachable and writable "
                       f"(`handshake config check` tests it); if it is, {DEBUG_HINT}",
                       ExitCode.FAILED, database_where(scene.config))
    return Failure(f"internal error in {scene.command}: {type(exc).__name__}", DEBUG_HINT,
                   ExitCode.FAILED)


def _from_database_driver(exc: BaseException) -> bool:
    """An error of SQLAlchemy or a database driver the store did not translate (its text holds
    the statement's parameters: record data)."""
    module = type(exc).__module__.split(".", 1)[0]
    return module in {"sqlalchemy", "sqlite3", "psycopg", "psycopg2", "alembic"}


def _driver_reason(exc: BaseException) -> str:
    """The error's type, and for a connection or file fault its driver's first line: those
    name the database, never a statement's parameters (an integrity or data error may)."""
    name = type(exc).__name__
    if name not in {"OperationalError", "DatabaseError"}:
        return name
    orig = getattr(exc, "orig", None) or exc
    reason = str(orig).strip().splitlines()[0] if str(orig).strip() else ""
    return f"{name}: {mask(reason)}" if reason else name


# Most specific first: the first class in an exception's MRO found here describes it.
FAILURES: dict[type[BaseException], Describer] = {
    ConfigError: _config_error,
    AuthError: _auth_error,
    StoreError: _store_error,
    LeaseLost: _lease_lost,
    QuotaExhausted: _quota,
    RequestFailed: _request_failed,
    RateLimited: _retriable,
    ServerError: _retriable,
    TransportError: _retriable,
    RetriableError: _retriable,
    StageBusy: _busy,
    StopRequested: _stopped,
    SkippableError: _record_rejected,
    FatalError: _fatal,
    HandshakeError: _fatal,
    KeyboardInterrupt: _interrupted,
    OSError: _file_error,
    BaseException: _internal,
}


def describe(exc: BaseException, command: str, config: Config | None = None) -> Failure:
    """The message and exit code for `exc`, raised by `command` (`config`: the one it loaded)."""
    scene = _Scene(command, config)
    for cls in type(exc).__mro__:
        describer = FAILURES.get(cls)
        if describer is not None:
            return describer(exc, scene)
    return _internal(exc, scene)


def report(exc: BaseException, command: str, config: Config | None = None) -> int:
    """Print `exc` as its message on stderr (with the traceback at DEBUG), log it once at ERROR
    and return the exit code to end with."""
    failure = describe(exc, command, config)
    if log.isEnabledFor(logging.DEBUG):
        log.debug("%s failed", command, exc_info=exc)
    if logging.getLogger().handlers:  # logging is set up (not so for a bad --log-level)
        log.error("%s failed: %s", command, failure.what,
                  extra={"exit_code": int(failure.code), CONSOLE_SHOWN: True})
    if failure.problems:
        report_config_error(ConfigError(failure.problems))
    else:
        _print(failure.lines())
    return int(failure.code)


def report_stop(status: str, error: str | None) -> None:
    """End a stage that returned instead of raising: a run stopped at a daily quota exits 5
    saying so (its error says when the quota resets); any other status shows its error."""
    if status == "stopped":
        message = mask(error or "a daily API quota is spent")
        _print(Failure(f"stopped at a daily API quota: {message}", _quota_fix(None),
                       ExitCode.QUOTA).lines())
        raise exit_with(ExitCode.QUOTA)
    if error:
        err.print(f"[yellow]{escape(mask(error))}[/]", highlight=False)


def _print(lines: list[str]) -> None:
    for line in lines:
        err.print(escape(line), highlight=False)
