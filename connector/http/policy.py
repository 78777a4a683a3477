"""`HttpPolicy`: limiters, classification and tenacity retries around any outbound call.

One policy per remote system, built from its `PolicySettings` and its `Dialect` (each adapter
has a constructor: `connector.hubspot.policy`, `connector.salesforce.policy`). Every library's
calls go through `execute` (the httpx transport, the requests adapter and the HubSpot SDK helper
all call it), so nothing is retried twice: the SDKs' own retries are off, and an error already
decided by a policy underneath is passed on untouched. All waiting goes through the injected
`Clock`.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from random import Random
from typing import Any, NoReturn, TypeVar, cast
from zoneinfo import ZoneInfo

import httpx
import requests
import urllib3.exceptions
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from connector.clock import Clock, SystemClock
from connector.control import checkpoint, wait
from connector.errors import (
    HandshakeError,
    QuotaExhausted,
    RecordRejected,
    RequestFailed,
    RetriableError,
    SkippableError,
)
from connector.http import classify as c
from connector.http import settings as s
from connector.http.limits import ConcurrencyLimiter, Limiter, RollingWindowLimiter

__all__ = ["HttpPolicy", "RefreshHook", "Timeouts", "redact"]

T = TypeVar("T")

log = logging.getLogger("connector.http")

MIN_SECRET_CHARS = 4

RefreshHook = Callable[[], Mapping[str, str] | None]
"""Refreshes a session; may return headers (e.g. a new Authorization) for the re-sent request."""

# What a credential can look like in text we did not write (exception texts, remote messages),
# each with its mask.
_SECRET_PATTERNS = (
    (re.compile(r"(?i)\b(authorization)\s*[:=]\s*\S+(\s+\S+)?"), r"\1: ***"),
    (re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=!-]+"), r"\1 ***"),
    (re.compile(r"\b00D[A-Za-z0-9]{12,15}![A-Za-z0-9._-]+"), "***"),  # Salesforce session id
    (re.compile(r"\?[^\s'\"<>?]*=[^\s'\"<>]*"), "?***"),  # query strings (legacy hapikey=...)
)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with known secrets, bearer tokens, session ids and query strings masked."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    for pattern, mask in _SECRET_PATTERNS:
        text = pattern.sub(mask, text)
    return text


@dataclass(frozen=True)
class Timeouts:
    """Seconds allowed to connect, read, write, and wait for a pooled connection."""

    connect: float
    read: float
    write: float
    pool: float

    def httpx(self) -> httpx.Timeout:
        """As an `httpx.Timeout`."""
        return httpx.Timeout(connect=self.connect, read=self.read, write=self.write, pool=self.pool)

    def pair(self) -> tuple[float, float]:
        """As the `(connect, read)` pair requests and urllib3 take."""
        return (self.connect, self.read)


# Failures that prove the request never reached the server: safe to send again, even a create.
_NEVER_SENT: tuple[type[BaseException], ...] = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    requests.exceptions.ConnectTimeout,
    urllib3.exceptions.NewConnectionError,
    urllib3.exceptions.ConnectTimeoutError,
    ConnectionRefusedError,
)


@dataclass
class _Call:
    """The state of one `execute`: errors this policy raised (the only ones it retries), and
    those it must not retry because the request may already have been applied."""

    what: str
    raised: list[BaseException] = field(default_factory=list)
    refreshed: bool = False
    replayable: bool = True
    maybe_applied: list[BaseException] = field(default_factory=list)

    def own(self, err: HandshakeError) -> HandshakeError:
        self.raised.append(err)
        return err

    def is_own(self, exc: BaseException) -> bool:
        return any(exc is known for known in self.raised)


class HttpPolicy:
    """The retry, rate-limit and classification policy of one remote system."""

    def __init__(
        self,
        settings: s.PolicySettings,
        dialect: c.Dialect,
        *,
        clock: Clock | None = None,
        random: Random | None = None,
        on_session_expired: RefreshHook | None = None,
        secrets: Iterable[str] = (),
    ) -> None:
        self.settings = settings
        self.dialect = dialect
        self.clock: Clock = clock or SystemClock()
        self.on_session_expired = on_session_expired
        self._random = random or Random()
        self._secrets: set[str] = {x for x in secrets if len(x or "") >= MIN_SECRET_CHARS}
        self._lock = threading.Lock()
        self._local = threading.local()  # `sent_once` blocks, per thread
        self._quota: QuotaExhausted | None = None
        self.daily_usage: tuple[int, int] | None = None  # (used, allowed), as last reported
        self.limiters: dict[str, Limiter] = {}
        for name, rolling in settings.rolling.items():
            self.limiters[name] = RollingWindowLimiter(
                rolling.limit,
                rolling.window,
                clock=self.clock,
                safety_margin=settings.safety_margin,
                name=name,
            )
        for name, size in settings.concurrency.items():
            self.limiters[name] = ConcurrencyLimiter(size, name=name)
        self._tz = ZoneInfo(settings.daily_reset_timezone)

    # --- public helpers -----------------------------------------------------------------------

    @property
    def system(self) -> str:
        """The remote system's name, as errors carry it."""
        return self.settings.system

    @property
    def timeouts(self) -> Timeouts:
        """The timeouts every adapter applies."""
        st = self.settings
        return Timeouts(st.connect_timeout, st.read_timeout, st.write_timeout, st.pool_timeout)

    def add_secret(self, secret: str) -> None:
        """Register a value (token, password) that must never appear in an error message.

        Values shorter than MIN_SECRET_CHARS are not masked: masking every "t" of a message
        hides nothing and makes the message unreadable (real credentials are much longer)."""
        if len(secret or "") >= MIN_SECRET_CHARS:
            with self._lock:
                self._secrets.add(secret)

    def redact(self, text: str) -> str:
        """`text` with this policy's secrets and any credential-looking value masked."""
        with self._lock:
            secrets = sorted(self._secrets, key=len, reverse=True)
        return redact(text, secrets)

    def limiter(self, name: str) -> Limiter:
        """The limiter called `name`."""
        try:
            return self.limiters[name]
        except KeyError:
            raise ValueError(
                f"{self.system} has no limiter {name!r}; known: {', '.join(self.limiters)}"
            ) from None

    @property
    def exhausted_until(self) -> datetime | None:
        """When a spent daily quota resets, while it is spent; None otherwise."""
        with self._lock:
            quota = self._quota
        if quota is None or quota.resets_at is None or self.clock.now() >= quota.resets_at:
            return None
        return quota.resets_at

    @contextmanager
    def sent_once(self) -> Iterator[None]:
        """Calls made in this block (on this thread) are not sent again once they may have
        reached the server: a 5xx, or a connection lost after the request went out, may hide
        a write that was applied, and a create without an external id sent twice makes two
        records. Refusals that prove nothing was done (429, a concurrency limit, an expired
        session, a connection never made) are still retried. The caller reconciles the rest."""
        before = getattr(self._local, "once", False)
        self._local.once = True
        try:
            yield
        finally:
            self._local.once = before

    # --- execute ------------------------------------------------------------------------------

    def execute(
        self,
        send: Callable[[], T],
        *,
        limiter: str | None = None,
        describe: str = "",
        accept: Collection[int] = (),
        on_refreshed: Callable[[Mapping[str, str]], None] | None = None,
    ) -> T:
        """Call `send()` under this policy and return what it returns.

        Takes the `limiter` (or the system's default one) for each attempt, classifies an error
        answer or exception through the table, retries retriable ones (exponential backoff with
        jitter, or exactly what `Retry-After` / the rate-limit window asks), and raises the
        tier's error when it gives up. `accept` lists error statuses the caller handles itself;
        `on_refreshed` receives the headers returned by the session-refresh hook so an adapter
        can put them on the re-sent request.
        """
        checkpoint()  # a stop request or a lost lease lands between calls, never inside one
        self._refuse_while_exhausted(describe)
        chosen = self.limiter(limiter) if limiter else self._default_limiter()
        call = _Call(what=describe, replayable=not getattr(self._local, "once", False))

        def attempt() -> T:
            while True:
                held: AbstractContextManager[None] = chosen.hold() if chosen else nullcontext()
                with held:
                    outcome = self._send_once(send, accept, call)
                if not isinstance(outcome, c.Verdict):
                    return outcome
                refreshed = self._maybe_refresh(outcome, call, on_refreshed)
                if refreshed:
                    continue  # one immediate re-send with the new session
                self._act(outcome, call, chosen)

        retrying = Retrying(
            stop=stop_after_attempt(self.settings.max_attempts),
            wait=self._wait,
            retry=retry_if_exception(lambda exc: self._should_retry(exc, call)),
            sleep=lambda seconds: wait(self.clock, seconds),
            before_sleep=self._log_retry,
            reraise=True,
        )
        return retrying(attempt)

    # --- internals ----------------------------------------------------------------------------

    def _default_limiter(self) -> Limiter | None:
        name = self.settings.default_limiter
        return self.limiters[name] if name else None

    def _send_once(
        self, send: Callable[[], T], accept: Collection[int], call: _Call
    ) -> T | c.Verdict:
        """One call: its result when usable, else the verdict on it."""
        try:
            result = send()
        except HandshakeError:
            raise  # decided by a policy underneath: pass it on, never retry it twice
        except Exception as exc:
            view = c.view_of(exc, self.dialect.read_exception)
            if view is not None:
                if view.status in accept:
                    raise
                verdict = self.dialect.classify(view=view, exception=exc)
                assert verdict is not None  # an answer always gets a verdict
                return verdict
            verdict = self.dialect.classify(exception=exc)
            if verdict is None:
                raise  # not a network or HTTP failure: a bug to see, not to retry
            return verdict
        self._observe(result)
        status = c.status_of(result)
        if status is None or status < 400 or status in accept:
            return result  # a success body stays unread: the caller may stream it
        if isinstance(result, httpx.Response):
            result.read()  # error bodies are small and carry the remote message
        view = c.view_of(result)
        assert view is not None
        verdict = self.dialect.classify(view=view)
        assert verdict is not None
        if verdict.rule.action is c.Action.PASS:
            return result
        return verdict

    def _observe(self, answer: object) -> None:
        """Track the daily allocation the answer reports; past our share, refuse further calls."""
        read_usage = self.dialect.read_usage
        headers = c.headers_of(answer) if read_usage is not None else None
        usage = read_usage(headers) if read_usage is not None and headers else None
        if usage is None:
            return
        used, allowed = usage
        with self._lock:
            self.daily_usage = usage
        share = self.settings.daily_share
        if share is None or allowed <= 0 or used < share * allowed:
            return
        now = self.clock.now()
        resets_at = self._resets_at(now)
        quota = QuotaExhausted(
            f"{used} of {allowed} daily API calls used: Handshake's share ({share:.0%}) is spent "
            f"until {resets_at.isoformat()}",
            system=self.system,
            resets_at=resets_at,
        )
        with self._lock:
            current = self._quota
            fresh = current is None or current.resets_at is None or current.resets_at <= now
            if fresh:
                self._quota = quota
        if fresh:
            log.warning("%s", quota)

    def _maybe_refresh(
        self,
        verdict: c.Verdict,
        call: _Call,
        on_refreshed: Callable[[Mapping[str, str]], None] | None,
    ) -> bool:
        if verdict.rule.action is not c.Action.REFRESH:
            return False
        if self.on_session_expired is None or call.refreshed:
            return False
        call.refreshed = True
        self._release(verdict)
        what = self.redact(self._what(verdict, call))
        log.info("%s: %s: session expired, refreshing once", self.system, what)
        headers = self.on_session_expired()
        if headers and on_refreshed is not None:
            on_refreshed(headers)
        return True

    def _release(self, verdict: c.Verdict) -> None:
        if verdict.view is not None and verdict.view.release is not None:
            try:
                verdict.view.release()
            except Exception:
                log.debug("could not release a response", exc_info=True)

    def _what(self, verdict: c.Verdict, call: _Call) -> str:
        view = verdict.view
        target = ""
        if view is not None and view.method and view.path:
            target = f"{view.method} {view.path}"
        elif view is not None and view.path:
            target = view.path
        if call.what and target and target not in call.what:
            return f"{call.what} ({target})"
        return call.what or target or "request"

    def _message(self, verdict: c.Verdict, call: _Call) -> str:
        what = self._what(verdict, call)
        if verdict.view is not None:
            remote = verdict.info.message if verdict.info else ""
            codes = ", ".join(sorted(verdict.info.codes)) if verdict.info else ""
            detail = f" [{codes}]" if codes else ""
            text = f"{what}: HTTP {verdict.view.status}{detail}: {remote or verdict.rule.why}"
        else:
            exc = verdict.exception
            text = f"{what}: {type(exc).__name__}: {exc} ({verdict.rule.why})"
        return self.redact(text)

    def error_for(
        self, view: c.ResponseView, *, describe: str = "", replayable: bool = True
    ) -> HandshakeError:
        """The error this policy would raise for an error answer it gives up on, without
        sending or retrying anything: for answers that arrive inside another (a composite
        subrequest's status and body). `replayable=False` marks a retriable one as possibly
        applied, as under `sent_once`."""
        verdict = self.dialect.classify(view=view)
        assert verdict is not None  # an answer always gets a verdict
        return self._error(verdict, _Call(what=describe, replayable=replayable), None)

    def _act(self, verdict: c.Verdict, call: _Call, chosen: Limiter | None) -> NoReturn:
        """Raise what the verdict says (every path raises)."""
        self._release(verdict)
        error = self._error(verdict, call, chosen)
        call.own(error)
        # no chained cause: library exceptions may quote URLs or headers; ours are redacted
        raise error from None

    def _error(self, verdict: c.Verdict, call: _Call, chosen: Limiter | None) -> HandshakeError:
        """The error the verdict calls for (a rate limit pauses `chosen`; a spent quota
        refuses further calls)."""
        rule = verdict.rule
        message = self._message(verdict, call)
        status = verdict.view.status if verdict.view is not None else None
        now = self.clock.now()
        view = verdict.view
        hint = c.hinted_wait(view, now, self.dialect.read_wait) if view is not None else None
        error: HandshakeError
        if rule.action is c.Action.RETRY:
            retriable = cast(type[RetriableError], rule.error)
            final = not call.replayable and _may_have_applied(verdict)
            if final:
                message += " (not sent again: the request may have been applied)"
            error = retriable(message, system=self.system, status=status, retry_after=hint)
            if final:
                call.maybe_applied.append(error)
        elif rule.action is c.Action.RATE_LIMIT:
            wait = hint if hint is not None else rule.wait
            if wait is not None and chosen is not None:
                chosen.pause(wait)  # every thread on this limiter waits, not just this one
            retriable = cast(type[RetriableError], rule.error)
            error = retriable(message, system=self.system, status=status, retry_after=wait)
        elif rule.action is c.Action.QUOTA:
            error = QuotaExhausted(message, system=self.system, resets_at=self._resets_at(now))
            with self._lock:
                self._quota = error
        elif issubclass(rule.error, RequestFailed):
            body = verdict.view.json() if verdict.view is not None else None
            error = rule.error(message, system=self.system, status=status, body=body)
        elif issubclass(rule.error, SkippableError):
            details: dict[str, Any] = {"status": status}
            if verdict.info is not None:
                details["codes"] = sorted(verdict.info.codes)
            error = RecordRejected(message, system=self.system, details=details)
        else:
            error = rule.error(message, system=self.system)
        return error

    def _resets_at(self, now: datetime) -> datetime:
        if self.settings.quota_cooldown is not None:
            return now + timedelta(seconds=self.settings.quota_cooldown)
        return c.next_midnight(now, self._tz)

    def _refuse_while_exhausted(self, describe: str) -> None:
        until = self.exhausted_until
        if until is None:
            return
        with self._lock:
            reason = self._quota.message if self._quota is not None else "daily quota spent"
        raise QuotaExhausted(
            self.redact(f"{describe or 'request'}: not sent: {reason}"),
            system=self.system,
            resets_at=until,
        )

    def _should_retry(self, exc: BaseException, call: _Call) -> bool:
        if not isinstance(exc, RetriableError) or not call.is_own(exc):
            return False
        if any(exc is known for known in call.maybe_applied):
            return False
        limit = self.settings.max_retry_after
        return exc.retry_after is None or exc.retry_after <= limit

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        hint = getattr(exc, "retry_after", None)
        if isinstance(hint, int | float):
            return float(hint)  # the server said how long: no more, no less
        st = self.settings
        backoff = min(st.backoff_max, st.backoff_base * 2.0 ** (state.attempt_number - 1))
        return backoff + self._random.uniform(0, st.jitter)

    def _log_retry(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        wait = state.next_action.sleep if state.next_action is not None else 0.0
        log.warning(
            "%s; attempt %d of %d failed, retrying in %.1fs",
            exc,
            state.attempt_number,
            self.settings.max_attempts,
            wait,
        )

    def __repr__(self) -> str:
        return (
            f"HttpPolicy({self.system!r}, attempts={self.settings.max_attempts}, "
            f"limiters={sorted(self.limiters)})"
        )


def _may_have_applied(verdict: c.Verdict) -> bool:
    """Whether the server may have acted on the request this verdict is about: a 5xx answer,
    or a transport failure other than one that proves no connection was made."""
    if verdict.view is not None:
        return verdict.view.status >= 500
    exc = verdict.exception
    if exc is None:
        return True
    return not any(isinstance(item, _NEVER_SENT) for item in c.exception_chain(exc))
