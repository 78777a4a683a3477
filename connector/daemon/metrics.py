"""`GET /metrics`: Prometheus text built from the state store at each scrape.

A fresh `CollectorRegistry` with one custom collector per scrape: every counter is the sum of
the run records (`sync_runs`), so it equals what `handshake status` and the store say, whichever
instance served the scrape and however often the daemon restarted (runs finished over a day
ago are added up once per process and kept: a scrape reads the last day's runs). Gauges come from
`collect_status`. Names are prefixed `handshake_` (the README lists them).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from connector.clock import Clock, SystemClock
from connector.config import Config
from connector.runtime.lease import instance_name
from connector.runtime.status import api_calls, collect_status
from connector.store import Store, SyncRun

__all__ = ["RunTotals", "render_metrics", "run_totals", "status_metrics"]


def _timestamp(iso: str | None) -> float | None:
    return datetime.fromisoformat(iso).timestamp() if iso else None


@dataclass
class RunTotals:
    """The run records added up: runs by stage and result, the counts, the calls, failures."""

    by_status: Counter[tuple[str, str]] = field(default_factory=Counter)
    records: dict[tuple[str, str], float] = field(default_factory=dict)
    calls: Counter[tuple[str, str]] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)

    def add(self, runs: Iterable[SyncRun]) -> RunTotals:
        """Add these runs (returns self)."""
        for run in runs:
            self.by_status[(run.stage, run.status)] += 1
            counts: dict[str, Any] = dict(run.counts or {})
            for key, value in counts.items():
                if isinstance(value, int | float) and not isinstance(value, bool):
                    self.records[(run.stage, key)] = self.records.get((run.stage, key), 0) + value
            for system, n in api_calls(counts).items():
                self.calls[(run.stage, system)] += n
            if run.status == "failed":
                self.errors[run.stage] += 1
        return self

    def plus(self, other: RunTotals) -> RunTotals:
        """These totals and `other`'s, as new totals."""
        # Counter.update, not +: a stage with zero calls keeps its series at 0
        out = RunTotals(Counter(self.by_status), dict(self.records), Counter(self.calls),
                        Counter(self.errors))
        out.by_status.update(other.by_status)
        out.calls.update(other.calls)
        out.errors.update(other.errors)
        for key, value in other.records.items():
            out.records[key] = out.records.get(key, 0) + value
        return out


# Runs that finished more than a day ago are settled: added up once per process and kept
# (per database), so a scrape reads only the last day's runs however long the daemon has run.
# A run is recorded finished by its own process's clock: one running a day behind the others
# would be missed, nothing less.
SETTLED_AFTER = timedelta(days=1)
_settled: dict[str, tuple[datetime, RunTotals]] = {}
_settled_lock = threading.Lock()


def run_totals(store: Store, now: datetime) -> RunTotals:
    """Every run record added up: the settled runs from this process's cache (extended to
    `now - SETTLED_AFTER`), the others read now."""
    horizon = now - SETTLED_AFTER
    with _settled_lock:
        since, settled = _settled.get(store.url, (None, RunTotals()))
        if since is None or horizon > since:
            settled = settled.plus(RunTotals().add(
                store.runs_finished(since=since, before=horizon)))
            _settled[store.url] = (horizon, settled)
        else:
            horizon = since
    recent = store.runs_finished(since=horizon, unfinished=True)
    return settled.plus(RunTotals().add(recent))


def _run_counters(totals: RunTotals) -> list[Metric]:
    """Counters of every recorded run."""
    runs_total = CounterMetricFamily("handshake_runs", "Stage runs recorded, by how they ended.",
                                     labels=["stage", "status"])
    for (stage, status), n in sorted(totals.by_status.items()):
        runs_total.add_metric([stage, status], n)
    records_total = CounterMetricFamily(
        "handshake_records", "Records each stage counted (the run records' counts, summed).",
        labels=["stage", "count"])
    for (stage, key), total in sorted(totals.records.items()):
        records_total.add_metric([stage, key], total)
    calls_total = CounterMetricFamily("handshake_api_calls",
                                      "API calls each stage made to each system.",
                                      labels=["stage", "system"])
    for (stage, system), n in sorted(totals.calls.items()):
        calls_total.add_metric([stage, system], n)
    errors_total = CounterMetricFamily("handshake_stage_errors", "Stage runs that failed.",
                                       labels=["stage"])
    for stage in sorted({stage for stage, _ in totals.by_status}):
        errors_total.add_metric([stage], totals.errors[stage])
    return [runs_total, records_total, calls_total, errors_total]


