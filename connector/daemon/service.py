"""`handshake run`: the daemon. One active instance runs the schedule; the others wait.

    main thread     signals, the leadership heartbeat, the instance record
    scheduler       APScheduler 3 (memory job store: the schedule is the config), one job a
                    stage, run one at a time on a single worker thread (no SQLite contention)
    web thread      uvicorn: /healthz, /metrics, the extra routes (webhooks)

Leadership is the `leader` lease row in the state store, taken and renewed on a store
connection of the daemon's own (`LeaderLease`). Every stage run the daemon starts is guarded
by it besides its own stage lease, so a daemon whose lease was taken stops before its next
write batch (`LeaseLost`), its run is recorded failed, and it waits as standby. SIGTERM/SIGINT
ask the stage in flight to stop after its batch (`request_stop`), give the lease up, record
the instance `stopped` and exit 143/130.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import Any

from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    EVENT_JOB_SUBMITTED,
    JobEvent,
    JobExecutionEvent,
)
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from connector.clock import Clock
from connector.config import Config
from connector.control import clear_stop, guarded, request_stop
from connector.daemon.health import (
    Health,
    describe,
    iso,
    mapping_problems,
    mtime,
)
from connector.daemon.jobs import CYCLE, JOBS, pull_changed
from connector.daemon.mappings import MappingWatcher
from connector.daemon.metrics import render_metrics
from connector.daemon.web import WebHooks, WebServer, create_app
from connector.daemon.webhooks import webhook_route
from connector.errors import (
    ConfigError,
    ExitCode,
    FatalError,
    HandshakeError,
    LeaseLost,
    StageBusy,
    StopRequested,
)
from connector.runtime import LEASES, StageResult, open_store
from connector.runtime.lease import LEADER, LeaderLease, instance_name
from connector.runtime.targeted import run_contacts_sync
from connector.store import Store

__all__ = ["INSTANCE_PREFIX", "Daemon", "instance_key"]

log = logging.getLogger("connector.daemon")

INSTANCE_PREFIX = "daemon.instance."
WEBHOOK_JOB = "webhook"  # the targeted sync of the contacts HubSpot's webhooks queued
RETRY_FIRST_SECONDS = 10.0  # a failed stage is tried again after 10 s, 20 s, 40 s... (capped)
HARD_EXIT_SECONDS = 25.0  # after a stop signal, exit whatever is still running (limit: 30 s)
# A new leader's first round: each stage a moment after the one before, so they run in order
# on the single worker.
_STAGGER = timedelta(milliseconds=50)


def instance_key(name: str | None = None) -> str:
    """The bookmark holding a daemon's instance record (`handshake status` reads them)."""
    return INSTANCE_PREFIX + (name or instance_name())


