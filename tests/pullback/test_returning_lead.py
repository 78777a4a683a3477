"""A recycled lead that qualifies again, against the sandbox: the pull-back hands a Lead closed
without converting back to marketing; while it stays with marketing the push leaves it alone;
once a new form submission makes it an MQL again, the push hands it off again exactly once: one
new hand-off Task saying it is a returning lead and why it came back, the Lead routed to a rep
of its routing team with the org's default status, a fresh SLA timer for that rep (turn 0, due
as sla.toml says). A second push writes nothing. And a Lead not worked within its SLA window,
with no reassignment left, goes back to marketing as never accepted."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import delete, update

from connector.config import Config, PullbackSettings
from connector.mapping import load_routing, load_sla
from connector.pull import pull
from connector.pullback.sla_step import evaluate_handoffs
from connector.push.context import handoff_task_key
from connector.runtime import StageResult, open_store, run_push_stage, run_score_stage
from connector.sandbox import Sandbox
from connector.sandbox.salesforce import settings as sfs
from connector.store import SalesOutcome, SlaTimer, WriteLedgerEntry
from tests.pull.helpers import context
from tests.pullback.test_pullback_sandbox import REASON_FIELD, SandboxTime
from tests.push.helpers import sandbox_org

QUEUE = sfs.UNASSIGNED_QUEUE_NAME
HANDOFF = "Handshake hand-off: "
FIRST_TOUCH_HOURS = 72  # not the push's old fixed 24 h: the due date must follow sla.toml
SLA_TOML = f"""
[windows]
first_touch_hours = {FIRST_TOUCH_HOURS}
worked_hours = 96

[breach]
max_reassignments = 1

[recycling]
owner_queue = "{QUEUE}"
never_accepted = false
interest = "decay"
decay_to_percent = 30
"""


@dataclass
class Story:
    sb: Sandbox
    config: Config
    clock: SandboxTime
    hubspot_id: str = ""
    lead_id: str = ""
    first_owner: str = ""
    steps: dict[str, Any] = field(default_factory=dict)

    def pull_back(self) -> StageResult:
        from connector.runtime import run_pullback_stage

        result = run_pullback_stage(self.config, clock=self.clock)
        assert result.status == "ok", result.error
        return result

    def pull_score(self) -> None:
        # the sandbox's time, for the store too: the simulated hours count everywhere
        store = open_store(self.config, self.clock)
        try:
            ctx = context(self.config, store)
            ctx.clock = self.clock
            pull(ctx)
        finally:
            store.close()
        scored = run_score_stage(self.config, clock=self.clock)
        assert scored.status == "ok", scored.error

    def score(self) -> tuple[bool, str]:
        """Whether the contact's newest score makes it an MQL, and its lifecycle stage."""
        store = open_store(self.config)
        try:
            score = store.latest_score(self.hubspot_id)
            contact = store.get_contact(self.hubspot_id)
            assert score is not None and contact is not None
            return score.is_mql, str(contact.lifecycle_stage)
        finally:
            store.close()

    def push(self) -> StageResult:
        result = run_push_stage(self.config, clock=self.clock)
        assert result.status == "ok", result.error
        return result

    def tasks(self) -> list[dict[str, Any]]:
        """The hand-off Tasks on the Lead, oldest first."""
        state = self.sb.salesforce.state  # type: ignore[union-attr]
        return sorted((t for t in state.records("Task") if t.get("WhoId") == self.lead_id
                       and str(t.get("Subject") or "").startswith(HANDOFF)),
                      key=lambda t: str(t["CreatedDate"]))

    def lead(self) -> dict[str, Any]:
        return dict(self.sb.salesforce.state.get("Lead", self.lead_id))  # type: ignore[union-attr]

    def recycled(self) -> list[SalesOutcome]:
        store = open_store(self.config)
        try:
            return [o for o in store.outcomes(kind="recycled") if o.hubspot_id == self.hubspot_id]
        finally:
            store.close()


