"""`handshake report`: the funnel, SLA by rep, why leads died, what came back, nurture tracks
and list decay, from what the pull, the score and the pull-back stored. No contact data: counts,
rates, medians and Salesforce user ids only.

Definitions (each figure of `--json` is one of these):
- the window `[since, until)`: the funnel and the nurture tracks count the leads *created* in
  it (HubSpot's create date); hand-off figures (work rate, first touch against outcome, the
  returns) the hand-offs *begun* in it (the push's first SLA timer); the dead leads the recycle
  and disqualify decisions *taken* in it; list decay the contacts *lost* in it; SLA by rep the
  turns assigned since `since` (as `handshake sla`);
- funnel stages, each reached at most once per contact: lead (a live contact), MQL (its first
  MQL score, or its hand-off if earlier), SQL (sales accepted it: a rep worked it as `sla.toml`
  defines - a touch and a `[worked]` status in one turn - at that turn's first touch; or its
  Lead held an accepting status - a `[worked]` status that is not a recycling
  `closed_statuses` one - or was converted, if earlier), opportunity (converted with an
  Opportunity), won
  (the Opportunity closed won); rates are each stage's count over the stage before; median days
  between the stages of the contacts that reached both; the sales cycle is MQL to won;
- by source: HubSpot's original source (`hs_analytics_source`); by segment: the fit grade of
  the latest score (A-F);
- lead work rate: hand-offs a rep touched (a first touch as `sla.toml` defines it) over hand-offs;
- outcome of a hand-off now: won, lost (opportunity closed lost), opportunity (open), recycled,
  disqualified, accepted (SQL, not converted), untouched or touched (neither);
- score band at hand-off: the interest of the contact's latest score at or before its hand-off,
  in bands of 10 from 50 (`<50` below);
- returned: hand-offs after a recycle (the lead qualified again), by their outcome now;
- nurture: per track (the latest non-MQL score's track; for a contact only ever scored an
  MQL, the track its segment would give it), its leads, MQLs, opportunities and won;
- list decay: live contacts whose first bounce, unsubscribe or spam report fell in the window,
  over the live contacts, per year of window (the seeds: about 25% a year)."""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from connector.activities import ActivityType
from connector.config import Config
from connector.mapping.sla import SlaFile
from connector.pullback.sla_step import evaluate_handoffs, sla_report
from connector.scoring import Engine
from connector.store import Store
from connector.store.reports import ContactFacts

__all__ = ["LOST_TYPES", "STAGES", "build_report", "config_report", "score_band"]

STAGES = ("leads", "mqls", "sqls", "opportunities", "won")
_RATE_NAMES = ("lead_to_mql", "mql_to_sql", "sql_to_opportunity", "opportunity_to_won")
LOST_TYPES = (ActivityType.EMAIL_BOUNCE, ActivityType.EMAIL_UNSUBSCRIBE,
              ActivityType.EMAIL_SPAMREPORT)
DAY = 86_400.0
YEAR_DAYS = 365.25


def config_report(config: Config, store: Store, *, now: datetime | None = None,
                  since: datetime | None = None,
                  until: datetime | None = None) -> dict[str, Any]:
    """`build_report` with `config`'s sla.toml and scoring file, as of the store's newest
    pull-back (else `now`, else the wall clock)."""
    from connector.mapping import load_sla
    from connector.pullback.sla_step import as_of
    from connector.scoring import load_model

    spec = load_sla(config.mapping_path("sla")).spec
    engine = Engine(load_model(config.mapping_path("scoring")))
    at = as_of(store) or now or datetime.now(UTC)
    return build_report(store, spec, at, since=since, until=until, engine=engine)


