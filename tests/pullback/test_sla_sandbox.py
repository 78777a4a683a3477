"""The pull-back's SLA step against the sandbox: after a push, the sales-team simulator works
the hand-offs for days while the pull-back runs every two simulated hours; the breaches found
are the ground truth's late and missing first touches exactly, each alerted once, each
reassignment goes to a member of the owner's routing team, `handshake sla --json` says what
the ground truth says, and a dry run writes nothing."""

from __future__ import annotations

import json
import logging
import sqlite3
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from statistics import median
from typing import Any

import pytest
from typer.testing import CliRunner

from connector.cli.main import app
from connector.clock import FrozenClock
from connector.config import AlertSettings, Config, PullbackSettings
from connector.defaults import default_mapping
from connector.mapping import load_routing, load_sla
from connector.pull import pull
from connector.pullback.outcomes_step import HUBSPOT_BOOKMARK
from connector.pullback.sla_step import (
    ALERT_PREFIX,
    MANAGER_PREFIX,
    SLA_BOOKMARK,
    evaluate_handoffs,
)
from connector.runtime import (
    StageResult,
    open_store,
    run_pullback_stage,
    run_push_stage,
    run_score_stage,
)
from connector.sandbox import Sandbox
from connector.sandbox.salesforce import settings as sfs
from connector.store import SlaBreachRecord, SlaTimer
from tests.pull.helpers import context
from tests.pullback.test_pullback_sandbox import PROFILE, REASON_FIELD, SandboxTime
from tests.pullback.test_full_cycle_twice import write_counts
from tests.push.helpers import sandbox_org
from tests.push.webhook_receiver import WebhookReceiver

DAYS = 5
# dry runs (each followed by the real run at the same instant) just past the first-touch and
# the worked windows, and after a day without pull-backs (sales outcomes for HubSpot pile up)
DRY_RUNS = (12, 24, 48)
QUIET = range(37, 48)
# after the real run of these steps, the SLA bookmark dropped and the pull-back run again at
# the same instant: a from-scratch judgement of every contact, which must find nothing to do
FROM_SCRATCH = (18, 30, 55)


@dataclass
class Snapshot:
    breaches: list[tuple[str, Any]]
    timers: list[tuple[Any, ...]]
    ledger: list[tuple[str, str]]
    tasks: int
    owners: dict[str, Any]


