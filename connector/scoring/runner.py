"""Scoring over the store: re-score only contacts whose inputs changed since their last score,
plus those whose score is older than a day (decay and expiry move with time), record scores and
lifecycle decisions, and collect what HubSpot must be told."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from connector.activities import ActivityType
from connector.control import checkpoint
from connector.scoring.engine import ContactLike, Engine, ScoreResult
from connector.scoring.lifecycle import Decision, decide, mql_time
from connector.store import Store

__all__ = ["RESCORE_AFTER", "ScoreRun", "recycles", "score_batches", "score_contacts"]

# Interest fades daily: a score older than this is recomputed even if nothing changed.
RESCORE_AFTER = timedelta(days=1)


@dataclass
class ScoreRun:
    """What one scoring pass did."""

    counts: Counter[str] = field(default_factory=Counter)
    results: dict[str, ScoreResult] = field(default_factory=dict)
    decisions: list[Decision] = field(default_factory=list)
    mql_at: dict[str, datetime] = field(default_factory=dict)
    contacts: dict[str, ContactLike] = field(default_factory=dict)


def recycles(store: Store) -> dict[str, tuple[datetime, float]]:
    """Each recycled contact's latest recycle (the pull-back stores it as a `recycled`
    outcome): when, and the share of its interest until then it keeps (sla.toml)."""
    found: dict[str, tuple[datetime, float]] = {}
    for row in store.outcomes(kind="recycled"):  # oldest first: the latest wins
        if row.hubspot_id:
            when = row.occurred_at if row.occurred_at.tzinfo else row.occurred_at.replace(
                tzinfo=UTC)
            found[row.hubspot_id] = (when, float((row.details or {}).get("keep_percent", 100))
                                     / 100.0)
    return found


def score_contacts(
    store: Store, engine: Engine, now: datetime, *, run_id: str | None = None,
    dry_run: bool = False, everyone: bool = False, keep_results: bool = True,
    batch: int = 1000, on_batch: Callable[[int], None] | None = None,
    ids: Collection[str] | None = None,
    selected: Iterable[Sequence[ContactLike]] | None = None,
) -> ScoreRun:
    """Score the contacts that are due at `now` (of `ids` only, when given; or the batches
    `selected`: a backfill's window); store scores and transitions unless `dry_run`."""
    run = ScoreRun()
    for done in score_batches(store, engine, now, run_id=run_id, dry_run=dry_run,
                              everyone=everyone, batch=batch, ids=ids, selected=selected):
        run.counts.update(done.counts)
        run.decisions.extend(done.decisions)
        run.mql_at.update(done.mql_at)
        if keep_results:
            run.results.update(done.results)
            run.contacts.update(done.contacts)
        if on_batch is not None:
            on_batch(len(done.contacts))
    return run


def score_batches(
    store: Store, engine: Engine, now: datetime, *, run_id: str | None = None,
    dry_run: bool = False, everyone: bool = False, batch: int = 1000,
    ids: Collection[str] | None = None,
    selected: Iterable[Sequence[ContactLike]] | None = None,
) -> Iterator[ScoreRun]:
    """`score_contacts` a batch at a time: each batch's run (its contacts, results, decisions
    and counts) once its scores and transitions are stored (unless `dry_run`), so a caller
    can write it back and let it go (memory stays flat with the number of contacts)."""
    section = engine.model.lifecycle
    recycled = recycles(store)
    # What a score and a lifecycle decision read: the activities the interest rules count,
    # and forms (a form makes a subscriber a lead); email sends and deliveries are most rows.
    types = engine.counted_types | {ActivityType.FORM_SUBMISSION}
    batches = selected if selected is not None else store.contacts_to_score(
        stale_before=now - RESCORE_AFTER, everyone=everyone, batch=batch, ids=ids)
    for contacts in batches:
        checkpoint()  # a stop lands between batches: each batch's scores are stored whole
        run = ScoreRun()
        counts = run.counts
        wanted = [c.hubspot_id for c in contacts]
        activities = store.activities_for_many(wanted, types=types, sources=False)
        transitions = store.transitions_for_many(wanted)
        score_rows = []
        decisions = run.decisions
        results, kept, mql_at = run.results, run.contacts, run.mql_at
        score, recycled_at = engine.score, recycled.get
        scored: list[ScoreResult] = []
        for contact in contacts:
            cid = contact.hubspot_id
            acts = activities[cid]
            result = score(contact, acts, now, recycled_at(cid))
            history = transitions[cid]
            decision = decide(result, acts, history, section)
            if decision is not None:
                decisions.append(decision)
            became = decision.at if decision is not None and decision.kind == "mql" else None
            when = became or mql_time(history, section)
            if when is not None:
                mql_at[cid] = when
            score_rows.append({
                "contact_id": cid, "scored_at": now, "interest": result.interest,
                "fit_grade": result.fit.grade, "fit_points": result.fit.points,
                "is_mql": result.is_mql, "model_version": result.model_version,
                "explanation": result.explanation(text_times=False, compact=True),
            })
            results[cid] = result
            kept[cid] = contact
            scored.append(result)
        # counted once the batch is scored: a Counter of each kind, not an update a contact
        counts["scored"] += len(scored)
        for grade, n in Counter(r.fit.grade for r in scored).items():
            counts[f"grade.{grade}"] += n
        for key, n in (("mql", sum(r.is_mql for r in scored)),
                       ("expired", sum(r.expired for r in scored))):
            if n:
                counts[key] += n
        for kind, n in Counter(d.kind for d in decisions).items():
            counts[f"transition.{kind}"] += n
        if not dry_run:
            store.record_scores(score_rows, [d.as_row(run_id) for d in decisions])
        yield run