def _config(sb: Sandbox, config: Config, folder: Path, text: str) -> Config:
    sla = folder / "sla.toml"
    sla.write_text(text)
    return config.model_copy(update={
        "pullback": PullbackSettings(lead_reason_field=REASON_FIELD),
        "mappings": config.mappings.model_copy(update={"sla": str(sla)})})


def _team_members(story: Story) -> dict[str, set[str]]:
    """Each routing team's members as Salesforce user ids."""
    routing = load_routing(story.config.mapping_path("routing"))
    users = {str(u.get("Email") or "").lower(): u["Id"]
             for u in story.sb.salesforce.state.records("User")}  # type: ignore[union-attr]
    return {name: {users[m.user.lower()] for m in team.members if m.user.lower() in users}
            for name, team in routing.spec.teams.items()}


def _pick(story: Story) -> None:
    """A handed-off Lead routed to a rep, of a grade-A/B contact (30% of its interest is no MQL:
    it waits with marketing until it does something new)."""
    state = story.sb.salesforce.state  # type: ignore[union-attr]
    store = open_store(story.config)
    try:
        links = {link.hubspot_id: link for link in store.handoffs() if link.sf_object == "Lead"}
        scores = store.latest_scores(list(links))
        for hubspot_id in sorted(links):
            lead = state.get("Lead", links[hubspot_id].sf_id)
            route = store.lead_route(hubspot_id)
            score = scores.get(hubspot_id)
            if (lead and not lead["IsConverted"] and str(lead["OwnerId"]).startswith("005")
                    and route is not None and route.owner_id == lead["OwnerId"]
                    and score is not None and score.fit_grade in ("A", "B")):
                story.hubspot_id, story.lead_id = hubspot_id, lead["Id"]
                story.first_owner = str(lead["OwnerId"])
                return
    finally:
        store.close()
    pytest.fail("no handed-off Lead fits the scenario")


def _unrecord_return(story: Story) -> None:
    """The store as a crash between sending the return's hand-off Task and recording it left
    it: its ledger entry pending, no SLA timer opened for it yet."""
    key = handoff_task_key(story.hubspot_id, 1)
    store = open_store(story.config)
    try:
        newest = max(t.id for t in store.sla_timers() if t.hubspot_id == story.hubspot_id)
        with store.transaction() as s:
            s.execute(update(WriteLedgerEntry).where(WriteLedgerEntry.key == key)
                      .values(status="pending", remote_id=None, completed_at=None))
            s.execute(delete(SlaTimer).where(SlaTimer.id == newest))
    finally:
        store.close()


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Story]:
    folder = tmp_path_factory.mktemp("returning")
    with sandbox_org(folder, 400) as (sb, config):
        s = Story(sb, _config(sb, config, folder, SLA_TOML), SandboxTime(sb))
        s.pull_score()
        s.steps["push"] = s.push()
        assert s.steps["push"].counts["leads.created"] > 10
        s.pull_back()
        _pick(s)
        state = sb.salesforce.state  # type: ignore[union-attr]
        # the rep gives up on the lead; the pull-back hands it back to marketing
        sb.clock.advance(timedelta(hours=2))
        state.update("Lead", s.lead_id, {"Status": "Closed - Not Converted",
                                         REASON_FIELD: "No Budget"}, as_user_id=s.first_owner)
        sb.clock.advance(timedelta(minutes=30))
        s.steps["recycle"] = s.pull_back()
        s.steps["recycled_lead"] = s.lead()
        # with marketing: nothing new happened, the push leaves it alone
        sb.clock.advance(timedelta(hours=1))
        tasks_before = len(s.tasks())
        s.pull_score()
        s.steps["waiting_score"] = s.score()
        s.steps["waiting"] = s.push()
        s.steps["waiting_tasks"] = len(s.tasks()) - tasks_before
        # it asks for a demo: an MQL again
        sb.clock.advance(timedelta(hours=3))
        hs = sb.hubspot.state  # type: ignore[union-attr]
        [demo] = [guid for guid, form in hs.forms.items() if form["name"] == "Request a demo"]
        email = hs.contacts[s.hubspot_id].props["email"]
        hs.add_form_submission(demo, {"email": email}, contact_id=s.hubspot_id,
                               page_url="https://www.handshake-demo.com/demo")
        sb.clock.advance(timedelta(minutes=5))
        s.pull_score()
        assert s.score() == (True, "marketingqualifiedlead"), "the demo request made no MQL"
        s.steps["return"] = s.push()
        s.steps["returned_lead"] = s.lead()
        s.steps["again"] = s.push()
        s.steps["again_tasks"] = len(s.tasks())
        # a crash after the return's Task was sent, before it was recorded: the next push
        # finds it in Salesforce instead of sending it again
        _unrecord_return(s)
        s.steps["after_crash"] = s.push()
        s.steps["after_crash_tasks"] = len(s.tasks())
        sb.clock.advance(timedelta(minutes=10))
        s.steps["pullback_after"] = s.pull_back()
        yield s


