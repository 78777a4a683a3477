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
