"""After the hand-off, against the sandbox: HubSpot learns the Salesforce id, hand-off time and
owner (only changes, batched); a handed-off lead's high-intent activity gives its owner one
alert Task and one webhook POST within one cycle, and never a second one.

One scenario runs once (`story`) and records what each cycle did; the tests read it."""

from __future__ import annotations

import math
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from connector.config import AlertSettings, Config
from connector.demo import sandbox_config
from connector.pull import pull
from connector.sandbox import Sandbox
from connector.sandbox.base import Fault, FaultPlan
from connector.runtime import StageResult, run_push_stage, run_score_stage
from connector.store import Store
from connector.runtime import open_store
from tests.pull.helpers import context, unthrottle
from tests.push.helpers import TASK_CREATE
from tests.push.webhook_receiver import WebhookReceiver

BATCH_UPDATE = "/crm/v3/objects/contacts/batch/update"
SITE = "https://www.handshake-demo.com"
ALERT = "Handshake alert: "


class Crash(Exception):
    """Stands for the process dying between a Salesforce write and its ledger entry."""


def _alert_tasks(sb: Sandbox) -> list[dict[str, Any]]:
    return [t for t in sb.salesforce.state.records("Task")  # type: ignore[union-attr]
            if str(t.get("Subject") or "").startswith(ALERT)]


def _batch_updates(sb: Sandbox) -> int:
    return int(sb.hubspot.stats.snapshot()["by_route"].get(BATCH_UPDATE, 0))  # type: ignore[union-attr]


def _visit(sb: Sandbox, contact_id: str, path: str) -> None:
    sb.clock.advance(timedelta(minutes=30))
    sb.hubspot.state.add_page_view(contact_id, SITE + path, title=path)  # type: ignore[union-attr]
    sb.clock.advance(timedelta(minutes=2))


def _pull_score(config: Config, store: Store) -> None:
    pull(context(config, store))
    run_score_stage(config)


class Story:
    """What each step of the scenario saw."""

    def __init__(self) -> None:
        self.steps: dict[str, dict[str, Any]] = {}

    def record(self, name: str, sb: Sandbox, hook: WebhookReceiver, result: StageResult,
               before: dict[str, Any]) -> None:
        self.steps[name] = {
            "counts": Counter(result.counts), "status": result.status,
            "alert_tasks": [t for t in _alert_tasks(sb) if t["Id"] not in before["tasks"]],
            "posts": hook.received[before["posts"]:],
            "batch_updates": _batch_updates(sb) - before["batch_updates"],
        }


def _before(sb: Sandbox, hook: WebhookReceiver) -> dict[str, Any]:
    return {"tasks": {t["Id"] for t in _alert_tasks(sb)}, "posts": len(hook.received),
            "batch_updates": _batch_updates(sb)}


def _handed_off(store: Store) -> dict[str, Any]:
    """HubSpot id -> its link, for contacts whose hand-off Task is written."""
    out = {}
    for contact in store.iter_contacts():
        link = store.linked(contact.hubspot_id)
        entry = store.ledger_entry(f"sf:task:handoff:{contact.hubspot_id}")
        if link is not None and entry is not None and entry.status == "done":
            out[contact.hubspot_id] = link
    return out