def test_the_recycle_put_the_lead_with_marketing(story: Story) -> None:
    [recycled] = story.recycled()
    assert recycled.details["reason"] == "closed_not_converted"
    assert recycled.reason == "No Budget" and recycled.details["count"] == 1
    lead = story.steps["recycled_lead"]
    assert lead["OwnerId"] == story.sb.salesforce.state.queue_id  # type: ignore[union-attr]
    assert lead["Status"] == "Open - Not Contacted"


def test_a_recycled_lead_waits_until_it_qualifies_again(story: Story) -> None:
    waiting = story.steps["waiting"].counts
    assert story.steps["waiting_score"][0] is False  # 30% of its interest: no MQL
    assert story.steps["waiting_tasks"] == 0
    assert waiting["tasks.handoff"] == 0


def test_one_new_handoff_saying_why_it_came_back(story: Story) -> None:
    handoffs = story.tasks()
    assert len(handoffs) == 2  # the first hand-off and the return: one new, not two
    first, back = handoffs
    assert "returning" not in first["Subject"].lower()
    assert back["Subject"].startswith(HANDOFF + "returning lead (closed not converted)")
    assert back["Subject"].endswith(f"[hs-{story.hubspot_id}-r1]")
    text = back["Description"]
    assert text.startswith("Returning lead: handed off before and sent back to marketing once.")
    assert "closed not converted (No Budget)" in text
    since = text.split("What it did since:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert any("Request a demo" in line for line in since)  # what made it qualify again
    assert "Request a demo" in text.split("\n\n", 2)[2]  # and its history, as usual
    assert story.steps["return"].counts["tasks.handoff"] == 1
    lead = story.steps["returned_lead"]
    assert back["OwnerId"] == lead["OwnerId"]


def test_the_lead_is_routed_to_a_rep_of_its_team_again(story: Story) -> None:
    lead = story.steps["returned_lead"]
    teams = _team_members(story)
    [team] = [name for name, members in teams.items() if story.first_owner in members]
    assert lead["OwnerId"] in teams[team]
    assert lead["Status"] == "Open - Not Contacted"  # the org's default status
    store = open_store(story.config)
    try:
        route = store.lead_route(story.hubspot_id)
        assert route is not None and route.owner_id == lead["OwnerId"]
    finally:
        store.close()


def test_a_second_push_hands_nothing_off(story: Story) -> None:
    again = story.steps["again"].counts
    assert story.steps["again_tasks"] == 2
    assert again["tasks.handoff"] == 0
    assert again["leads.updated"] == 0 and again["leads.created"] == 0
    assert story.lead()["OwnerId"] == story.steps["returned_lead"]["OwnerId"]


def test_a_rerun_after_a_crash_hands_nothing_off(story: Story) -> None:
    after = story.steps["after_crash"].counts
    assert story.steps["after_crash_tasks"] == 2
    assert after["tasks.reconciled"] == 1 and after["tasks.handoff"] == 0
    store = open_store(story.config)
    try:
        entry = store.ledger_entry(handoff_task_key(story.hubspot_id, 1))
        assert entry is not None and entry.status == "done"
        assert entry.remote_id == story.tasks()[-1]["Id"]
    finally:
        store.close()


def test_the_sla_restarts_for_the_new_owner(story: Story) -> None:
    store = open_store(story.config)
    try:
        timers = [t for t in store.sla_timers() if t.hubspot_id == story.hubspot_id]
        first, back = timers[0], timers[-1]
        assert len([t for t in timers if t.recycled_from is None]) == 2
        assert back.owner_id == story.steps["returned_lead"]["OwnerId"]
        assert back.recycled_from is None and back.assigned_at > first.assigned_at
        assert back.first_touch_due - back.assigned_at == timedelta(hours=FIRST_TOUCH_HOURS)
        assert back.state == "open"
        sla = load_sla(story.config.mapping_path("sla")).spec
        turns = [t for t in evaluate_handoffs(store, sla, story.clock.now())
                 if t.hubspot_id == story.hubspot_id]
        current = turns[-1]
        assert current.timer.id == back.id
        assert current.status.assignment.reassignments == 0  # a fresh hand-off, not a turn
        assert current.status.breaches == ()
        assert not [b for b in store.sla_breaches() if b.hubspot_id == story.hubspot_id]
    finally:
        store.close()


def test_the_returned_lead_is_no_longer_recycled(story: Story) -> None:
    after = story.steps["pullback_after"].counts
    assert after["recycle.decided"] == 0
    assert len(story.recycled()) == 1
    props = story.sb.hubspot.state.contacts[story.hubspot_id].props  # type: ignore[union-attr]
    # the latest recycle stays shown; the outcome is the new hand-off's
    assert props.get("handshake_recycle_count") in ("1", 1)
    assert props.get("handshake_recycle_reason") == "No Budget"
    assert props.get("handshake_sales_outcome") == "open"
    assert props.get("lifecyclestage") != "lead"


def test_handoff_tasks_are_due_as_sla_toml_says(story: Story) -> None:
    store = open_store(story.config)
    try:
        hand_offs: dict[str, list[SlaTimer]] = {}  # a Lead's hand-off timers, oldest first
        for timer in store.sla_timers():
            if timer.recycled_from is None:  # not a reassignment's turn
                hand_offs.setdefault(timer.sf_id, []).append(timer)
    finally:
        store.close()
    state = story.sb.salesforce.state  # type: ignore[union-attr]
    tasks = [t for t in state.records("Task") if str(t.get("Subject") or "").startswith(HANDOFF)]
    assert len(tasks) > 10
    returning = [t for t in tasks if str(t["Subject"]).startswith(HANDOFF + "returning")]
    assert [t["WhoId"] for t in returning] == [story.lead_id]
    for task in tasks:
        # the first hand-off's Task goes with the Lead's first timer, the return's with its
        # last (a timer of the return may fall on another day than the first hand-off's)
        timers = hand_offs[task["WhoId"]]
        timer = timers[-1] if task in returning else timers[0]
        assert timer.first_touch_due - timer.assigned_at == timedelta(hours=FIRST_TOUCH_HOURS)
        assert task["ActivityDate"] == timer.first_touch_due.date().isoformat()


# --- never accepted ---------------------------------------------------------------------------

NEVER_TOML = f"""
[windows]
first_touch_hours = 1
worked_hours = 2

[breach]
reassign = false

[recycling]
owner_queue = "{QUEUE}"
never_accepted = true
"""


@pytest.fixture(scope="module")
def ignored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Story]:
    folder = tmp_path_factory.mktemp("never")
    with sandbox_org(folder, 300) as (sb, config):
        s = Story(sb, _config(sb, config, folder, NEVER_TOML), SandboxTime(sb))
        s.pull_score()
        assert s.push().counts["leads.created"] > 5
        s.steps["in_window"] = s.pull_back()
        s.steps["statuses"] = {r["Id"]: r["Status"]
                               for r in sb.salesforce.state.records("Lead")}  # type: ignore[union-attr]
        sb.clock.advance(timedelta(hours=3))  # past the worked window: nobody worked them
        s.steps["past_window"] = s.pull_back()
        s.steps["again"] = s.pull_back()
        yield s


