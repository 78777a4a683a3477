"""`ProgressCounts`: an engine's counts that move a progress task as they grow."""

from __future__ import annotations

from collections import Counter

from connector.progress import ProgressCounts


class Recorder:
    def __init__(self) -> None:
        self.advanced: list[tuple[int, int]] = []

    def task(self, name: str, total: int | None = None) -> int:
        return 7

    def advance(self, task: int, n: int = 1, *, total: int | None = None) -> None:
        self.advanced.append((task, n))

    def done(self, task: int) -> None:
        return None


def test_watched_counts_advance_the_task_by_what_they_grow() -> None:
    sink = Recorder()
    counts = ProgressCounts().watch(sink, 7, ["leads.created", "leads.updated"])
    counts["leads.created"] += 1
    counts["leads.created"] += 200
    counts["leads.updated"] += 3
    counts["salesforce.calls"] = 9  # not an outcome: no progress
    counts.update({"leads.updated": 2})
    counts["leads.created"] = 0  # a count going down moves nothing back
    assert sink.advanced == [(7, 1), (7, 200), (7, 3), (7, 2)]
    assert dict(counts) == {"leads.created": 0, "leads.updated": 5, "salesforce.calls": 9}
    assert counts == Counter({"leads.updated": 5, "salesforce.calls": 9})


def test_unwatched_counts_are_a_plain_counter() -> None:
    counts = ProgressCounts()
    counts["x"] += 2
    assert counts.copy() == Counter(x=2)
