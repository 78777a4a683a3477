"""What `handshake status` and `/metrics` report, read from the state store and the mapping
files only (never HubSpot or Salesforce), so it works with no daemon running:

    collect_status(config, store) -> dict       one JSON-able object
    ├── daemons        the `daemon.instance.*` records and the "leader" lease
    ├── stages         last run and result, last success, next run (daemon's, else [schedule])
    ├── bookmarks      each stream's position and, for time-valued ones, its lag
    ├── dead_letters   the open ones by reason, by who must act, by stage
    ├── api_usage      calls today per system against its cap
    ├── sla            open breaches of the hand-off SLA
    ├── mappings       each mapping file validated now, and what the daemon runs with
    └── webhooks       the queue depth (when the store keeps a webhook queue)
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from connector.clock import Clock, SystemClock
from connector.config import Config
from connector.defaults import MAPPING_FILES
from connector.errors import ConfigError, ConfigProblem, HandshakeError
from connector.store import Store, SyncRun

__all__ = [
    "INSTANCE_PREFIX",
    "LEADER_LEASE",
    "MAPPINGS_HEALTH",
    "STAGES",
    "api_calls",
    "bookmark_time",
    "collect_status",
    "daemon_settings",
    "mapping_problems",
    "schedule_minutes",
]

INSTANCE_PREFIX = "daemon.instance."  # + instance_name(): the daemon's record of itself
LEADER_LEASE = "leader"  # the lease row the active daemon holds
MAPPINGS_HEALTH = "mappings.health"  # the mapping watcher's last verdict (connector.daemon)
GOVERNOR = "salesforce.governor"  # the Salesforce allocation governor's snapshot
# Bookmarks that are records of their own, reported in their own sections.
_NOT_STREAMS = (INSTANCE_PREFIX, MAPPINGS_HEALTH, GOVERNOR)

# The daemon's jobs, in the order they are shown, and their [schedule] interval keys.
STAGES = ("pull", "score", "push", "pullback", "sla", "dlq-retry")
_INTERVALS = {"pull": "pull_interval_minutes", "score": "score_interval_minutes",
              "push": "push_interval_minutes", "pullback": "pullback_interval_minutes",
              "sla": "sla_interval_minutes", "dlq-retry": "dlq_interval_minutes"}
# The daemon's defaults for [schedule] and [daemon] keys a config may predate.
_SCHEDULE_DEFAULTS = {"pull_interval_minutes": 2.0, "score_interval_minutes": 2.0,
                      "push_interval_minutes": 2.0, "pullback_interval_minutes": 5.0,
                      "sla_interval_minutes": 15.0, "dlq_interval_minutes": 60.0}
_DAEMON_DEFAULTS: dict[str, Any] = {"listen": "127.0.0.1:8787", "leader_ttl_seconds": 15.0,
                                    "health_max_age_minutes": 30.0}
GONE_AFTER_TTLS = 3  # an instance not seen for 3 leader TTLs is gone
SUCCESS = ("ok", "degraded")
_ISO = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})?")
_CALL_KEYS = re.compile(r"^(hubspot|salesforce)\.(?:[\w.]+\.)?requests$")


def schedule_minutes(config: Config, stage: str) -> float | None:
    """Minutes between scheduled runs of `stage` ([schedule]); None for a stage the daemon
    does not schedule."""
    key = _INTERVALS.get(stage)
    if key is None:
        return None
    return float(getattr(config.schedule, key, _SCHEDULE_DEFAULTS[key]))


def daemon_settings(config: Config) -> dict[str, Any]:
    """The `[daemon]` settings, with the daemon's defaults where the config has none."""
    section = getattr(config, "daemon", None)
    return {k: getattr(section, k, default) for k, default in _DAEMON_DEFAULTS.items()}


def _aware(when: datetime) -> datetime:
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _iso(when: datetime | None) -> str | None:
    return _aware(when).isoformat() if when is not None else None


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return _aware(datetime.fromisoformat(str(text)))
    except ValueError:
        return None


def bookmark_time(value: str) -> datetime | None:
    """The time a bookmark holds, for the time-valued ones: an ISO time (alone or inside the
    value, as `webinars/<id>` keeps it after its counters) or a JSON `{"done": epoch-ms}`."""
    text = value.strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            return None
        done = data.get("done") if isinstance(data, dict) else None
        if isinstance(done, int | float) and not isinstance(done, bool) and done > 10**11:
            return datetime.fromtimestamp(done / 1000, UTC)
        return None
    found = _ISO.search(text)
    return _parse_time(found.group(0)) if found else None