def test_a_lead_never_accepted_goes_back_to_marketing(ignored: Story) -> None:
    assert ignored.steps["in_window"].counts["recycle.decided"] == 0
    store = open_store(ignored.config)
    try:
        owned = {t.sf_id for t in store.sla_timers()
                 if t.owner_id and t.sf_id.startswith("00Q")}
        recycled = store.outcomes(kind="recycled")
    finally:
        store.close()
    state = ignored.sb.salesforce.state  # type: ignore[union-attr]
    # a Lead the org already had in a worked status when it was handed off stays with sales
    worked = set(load_sla(ignored.config.mapping_path("sla")).spec.worked.statuses)
    already = {lead for lead in owned if ignored.steps["statuses"][lead] in worked}
    assert owned - already
    assert {o.sf_id for o in recycled} == owned - already
    assert {o.details["reason"] for o in recycled} == {"never_accepted"}
    assert ignored.steps["past_window"].counts["sla.never_accepted"] == len(owned)
    for lead_id in owned - already:
        lead = state.get("Lead", lead_id)
        assert lead["OwnerId"] == state.queue_id
        assert lead["Status"] == "Open - Not Contacted"
    assert ignored.steps["again"].counts["recycle.decided"] == 0


# --- which recycled MQLs return -----------------------------------------------------------------