@dataclass
class Worked:
    sb: Sandbox
    config: Config
    clock: SandboxTime
    origin: datetime
    hook: WebhookReceiver
    truth: list[dict[str, Any]] = field(default_factory=list)
    runs: list[StageResult] = field(default_factory=list)
    dry: list[tuple[StageResult, Snapshot, Snapshot]] = field(default_factory=list)
    again: StageResult | None = None
    handed_off_status: dict[str, Any] = field(default_factory=dict)  # Lead id: Status
    warnings: list[str] = field(default_factory=list)  # every WARNING the stages logged
    # after each dry run, the real run at the same instant: its org writes and stats
    followed: list[tuple[StageResult, dict[str, Any], Counter[str], Counter[str]]] = field(
        default_factory=list)
    # after each run: where the store differs from a full judgement of every contact's turns
    # at that instant, and how many contacts the run judged against how many have a timer
    unlike_full: list[str] = field(default_factory=list)
    judged: list[tuple[int, int]] = field(default_factory=list)
    # each from-scratch run at the instant of an incremental one: what it found to do
    scratch: list[tuple[StageResult, StageResult, Snapshot, Snapshot, dict[str, Any],
                        dict[str, Any]]] = field(default_factory=list)

    def pull_back(self, **kwargs: Any) -> StageResult:
        result = run_pullback_stage(self.config, **{"clock": self.clock, **kwargs})
        assert result.status == "ok", result.error
        if not kwargs.get("dry_run"):
            self.compare_with_full(result)
        return result

    def compare_with_full(self, result: StageResult) -> None:
        """The store after an incremental run against every contact's turns judged afresh at
        the same instant: each breach recorded (met when it was met), each timer's first touch
        and worked times as the full judgement says."""
        spec = load_sla(self.config.mapping_path("sla")).spec
        store = open_store(self.config)
        try:
            turns = evaluate_handoffs(store, spec, self.sb.clock.now())
            recorded = {b.key: b.met_at for b in store.sla_breaches()}
            timers = {t.id: t for t in store.sla_timers()}
        finally:
            store.close()
        for turn in turns:
            stored, status = timers[turn.timer.id], turn.status
            if (stored.first_touch_at, stored.worked_at) != (status.first_touch_at,
                                                             status.worked_at):
                self.unlike_full.append(f"timer {stored.id}: stored {stored.first_touch_at}, "
                                        f"{stored.worked_at}; full {status.first_touch_at}, "
                                        f"{status.worked_at}")
            for breach in status.breaches:
                if recorded.get(breach.key, "missing") != breach.met_at:
                    self.unlike_full.append(f"breach {breach.key}: stored "
                                            f"{recorded.get(breach.key, 'missing')}, full "
                                            f"{breach.met_at}")
        self.judged.append((int(result.counts.get("judged.sla_contacts", 0)),
                            len({t.hubspot_id for t in timers.values()})))

    def from_scratch(self, previous: StageResult) -> None:
        """Drop the SLA step's and the hand-back's bookmarks and run the pull-back again at the instant of the
        `previous` (incremental) run."""
        store = open_store(self.config)
        try:
            store.set_bookmark(SLA_BOOKMARK, "")
            store.set_bookmark(HUBSPOT_BOOKMARK, "")  # every hand-off compared with HubSpot
        finally:
            store.close()
        at = FrozenClock(self.sb.clock.now())
        before, org = self.snapshot(), org_view(self.sb)
        result = self.pull_back(clock=at)
        self.scratch.append((previous, result, before, self.snapshot(), org,
                             org_view(self.sb)))

    def store_rows(self) -> tuple[list[SlaBreachRecord], list[SlaTimer]]:
        store = open_store(self.config)
        try:
            return store.sla_breaches(), store.sla_timers()
        finally:
            store.close()

    def snapshot(self) -> Snapshot:
        store = open_store(self.config)
        try:
            breaches = [(b.key, b.met_at) for b in store.sla_breaches()]
            timers = [(t.id, t.owner_id, t.state) for t in store.sla_timers()]
            ledger = [(e.key, e.status) for e in store.ledger_entries("sf:")]
        finally:
            store.close()
        state = self.sb.salesforce.state
        return Snapshot(breaches, timers, sorted(ledger), len(state.records("Task")),
                        {r["Id"]: r.get("OwnerId") for r in state.records("Lead")})


# Fixed sandbox starts (the data depends on the minute it is generated), each with a hand-off
# to a Lead already "Working - Contacted" that its rep then touches: the case that decides
# what "worked" means (sla.toml: the worked status AND a touch in the turn).
STARTS = [datetime(2026, 3, 2, 14, 7, tzinfo=UTC), datetime(2026, 1, 12, 11, 23, tzinfo=UTC)]


@pytest.fixture(scope="module", params=STARTS, ids=lambda s: f"{s:%Y%m%dT%H%M}")
def worked(request: pytest.FixtureRequest,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worked]:
    folder = tmp_path_factory.mktemp("sla")
    shipped = default_mapping("sla")
    assert shipped is not None
    sla_file = folder / "sla.toml"  # the shipped file, with the webhook on
    sla_file.write_text(shipped.read_text()  # the shipped file, webhook and manager on
                        .replace("alert_webhook = false", "alert_webhook = true")
                        .replace("alert_manager = false", "alert_manager = true"))
    warnings = _Warnings()
    logging.getLogger("connector").addHandler(warnings)
    with sandbox_org(folder, 600, start=request.param) as (sb, config), \
            WebhookReceiver() as hook:
        config = config.model_copy(update={
            "pullback": PullbackSettings(lead_reason_field=REASON_FIELD),
            "alerts": AlertSettings(webhook_url=hook.url, max_attempts=2),
            "mappings": config.mappings.model_copy(update={"sla": str(sla_file)})})
        spec = load_sla(config.mapping_path("sla")).spec
        assert spec.breach.alert_webhook and spec.breach.alert_manager
        assert spec.recycling.owner_queue == sfs.MARKETING_QUEUE_NAME  # the shipped queue
        clock = SandboxTime(sb)  # every stage on the sandbox's time, which starts in the past
        store = open_store(config)
        try:
            pull(replace(context(config, store), clock=clock))
        finally:
            store.close()
        assert run_score_stage(config, clock=clock).status == "ok"
        assert run_push_stage(config, clock=clock).counts["leads.created"] > 20
        state = Worked(sb, config, clock, sb.clock.now(), hook)
        state.handed_off_status = {r["Id"]: r.get("Status")
                                   for r in sb.salesforce.state.records("Lead")}
        state.runs.append(state.pull_back())
        simulator = sb.simulator(profile=PROFILE)
        for step in range(1, DAYS * 12 + 1):
            state.truth.extend(simulator.run(2, step_hours=1))
            if step in QUIET:
                continue
            if step in DRY_RUNS:
                at = FrozenClock(sb.clock.now())  # the dry run and the real one: one instant
                before, org, stats = state.snapshot(), org_view(sb), write_stats(sb)
                dry = state.pull_back(dry_run=True, clock=at)
                state.dry.append((dry, before, state.snapshot()))
                dry_stats = write_stats(sb) - stats
                assert org_view(sb) == org
                real = state.pull_back(clock=at)
                state.runs.append(real)
                state.followed.append((real, _org_writes(org, org_view(sb)), dry_stats,
                                       write_stats(sb) - stats - dry_stats))
                continue
            state.runs.append(state.pull_back())
            if step in FROM_SCRATCH:
                state.from_scratch(state.runs[-1])
        state.again = state.pull_back()
        state.warnings = warnings.messages
        yield state
    logging.getLogger("connector").removeHandler(warnings)