def api_calls(counts: Mapping[str, Any]) -> dict[str, int]:
    """The calls a run made to each system, from its recorded counts: `<system>.calls` when the
    stage records a total, else the sum of its `<system>[.<part>].requests` counts."""
    out: dict[str, int] = {}
    for system in ("hubspot", "salesforce"):
        total = counts.get(f"{system}.calls")
        if isinstance(total, int | float):
            out[system] = int(total)
            continue
        out[system] = sum(int(v) for k, v in counts.items()
                          if isinstance(v, int | float) and (m := _CALL_KEYS.match(k))
                          and m.group(1) == system)
    return out


# --- mapping files --------------------------------------------------------------------------


def mapping_problems(config: Config, paths: Mapping[str, Path] | None = None
                     ) -> dict[str, list[ConfigProblem]]:
    """Every problem of each mapping file (fields, scoring, routing, sla) as the stages would
    load it now, by file name; an empty list for a valid file. `paths` overrides where a file is
    read from (the mapping watcher validates its copies)."""
    from connector.mapping import fields, routing, sla
    from connector.scoring import load_model

    where = {name: (paths or {}).get(name) or config.mapping_path(name) for name in MAPPING_FILES}
    out: dict[str, list[ConfigProblem]] = {}
    for name in MAPPING_FILES:
        path = where[name]
        if name == "scoring":
            try:
                load_model(path)
                out[name] = []
            except ConfigError as exc:
                out[name] = list(exc.problems)
            continue
        checker = {"fields": fields.problems_of, "routing": routing.problems_of,
                   "sla": sla.problems_of}[name]
        out[name] = checker(path)
    return out


def _mappings(config: Config, store: Store) -> dict[str, Any]:
    problems = mapping_problems(config)
    files = {name: {"path": str(config.mapping_path(name)), "ok": not found,
                    "errors": [p.as_dict() for p in found]}
             for name, found in problems.items()}
    saved = store.get_bookmark(MAPPINGS_HEALTH)
    running: Any = None
    if saved:
        try:
            running = json.loads(saved)
        except ValueError:
            running = {"ok": False, "errors": ["the stored mapping health is not JSON"]}
    return {"ok": all(f["ok"] for f in files.values()), "files": files, "daemon": running}


# --- daemons --------------------------------------------------------------------------------


def _daemons(config: Config, store: Store, now: datetime) -> dict[str, Any]:
    ttl = float(daemon_settings(config)["leader_ttl_seconds"])
    lease = store.lease(LEADER_LEASE)
    held = (lease is not None and bool(lease.holder)
            and _aware(lease.expires_at) > now)
    leader = None
    if lease is not None:
        leader = {"holder": lease.holder or None, "held": held,
                  "expires_at": _iso(lease.expires_at), "acquired_at": _iso(lease.acquired_at),
                  "fence": lease.fence}
    instances = []
    for key, raw in store.bookmarks(INSTANCE_PREFIX).items():
        try:
            record = json.loads(raw)
        except ValueError:
            record = {}
        if not isinstance(record, dict):
            record = {}
        name = str(record.get("instance") or key.removeprefix(INSTANCE_PREFIX))
        seen = _parse_time(record.get("seen_at"))
        age = (now - seen).total_seconds() if seen is not None else None
        role = str(record.get("role") or "unknown")
        gone = role != "stopped" and (age is None or age > GONE_AFTER_TTLS * ttl)
        state = "gone" if gone else role
        instances.append({
            "instance": name, "role": role, "state": state,
            "leader": state == "leader",
            "started_at": record.get("started_at"), "seen_at": record.get("seen_at"),
            "seen_seconds_ago": round(age, 3) if age is not None else None,
            "listen": record.get("listen"), "next_runs": record.get("next_runs") or {},
            "last_cycle": record.get("last_cycle"), "mappings": record.get("mappings"),
        })
    # The lease decides who leads when its holder is a recorded instance (a record saying
    # "leader" may be stale); otherwise the records say it.
    holder = lease.holder if held and lease is not None else None
    if holder is not None and any(i["instance"] == holder for i in instances):
        for i in instances:
            i["leader"] = i["instance"] == holder
    instances.sort(key=lambda i: (not i["leader"], i["state"] == "gone", i["instance"]))
    return {"leader": leader, "instances": instances, "gone_after_seconds": GONE_AFTER_TTLS * ttl}


# --- stages ---------------------------------------------------------------------------------