def test_only_a_score_newer_than_the_recycle_makes_a_return(tmp_path: Path) -> None:
    """A recycled contact whose newest MQL score predates its recycle (sla.toml kept its
    interest) waits with marketing, and so does one scored an MQL since without engaging since;
    one that engaged and was scored an MQL since returns, with its latest recycle."""
    from connector.clock import FrozenClock
    from connector.push.engine import _returns
    from connector.store import ActivityRecord, Store

    clock = FrozenClock(datetime(2026, 11, 2, 9, tzinfo=UTC))
    store = Store(f"sqlite:///{tmp_path / 'state.db'}", clock=clock)
    store.migrate()
    try:
        def score(contact: str, at: datetime) -> dict[str, Any]:
            return {"contact_id": contact, "scored_at": at, "interest": 60.0, "fit_grade": "A",
                    "fit_points": 40.0, "is_mql": True, "explanation": {}}

        def recycled(contact: str, count: int, at: datetime, why: str) -> dict[str, Any]:
            return {"hubspot_id": contact, "sf_object": "Lead", "sf_id": f"00Q{contact}",
                    "source_id": f"recycle:{contact}:{count}", "kind": "recycled",
                    "status": "Open - Not Contacted", "reason": why, "owner_id": None,
                    "occurred_at": at, "amount": None,
                    "details": {"reason": "closed_not_converted", "count": count}}

        t0 = clock.now()
        store.add_scores([score("1", t0), score("2", t0), score("3", t0)])
        store.record_pullback(outcomes=[recycled("1", 1, t0 + timedelta(hours=1), "No Budget"),
                                        recycled("2", 1, t0 + timedelta(hours=1), "Timing"),
                                        recycled("2", 2, t0 + timedelta(days=3), "No Budget")],
                              states=[])
        store.record_pullback(outcomes=[recycled("4", 1, t0 + timedelta(hours=1), "Timing")],
                              states=[])
        # 2 engaged after its latest recycle; 4 only kept enough interest to stay an MQL
        store.add_activities([
            ActivityRecord("2", "form_submission", t0 + timedelta(days=3, hours=5), "hubspot",
                           "form-2"),
            ActivityRecord("4", "form_submission", t0, "hubspot", "form-4")])
        store.add_scores([score("2", t0 + timedelta(days=4)), score("4", t0 + timedelta(days=4))])
        batch = [SimpleNamespace(hubspot_id=h) for h in ("1", "2", "3", "4")]
        ctx = SimpleNamespace(store=store)
        returns = _returns(ctx, batch)  # type: ignore[arg-type]
        assert returns["1"] is None  # kept its old MQL score: not qualified again
        # an MQL score since the recycle, but no engagement since: the kept interest alone
        # never brings a lead back to sales
        assert returns["4"] is None
        back = returns["2"]
        assert back is not None and back.count == 2 and back.detail == "No Budget"
        assert back.at == t0 + timedelta(days=3)
        assert "3" not in returns  # never recycled: a first hand-off
    finally:
        store.close()
