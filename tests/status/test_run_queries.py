"""The run queries status and metrics add up, on SQLite and PostgreSQL: the newest run of each
stage (of given results only), and every run started since a time."""

from __future__ import annotations

from datetime import timedelta

from connector.clock import FrozenClock
from connector.store import Store


def test_last_runs_and_runs_since(store: Store, clock: FrozenClock) -> None:
    ids = {}
    for name, stage, status in [("p1", "pull", "ok"), ("s1", "score", "ok"),
                                ("p2", "pull", "failed"), ("s2", "score", "degraded"),
                                ("p3", "pull", "running")]:
        clock.advance(timedelta(minutes=1))
        ids[name] = store.start_run(stage)
        if status != "running":
            store.finish_run(ids[name], status=status, counts={"n": 1})
    newest = store.last_runs()
    assert {s: r.id for s, r in newest.items()} == {"pull": ids["p3"], "score": ids["s2"]}
    good = store.last_runs(statuses=("ok", "degraded"))
    assert {s: r.id for s, r in good.items()} == {"pull": ids["p1"], "score": ids["s2"]}
    assert [r.id for r in store.runs_since()] == [ids[n] for n in ("p1", "s1", "p2", "s2", "p3")]
    since = clock.now() - timedelta(minutes=1, seconds=30)
    assert [r.id for r in store.runs_since(since)] == [ids["s2"], ids["p3"]]
    assert store.last_runs(statuses=("stopped",)) == {}


def test_metric_totals_equal_every_run_record_as_runs_settle(store: Store,
                                                             clock: FrozenClock) -> None:
    """Runs finished over a day ago are added up once and kept; the totals still equal a
    full count of the run records at each scrape, while runs finish and time passes."""
    from connector.daemon.metrics import RunTotals, run_totals

    def full() -> RunTotals:
        return RunTotals().add(store.runs_since())

    def start(stage: str) -> str:
        clock.advance(timedelta(hours=7))
        return store.start_run(stage)

    for n in range(8):  # two days of runs, every 7 hours
        run = start("pull")
        store.finish_run(run, status="failed" if n == 3 else "ok",
                         counts={"hubspot.calls": n, "contacts.fetched": 10 * n})
    long_one = start("push")  # still running across the horizon
    for step in range(6):
        assert run_totals(store, clock.now()) == full()
        run = start("score")
        store.finish_run(run, status="ok", counts={"hubspot.requests": 2, "scored": step})
        if step == 3:
            store.finish_run(long_one, status="ok", counts={"salesforce.calls": 5})
    totals = run_totals(store, clock.now())
    assert totals == full()
    # every series is there, zeros included (Counter equality ignores zeros)
    assert set(totals.calls) == set(full().calls)
    assert ("score", "salesforce") in totals.calls
    assert totals.calls[("push", "salesforce")] == 5
    assert totals.errors["pull"] == 1
    assert totals.records[("pull", "contacts.fetched")] == sum(10 * n for n in range(8))