def _recently_active(store: Store, ids: list[str], now: datetime) -> list[str]:
    """Contacts whose latest own activity is under 10 days old: a plain page view of theirs is
    no return visit."""
    acts = store.activities_for_many(ids)
    passive = {"email_sent", "email_delivered", "email_bounce"}
    return [h for h in ids if any(a.type not in passive and now - a.occurred_at < timedelta(days=10)
                                  for a in acts[h])]


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> Any:
    folder = tmp_path_factory.mktemp("alerts")
    out = Story()
    faults = FaultPlan()
    with Sandbox(contacts=500, seed=7, workdir=folder / "sb", salesforce_faults=faults) as sb, \
            WebhookReceiver() as hook:
        unthrottle(sb)
        sb.clock.advance(timedelta(hours=1))
        config = sandbox_config(sb.info(), folder / "state.db").model_copy(
            update={"alerts": AlertSettings(webhook_url=hook.url, max_attempts=2)})
        store = open_store(config)
        _pull_score(config, store)

        before = _before(sb, hook)
        out.record("handoff", sb, hook, run_push_stage(config), before)
        handed = _handed_off(store)
        out.handed = handed
        out.hubspot_after_handoff = {cid: dict(rec.props) for cid, rec
                                     in sb.hubspot.state.contacts.items()}  # type: ignore[union-attr]
        out.users = {u["Id"]: u for u in sb.salesforce.state.records("User")}  # type: ignore[union-attr]
        before = _before(sb, hook)
        out.record("again", sb, hook, run_push_stage(config), before)

        leads = sorted(h for h, link in handed.items() if link.sf_object == "Lead")
        quiet_ok = _recently_active(store, leads, sb.clock.now())
        out.pricing, out.blog, out.failing, out.crashing, out.losing = quiet_ok[:5]
        outsider = next(c.hubspot_id for c in store.iter_contacts()
                        if c.hubspot_id not in handed and c.email)
        out.outsider = outsider
        _visit(sb, out.pricing, "/pricing")
        _visit(sb, out.blog, "/blog/lead-scoring-basics")
        _visit(sb, outsider, "/pricing")
        _pull_score(config, store)
        before = _before(sb, hook)
        out.today = {datetime.now(UTC).date().isoformat()}
        out.record("alert", sb, hook, run_push_stage(config), before)
        out.today.add(datetime.now(UTC).date().isoformat())
        out.lead_of = {h: sb.salesforce.state.get("Lead", handed[h].sf_id)  # type: ignore[union-attr]
                       for h in (out.pricing, out.failing)}

        _pull_score(config, store)
        before = _before(sb, hook)
        out.record("third", sb, hook, run_push_stage(config), before)

        # The webhook endpoint is down: the Task is written, the POST parked, the push goes on.
        hook.always = 500
        _visit(sb, out.failing, "/demo")
        _pull_score(config, store)
        before = _before(sb, hook)
        out.record("hook_down", sb, hook, run_push_stage(config), before)
        out.dead_while_down = [(d.system, d.actor, d.record_key, d.reason)
                               for d in store.dead_letters(stage="push")]
        hook.always = None
        before = _before(sb, hook)
        out.record("hook_back", sb, hook, run_push_stage(config), before)
        out.dead_after = [d.record_key for d in store.dead_letters(stage="push")]

        # The push dies after Salesforce created the alert Task, before the ledger knew it.
        _visit(sb, out.crashing, "/pricing/enterprise")
        _pull_score(config, store)
        before = _before(sb, hook)
        original = Store.complete_writes  # a call's results are settled together

        def dies(self: Store, settled: Any, **kwargs: Any) -> None:
            for key, _ in settled:
                if key.startswith("sf:task:alert:"):
                    raise Crash(key)
            original(self, settled, **kwargs)

        Store.complete_writes = dies  # type: ignore[method-assign]
        try:
            with pytest.raises(Crash):
                run_push_stage(config)
        finally:
            Store.complete_writes = original  # type: ignore[method-assign]
        out.tasks_after_crash = len(_alert_tasks(sb)) - len(before["tasks"])
        out.record("after_crash", sb, hook, run_push_stage(config), before)

        # Salesforce creates the alert Task but the answer is lost (the digest Task goes first):
        # the push goes on, and the next one finds the Task instead of writing it again.
        _visit(sb, out.losing, "/pricing")
        _pull_score(config, store)
        faults.schedule(TASK_CREATE, None, Fault("drop_after"))
        before = _before(sb, hook)
        out.record("lost", sb, hook, run_push_stage(config), before)
        faults.clear()
        before = _before(sb, hook)
        out.record("after_lost", sb, hook, run_push_stage(config), before)

        # Sales reassigns a Lead in Salesforce; the next push sees it and tells HubSpot.
        lead_id = handed[out.pricing].sf_id
        current = sb.salesforce.state.get("Lead", lead_id)["OwnerId"]  # type: ignore[union-attr]
        out.new_owner = next(u for u in out.users.values()
                             if u["IsActive"] and u["Id"] != current and u.get("Email"))
        sb.salesforce.state.update("Lead", lead_id, {"OwnerId": out.new_owner["Id"]})  # type: ignore[union-attr]
        _pull_score(config, store)
        before = _before(sb, hook)
        out.record("reassigned", sb, hook, run_push_stage(config), before)
        out.hubspot_final = {cid: dict(rec.props) for cid, rec
                             in sb.hubspot.state.contacts.items()}  # type: ignore[union-attr]
        yield out


# --- B: HubSpot learns the hand-off ---------------------------------------------------------


def test_hubspot_carries_salesforce_id_time_and_owner_for_exactly_the_handed_off(story: Story) -> None:
    handed = story.handed
    assert len(handed) > 20
    props = story.hubspot_after_handoff
    carrying = {cid for cid, p in props.items() if p.get("handshake_salesforce_id")}
    assert carrying == set(handed)
    for cid, link in handed.items():
        p = props[cid]
        assert p["handshake_salesforce_id"] == link.sf_id
        assert p["handshake_handed_off_at"].endswith("Z")
        assert p.get("handshake_salesforce_owner")
    emails = {u.get("Email") for u in story.users.values()} | {u.get("Name") for u in story.users.values()}
    owners = Counter(props[cid]["handshake_salesforce_owner"] in emails for cid in handed)
    assert owners[True] >= len(handed) * 0.9  # the rest are queues or unknown owners


def test_write_back_is_batched_by_100_and_repeats_nothing(story: Story) -> None:
    first = story.steps["handoff"]
    n = len(story.handed)
    assert first["counts"]["hubspot.handoff.contacts.updated"] == n
    assert first["batch_updates"] == math.ceil(n / 100)
    assert first["counts"]["hubspot.handoff.requests"] == math.ceil(n / 100)
    again = story.steps["again"]
    assert again["batch_updates"] == 0
    assert again["counts"]["hubspot.handoff.contacts.unchanged"] == n


