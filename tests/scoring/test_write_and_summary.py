"""Write-back planning and batching, and the hand-off summary's shape and size limit."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from connector.errors import RequestFailed
from connector.hubspot.write import (
    HubSpotWriter,
    handoff_property_definitions,
    plan_updates,
    property_definitions,
)
from connector.sandbox.base import SandboxClock
from connector.sandbox.hubspot import HubSpotSandbox
from connector.scoring.intelligence import MAX_TEXT_CHARS, render_text, summarize
from connector.scoring.lifecycle import Decision
from connector.store import Store
from tests.sandbox.hs_fixtures import TOKEN, tiny_dataset, validate_request
from tests.scoring.helpers import (
    NOW,
    FakeContact,
    a_fit_contact,
    default_engine,
    default_model,
    email,
    form,
    page,
    webinar,
)

ENGINE = default_engine()
MODEL = default_model()
WB = MODEL.writeback


class FakeHubSpot:
    """Records requests; answers the properties list and refuses batches when told to."""

    def __init__(self, existing: set[str] | None = None, refuse: bool = False) -> None:
        self.calls: list[tuple[str, str, Any]] = []
        self.existing = existing or set()
        self.refuse = refuse

    def request(self, method: str, path: str, *, json: Any = None,
                describe: str = "") -> tuple[dict[str, Any], None]:
        self.calls.append((method, path, json))
        if method == "GET":
            return {"results": [{"name": n} for n in sorted(self.existing)]}, None
        if path.endswith("/batch/update") and self.refuse:
            raise RequestFailed("400 VALIDATION_ERROR", system="hubspot", status=400)
        return {}, None


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(f"sqlite:///{tmp_path / 'w.db'}")
    s.migrate()
    yield s
    s.close()


def mql_contact(cid: str, **props: Any) -> tuple[FakeContact, Any]:
    contact = a_fit_contact(**props)
    contact.hubspot_id = cid
    acts = [form("Request a consultation", NOW), webinar("attended", NOW)]
    return contact, ENGINE.score(contact, acts, NOW)


def test_only_changed_values_and_forward_stages_are_planned() -> None:
    fresh, r1 = mql_contact("1")
    ahead, r2 = mql_contact("2", lifecyclestage="salesqualifiedlead")
    same, r3 = mql_contact("3")
    same.properties.update({WB.score.hubspot_property: "75.0",
                            WB.grade.hubspot_property: "A",
                            WB.reasons.hubspot_property: r3.reasons_text(),
                            WB.nurture_track.hubspot_property: "",
                            WB.mql_at.hubspot_property: "2026-11-01T12:00:00.000Z",
                            "lifecyclestage": "marketingqualifiedlead"})
    decisions = [Decision(c, "mql", None, "marketingqualifiedlead", NOW, "MQL")
                 for c in ("1", "2", "3")]
    updates = plan_updates([fresh, ahead, same], {"1": r1, "2": r2, "3": r3},
                           {"1": NOW, "2": NOW, "3": NOW}, decisions, WB, MODEL.lifecycle)
    by_id = {u.contact_id: u.properties for u in updates}
    assert set(by_id) == {"1", "2"}  # contact 3 already holds every value
    assert by_id["1"] == {
        "handshake_score": "75", "handshake_fit_grade": "A",
        "handshake_score_reasons": r1.reasons_text(),
        "handshake_mql_date": "2026-11-01T12:00:00.000Z",
        "lifecyclestage": "marketingqualifiedlead",
    }
    assert "lifecyclestage" not in by_id["2"]  # never moved back from SQL


def test_properties_are_created_once_and_updates_go_100_a_request(store: Store) -> None:
    hub = FakeHubSpot(existing={WB.score.hubspot_property})
    writer = HubSpotWriter(hub, store, WB)
    created = writer.ensure_properties()
    assert created == [d["name"] for d in property_definitions(WB)][1:]
    posts = [c for c in hub.calls if c[0] == "POST"]
    assert all(c[2]["groupName"] == "contactinformation" for c in posts)

    contacts, results = [], {}
    for i in range(250):
        contact, result = mql_contact(str(i))
        contacts.append(contact)
        results[contact.hubspot_id] = result
    updates = plan_updates(contacts, results, {}, [], WB, MODEL.lifecycle)
    hub.calls.clear()
    counts = writer.push(updates)
    sizes = [len(c[2]["inputs"]) for c in hub.calls]
    assert sizes == [100, 100, 50]
    assert counts["contacts.updated"] == 250
    hub.calls.clear()
    writer.push(updates)
    assert hub.calls == []  # the ledger knows these exact values were written


class SandboxHubSpot:
    """The writer's one method over real HTTP to a served HubSpot sandbox; anything the
    sandbox refuses fails the test with HubSpot's answer."""

    def __init__(self, http: httpx.Client) -> None:
        self.http = http

    def request(self, method: str, path: str, *, json: Any = None,
                describe: str = "") -> tuple[dict[str, Any], None]:
        answer = self.http.request(method, path, json=json)
        assert answer.status_code < 400, f"{describe}: {answer.text}"
        return (answer.json() if answer.content else {}), None


