"""The daemon's jobs: one a stage, each an importable callable run through the stage runtime.

    pull       run_pull_stage                   every [schedule] pull_interval_minutes
    score      run_score_stage                  every score_interval_minutes, and after a pull
    push       run_push_stage                   every push_interval_minutes, and after a pull
    pullback   run_pullback_stage               every pullback_interval_minutes
    sla        the pull-back (the SLA step is   every sla_interval_minutes, when no pull-back
               part of it)                      finished within that interval
    dlq-retry  retry_dead_letters               every dlq_interval_minutes, when letters are open
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from connector.clock import Clock, SystemClock
from connector.config import Config
from connector.runtime import (
    StageResult,
    open_store,
    retry_dead_letters,
    run_pull_stage,
    run_pullback_stage,
    run_push_stage,
    run_score_stage,
)

__all__ = ["CYCLE", "JOBS", "StageJob", "pull_changed"]

log = logging.getLogger("connector.daemon")

# Pull counts that say the store changed (so score and push have something to do now).
_CHANGES = (".new", ".updated", ".merged", ".archived")


def pull_changed(result: StageResult) -> bool:
    """True when a pull stored new or changed records."""
    return any(n > 0 for key, n in result.counts.items() if key.endswith(_CHANGES))


@dataclass(frozen=True)
class StageJob:
    """One scheduled job: its id, the `[schedule]` key of its interval, and what it runs.
    `run` returns the stage's result, or None when it had nothing to do (skipped)."""

    id: str
    interval_key: str
    run: Callable[[Config, Clock | None], StageResult | None]

    def interval(self, config: Config) -> timedelta:
        """Its interval from the config."""
        return timedelta(minutes=float(getattr(config.schedule, self.interval_key)))


def _pull(config: Config, clock: Clock | None) -> StageResult:
    return run_pull_stage(config, trigger="schedule", clock=clock)


def _score(config: Config, clock: Clock | None) -> StageResult:
    return run_score_stage(config, trigger="schedule", clock=clock)


def _push(config: Config, clock: Clock | None) -> StageResult:
    return run_push_stage(config, trigger="schedule", clock=clock)


def _pullback(config: Config, clock: Clock | None) -> StageResult:
    return run_pullback_stage(config, trigger="schedule", clock=clock)


def _sla(config: Config, clock: Clock | None) -> StageResult | None:
    """The SLA check is the pull-back's SLA step: run the pull-back when none finished within
    `sla_interval_minutes` (with the shipped intervals the pull-back's own job keeps it fresh)."""
    now = (clock or SystemClock()).now()
    store = open_store(config)
    try:
        recent = [r.finished_at for r in store.runs(stage="pullback", limit=5)
                  if r.finished_at is not None and r.status in ("ok", "degraded")]
    finally:
        store.close()
    window = timedelta(minutes=config.schedule.sla_interval_minutes)
    last = recent[0] if recent else None
    if last is not None and now - _aware(last) < window:
        log.debug("SLA check: the pull-back ran within %s; nothing to do", window)
        return None
    return run_pullback_stage(config, trigger="sla", clock=clock)


def _dlq(config: Config, clock: Clock | None) -> StageResult | None:
    """Try the open dead letters again (nothing recorded when there are none)."""
    store = open_store(config)
    try:
        waiting = bool(store.dead_letters())
    finally:
        store.close()
    if not waiting:
        return None
    outcome = retry_dead_letters(config, clock=clock, trigger="schedule")
    log.info("dead letters tried again: %s",
             ", ".join(f"{k} {v}" for k, v in sorted(outcome.items())) or "none")
    result = StageResult("", "ok")
    result.counts.update(outcome)
    return result


def _aware(when: datetime) -> datetime:
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


JOBS: Mapping[str, StageJob] = {job.id: job for job in (
    StageJob("pull", "pull_interval_minutes", _pull),
    StageJob("score", "score_interval_minutes", _score),
    StageJob("push", "push_interval_minutes", _push),
    StageJob("pullback", "pullback_interval_minutes", _pullback),
    StageJob("sla", "sla_interval_minutes", _sla),
    StageJob("dlq-retry", "dlq_interval_minutes", _dlq),
)}

# One cycle, in order (`handshake run --once`, and a new leader's first round): the SLA check
# is left out, the pull-back just ran it.
CYCLE = ("pull", "score", "push", "pullback", "dlq-retry")
