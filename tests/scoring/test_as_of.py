"""A score as of a time counts only what had happened by then: the engine, `sync score`'s
runner and `handshake score explain EMAIL --at` leave later activities out."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from connector.cli import app
from connector.clock import FrozenClock
from connector.scoring.runner import score_contacts
from connector.store import ActivityRecord, ContactRecord, Store
from tests.scoring.helpers import DEFAULT_MODEL, NOW, a_fit_contact, default_engine, form, webinar

ENGINE = default_engine()
AT = datetime(2026, 10, 1, tzinfo=UTC)
CONSULTATION = {"form_id": "g1", "form_name": "Request a consultation", "values": {}}


def test_the_engine_leaves_out_activities_after_now() -> None:
    before = webinar("attended", AT - timedelta(days=3))
    after = form("Request a consultation", AT + timedelta(days=10))
    as_of = ENGINE.score(a_fit_contact(), [before, after], AT)
    assert [c.activity_id for c in as_of.contributions] == [before.id]
    assert as_of.interest == ENGINE.score(a_fit_contact(), [before], AT).interest
    assert 0 < as_of.interest < 40  # the webinar, decayed from AT, and not the consultation's 50
    assert as_of.last_engagement_at == before.occurred_at
    assert not as_of.is_mql
    # the same activities as of a time after both: the consultation counts
    later = ENGINE.score(a_fit_contact(), [before, after], AT + timedelta(days=11))
    assert {c.activity_id for c in later.contributions} == {before.id, after.id}
    assert later.is_mql


def test_an_activity_at_exactly_now_counts_at_full_value() -> None:
    at_now = form("Request a consultation", AT)
    result = ENGINE.score(a_fit_contact(), [at_now], AT)
    assert [(c.activity_id, c.decayed) for c in result.contributions] == [(at_now.id, 50.0)]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(f"sqlite:///{tmp_path / 'state.db'}", clock=FrozenClock(NOW))
    s.migrate()
    yield s
    s.close()


def _contact(cid: str) -> ContactRecord:
    fit = a_fit_contact(email=f"c{cid}@acme-corp.com")
    return ContactRecord(cid, fit.email, fit.properties, NOW - timedelta(days=30), NOW)


def test_sync_score_never_counts_future_dated_activities(store: Store) -> None:
    store.upsert_contacts([_contact("1")])
    store.add_activities([
        ActivityRecord("1", "form_submission", NOW + timedelta(days=5), "test", "1:f",
                       title="Request a consultation", details=CONSULTATION),
    ])
    run = score_contacts(store, ENGINE, NOW, run_id="r1")
    result = run.results["1"]
    assert result.interest == 0 and not result.contributions and not result.is_mql
    # the future form does not make a lead either (nor has the contact lapsed: created 30 days ago)
    assert run.decisions == []
    assert store.transitions_for("1") == []


def _toml(tmp_path: Path, store_path: Path) -> Path:
    config = tmp_path / "handshake.toml"
    config.write_text(f"""
[hubspot]
base_url = "https://api.hubapi.com"
[salesforce]
instance_url = "https://example.my.salesforce.com"
[state]
database_url = "sqlite:///{store_path}"
[mappings]
scoring = "{DEFAULT_MODEL}"
""")
    return config


def test_score_explain_at_counts_only_what_happened_by_then(store: Store,
                                                            tmp_path: Path) -> None:
    store.upsert_contacts([_contact("7")])
    store.add_activities([
        ActivityRecord("7", "webinar_attended", AT - timedelta(days=3), "test", "7:w",
                       title="Webinar: Fit versus interest"),
        ActivityRecord("7", "form_submission", AT + timedelta(days=10), "test", "7:f",
                       title="Request a consultation", details=CONSULTATION),
    ])
    config = _toml(tmp_path, tmp_path / "state.db")
    result = CliRunner().invoke(app, ["score", "explain", "c7@acme-corp.com", "-c", str(config),
                                      "--at", "2026-10-01"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    text = result.output
    assert "Scored as of 2026-10-01T00:00:00+00:00" in text
    assert "1 later activity not counted" in text
    interest = text.split("INTEREST: ", 1)[1]
    assert "Webinar: Fit versus interest" in interest
    assert "Request a consultation" not in text
    assert "MQL: no - " in text
    now = CliRunner().invoke(app, ["score", "explain", "c7@acme-corp.com", "-c", str(config)],
                             env={"COLUMNS": "200"})
    assert now.exit_code == 0, now.output
    assert "Scored at " in now.output and "not counted" not in now.output
    assert "Request a consultation" in now.output.split("INTEREST: ", 1)[1]