def score_band(interest: float | None) -> str:
    if interest is None:
        return "unscored"
    if interest < 50:
        return "<50"
    low = min(90, int(interest // 10) * 10)
    return f"{low}-{low + 9 if low < 90 else 100}"


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _aware(value: datetime | None) -> datetime | None:
    return None if value is None else _utc(value)


def _median_days(spans: Iterable[float]) -> float | None:
    values = list(spans)
    return round(statistics.median(values) / DAY, 2) if values else None


def _rate(hits: int, base: int) -> float | None:
    return round(hits / base, 4) if base else None


@dataclass
class _Path:
    """When one contact reached each stage (None: not reached)."""

    lead: datetime | None
    mql: datetime | None = None
    sql: datetime | None = None
    opportunity: datetime | None = None
    won: datetime | None = None


def _funnel(paths: Sequence[_Path]) -> dict[str, Any]:
    stages = ("lead", "mql", "sql", "opportunity", "won")
    counts = {name: sum(1 for p in paths if getattr(p, stage) is not None)
              for name, stage in zip(STAGES, stages, strict=True)}
    rates = {name: _rate(counts[STAGES[i + 1]], counts[STAGES[i]])
             for i, name in enumerate(_RATE_NAMES)}
    medians: dict[str, float | None] = {}
    for i, name in enumerate(_RATE_NAMES):
        a, b = stages[i], stages[i + 1]
        medians[name] = _median_days(
            (getattr(p, b) - getattr(p, a)).total_seconds() for p in paths
            if getattr(p, a) is not None and getattr(p, b) is not None)
    cycle = _median_days((p.won - p.mql).total_seconds() for p in paths
                         if p.won is not None and p.mql is not None)
    return {"counts": counts, "rates": rates, "median_days": medians,
            "sales_cycle_days": cycle}


def _grouped(paths: Mapping[str, _Path], key: Mapping[str, str]) -> dict[str, Any]:
    groups: dict[str, list[_Path]] = defaultdict(list)
    for hid, path in paths.items():
        groups[key[hid]].append(path)
    return {name: _funnel(group) for name, group in sorted(groups.items())}


def _track(c: ContactFacts, engine: Engine | None) -> str:
    if c.track:
        return c.track
    if engine is None or c.properties is None:
        return "mql" if c.properties is not None else "unscored"
    profile = _Profile(c.hubspot_id, c.email, c.properties, c.lifecycle_stage,
                       c.hubspot_created_at)
    return engine.segment_track(profile, c.grade, c.interest, c.expired, c.fit_points)


@dataclass(frozen=True)
class _Profile:
    """What the scoring engine reads of a contact."""

    hubspot_id: str
    email: str | None
    properties: Mapping[str, Any]
    lifecycle_stage: str | None
    hubspot_created_at: datetime | None


def _inside(at: datetime | None, since: datetime | None, until: datetime) -> bool:
    """`at` in [since, until): `until` is the window's end, or just past the report's instant
    (what happened at that instant, the last pull-back's decisions, is in)."""
    return at is not None and (since is None or at >= since) and at < until


def build_report(store: Store, sla: SlaFile, now: datetime, *, since: datetime | None = None,
                 until: datetime | None = None, engine: Engine | None = None) -> dict[str, Any]:
    """Every figure of the report as one JSON-able object, as of `now` (the newest pull-back).
    `engine` (the scoring file's) gives the contacts only ever scored as MQLs the nurture track
    their segment puts them in; without it they count under the track "mql"."""
    until = min(until, now) if until is not None else now + timedelta(microseconds=1)
    accepting = sla.accepted_statuses
    contacts = store.report_contacts()
    by_id: dict[str, ContactFacts] = {c.hubspot_id: c for c in contacts}
    states = store.handoff_states()
    outcomes_by: dict[str, list[Any]] = defaultdict(list)
    for o in store.outcomes():
        if o.hubspot_id:
            outcomes_by[o.hubspot_id].append(o)
    timers_by: dict[str, list[Any]] = defaultdict(list)
    for t in store.sla_timers():
        timers_by[t.hubspot_id].append(t)
    # each hand-off begins with a timer the push opened (a reassignment's continues it)
    handoff_starts = {h: [_utc(t.assigned_at) for t in ts if t.recycled_from is None]
                      for h, ts in timers_by.items()}
    first_handoff = {h: min(starts) for h, starts in handoff_starts.items() if starts}

    # each hand-off's first touch (its first turn's), and when sales first worked each contact
    turns = evaluate_handoffs(store, sla, now)
    first_touch: dict[tuple[str, datetime], datetime | None] = {}
    worked_at: dict[str, datetime] = {}
    for turn in turns:
        start = _utc(turn.timer.assigned_at)
        if turn.timer.recycled_from is None:
            first_touch[(turn.hubspot_id, start)] = turn.status.first_touch_at
        done = turn.status.worked_at
        if done is not None:  # accepted at the touch that began the work
            at = min(done, turn.status.first_touch_at or done)
            if turn.hubspot_id not in worked_at or at < worked_at[turn.hubspot_id]:
                worked_at[turn.hubspot_id] = at

    # --- the funnel ---------------------------------------------------------------------------
    paths: dict[str, _Path] = {}
    for c in contacts:
        created = _aware(c.created_at)
        if not _inside(created, since, until):
            continue
        path = _Path(lead=created)
        mql_times = [t for t in (_aware(c.first_mql_at), first_handoff.get(c.hubspot_id)) if t]
        path.mql = min(mql_times) if mql_times else None
        if path.mql is not None:
            outs = outcomes_by.get(c.hubspot_id, [])
            accepted = [_utc(o.occurred_at) for o in outs
                        if (o.kind == "status" and o.status in accepting)
                        or o.kind == "converted"]
            if c.hubspot_id in worked_at:
                accepted.append(worked_at[c.hubspot_id])
            path.sql = min(accepted) if accepted else None
            state = states.get(c.hubspot_id)
            if state is not None and state.opportunity_id:
                converted = [_utc(o.occurred_at) for o in outs if o.kind == "converted"]
                path.opportunity = (min(converted) if converted
                                    else path.sql)
                if state.is_won:  # when the pull-back read it won (else its close date)
                    won = [_utc(o.occurred_at) for o in outs if o.kind == "won"]
                    close = (datetime.combine(state.close_date, datetime.min.time(), UTC)
                             if state.close_date else path.opportunity)
                    path.won = min(won) if won else close
            if path.sql is None and path.opportunity is not None:
                path.sql = path.opportunity
        paths[c.hubspot_id] = path
    funnel = {
        "overall": _funnel(list(paths.values())),
        "by_source": _grouped(paths, {h: by_id[h].source for h in paths}),
        "by_segment": _grouped(paths, {h: by_id[h].grade or "unscored" for h in paths}),
    }

    # --- hand-offs: work rate, outcome, first touch -------------------------------------------
    decisions = {h: sorted((o for o in outs if o.kind in ("recycled", "disqualified")),
                           key=lambda o: _utc(o.occurred_at))
                 for h, outs in outcomes_by.items()}
    handoffs: list[tuple[str, datetime, int]] = []  # (contact, start, generation)
    for hid, starts in handoff_starts.items():
        for generation, start in enumerate(sorted(starts)):
            if _inside(start, since, until):
                handoffs.append((hid, start, generation))
    interest = store.interest_history(set(handoff_starts))

    def band_at(hid: str, start: datetime) -> str:
        """The score band of the contact's latest score at or before `start`."""
        before = [i for at, i in interest.get(hid, []) if _utc(at) <= start]
        return score_band(before[-1] if before else None)

    def outcome_of(hid: str, start: datetime, following: datetime | None) -> str:
        state = states.get(hid)
        later = [d for d in decisions.get(hid, [])
                 if _utc(d.occurred_at) >= start
                 and (following is None or _utc(d.occurred_at) < following)]
        if following is not None or later:  # this hand-off ended in a decision
            return later[-1].kind if later else "recycled"
        if state is not None and state.opportunity_id:
            if state.is_closed:
                return "won" if state.is_won else "lost"
            return "opportunity"
        if state is not None and (state.is_converted or any(
                o.kind == "status" and o.status in accepting
                and _utc(o.occurred_at) >= start
                for o in outcomes_by.get(hid, []))):
            return "accepted"
        return "touched" if first_touch.get((hid, start)) else "untouched"

    by_outcome: dict[str, list[float]] = defaultdict(list)
    outcome_counts: Counter[str] = Counter()
    returned: Counter[str] = Counter()
    worked = 0
    for hid, start, generation in handoffs:
        starts = sorted(handoff_starts[hid])
        following = next((s for s in starts if s > start), None)
        outcome = outcome_of(hid, start, following)
        outcome_counts[outcome] += 1
        touched = first_touch.get((hid, start))
        if touched is not None:
            worked += 1
            by_outcome[outcome].append((touched - start).total_seconds())
        if generation > 0:
            returned[outcome] += 1
    first_touch_vs_outcome = {
        k: {"handoffs": outcome_counts[k], "touched": len(by_outcome.get(k, [])),
            "median_first_touch_hours": (round(statistics.median(by_outcome[k]) / 3600, 2)
                                         if by_outcome.get(k) else None)}
        for k in sorted(outcome_counts)}

    # --- dead leads: the recycle and disqualify decisions in the window -----------------------
    by_reason: Counter[str] = Counter()
    by_source: Counter[str] = Counter()
    by_band: Counter[str] = Counter()
    dead = 0
    for hid, ds in decisions.items():
        starts = sorted(handoff_starts.get(hid, []))
        for d in ds:
            at = _utc(d.occurred_at)
            if not _inside(at, since, until):
                continue
            dead += 1
            by_reason[f"{d.kind}: {(d.details or {}).get('reason') or 'unknown'}"] += 1
            facts = by_id.get(hid)
            by_source[facts.source if facts else "unknown"] += 1
            began = max((s for s in starts if s <= at), default=None)
            by_band[band_at(hid, began) if began else "unscored"] += 1

    # --- nurture tracks and list decay --------------------------------------------------------
    tracks: dict[str, list[_Path]] = defaultdict(list)
    for hid, path in paths.items():
        tracks[_track(by_id[hid], engine)].append(path)
    nurture = {name: {"leads": len(ps), "mqls": sum(p.mql is not None for p in ps),
                      "opportunities": sum(p.opportunity is not None for p in ps),
                      "won": sum(p.won is not None for p in ps),
                      "mql_rate": _rate(sum(p.mql is not None for p in ps), len(ps))}
               for name, ps in sorted(tracks.items())}
    lost = [x for x in store.lost_contacts(LOST_TYPES)]
    live = set(by_id)
    lost_in = [x for x in lost if x.hubspot_id in live and _inside(_aware(x.at), since, until)]
    begin = since or min((t for t in (_aware(c.created_at) for c in contacts) if t),
                         default=until)
    years = max((min(until, now) - begin).total_seconds() / DAY / YEAR_DAYS, 1 / YEAR_DAYS)
    base = len(live)
    decay = {"contacts": base, "lost": len(lost_in),
             "by_kind": dict(sorted(Counter(str(x.kind) for x in lost_in).items())),
             "years": round(years, 3),
             "lost_per_year_pct": (round(100.0 * len(lost_in) / base / years, 1)
                                   if base else None)}

    total = len(handoffs)
    return {
        "as_of": now.isoformat(),
        "window": {"since": since.isoformat() if since else None,
                   "until": min(until, now).isoformat()},
        "funnel": funnel,
        "work_rate": {"handoffs": total, "worked": worked, "rate": _rate(worked, total)},
        "sla_by_rep": sla_report(store, sla, now, since=since, evaluated=turns),
        "outcomes": first_touch_vs_outcome,
        "dead": {"decisions": dead, "by_reason": dict(sorted(by_reason.items())),
                 "by_source": dict(sorted(by_source.items())),
                 "by_score_band": dict(sorted(by_band.items()))},
        "returned": {"handoffs": sum(returned.values()),
                     "became": dict(sorted(returned.items()))},
        "nurture": nurture,
        "list_decay": decay,
    }