class _Warnings(logging.Handler):
    """The WARNING (and worse) lines the stages log, as read."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def org_view(sb: Sandbox) -> dict[str, Any]:
    """What a pull-back can write in both orgs: Salesforce Tasks and Leads (status, owner,
    description), HubSpot contacts' properties and list members."""
    sf = sb.salesforce.state  # type: ignore[union-attr]
    hs = sb.hubspot.state  # type: ignore[union-attr]
    return {
        "tasks": {r["Id"]: (r.get("WhoId"), r.get("OwnerId")) for r in sf.records("Task")},
        "leads": {r["Id"]: (r.get("Status"), r.get("OwnerId"), r.get("Description"))
                  for r in sf.records("Lead")},
        "contacts": {cid: dict(rec.props) for cid, rec in hs.contacts.items()},
        "lists": {rec.name: set(rec.members) for rec in hs.lists.values()},
    }


def write_stats(sb: Sandbox) -> Counter[str]:
    """The write calls both sandboxes answered so far, by route (a composite call counted
    by its subrequests that write: the pull-back's reads go in composite calls)."""
    return (write_counts(sb.salesforce.stats)  # type: ignore[union-attr]
            + write_counts(sb.hubspot.stats))  # type: ignore[union-attr]


AUTOMATIC = ("lastmodifieddate", "hs_lastmodifieddate", "hs_lifecyclestage_")  # HubSpot sets