def status_metrics(status: dict[str, Any], me: str) -> list[Metric]:
    """Gauges from `collect_status`'s object (`me`: this process's instance name)."""
    out: list[Metric] = []
    success = GaugeMetricFamily("handshake_last_success_timestamp_seconds",
                                "When each stage last finished ok or degraded (Unix time).",
                                labels=["stage"])
    for stage, row in status["stages"].items():
        at = _timestamp(row["last_success_at"])
        if at is not None:
            success.add_metric([stage], at)
    out.append(success)
    letters = GaugeMetricFamily("handshake_dead_letters", "Open dead letters, by reason.",
                                labels=["stage", "reason"])
    for reason, n in status["dead_letters"]["by_reason"].items():
        stage, _, code = reason.partition(":")
        letters.add_metric([stage, code], n)
    out.append(letters)
    actors = GaugeMetricFamily("handshake_dead_letters_by_actor",
                               "Open dead letters, by who must act.", labels=["actor"])
    for actor, n in status["dead_letters"]["by_actor"].items():
        actors.add_metric([actor], n)
    out.append(actors)
    used = GaugeMetricFamily("handshake_api_usage",
                             "API calls in each system's quota window (HubSpot: today in the "
                             "account's time zone; Salesforce: the rolling 24 hours).",
                             labels=["system"])
    cap = GaugeMetricFamily("handshake_api_cap",
                            "Calls Handshake may make in that window (its share of the limit).",
                            labels=["system"])
    for system, usage in status["api_usage"].items():
        used.add_metric([system], usage["used"])
        if usage["cap"] is not None:
            cap.add_metric([system], usage["cap"])
    out += [used, cap]
    lag = GaugeMetricFamily("handshake_bookmark_lag_seconds",
                            "Now minus a time-valued bookmark (per-record groups: the newest).",
                            labels=["stream"])
    bookmarks = status["bookmarks"]
    for stream, row in [*bookmarks["streams"].items(), *bookmarks["groups"].items()]:
        if row["lag_seconds"] is not None:
            lag.add_metric([stream], row["lag_seconds"])
    out.append(lag)
    daemons = status["daemons"]
    mine = next((i for i in daemons["instances"] if i["instance"] == me), None)
    lease = daemons["leader"] or {}
    leading = bool(lease.get("held") and lease.get("holder") == me) or bool(
        mine is not None and mine["leader"])
    leader = GaugeMetricFamily("handshake_leader",
                               "1 when this instance is the active daemon, else 0.",
                               labels=["instance"])
    leader.add_metric([me], 1 if leading else 0)
    out.append(leader)
    states = GaugeMetricFamily("handshake_daemon_instances",
                               "Daemon instances recorded, by state.", labels=["state"])
    for state, n in sorted(Counter(i["state"] for i in daemons["instances"]).items()):
        states.add_metric([state], n)
    out.append(states)
    mappings = status["mappings"]
    files = GaugeMetricFamily("handshake_mapping_file_errors",
                              "Problems found in each mapping file now (0: valid).",
                              labels=["file"])
    for name, row in mappings["files"].items():
        files.add_metric([name], len(row["errors"]))
    out.append(files)
    running = mappings["daemon"]
    healthy = GaugeMetricFamily(
        "handshake_mappings_ok",
        "1 when the mapping files are valid: as the daemon last loaded them when it reports "
        "it, else as they are now.")
    ok = running.get("ok") if isinstance(running, dict) else mappings["ok"]
    healthy.add_metric([], 1 if ok else 0)
    out.append(healthy)
    breaches = status["sla"]["open_breaches"]
    if breaches is not None:
        out.append(GaugeMetricFamily("handshake_sla_open_breaches",
                                     "Open breaches of the hand-off SLA.", value=breaches))
    depth = status["webhooks"]["queue_depth"]
    if depth is not None:
        out.append(GaugeMetricFamily("handshake_webhook_queue_depth",
                                     "Contacts queued by webhooks, not synced yet.", value=depth))
    return out


class _Snapshot(Collector):
    """The metric families of one scrape, computed before the registry asks."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        yield from self.families


def render_metrics(config: Config, store: Store, *, clock: Clock | None = None
                   ) -> tuple[bytes, str]:
    """The Prometheus text of this instance's view of the store, and its content type."""
    clock = clock or SystemClock()
    status = collect_status(config, store, clock=clock)
    totals = run_totals(store, clock.now())
    families = [*_run_counters(totals), *status_metrics(status, instance_name())]
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(families))
    return generate_latest(registry), CONTENT_TYPE_LATEST
