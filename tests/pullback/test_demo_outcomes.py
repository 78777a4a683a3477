"""`handshake demo --days N`: after the push the sandbox's sales team works the hand-offs for N
simulated days, the pull-back following as a daemon would; the summary's `outcomes` are what
the simulator's ground truth says the reps did, and the keys the demo had before keep their
values."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from connector.cli.demo import render_summary
from connector.demo import run_demo
from connector.demo.verify import minimum_pullback_calls, outcome_differences

CONTACTS, SEED, DAYS = 300, 42, 5
# opportunities close within days, so won and lost fall inside the simulated days
PROFILE = {"close_after_days": (0.5, 2.5)}
FIGURES = ("leads_by_status", "attempts", "calls", "emails", "conversions",
           "opportunities_won", "opportunities_lost")


class Recorder:
    """A progress sink that remembers its tasks and how far each went."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.advanced: Counter[str] = Counter()
        self.finished: set[str] = set()

    def task(self, name: str, total: int | None = None) -> int:
        self.names.append(name)
        return len(self.names) - 1

    def advance(self, task: int, n: int = 1, *, total: int | None = None) -> None:
        self.advanced[self.names[task]] += n

    def done(self, task: int) -> None:
        self.finished.add(self.names[task])


@pytest.fixture(scope="module")
def progress() -> Recorder:
    return Recorder()


@pytest.fixture(scope="module")
def worked(tmp_path_factory: pytest.TempPathFactory, progress: Recorder) -> dict[str, Any]:
    return run_demo(contacts=CONTACTS, seed=SEED, workdir=tmp_path_factory.mktemp("days"),
                    days=DAYS, sales_profile=PROFILE, progress=progress)


@pytest.fixture(scope="module")
def handoff_only(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return run_demo(contacts=CONTACTS, seed=SEED, workdir=tmp_path_factory.mktemp("none"),
                    days=0)


def test_the_outcomes_equal_the_ground_truth(worked: dict[str, Any]) -> None:
    o = worked["outcomes"]
    truth = o["ground_truth"]
    assert {k: o[k] for k in FIGURES} == {k: truth[k] for k in FIGURES}
    # the sales team did each kind of thing, so the equality above compares something
    assert o["attempts"] > 10 and o["calls"] and o["emails"]
    assert o["conversions"] > 0
    assert o["opportunities_won"] > 0 and o["opportunities_lost"] > 0
    # Leads closed without converting are handed back to marketing (recycled): they end in
    # sla.toml's recycled status, as the ground truth (with Handshake's hand-backs) says
    assert set(o["leads_by_status"]) >= {"Closed - Converted", "Working - Contacted",
                                         "Open - Not Contacted"}
    assert sum(o["leads_by_status"].values()) == o["handed_off_leads"] > 0
    assert o["leads_by_status"]["Closed - Converted"] == o["conversions"]
    assert o["pullback_status"] == "ok"
    assert worked["checks"] == []
    assert worked["checked"][-1]["stage"] == "pullback"
    assert worked["checked"][-1]["problems"] == 0


def test_the_pullback_runs_as_a_daemon_would(worked: dict[str, Any],
                                             progress: Recorder) -> None:
    o = worked["outcomes"]
    # one run right after the push, then one every few simulated hours
    assert o["pullback_runs"] == 1 + DAYS * 24 / o["pullback_every_hours"]
    assert 0 < o["minimum_calls"] <= o["api_calls"]
    # a line per simulated day on the demo's progress
    assert progress.advanced["sales team: simulated days"] == DAYS
    assert "sales team: simulated days" in progress.finished
    assert "check: the pull-back against the ground truth" in progress.finished


def test_no_days_leaves_the_summary_as_it_was(handoff_only: dict[str, Any],
                                              worked: dict[str, Any]) -> None:
    assert "outcomes" not in handoff_only
    assert [c["stage"] for c in handoff_only["checked"]] == ["pull", "score", "push"]
    # the days come after everything the summary said before: its keys keep their values
    for key, value in handoff_only.items():
        if key == "checked":
            assert worked[key][:3] == value
        else:
            assert worked[key] == value, key
    assert set(worked) - set(handoff_only) == {"outcomes"}
    assert "Sales outcomes" not in "\n".join(render_summary(handoff_only))


def test_the_terminal_summary_shows_the_outcomes_without_record_data(
        worked: dict[str, Any]) -> None:
    text = "\n".join(render_summary(worked))
    lines = text.splitlines()
    o = worked["outcomes"]
    assert f"Sales outcomes[/] after {DAYS} simulated days" in text
    for figure, words in [(o["handed_off_leads"], "handed-off Leads"),
                          (o["attempts"], "follow-ups logged"),
                          (o["conversions"], "converted"),
                          (o["opportunities_won"], "opportunities won"),
                          (o["opportunities_lost"], "opportunities lost"),
                          (o["api_calls"], "Pull-back")]:
        assert any(f"{figure:,}" in line and words in line for line in lines), words
    for status, n in o["leads_by_status"].items():
        assert any(f"{n:,}" in line and status in line for line in lines), status
    assert "pullback: handed-off Leads by current status" in text
    assert "all correct" in text
    assert "@" not in text


def test_a_figure_off_the_ground_truth_is_a_problem() -> None:
    truth = {"attempts": 3, "leads_by_status": {"Working - Contacted": 2}}
    assert outcome_differences(dict(truth), truth) == []
    problems = outcome_differences({**truth, "attempts": 2}, truth)
    assert problems == ["pull-back attempts: stored 2, ground truth 3"]
    assert len(outcome_differences({"attempts": 3}, truth)) == 1


def test_the_pullback_floor_packs_its_queries_in_composite_calls() -> None:
    quiet: dict[str, int] = {}
    # the 4 objects' queries (and the deleted checks) in one composite call
    assert minimum_pullback_calls([quiet]) == 1
    assert minimum_pullback_calls([{"Lead.deleted_listed": 0, "Contact.deleted_listed": 0}]) == 1
    # 2,001 Leads: two pages, one after the other
    assert minimum_pullback_calls([quiet, {"Lead.read": 2001, "Task.read": 5}]) == 1 + 2
    # the vocabulary read: 3 more queries, 7 in all, two calls
    assert minimum_pullback_calls([{"vocabulary.read": 1}]) == 2
    # 5 pages of Tasks: a chain of 5 calls; 8 query operations fit in its length
    assert minimum_pullback_calls([{"Task.read": 9000, "Lead.read": 4001}]) == 5
    # a deleted Lead looked up after the check that named it
    assert minimum_pullback_calls([{"Lead.deleted_listed": 1, "Lead.deleted": 1}]) == 2


def test_the_demo_command_refuses_negative_days() -> None:
    from typer.testing import CliRunner

    from connector.cli import app

    result = CliRunner().invoke(app, ["demo", "--days", "-1"])
    assert result.exit_code != 0
    assert "--days" in result.output