def test_an_owner_change_the_push_sees_is_the_only_thing_sent(story: Story) -> None:
    step = story.steps["reassigned"]
    assert step["counts"]["hubspot.handoff.contacts.updated"] == 1
    assert step["batch_updates"] == 1
    final = story.hubspot_final[story.pricing]
    assert final["handshake_salesforce_owner"] == story.new_owner["Email"]
    before = story.hubspot_after_handoff[story.pricing]
    assert final["handshake_salesforce_id"] == before["handshake_salesforce_id"]
    assert final["handshake_handed_off_at"] == before["handshake_handed_off_at"]


# --- A: alerts --------------------------------------------------------------------------------


def test_the_history_handed_off_alerts_nobody(story: Story) -> None:
    for step in ("handoff", "again"):
        assert story.steps[step]["alert_tasks"] == []
        assert story.steps[step]["posts"] == []


def test_a_pricing_page_view_gives_its_owner_one_alert_task_and_one_webhook(story: Story) -> None:
    step = story.steps["alert"]
    assert step["counts"]["alerts.tasks"] == 1
    assert step["counts"]["alerts.webhooks"] == 1
    [task] = step["alert_tasks"]
    lead = story.lead_of[story.pricing]
    assert task["WhoId"] == lead["Id"]
    assert task["OwnerId"] == lead["OwnerId"]
    assert task["Subject"] == "Handshake alert: visited pricing page"
    assert task["Priority"] == "High"
    assert task["Status"] == "Not Started"
    assert task["ActivityDate"] in story.today
    assert f"{SITE}/pricing" in task["Description"]
    assert "Pricing or demo page" in task["Description"]
    [post] = step["posts"]
    assert post["hubspot_id"] == story.pricing
    assert post["salesforce_id"] == lead["Id"]
    assert post["email"] and post["email"] == lead["Email"].lower()
    assert post["owner"]["id"] == lead["OwnerId"]
    assert post["owner"]["email"] == story.users[lead["OwnerId"]]["Email"]
    assert (post["activity_type"], post["url"]) == ("page_view", f"{SITE}/pricing")
    assert post["reason"] == "visited pricing page"
    assert datetime.fromisoformat(post["occurred_at"]).tzinfo is not None


def test_a_plain_page_or_a_contact_not_handed_off_alerts_nobody(story: Story) -> None:
    who = {t["WhoId"] for s in story.steps.values() for t in s["alert_tasks"]}
    assert story.handed[story.blog].sf_id not in who
    posted = {p["hubspot_id"] for s in story.steps.values() for p in s["posts"]}
    assert story.blog not in posted and story.outsider not in posted


def test_a_third_run_alerts_nobody(story: Story) -> None:
    step = story.steps["third"]
    assert step["alert_tasks"] == [] and step["posts"] == []
    assert step["counts"]["alerts.tasks"] == 0


def test_an_unreachable_webhook_is_parked_and_sent_once_it_is_back(story: Story) -> None:
    down = story.steps["hook_down"]
    assert down["status"] == "ok"
    assert len(down["alert_tasks"]) == 1
    assert down["counts"]["alerts.webhook_failures"] == 1
    assert ("webhook", "wait", f"alert:webhook:{story.failing}") in [
        d[:3] for d in story.dead_while_down]
    assert all("T0SECRET" not in d[3] for d in story.dead_while_down)
    back = story.steps["hook_back"]
    assert back["alert_tasks"] == []  # the Task was written already
    assert [p["hubspot_id"] for p in back["posts"]] == [story.failing]
    assert back["posts"][0]["reason"] == "visited demo page"
    assert f"alert:webhook:{story.failing}" not in story.dead_after


def test_a_crash_after_the_task_was_written_does_not_write_it_again(story: Story) -> None:
    assert story.tasks_after_crash == 1
    step = story.steps["after_crash"]
    assert len(step["alert_tasks"]) == 1  # the one written before the crash, no second
    assert step["counts"]["alerts.tasks_reconciled"] == 1
    assert step["counts"]["alerts.tasks"] == 0
    assert [p["hubspot_id"] for p in step["posts"]] == [story.crashing]
    assert step["alert_tasks"][0]["WhoId"] == story.handed[story.crashing].sf_id


def test_a_lost_answer_leaves_the_push_going_and_the_next_finds_the_task(story: Story) -> None:
    lost = story.steps["lost"]
    assert lost["status"] == "ok"
    assert lost["counts"]["alerts.unconfirmed"] == 1
    assert [t["WhoId"] for t in lost["alert_tasks"]] == [story.handed[story.losing].sf_id]
    after = story.steps["after_lost"]
    assert after["alert_tasks"] == []
    assert after["counts"]["alerts.tasks_reconciled"] == 1


def test_every_alerting_activity_made_exactly_one_task_and_one_post(story: Story) -> None:
    tasks = Counter(t["WhoId"] for s in story.steps.values() for t in s["alert_tasks"])
    posts = Counter(p["hubspot_id"] for s in story.steps.values() for p in s["posts"])
    alerted = (story.pricing, story.failing, story.crashing, story.losing)
    assert tasks == Counter({story.handed[h].sf_id: 1 for h in alerted})
    assert posts == Counter({h: 1 for h in alerted})