class Daemon:
    """The daemon of one config. `run()` blocks until a stop signal (or, `once`, one cycle)
    and returns the exit code."""

    def __init__(self, config: Config, *, listen: str | None = None, once: bool = False,
                 clock: Clock | None = None, routes: list[Any] | None = None,
                 metrics: Callable[[], tuple[bytes, str]] | None = None,
                 mappings: Callable[[], dict[str, Any]] | None = None) -> None:
        self.config = config
        self.listen = listen or config.daemon.listen
        self.once = once
        self.clock = clock  # the stages' (None: the system clock)
        self.routes = routes or []
        self.health = Health()
        self._metrics = metrics
        self._mappings = mappings
        self._stop = threading.Event()
        self._signum: int | None = None
        self._failures: dict[str, int] = {}
        self._queued: set[str] = set()
        self._extra: dict[str, Callable[[Config, Clock | None], StageResult | None]] = {}
        self._mapping_state: tuple[tuple[float, ...], dict[str, Any]] | None = None
        self._announced_standby = False
        self.store: Store | None = None
        self.web_store: Store | None = None  # the web thread's connection (webhooks, metrics)
        self.watcher: MappingWatcher | None = None
        self.leader: LeaderLease | None = None
        self.web: WebServer | None = None
        self.scheduler: BackgroundScheduler | None = None
        self.results: dict[str, StageResult | None] = {}

    # --- the main loop ----------------------------------------------------------------------

    def run(self) -> int:
        """Run until stopped; the exit code (README): 143/130 after SIGTERM/SIGINT; with
        `once`, the worst of the cycle's stages (0, 3 degraded, 5 quota, 1 failed, 4 busy)."""
        self.store = open_store(self.config)  # the daemon's own connection: lease and record
        ttl = self.config.daemon.leader_ttl_seconds
        self.leader = LeaderLease(self.store, ttl=ttl)
        if self._mappings is None:
            self.watcher = MappingWatcher(self.config, store=self.store)
        previous = self._install_signals()
        try:
            if self.once:
                return self._run_once()
            self._start_web()
            self._start_scheduler()
            while not self._stop.is_set():
                self._beat()
                # a standby polls faster than the ttl so a dead leader is replaced in time
                self._stop.wait(ttl / 3)
            return self._shutdown()
        finally:
            self._restore_signals(previous)
            clear_stop()  # the stop was this daemon's (embedded, the process goes on)
            if self.web is not None:
                self.web.stop()
            if self.watcher is not None:
                self.watcher.close()
            for store in (self.web_store, self.store):
                if store is not None:
                    store.close()

    def _beat(self) -> None:
        """One heartbeat: keep or take the leadership, then write the instance record."""
        assert self.leader is not None
        try:
            if self.health.role == "leader" and not self.leader.renew():
                self._step_down()
            if self.health.role != "leader":
                if self.leader.try_acquire():
                    self._step_up()
                else:
                    self._standby()
            self.health.beat_at = datetime.now(UTC)
            self._drain_webhooks()
        except Exception as exc:  # noqa: BLE001  (the database blinked: the next beat retries)
            log.warning("the daemon's heartbeat could not reach the state database: %s",
                        describe(exc))
            if self.health.role == "leader" and not self.leader.held:
                self._step_down()
        self._write_record()

    def _step_up(self) -> None:
        assert self.leader is not None and self.scheduler is not None
        log.warning("this daemon (%s) is now the active one: running the schedule",
                    instance_name())
        self.health.role = "leader"
        self._announced_standby = False
        self._failures.clear()
        self._free_stage_leases(self.leader.previous)
        now = datetime.now(UTC)
        for i, job_id in enumerate(CYCLE):
            self._add_job(job_id, first=now + i * _STAGGER)
        self._add_job("sla", first=now + JOBS["sla"].interval(self.config))
        self.scheduler.resume()

    def _free_stage_leases(self, previous: str | None) -> None:
        """Expire the stage leases the previous leader's runs still hold: they stopped
        writing when it lost the leadership (each checks it before every write batch), so the
        new leader need not wait out `[runtime] lease_ttl_seconds` on another machine."""
        assert self.store is not None
        if not previous or previous == instance_name():
            return
        for name in sorted(set(LEASES.values())):
            row = self.store.lease(name)
            run = self.store.get_run(row.holder) if row is not None and row.holder else None
            if (row is not None and run is not None and run.instance == previous
                    and self.store.expire_lease(name, row.holder, row.fence)):
                log.warning("the %s lease of the previous daemon's run %s is free now",
                            name, row.holder)

    def _step_down(self) -> None:
        assert self.leader is not None and self.scheduler is not None
        self.scheduler.pause()
        self.scheduler.remove_all_jobs()
        self.leader.release()
        self.health.role = "standby"
        log.error("this daemon is no longer the active one (its leader lease was taken or "
                  "could not be renewed): it stopped writing and waits as standby")

    def _standby(self) -> None:
        self.health.role = "standby"
        if self._announced_standby:
            return
        self._announced_standby = True
        assert self.store is not None
        row = self.store.lease(LEADER)
        holder = row.holder.rpartition("#")[0] if row is not None and row.holder else "?"
        sqlite = self.config.state.database_url.startswith("sqlite")
        log.warning("another daemon (%s) is active on this %s: this one waits as standby and "
                    "takes over if it stops%s", holder,
                    "SQLite file" if sqlite else "state database",
                    " (on SQLite both must run on this machine; use PostgreSQL for a standby "
                    "on another machine)" if sqlite else "")

    # --- the scheduler ----------------------------------------------------------------------

    def _start_scheduler(self) -> None:
        grace = self.config.schedule.misfire_grace_seconds
        self.scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(max_workers=1)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": grace},
            timezone=UTC)
        self.scheduler.add_listener(self._on_event, EVENT_JOB_ERROR | EVENT_JOB_MISSED
                                    | EVENT_JOB_MAX_INSTANCES | EVENT_JOB_EXECUTED
                                    | EVENT_JOB_SUBMITTED)
        # its own logger would print a job's traceback at ERROR: the listener says it instead
        quiet = not log.isEnabledFor(logging.DEBUG)
        logging.getLogger("apscheduler.executors").setLevel(
            logging.CRITICAL if quiet else logging.DEBUG)
        # it says misses too, in its words: the listener says them in ours
        logging.getLogger("apscheduler.scheduler").setLevel(
            logging.ERROR if quiet else logging.DEBUG)
        self.scheduler.start(paused=True)

    def _add_job(self, job_id: str, *, first: datetime) -> None:
        assert self.scheduler is not None
        job = JOBS[job_id]
        self.scheduler.add_job(
            self._job, IntervalTrigger(seconds=job.interval(self.config).total_seconds(),
                                       timezone=UTC),
            args=[job_id], id=job_id, name=job_id, replace_existing=True,
            next_run_time=first)

    def run_now(self, job_id: str,
                run: Callable[[Config, Clock | None], StageResult | None]) -> bool:
        """Run `run` once, as soon as the worker is free, as the job `job_id` (e.g. the
        webhooks' sync of the contacts just queued): guarded by the leadership like every
        stage; asked again before it ran, it still runs once. False when this daemon is not
        the active one (the queue waits for the leader's next run)."""
        scheduler = self.scheduler
        if scheduler is None or self.health.role != "leader" or self._stop.is_set():
            return False
        self._extra[job_id] = run
        try:
            scheduler.add_job(self._job, "date", args=[job_id], id=job_id, name=job_id,
                              replace_existing=True, run_date=datetime.now(UTC))
        except Exception as exc:  # noqa: BLE001  (stopping meanwhile: the poll catches up)
            log.warning("could not start the %s job now: %s", job_id, describe(exc))
            return False
        return True

    def _job(self, job_id: str) -> StageResult | None:
        """One job, on the worker thread, guarded by the leader lease, with the last good
        version of the mapping files."""
        assert self.leader is not None
        leader = self.leader
        if not leader.held or self._stop.is_set():  # queued before a stop or a step-down
            return None
        job = JOBS.get(job_id)
        run = job.run if job is not None else self._extra[job_id]
        with guarded(leader.ensure, leader.current_fence):
            result = run(self._mapped_config(), self.clock)
        self.results[job_id] = result
        return result

    def _mapped_config(self) -> Config:
        """The config with the mapping files' last good version: an edit is taken here, before
        a job; an invalid one is refused (logged, kept for status) and the last good runs."""
        if self.watcher is None:
            return self.config
        try:
            self.watcher.check()
        except Exception as exc:  # noqa: BLE001  (a file half-written: checked before the next job)
            log.warning("could not check the mapping files for edits: %s", describe(exc))
        return self.watcher.config

    # --- webhooks -----------------------------------------------------------------------------

    def _sync_queued(self, config: Config, clock: Clock | None) -> StageResult | None:
        """The webhooks' targeted sync; a scheduled stage holding a lease leaves the queue for
        the next heartbeat."""
        try:
            return run_contacts_sync(config, clock=clock, trigger="webhook")
        except StageBusy as exc:
            log.info("the webhooks' sync waits for a scheduled stage: %s", describe(exc))
            return None

    def on_webhooks(self, queued: int) -> None:
        """Contacts were queued by a webhook: sync them now (on the event loop: only schedules)."""
        if queued:
            self.run_now(WEBHOOK_JOB, self._sync_queued)

    def _drain_webhooks(self) -> None:
        """On the leader, contacts still queued (received by a standby, or while a stage held
        a lease) are synced at the next heartbeat."""
        if (self.health.role != "leader" or self.store is None or WEBHOOK_JOB in self._queued
                or self.scheduler is None):
            return
        if self.store.webhook_queue_depth() > 0:
            self.run_now(WEBHOOK_JOB, self._sync_queued)

    def _on_event(self, event: JobEvent) -> None:
        """Listener: log misses and errors, record the cycle, back off a failing stage, and
        bring score and push forward after a pull that changed something."""
        job_id = event.job_id
        now = datetime.now(UTC)
        if event.code == EVENT_JOB_SUBMITTED:
            self._queued.add(job_id)
            return
        if event.code == EVENT_JOB_MISSED:
            log.warning("the %s job missed its slot by more than %d s (the one before ran "
                        "long): it runs at its next slot", job_id,
                        self.config.schedule.misfire_grace_seconds)
            return
        if event.code == EVENT_JOB_MAX_INSTANCES:  # waiting behind another stage: usual
            log.info("the %s job is still running: this slot is skipped", job_id)
            return
        assert isinstance(event, JobExecutionEvent)
        self._queued.discard(job_id)
        if event.code == EVENT_JOB_ERROR:
            self._failed(job_id, event.exception, now)
            return
        result = event.retval
        if result is None:
            return
        ok = result.status in ("ok", "degraded", "stopped")
        self.health.cycle.record(now, ok, None if ok else result.error)
        if ok:
            self._failures.pop(job_id, None)
        changed = {k: n for k, n in sorted(result.counts.items())
                   if n and not k.endswith("calls")}
        log.info("%s %s%s", job_id, result.status,
                 ": " + ", ".join(f"{k} {n}" for k, n in list(changed.items())[:8])
                 if changed else "")
        if job_id == "pull" and pull_changed(result):
            for follower in ("score", "push"):
                if follower not in self._queued:  # already waiting for the worker: enough
                    self._reschedule(follower, now)

    def _failed(self, job_id: str, exc: BaseException | None, now: datetime) -> None:
        if isinstance(exc, StopRequested):
            return
        if isinstance(exc, LeaseLost):
            log.error("the %s job stopped: %s", job_id, describe(exc))
            return  # the heartbeat steps down
        message = describe(exc) if exc is not None else "unknown error"
        if exc is not None and not isinstance(exc, HandshakeError):
            # not one of ours: named by its type above (no record data); the traceback at DEBUG
            log.debug("the %s job's failure", job_id, exc_info=exc)
        self.health.cycle.record(now, False, f"{job_id}: {message}")
        failures = self._failures[job_id] = self._failures.get(job_id, 0) + 1
        if job_id not in JOBS:  # a one-off job: the schedule's next poll covers it
            log.error("the %s job failed: %s; the scheduled stages go on", job_id, message)
            return
        interval = JOBS[job_id].interval(self.config).total_seconds()
        delay = min(interval, RETRY_FIRST_SECONDS * 2 ** (failures - 1))
        log.error("the %s stage failed (%d in a row): %s; the other stages go on, and it is "
                  "tried again in %.0f s", job_id, failures, message, delay)
        self._reschedule(job_id, now + timedelta(seconds=delay))

    def _reschedule(self, job_id: str, when: datetime) -> None:
        assert self.scheduler is not None
        try:
            self.scheduler.modify_job(job_id, next_run_time=when)
        except LookupError:  # removed meanwhile (this daemon stepped down)
            pass

    # --- once -------------------------------------------------------------------------------

    def _run_once(self) -> int:
        """Take the leadership (waiting up to `[runtime] lease_wait_seconds`), run one cycle
        of every stage on a worker thread (signals stay with this thread), give it up."""
        assert self.leader is not None
        deadline = time.monotonic() + self.config.runtime.lease_wait_seconds
        while not self.leader.try_acquire():
            self._standby()
            if time.monotonic() >= deadline or self._stop.wait(1.0):
                if self._signum is not None:
                    return 128 + self._signum
                log.error("another daemon is active: this --once run did nothing (run it again "
                          "later, or stop the running daemon)")
                return int(ExitCode.BUSY)
        self.health.role = "leader"
        self._write_record()
        codes: list[int] = []
        worker = threading.Thread(target=self._cycle_once, args=(codes,), name="cycle")
        worker.start()
        while worker.is_alive():
            worker.join(0.2)
        self.leader.release()
        self.health.role = "stopped"
        self._write_record()
        if self._signum is not None:
            return 128 + self._signum
        worst = [ExitCode.CONFIG, ExitCode.FAILED, ExitCode.BUSY, ExitCode.QUOTA,
                 ExitCode.DEGRADED]
        return int(next((c for c in worst if c in codes), ExitCode.OK))

    def _cycle_once(self, codes: list[int]) -> None:
        for job_id in CYCLE:
            if self._stop.is_set():
                return
            try:
                result = self._job(job_id)
            except StopRequested:
                return
            except Exception as exc:  # noqa: BLE001  (one stage failing never stops the others)
                self._failed(job_id, exc, datetime.now(UTC))
                codes.append(int(ExitCode.CONFIG if isinstance(exc, ConfigError) else
                                 ExitCode.BUSY if isinstance(exc, StageBusy) else
                                 ExitCode.FAILED))
                if isinstance(exc, LeaseLost):
                    return
                continue
            if result is not None:
                ok = result.status in ("ok", "degraded", "stopped")
                self.health.cycle.record(datetime.now(UTC), ok, result.error)
                codes.append(int(result.exit_code))

    # --- stopping ---------------------------------------------------------------------------

    def _install_signals(self) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}

        def handler(signum: int, _frame: FrameType | None) -> None:
            if self._signum is not None:
                log.error("second %s: exiting now", signal.Signals(signum).name)
                os._exit(128 + signum)
            self._signum = signum
            request_stop(signum)  # the stage in flight stops after its batch
            self._stop.set()
            log.warning("%s received: finishing the batch in flight, then stopping",
                        signal.Signals(signum).name)
            timer = threading.Timer(HARD_EXIT_SECONDS, lambda: os._exit(128 + signum))
            timer.daemon = True
            timer.start()

        previous: dict[int, Any] = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.getsignal(sig)
            signal.signal(sig, handler)
        return previous

    @staticmethod
    def _restore_signals(previous: dict[int, Any]) -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)

    def stop(self, signum: int = signal.SIGTERM) -> None:
        """Stop as a signal would (for embedding and tests)."""
        self._signum = signum
        request_stop(signum)
        self._stop.set()

    def _shutdown(self) -> int:
        """The stage in flight finishes its batch and is recorded; the lease is given up."""
        assert self.scheduler is not None and self.leader is not None
        self.scheduler.pause()
        self.scheduler.remove_all_jobs()
        waiting = threading.Thread(target=self.scheduler.shutdown, kwargs={"wait": True},
                                   daemon=True)
        waiting.start()
        waiting.join(self.config.runtime.stop_timeout_seconds + 2)
        leading = self.health.role == "leader"
        if waiting.is_alive():
            # its batch may still be sending: the lease is left to expire rather than given
            # to a standby that could write beside it
            log.error("the stage in flight did not stop within %.0f s: exiting without it; "
                      "a standby takes over when the leadership expires (%.0f s)",
                      self.config.runtime.stop_timeout_seconds + 2,
                      self.config.daemon.leader_ttl_seconds)
            self.leader.abandon()
        else:
            self.leader.release()
        self.health.role = "stopped"
        self._write_record()
        log.warning("the daemon stopped%s", "; the leadership is free for a standby"
                    if leading else "")
        return 128 + (self._signum or signal.SIGTERM)

    # --- web and the instance record ----------------------------------------------------------

    def _start_web(self) -> None:
        self.web_store = web_store = open_store(self.config)
        routes = [*self.routes, webhook_route(self.config, lambda: web_store, self.on_webhooks,
                                              clock=self.clock)]
        metrics = self._metrics or (lambda: render_metrics(self.config, web_store))
        max_age = timedelta(minutes=self.config.daemon.health_max_age_minutes)
        beat_age = timedelta(seconds=3 * self.config.daemon.leader_ttl_seconds)
        hooks = WebHooks(health=lambda: self.health.check(max_age, beat_age),
                         metrics=metrics, routes=routes)
        try:
            self.web = WebServer(create_app(hooks), self.listen).start()
        except OSError as exc:
            failure = FatalError(f"the daemon cannot listen on {self.listen}: "
                                 f"{exc.strerror or exc}")
            failure.fix = ("stop what uses that address, or choose another with `--listen` or "
                           "`[daemon] listen` (port 0: any free port)")
            raise failure from None
        log.info("serving /healthz and /metrics at %s", self.web.url)

    def record(self) -> dict[str, Any]:
        """The instance record (common format: `handshake status` reads it)."""
        next_runs: dict[str, str | None] = {}
        if self.scheduler is not None and self.health.role == "leader":
            for job in self.scheduler.get_jobs():
                next_runs[job.id] = iso(job.next_run_time)
        listen = self.listen
        if self.web is not None:
            listen = f"{self.web.host}:{self.web.port}"
        cycle = self.health.cycle
        return {
            "instance": instance_name(),
            "role": self.health.role if self.health.role != "starting" else "standby",
            "started_at": iso(self.health.started_at),
            "seen_at": iso(datetime.now(UTC)),
            "listen": listen,
            "next_runs": next_runs,
            "last_cycle": {"at": iso(cycle.at), "ok": cycle.ok, "error": cycle.error},
            "mappings": self._mapping_health(),
        }

    def _mapping_health(self) -> dict[str, Any]:
        """The mapping files' health: the hook's (the mapping watcher's), or checked again
        here whenever a file's modification time moved."""
        if self._mappings is not None:
            return self._mappings()
        if self.watcher is not None:
            return self.watcher.health.to_json()
        names = ("scoring", "fields", "routing", "sla")
        stamp = tuple(mtime(self.config.mapping_path(n)) for n in names)
        if self._mapping_state is None or self._mapping_state[0] != stamp:
            try:
                errors = [str(p) for p in mapping_problems(self.config)]
            except Exception as exc:  # noqa: BLE001  (a file half-written: checked next beat)
                errors = [describe(exc)]
            self._mapping_state = (stamp, {"ok": not errors, "errors": errors,
                                           "checked_at": iso(datetime.now(UTC))})
        return self._mapping_state[1]

    def _write_record(self) -> None:
        if self.store is None:
            return
        try:
            self.store.set_bookmark(instance_key(), json.dumps(self.record()))
        except Exception as exc:  # noqa: BLE001  (the next heartbeat writes it again)
            log.warning("could not write this daemon's instance record: %s", describe(exc))
