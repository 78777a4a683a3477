"""Scoring over the store: incremental re-scoring, lifecycle decisions with times and reasons,
forward-only stages, expiry recorded once, all on an injected clock."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from connector.clock import FrozenClock
from connector.scoring.runner import score_contacts
from connector.store import ActivityRecord, ContactRecord, Store
from tests.scoring.helpers import NOW, SITE, default_engine

ENGINE = default_engine()
FIT = {"seniority": "vp", "department": "finance", "numemployees": "100-500",
       "industry": "Financial Services", "jobtitle": "VP of Finance"}


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(NOW)


@pytest.fixture
def store(tmp_path: Path, clock: FrozenClock) -> Iterator[Store]:
    s = Store(f"sqlite:///{tmp_path / 'state.db'}", clock=clock)
    s.migrate()
    yield s
    s.close()


def contact(cid: str, stage: str | None = None, **props: Any) -> ContactRecord:
    email = f"c{cid}@acme-corp.com"
    merged = {"email": email, **FIT, **props}
    if stage:
        merged["lifecyclestage"] = stage
    return ContactRecord(cid, email, merged, NOW - timedelta(days=90), NOW)


def act(cid: str, kind: str, at: Any, n: int, **kw: Any) -> ActivityRecord:
    return ActivityRecord(cid, kind, at, "test", f"{cid}:{kind}:{n}", **kw)


def consultation(cid: str, at: Any, n: int = 0) -> ActivityRecord:
    return act(cid, "form_submission", at, n, title="Request a consultation",
               details={"form_id": "g1", "form_name": "Request a consultation", "values": {}})


def seed(store: Store) -> None:
    store.upsert_contacts([
        contact("1"),  # will be an MQL
        contact("2"),  # a whitepaper only: becomes a lead
        contact("3", "opportunity"),  # as active as 1, but sales owns it
        contact("4", "subscriber"),  # only opens emails
    ])
    store.add_activities([
        consultation("1", NOW - timedelta(days=2)),
        act("1", "webinar_attended", NOW - timedelta(days=5), 1, title="Webinar"),
        act("2", "form_submission", NOW - timedelta(days=3), 2, title="Whitepaper",
            details={"form_id": "g2", "form_name": "Whitepaper: Playbook", "values": {}}),
        consultation("3", NOW - timedelta(days=2)),
        act("3", "webinar_attended", NOW - timedelta(days=5), 3, title="Webinar"),
        act("4", "email_open", NOW - timedelta(days=1), 4),
        act("4", "page_view", NOW - timedelta(days=1), 5, url=SITE + "/pricing"),
    ])


def test_decisions_have_times_and_reasons_and_never_demote(store: Store, clock: FrozenClock) -> None:
    seed(store)
    run = score_contacts(store, ENGINE, clock.now(), run_id="r1")
    assert run.counts["scored"] == 4
    assert run.counts["mql"] == 1
    moves = {d.contact_id: (d.from_stage, d.to_stage) for d in run.decisions}
    assert moves == {"1": (None, "marketingqualifiedlead"), "2": (None, "lead")}
    [mql] = store.transitions_for("1")
    assert mql.at == NOW and mql.run_id == "r1"
    assert mql.reason == "MQL: grade A with interest 71.63 >= 50"
    assert store.get_contact("1").lifecycle_stage == "marketingqualifiedlead"  # type: ignore[union-attr]
    assert store.transitions_for("3") == []
    assert run.mql_at == {"1": NOW}
    assert store.latest_score("1").is_mql  # type: ignore[union-attr]
    assert store.latest_score("3").fit_grade == "A"  # type: ignore[union-attr]

    # Interest fades below the threshold: the MQL stays with sales, no step back.
    clock.advance(timedelta(days=120))
    run = score_contacts(store, ENGINE, clock.now())
    assert run.counts["scored"] == 4
    assert not run.results["1"].is_mql
    assert run.decisions == []
    assert store.get_contact("1").lifecycle_stage == "marketingqualifiedlead"  # type: ignore[union-attr]
    assert run.mql_at["1"] == NOW


def test_only_changed_or_stale_contacts_are_rescored(store: Store, clock: FrozenClock) -> None:
    seed(store)
    assert score_contacts(store, ENGINE, clock.now()).counts["scored"] == 4
    assert score_contacts(store, ENGINE, clock.now()).counts["scored"] == 0
    clock.advance(timedelta(minutes=5))
    store.add_activities([act("4", "email_click", clock.now(), 9)])
    clock.advance(timedelta(minutes=5))
    run = score_contacts(store, ENGINE, clock.now())
    assert set(run.results) == {"4"}
    assert run.results["4"].interest == pytest.approx(
        (1 + 5) * 0.5 ** ((1 + 10 / 1440) / 45) + 3 * 0.5 ** (5 / 1440 / 45), abs=0.01)
    # A day later decay has moved every score: all are due again.
    clock.advance(timedelta(days=1, minutes=1))
    assert score_contacts(store, ENGINE, clock.now()).counts["scored"] == 4


def test_expiry_is_recorded_once_per_lapse(store: Store, clock: FrozenClock) -> None:
    seed(store)
    score_contacts(store, ENGINE, clock.now())
    clock.advance(timedelta(days=200))
    run = score_contacts(store, ENGINE, clock.now())
    expired = {d.contact_id: d for d in run.decisions if d.kind == "expired"}
    # The lead and the subscriber expire; the MQL is with sales and the opportunity too.
    assert set(expired) == {"2", "4"}
    assert expired["2"].reason.startswith("expired: no scored engagement since 2026-10-29")
    assert expired["2"].to_stage == "lead"
    assert run.results["2"].nurture_track == "re-engagement"
    clock.advance(timedelta(days=2))
    again = score_contacts(store, ENGINE, clock.now())
    assert again.counts["scored"] == 4
    assert [d for d in again.decisions if d.kind == "expired"] == []
    # Coming back and lapsing again is a new expiry.
    store.add_activities([act("2", "page_view", clock.now(), 20, url=SITE + "/product")])
    clock.advance(timedelta(days=181, minutes=1))
    later = score_contacts(store, ENGINE, clock.now())
    assert [d.contact_id for d in later.decisions if d.kind == "expired"] == ["2"]


def test_dry_run_stores_nothing(store: Store, clock: FrozenClock) -> None:
    seed(store)
    run = score_contacts(store, ENGINE, clock.now(), dry_run=True)
    assert run.counts["scored"] == 4 and len(run.decisions) == 2
    assert store.latest_score("1") is None
    assert store.transitions_for("1") == []


def seeded_with_a_form_and_a_view(store: Store) -> Store:
    """`seed`, and contact 2's form (a name beyond ASCII, a time with microseconds) and
    pricing page view."""
    store.migrate()
    seed(store)
    store.add_activities([
        act("2", "form_submission", NOW - timedelta(days=1, microseconds=1234), 9,
            title="Whitepaper: déjà vu", details={"form_id": "g3", "form_name":
                                                  "Whitepaper: déjà vu", "values": {}}),
        act("2", "page_view", NOW - timedelta(hours=3), 10, url=SITE + "/pricing?ü=1"),
    ])
    return store


def test_stored_explanations_read_back_as_the_results_give_them(
        backend_store: Store, clock: FrozenClock) -> None:
    """The store encodes explanations itself (times as `isoformat` writes them): what every
    reader decodes is the result's `explanation()`, on both backends, times with
    microseconds and names beyond ASCII included."""
    store = seeded_with_a_form_and_a_view(backend_store)
    run = score_contacts(store, ENGINE, clock.now(), run_id="r1")
    assert set(run.results) == {"1", "2", "3", "4"}
    for cid, result in run.results.items():
        stored = store.latest_score(cid)
        assert stored is not None
        assert stored.explanation == result.explanation()
    rules = run.results["2"].explanation()["interest"]["rules"]
    assert ["Whitepaper: déjà vu", "2026-10-31T11:59:59.998766+00:00"] in [
        [r[4], r[3]] for r in rules]


def test_explanations_are_stored_compact_and_read_back_whole(
        backend_store: Store, clock: FrozenClock) -> None:
    """The score stage stores each interest rule's hit as rule, activity id and points (the
    activity's type, time and label are the activity's own): read back, every explanation is
    the result's whole `explanation()` again, the calibration names the same rules from
    either form, and a hit whose activity is gone reads as None where the activity spoke."""
    from connector.store.calibration import _rules

    store = seeded_with_a_form_and_a_view(backend_store)
    run = score_contacts(store, ENGINE, clock.now(), run_id="r1")
    ids = sorted(run.results)
    stored = store.latest_scores(ids)
    assert set(stored) == set(ids)
    for cid in ids:
        whole = run.results[cid].explanation()
        compact = stored[cid].explanation
        assert "rules" not in compact["interest"]
        assert compact["interest"]["hits"] == [[r[0], r[1], r[5], r[6]]
                                               for r in whole["interest"]["rules"]]
        assert {k: v for k, v in compact["interest"].items() if k != "hits"} == {
            k: v for k, v in whole["interest"].items() if k != "rules"}
        assert {k: v for k, v in compact.items() if k != "interest"} == {
            k: v for k, v in whole.items() if k != "interest"}
        assert _rules(compact) == _rules(whole)
    assert any(stored[cid].explanation["interest"]["hits"] for cid in ids)
    store.expand_explanations(stored.values())
    for cid in ids:
        assert stored[cid].explanation == run.results[cid].explanation()
    store.expand_explanations(stored.values())  # whole already: left as it is
    for cid in ids:
        assert stored[cid].explanation == run.results[cid].explanation()

    # contact 2 merged into 1: its activities go, its explanation keeps rules and points
    whole = run.results["2"].explanation()["interest"]["rules"]
    with store.transaction() as s:
        store.mark_merged("1", ["2"], session=s)
    gone = store.latest_score("2")
    assert gone is not None
    assert gone.explanation["interest"]["rules"] == [
        [r[0], r[1], None, None, None, r[5], r[6]] for r in whole]