def test_write_back_passes_the_sandbox_that_checks_the_official_specs(store: Store) -> None:
    definitions = property_definitions(WB) + handoff_property_definitions(WB)
    for definition in definitions:
        validate_request("crm-properties-v3.json", "/crm/v3/properties/{objectType}", "post",
                         definition)
    sandbox = HubSpotSandbox(SandboxClock(NOW, frozen=True))
    sandbox.load(tiny_dataset(now=NOW))
    with sandbox.serve() as srv, httpx.Client(
        base_url=srv.base_url, headers={"Authorization": f"Bearer {TOKEN}"}
    ) as http:
        writer = HubSpotWriter(SandboxHubSpot(http), store, WB)
        assert writer.ensure_properties() == [d["name"] for d in property_definitions(WB)]
        assert writer.ensure_properties(handoff_property_definitions(WB)) == [
            d["name"] for d in handoff_property_definitions(WB)]
        contact, result = mql_contact("101")
        counts = writer.push(plan_updates([contact], {"101": result}, {}, [], WB,
                                          MODEL.lifecycle))
    grade = sandbox.state.properties[WB.grade.hubspot_property]
    assert [(o["value"], o["hidden"]) for o in grade["options"]] == [
        (g, False) for g in "ABCDF"]
    assert counts["contacts.updated"] == 1
    assert sandbox.state.contacts["101"].props[WB.grade.hubspot_property] == "A"
    assert sandbox.stats.by_status.get(400, 0) == 0


def test_a_refused_batch_is_parked_for_the_admin(store: Store) -> None:
    hub = FakeHubSpot(refuse=True)
    contact, result = mql_contact("7")
    updates = plan_updates([contact], {"7": result}, {}, [], WB, MODEL.lifecycle)
    counts = HubSpotWriter(hub, store, WB).push(updates)
    assert counts["contacts.failed"] == 1
    [dead] = store.dead_letters(stage="score")
    assert dead.record_key == "contacts:7" and dead.actor == "admin"
    assert "VALIDATION_ERROR" in dead.reason


def test_summary_puts_high_intent_first_and_fits_the_long_text_field() -> None:
    contact = a_fit_contact(phone="+1 555 0100", hs_analytics_source="ORGANIC_SEARCH")
    acts = [page(f"/blog/post-{i % 400}", NOW - timedelta(hours=i), title=f"Post {i} " * 8)
            for i in range(3000)]
    acts += [email("sent", NOW - timedelta(days=3)), email("open", NOW - timedelta(days=2)),
             email("click", NOW - timedelta(days=2)), email("delivered", NOW - timedelta(days=3))]
    acts += [form(f"Whitepaper: volume {i}", NOW - timedelta(days=i), budget="$100k+",
                  purchase_timeframe="This quarter", message="x" * 300) for i in range(200)]
    acts += [form("Request a demo", NOW - timedelta(days=1), budget="$100k+"),
             webinar("registered", NOW - timedelta(days=9)),
             webinar("attended", NOW - timedelta(days=4)), page("/pricing", NOW)]
    result = ENGINE.score(contact, acts, NOW)
    summary = summarize(contact, acts, result, NOW)
    assert summary.email_engagement["sent"] == 1 and summary.email_engagement["clicked"] == 1
    assert summary.pages["total_views"] == 3001
    assert summary.pages["top"][0]["views"] == 8
    assert [h["action"] for h in summary.high_intent][:2] == ["Pricing or demo page",
                                                              "Demo request"]
    assert summary.verification["level"] == "high"
    assert summary.webinars[0]["state"] == "attended"
    assert summary.source["days_in_nurture"] == 60
    text = render_text(summary)
    assert len(text) <= MAX_TEXT_CHARS
    heads = [text.index(f"== {h} ==") for h in (
        "Recent high-intent actions", "What they told us", "Why this score", "Who they are",
        "Source and nurture", "Pages viewed", "Content consumed", "Email engagement",
        "Webinars")]
    assert heads == sorted(heads)
    told = text.split("== What they told us ==")[1].split("==")[0]
    assert "budget: $100k+" in told and "... and 176 more" in told
    # Whatever the volume, the text never exceeds the field and says it was cut.
    short = render_text(summary, limit=1500)
    assert len(short) <= 1500 and short.endswith("(truncated to fit the field)\n")
    assert short.startswith("Ada Lovelace <ada@acme-corp.com> - VP of Finance, Acme Corp\n")