def _run(run: SyncRun | None) -> dict[str, Any] | None:
    if run is None:
        return None
    took = ((_aware(run.finished_at) - _aware(run.started_at)).total_seconds()
            if run.finished_at is not None else None)
    return {"id": run.id, "status": run.status, "trigger": run.trigger,
            "instance": run.instance, "started_at": _iso(run.started_at),
            "finished_at": _iso(run.finished_at),
            "duration_seconds": round(took, 3) if took is not None else None,
            "error": run.error, "counts": dict(run.counts or {})}


def _stages(config: Config, store: Store, daemons: Mapping[str, Any]) -> dict[str, Any]:
    last = store.last_runs()
    good = store.last_runs(statuses=SUCCESS)
    active = next((i for i in daemons["instances"] if i["leader"]), None)
    planned: Mapping[str, Any] = active["next_runs"] if active is not None else {}
    out: dict[str, Any] = {}
    for stage in [*STAGES, *sorted(set(last) - set(STAGES))]:
        run = last.get(stage)
        minutes = schedule_minutes(config, stage)
        if stage in planned:
            next_run, source = planned[stage], "daemon"
        elif minutes is not None and run is not None:
            next_run = _iso(_aware(run.started_at) + timedelta(minutes=minutes))
            source = "schedule"
        else:
            next_run, source = None, None
        ok = good.get(stage)
        out[stage] = {"last_run": _run(run),
                      "last_success_at": _iso(ok.finished_at or ok.started_at) if ok else None,
                      "interval_minutes": minutes, "next_run": next_run,
                      "next_run_source": source}
    return out


# --- bookmarks ------------------------------------------------------------------------------


def _bookmarks(store: Store, now: datetime) -> dict[str, Any]:
    """Single streams one by one; the per-record ones (`page_views/<contact>`...) as a group:
    how many, the oldest and the newest time, and the lag of the newest (a record that has
    not changed for months keeps an old bookmark without anything being late)."""
    streams: dict[str, Any] = {}
    groups: dict[str, dict[str, Any]] = {}
    spans: dict[str, tuple[datetime, datetime]] = {}  # group -> (oldest, newest)
    for stream, value in store.bookmarks().items():
        if stream.startswith(_NOT_STREAMS):
            continue
        at = bookmark_time(value)
        lag = round((now - at).total_seconds(), 3) if at is not None else None
        if "/" not in stream:
            streams[stream] = {"value": value if len(value) <= 80 else value[:77] + "...",
                               "time": at.isoformat() if at is not None else None,
                               "lag_seconds": lag}
            continue
        name = stream.split("/", 1)[0] + "/*"
        group = groups.setdefault(name, {"count": 0, "oldest": None, "newest": None,
                                         "lag_seconds": None})
        group["count"] += 1
        if at is None:
            continue
        oldest, newest = spans.get(name, (at, at))
        oldest, newest = min(oldest, at), max(newest, at)
        spans[name] = (oldest, newest)
        group.update(oldest=oldest.isoformat(), newest=newest.isoformat(),
                     lag_seconds=round((now - newest).total_seconds(), 3))
    return {"streams": streams, "groups": groups}


# --- dead letters, usage, SLA ---------------------------------------------------------------


def _dead_letters(store: Store) -> dict[str, Any]:
    letters = store.dead_letters()
    by_reason: Counter[str] = Counter()
    by_actor: Counter[str] = Counter()
    by_stage: Counter[str] = Counter()
    for d in letters:
        by_reason[f"{d.stage}:{d.error_code or 'unspecified'}"] += 1
        by_actor[d.actor] += 1
        by_stage[d.stage] += 1
    return {"open": len(letters), "by_reason": dict(sorted(by_reason.items())),
            "by_actor": dict(sorted(by_actor.items())), "by_stage": dict(sorted(by_stage.items()))}


def _hubspot_usage(config: Config, runs: Iterable[SyncRun], now: datetime) -> dict[str, Any]:
    from connector.hubspot.policy import hubspot_limits

    hub = config.hubspot
    packs = 1 if hub.tier.value == "capacity_pack" else 0
    daily = hubspot_limits("professional" if packs else hub.tier.value, packs).daily
    try:
        zone = ZoneInfo(hub.account_timezone)
    except (ValueError, OSError):
        zone = ZoneInfo("UTC")
    # HubSpot's day runs from midnight in the account's time zone
    midnight = now.astimezone(zone).replace(hour=0, minute=0, second=0, microsecond=0)
    used = sum(api_calls(r.counts or {})["hubspot"] for r in runs
               if _aware(r.started_at) >= midnight)
    cap = math.floor(daily * hub.rate_limit_share)
    return {"window": f"since {midnight.isoformat()} ({hub.account_timezone})",
            "since": midnight.astimezone(UTC).isoformat(), "used": used, "cap": cap,
            "account_daily_limit": daily, "share": hub.rate_limit_share,
            "used_pct": round(100 * used / cap, 2) if cap else None, "source": "runs"}