def _org_writes(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """What changed between two views, in the dry run's listing terms."""
    tasks = Counter(v for k, v in after["tasks"].items() if k not in before["tasks"])
    owners, statuses = {}, {}
    for lead, (status, owner, _) in after["leads"].items():
        old = before["leads"].get(lead)
        if old is not None and old[1] != owner:
            owners[lead] = (old[1], owner)
        if old is not None and old[0] != status:
            statuses[lead] = status
    contacts: dict[str, dict[str, str]] = {}
    for cid, props in after["contacts"].items():
        old = before["contacts"].get(cid, {})
        changed = {k: props.get(k, "") for k in set(props) | set(old)
                   if props.get(k, "") != old.get(k, "") and not k.startswith(AUTOMATIC)}
        if changed:
            contacts[cid] = changed
    lists = {name: members - before["lists"].get(name, set())
             for name, members in after["lists"].items()}
    return {"tasks": tasks, "owners": owners, "statuses": statuses, "contacts": contacts,
            "lists": {k: v for k, v in lists.items() if v}}


def _attempts(worked: Worked) -> dict[str, list[datetime]]:
    """Each Lead's follow-up attempts (calls, emails) in the ground truth, at the time the org
    stamped their Task completed (the simulator's step that ran them)."""
    org = worked.sb.salesforce.state
    out: dict[str, list[datetime]] = defaultdict(list)
    for entry in worked.truth:
        if entry.get("action") in ("call", "email") and "error" not in entry:
            task = org.get("Task", entry["task_id"])
            stamp = datetime.fromisoformat(str(task["CompletedDateTime"]))
            assert stamp >= datetime.fromisoformat(entry["at"])
            out[entry["lead_id"]].append(stamp)
    return {lead: sorted(times) for lead, times in out.items()}


def _truth_first_touch(worked: Worked, now: datetime) -> dict[int, tuple[datetime, datetime | None]]:
    """Each SLA turn's first-touch due time and first attempt after its start (ground truth)."""
    sla = load_sla(worked.config.mapping_path("sla")).spec
    assert not sla.windows.business_hours_only  # the shipped file: every hour counts
    window = timedelta(hours=sla.windows.first_touch_hours)
    attempts = _attempts(worked)
    _, timers = worked.store_rows()
    out = {}
    for timer in timers:
        if timer.owner_id is None:
            continue
        after = [t for t in attempts.get(timer.sf_id, []) if timer.assigned_at <= t <= now]
        out[timer.id] = (timer.assigned_at + window, after[0] if after else None)
    return out


def _now(worked: Worked) -> datetime:
    return worked.sb.clock.now()


def test_first_touch_breaches_equal_the_ground_truth(worked: Worked) -> None:
    now = _now(worked)
    expected = {timer_id for timer_id, (due, touched) in _truth_first_touch(worked, now).items()
                if (touched is None and now >= due) or (touched is not None and touched > due)}
    breaches, _ = worked.store_rows()
    found = {b.timer_id for b in breaches if b.kind == "first_touch"}
    assert expected, "the simulator left no first touch late: nothing was tested"
    assert found == expected
    _, timers = worked.store_rows()
    truth = _truth_first_touch(worked, now)
    assert {t.id: t.first_touch_at for t in timers if t.id in truth} == {
        t: at for t, (_, at) in truth.items()}
    assert {t.id for t in timers if t.state == "breached"} >= found
    late = {b.timer_id: b.met_at for b in breaches if b.kind == "first_touch"}
    assert {t: late[t] for t in found} == {t: truth[t][1] for t in found}  # met late, or open


def test_each_breach_alerted_once_across_runs(worked: Worked) -> None:
    """sla.toml alerts the manager too: each breach is one Task to the turn's rep and one to
    the rep's manager (User.ManagerId), never more, across all the runs."""
    breaches, _ = worked.store_rows()
    keys = {b.key for b in breaches if b.kind != "reassign"}
    tasks = [t for t in worked.sb.salesforce.state.records("Task")
             if "Handshake SLA ref: " in str(t.get("Description") or "")]
    refs = Counter(str(t["Description"]).rsplit("Handshake SLA ref: ", 1)[1] for t in tasks)
    assert refs, "no alert Task was written"
    assert set(refs) <= keys
    assert set(refs.values()) == {2}  # the owner's and the manager's
    assert sum(r.counts.get("sla.alerts", 0) for r in worked.runs) == len(tasks)
    store = open_store(worked.config)
    try:
        done = {e.key for e in store.ledger_entries(ALERT_PREFIX) if e.status == "done"}
        managed = {e.key for e in store.ledger_entries(MANAGER_PREFIX) if e.status == "done"}
    finally:
        store.close()
    assert done == {ALERT_PREFIX + k for k in refs}
    assert managed == {MANAGER_PREFIX + k for k in refs}
    # one Task to the breached turn's rep, one to that rep's manager
    owners = {b.key: b.owner_id for b in breaches}
    manager_of = {u["Id"]: u.get("ManagerId") for u in worked.sb.salesforce.state.users()}
    assert all(manager_of[o] for o in owners.values())  # every rep reports to a manager
    to: dict[str, list[str]] = defaultdict(list)
    for task in tasks:
        key = str(task["Description"]).rsplit("Handshake SLA ref: ", 1)[1]
        to[key].append(task["OwnerId"])
        assert task["Priority"] == "High"
    assert {k: sorted(v) for k, v in to.items()} == {
        k: sorted([owners[k], manager_of[owners[k]]]) for k in refs}
    # the same breaches POSTed to the webhook, once each, with no contact data
    sla_bodies = [b for b in worked.hook.received if b.get("event") == "handshake.sla_breach"]
    posted = Counter(body["breach"] for body in sla_bodies)  # (the push's alerts aside)
    assert posted == Counter(set(refs))
    assert all("email" not in body for body in sla_bodies)
    # a run with nothing new alerts, records and moves nothing
    assert worked.again is not None
    assert {k: v for k, v in worked.again.counts.items() if k.startswith("sla.")} == {}


def test_incremental_runs_equal_a_full_judgement(worked: Worked) -> None:
    """Each run judges again only the contacts whose SLA turns may have changed since the last
    one; the store stands as a judgement of every contact at the same instant says, and a
    run from scratch at that instant (the SLA and hand-back bookmarks dropped: every contact
    judged, every hand-off compared with HubSpot) finds nothing to record, update, alert,
    reassign, recycle or write to HubSpot."""
    assert worked.unlike_full == []
    # the later runs judged fewer contacts than have a timer: the incremental path was taken
    assert len(worked.judged) > 20
    assert sum(1 for judged, total in worked.judged[1:] if judged < total) > 20
    assert len(worked.scratch) == len(FROM_SCRATCH)
    for previous, result, before, after, org, org_after in worked.scratch:
        assert previous.counts["judged.sla_contacts"] < result.counts["judged.sla_contacts"]
        # nothing new: the Leads found never accepted are those the incremental run found
        assert {k: v for k, v in result.counts.items() if k.startswith("sla.") and v} == {
            k: v for k, v in previous.counts.items() if k == "sla.never_accepted"}
        assert after == before
        assert org_after == org


def test_reassignments_go_to_a_member_of_the_same_team(worked: Worked) -> None:
    routing = load_routing(worked.config.mapping_path("routing"))
    by_email = {str(u.get("Email")).lower(): str(u["Id"])
                for u in worked.sb.salesforce.state.users()}
    teams = {name: {by_email.get(m.user.lower()) for m in team.members}
             for name, team in routing.spec.teams.items()}
    breaches, timers = worked.store_rows()
    moves = [b for b in breaches if b.kind == "reassign"]
    assert moves, "no lead was reassigned in the simulated days"
    leads = {r["Id"]: r for r in worked.sb.salesforce.state.records("Lead")}
    by_timer = {t.id: t for t in timers}
    for move in moves:
        assert move.team is not None
        assert {move.owner_id, move.to_owner} <= teams[move.team]
        assert move.owner_id != move.to_owner
        assert by_timer[move.timer_id].state == "breached"
        successor = [t for t in timers if t.recycled_from == move.timer_id]
        assert [t.owner_id for t in successor] == [move.to_owner]
        assert "Reassigned by Handshake" in str(leads[move.lead_id].get("Description"))
    limit = load_sla(worked.config.mapping_path("sla")).spec.breach.max_reassignments
    assert max(Counter(m.lead_id for m in moves).values()) <= limit
    assert all(m.lead_id.startswith("00Q") for m in moves)  # Leads only, never a Contact
    newest = {}
    for move in sorted(moves, key=lambda m: m.found_at):
        newest[move.lead_id] = move.to_owner
    # a lead the new rep closed, handed back to marketing since, is the nurture queue's now
    store = open_store(worked.config)
    try:
        handed_back = {o.sf_id for o in store.outcomes(kind="recycled")}
    finally:
        store.close()
    assert set(newest) - handed_back
    for lead_id, owner in newest.items():
        if lead_id not in handed_back:
            assert leads[lead_id]["OwnerId"] == owner
    # the reassigned rep's turn is held to the SLA in turn: the simulator re-plans for them
    touched_by_new = {e["lead_id"] for e in worked.truth
                      if e.get("action") in ("call", "email")
                      and e.get("owner_id") == newest.get(e["lead_id"])}
    assert touched_by_new


def _sla_cli(worked: Worked, monkeypatch: pytest.MonkeyPatch, *args: str) -> Any:
    monkeypatch.setattr("connector.cli.sla.load_checked_config",
                        lambda *a, **k: worked.config)
    result = CliRunner().invoke(app, ["sla", *args])
    assert result.exit_code == 0, result.output
    return result


def test_sla_json_equals_the_ground_truth(worked: Worked,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    result = _sla_cli(worked, monkeypatch, "--json")
    report = json.loads(result.output)
    as_of = datetime.fromisoformat(report["as_of"])
    assert _now(worked) - timedelta(minutes=1) < as_of <= _now(worked)  # the last pull-back
    sla = load_sla(worked.config.mapping_path("sla")).spec
    worked_window = timedelta(hours=sla.windows.worked_hours)
    truth = _truth_first_touch(worked, as_of)
    breaches, timers = worked.store_rows()
    expected: dict[str, dict[str, Any]] = {}
    per_rep: dict[str, list[SlaTimer]] = defaultdict(list)
    for timer in timers:
        if timer.owner_id is not None:
            per_rep[timer.owner_id].append(timer)
    for rep, turns in per_rep.items():
        hours = sorted((truth[t.id][1] - t.assigned_at).total_seconds() / 3600
                       for t in turns if truth[t.id][1] is not None)
        first = [truth[t.id] for t in turns]
        decided = [(due, at) for due, at in first if at is not None or as_of >= due]
        # the first attempt of a turn leaves the Lead "Working - Contacted" (moved there, or
        # already there): worked, as sla.toml says, at that touch
        worked_decided = [(t.assigned_at + worked_window, truth[t.id][1]) for t in turns
                          if truth[t.id][1] is not None
                          or as_of >= t.assigned_at + worked_window]
        expected[rep] = {
            "leads": len({t.sf_id for t in turns}),
            "turns": len(turns),
            "median_first_touch_hours": round(median(hours), 2) if hours else None,
            "first_touch_within_pct": (round(100 * sum(1 for d, a in decided if a and a <= d)
                                             / len(decided), 1) if decided else None),
            "worked_within_pct": (round(100 * sum(1 for d, a in worked_decided if a and a <= d)
                                        / len(worked_decided), 1) if worked_decided else None),
            "reassignments": sum(1 for b in breaches
                                 if b.kind == "reassign" and b.owner_id == rep),
        }
    # the case that decides "worked": a hand-off to a Lead already in a worked status, touched
    already = [t for t in timers if t.owner_id is not None and t.recycled_from is None
               and worked.handed_off_status.get(t.sf_id) in sla.worked.statuses
               and truth[t.id][1] is not None]
    assert already, "no hand-off to a Lead already worked was touched: the rule is untested"
    got = {rep: {k: v for k, v in row.items() if k in expected.get(rep, row)}
           for rep, row in report["reps"].items()}
    assert got == expected
    breached = sum(r["open_breaches"] + r["past_breaches"] for r in report["reps"].values())
    assert breached == sum(1 for b in breaches if b.kind != "reassign")
    assert "@" not in result.output  # no contact data: reps by user id
    one = next(iter(report["reps"]))
    only = json.loads(_sla_cli(worked, monkeypatch, "--json", "--rep", one).output)
    assert only["reps"] == {one: report["reps"][one]}
    table = _sla_cli(worked, monkeypatch).output
    assert one in table and "Breaches" in table


def test_dry_run_writes_nothing_and_counts_what_it_would(worked: Worked) -> None:
    assert len(worked.dry) == len(DRY_RUNS)
    for _, before, after in worked.dry:
        assert before == after
    (first, _, _), (second, _, _), _ = worked.dry
    assert first.counts["sla.breaches"] > 0
    assert first.counts["sla.alerts"] > 0
    assert second.counts["sla.reassignments"] > 0


def test_dry_run_lists_what_the_next_run_writes(worked: Worked) -> None:
    """`sync pullback --dry-run` writes nothing in either sandbox, and what it lists is what
    the real run at the same instant then writes: alert Tasks to whom, owner moves, recycled
    Leads' status and queue, HubSpot properties, lifecycle moves and list additions."""
    queue = worked.sb.salesforce.state.marketing_queue_id  # type: ignore[union-attr]
    sla = load_sla(worked.config.mapping_path("sla")).spec
    seen: Counter[str] = Counter()
    for (dry, _, _), (real, wrote, dry_stats, real_stats) in zip(worked.dry, worked.followed,
                                                                  strict=True):
        assert dry_stats == Counter()  # no write call to either system
        assert real_stats, "the real run wrote nothing: nothing was compared"
        planned = dry.planned
        seen.update(p["action"] for p in planned)
        assert {p["system"] for p in planned} <= {"salesforce", "hubspot"}
        assert "@" not in json.dumps(planned)  # ids, never contact data
        alerts = Counter((p["record"], p["to"]) for p in planned if p["action"] == "alert_task")
        assert alerts == wrote["tasks"]
        owners = {p["record"]: (p["from"], p["to"]) for p in planned
                  if p["action"] == "reassign"}
        recycled = {p["record"] for p in planned if p["action"] == "recycle"}
        assert {lead: to for lead, (_, to) in wrote["owners"].items()} == {
            **{lead: to for lead, (_, to) in owners.items()}, **dict.fromkeys(recycled, queue)}
        assert all(wrote["owners"][lead] == move for lead, move in owners.items())
        assert wrote["statuses"] == dict.fromkeys(recycled, sla.recycling.lead_status)
        expected: dict[str, dict[str, str]] = defaultdict(dict)
        for p in planned:
            if p["action"] == "update":
                expected[p["record"]].update({k: str(v) for k, v in p["properties"].items()})
            elif p["action"] == "lifecycle":
                expected[p["record"]]["lifecyclestage"] = p["to"]
        assert wrote["contacts"] == expected
        joined = {p["record"] for p in planned if p["action"] == "list_add"}
        assert wrote["lists"] == ({sla.recycling.reengagement_list: joined} if joined else {})
        assert real.counts["sla.alerts"] == len(alerts)
    assert seen["alert_task"] and seen["reassign"] and seen["update"], seen
    assert seen["recycle"] and seen["list_add"] and seen["lifecycle"], seen


def test_shipped_queue_takes_the_recycled_leads(worked: Worked) -> None:
    """The shipped sla.toml names the "Marketing Nurture" queue, which the sandbox org has
    (a Group of Type Queue with a QueueSobject for Lead): no run warns that it is missing,
    and every recycled, unconverted Lead is owned by it."""
    assert not [w for w in worked.warnings if "owner_queue" in w], worked.warnings
    assert all(r.counts.get("salesforce.recycle.queue_missing", 0) == 0 for r in worked.runs)
    org = worked.sb.salesforce.state  # type: ignore[union-attr]
    queue = org.marketing_queue_id
    assert {(r["Type"], r["Name"]) for r in org.records("Group") if r["Id"] == queue} == {
        ("Queue", sfs.MARKETING_QUEUE_NAME)}
    assert {(q["QueueId"], q["SobjectType"]) for q in org.records("QueueSobject")
            if q["QueueId"] == queue} == {(queue, "Lead")}
    store = open_store(worked.config)
    try:
        recycled = {o.sf_id for o in store.outcomes() if o.kind == "recycled"}
    finally:
        store.close()
    assert recycled, "no lead was recycled in the simulated days"
    leads = {r["Id"]: r for r in org.records("Lead")}
    open_ones = {lead for lead in recycled if not leads[lead]["IsConverted"]}  # (a lost deal's
    assert open_ones  # Lead is converted: Salesforce keeps it as it is)
    assert {lead: leads[lead]["OwnerId"] for lead in open_ones} == dict.fromkeys(open_ones, queue)


def test_sync_pullback_dry_run_lists_by_system_in_a_table_and_json(
        worked: Worked, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The command itself, on a copy of the store (its run record stays there) and 100 days
    on (untouched leads go back to marketing): a table per system and `--json`, both the
    same listing, ids and values only; neither sandbox is written to."""
    source = worked.config.state.database_url.removeprefix("sqlite:///")
    copy = tmp_path / "copy.db"
    with sqlite3.connect(source) as src, sqlite3.connect(copy) as dst:
        src.backup(dst)
    config = worked.config.model_copy(update={"state": worked.config.state.model_copy(
        update={"database_url": f"sqlite:///{copy}"})})
    monkeypatch.setattr("connector.cli.sync.load_checked_config", lambda *a, **k: config)
    at = FrozenClock(worked.sb.clock.now() + timedelta(days=100))
    monkeypatch.setattr("connector.runtime.run_pullback_stage",
                        partial(run_pullback_stage, clock=at))
    before, stats = org_view(worked.sb), write_stats(worked.sb)
    result = CliRunner().invoke(app, ["sync", "pullback", "--dry-run", "--json"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert (body["status"], body["dry_run"]) == ("ok", True)
    planned = body["planned"]
    actions = Counter((p["system"], p["action"]) for p in planned)
    assert actions[("salesforce", "recycle")] and actions[("hubspot", "update")], actions
    assert actions[("hubspot", "list_add")] == actions[("salesforce", "recycle")]
    assert body["counts"]["salesforce.recycle.would_write"] == actions[("salesforce", "recycle")]
    table = CliRunner().invoke(app, ["sync", "pullback", "--dry-run"],
                               env={"COLUMNS": "250"}).output
    assert "Salesforce:" in table and "HubSpot:" in table and "nothing stored" in table
    for entry in planned:
        assert entry["record"] in table
    assert "@" not in result.output + table  # no contact data: ids and values
    assert org_view(worked.sb) == before
    assert write_stats(worked.sb) == stats