def _salesforce_usage(config: Config, store: Store, runs: Iterable[SyncRun],
                      now: datetime) -> dict[str, Any]:
    from connector.salesforce.governor import GovernorSnapshot

    since = now - timedelta(hours=24)
    by_runs = sum(api_calls(r.counts or {})["salesforce"] for r in runs
                  if _aware(r.started_at) >= since)
    share = config.salesforce.daily_allocation_share
    out: dict[str, Any] = {"window": "the last 24 hours (Salesforce's rolling allocation)",
                           "since": since.isoformat(), "used": by_runs, "cap": None,
                           "org_allocation": None, "share": share, "used_pct": None,
                           "source": "runs", "runs_calls": by_runs}
    saved = store.get_bookmark(GOVERNOR)
    if saved:
        try:
            snapshot = GovernorSnapshot.from_json(json.loads(saved))
        except (ValueError, TypeError, AttributeError):
            return out
        used = sum(1 for c in snapshot.calls if _aware(c) > since)
        out.update(used=used, source="governor")
        if snapshot.allowed is not None:
            cap = math.floor(share * snapshot.allowed)
            out.update(cap=cap, org_allocation=snapshot.allowed,
                       used_pct=round(100 * used / cap, 2) if cap else None)
    return out


def _sla(config: Config, store: Store) -> dict[str, Any]:
    from connector.mapping import load_sla
    from connector.pullback.sla_step import as_of, sla_report

    try:
        spec = load_sla(config.mapping_path("sla")).spec
    except ConfigError as exc:
        return {"open_breaches": None, "as_of": None, "by_rep": {},
                "error": f"sla.toml is not valid ({len(exc.problems)} problem(s)): see mappings"}
    when = as_of(store) or datetime.now(UTC)
    report = sla_report(store, spec, when)
    by_rep = {rep: int(row["open_breaches"]) for rep, row in report.items()
              if row["open_breaches"]}
    return {"open_breaches": sum(by_rep.values()), "as_of": when.isoformat(), "by_rep": by_rep}


# --- the whole picture ----------------------------------------------------------------------


def collect_status(config: Config, store: Store, *, clock: Clock | None = None
                   ) -> dict[str, Any]:
    """Everything `handshake status` shows, as one JSON-able object, from the store and the
    mapping files alone (nothing here calls HubSpot or Salesforce)."""
    now = (clock or SystemClock()).now()
    daemons = _daemons(config, store, now)
    runs = store.runs_since(now - timedelta(hours=48))  # both usage windows lie within
    depth = getattr(store, "webhook_queue_depth", None)
    try:
        sla = _sla(config, store)
    except HandshakeError as exc:  # the SLA picture is a bonus: status still shows the rest
        sla = {"open_breaches": None, "as_of": None, "by_rep": {}, "error": str(exc)}
    return {
        "generated_at": now.isoformat(),
        "daemons": daemons,
        "stages": _stages(config, store, daemons),
        "bookmarks": _bookmarks(store, now),
        "dead_letters": _dead_letters(store),
        "api_usage": {"hubspot": _hubspot_usage(config, runs, now),
                      "salesforce": _salesforce_usage(config, store, runs, now)},
        "sla": sla,
        "mappings": _mappings(config, store),
        "webhooks": {"queue_depth": int(depth()) if callable(depth) else None},
        "limited_streams": _limited(store),
    }


# Streams that read less than the whole data when an API is refused, and their flag bookmark
# (`{"since", "reason"}`, set by the stream and cleared when the API answers again).
LIMITED_FLAGS = {"page_views": "page_views_limited"}


def _limited(store: Store) -> dict[str, Any]:
    """Streams running limited, with since when and why."""
    out: dict[str, Any] = {}
    for stream, key in LIMITED_FLAGS.items():
        raw = store.get_bookmark(key)
        if raw is None:
            continue
        try:
            flag = json.loads(raw)
        except ValueError:
            flag = {}
        flag = flag if isinstance(flag, dict) else {}
        out[stream] = {"since": flag.get("since"), "reason": flag.get("reason") or raw}
    return out
