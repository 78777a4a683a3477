"""The allocation governor: Handshake stops at its share of the org's daily API calls before
sending, and a run the next day (sandbox clock 24 h on) proceeds."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
import requests

from connector.clock import FrozenClock
from connector.errors import QuotaExhausted
from connector.salesforce import AllocationGovernor, GovernorSnapshot, parse_limit_info
from connector.sandbox import Sandbox

from .conftest import START, make_client

ALLOCATION = 40
SHARE = 0.25  # Handshake's budget: 10 calls in any 24 hours


@pytest.fixture
def small() -> Iterator[Sandbox]:
    with Sandbox(
        contacts=5, seed=11, start=START, frozen_clock=True, daily_allocation=ALLOCATION
    ) as sb:
        yield sb


def _spend_until_refused(client: object) -> QuotaExhausted:
    for _ in range(ALLOCATION):
        try:
            list(client.query("SELECT Id FROM Lead"))  # type: ignore[attr-defined]
        except QuotaExhausted as exc:
            return exc
    raise AssertionError("the governor never stopped")


def test_limit_info_is_parsed_with_and_without_per_app_usage() -> None:
    plain = parse_limit_info("api-usage=25/15000")
    assert plain is not None and (plain.used, plain.allowed, plain.app_used) == (25, 15000, None)
    app = parse_limit_info("api-usage=25/5000, per-app-api-usage=17/250(appName=handshake)")
    assert app is not None
    assert (app.used, app.allowed, app.app_used, app.app_allowed) == (25, 5000, 17, 250)
    assert parse_limit_info("per-app-api-usage=17/250(appName=x)") is None
    assert parse_limit_info(None) is None and parse_limit_info("") is None


def test_allowance_is_the_share_less_own_calls_and_never_past_the_org() -> None:
    clock = FrozenClock(datetime(2026, 11, 2, tzinfo=UTC))
    governor = AllocationGovernor(0.5, clock=clock)
    assert governor.allowance() is None  # unknown until an answer tells the allocation
    for _ in range(3):
        governor.record_call()
    governor.observe({"sforce-limit-info": "api-usage=10/100"})
    assert governor.budget() == 50 and governor.allowance() == 47
    governor.observe({"Sforce-Limit-Info": "api-usage=98/100"})
    assert governor.allowance() == 2  # other integrations spent the rest of the org
    governor.observe({"Sforce-Limit-Info": "api-usage=10/100, per-app-api-usage=49/80(appName=h)"})
    assert governor.own_calls() == 49 and governor.allowance() == 1  # Salesforce's own count
    clock.advance(timedelta(hours=24))
    governor.observe({"Sforce-Limit-Info": "api-usage=0/100"})
    assert governor.own_calls() == 0 and governor.allowance() == 50
    with pytest.raises(ValueError):
        AllocationGovernor(0)


def test_a_snapshot_round_trips_through_json() -> None:
    when = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)
    snap = GovernorSnapshot((when,), 15000)
    assert GovernorSnapshot.from_json(snap.to_json()) == snap


def test_the_governor_stops_at_the_share_and_the_next_day_proceeds(small: Sandbox) -> None:
    with make_client(small, share=SHARE) as client:
        refused = _spend_until_refused(client)
        assert client.calls == 10 and small.salesforce.api_usage() == 10
        assert client.governor.allowance() == 0
        assert refused.resets_at == START + timedelta(hours=24)
        assert "not sent" in str(refused) and "25%" in str(refused)
        snapshot = client.governor.snapshot()
    assert len(snapshot.calls) == 10 and snapshot.allowed == ALLOCATION

    # a new run the same day knows what the earlier one spent: nothing is sent at all
    with make_client(small, share=SHARE, snapshot=snapshot) as same_day:
        with pytest.raises(QuotaExhausted):
            same_day.describe("Lead")
        assert small.salesforce.api_usage() == 10

    small.clock.advance(timedelta(hours=24))
    with make_client(small, share=SHARE, snapshot=snapshot) as next_day:
        assert next_day.governor.allowance() == 10  # yesterday's calls aged out
        assert next_day.describe("Lead")["name"] == "Lead"
        assert next_day.calls == 1 and small.salesforce.api_usage() == 1


def test_a_write_stops_between_write_calls_with_the_done_ones_reported(
    small: Sandbox,
) -> None:
    records = [
        {"Handshake_Id__c": f"gov-{n}", "LastName": "G", "Company": "Gov"} for n in range(1450)
    ]
    with make_client(small, share=SHARE) as client:
        for _ in range(9):
            list(client.query("SELECT Id FROM User"))
        done: list[int] = []
        with pytest.raises(QuotaExhausted):
            for batch in client.upsert_batches("Lead", records):
                done.append(len(batch))
        # the first composite call (5 collections of 200) went; the second was refused unsent
        assert done == [200] * 5
        assert client.write_calls == 1 and small.salesforce.api_usage() == 10
    stored = [x for x in small.salesforce.state.records("Lead") if x.get("Handshake_Id__c")]
    assert len(stored) == 1000


def test_other_integrations_usage_lowers_the_allowance(small: Sandbox) -> None:
    info = small.info()["salesforce"]
    headers = {"Authorization": f"Bearer {small.salesforce.session_id}"}
    with requests.Session() as other:
        other.trust_env = False  # the environment's CA bundle would override `verify`
        for _ in range(ALLOCATION - 3):
            answer = other.get(
                f"{info['instance_url']}/services/data/v62.0/limits",
                headers=headers,
                verify=info["ca_bundle"],
            )
            assert answer.status_code == 200
    with make_client(small, share=SHARE) as client:
        _spend_until_refused(client)
        assert client.calls == 3  # the org had 3 calls left, below Handshake's 10
    assert small.salesforce.api_usage() == ALLOCATION


def test_threads_cannot_overshoot_the_share_together() -> None:
    clock = FrozenClock(datetime(2026, 11, 2, tzinfo=UTC))
    governor = AllocationGovernor(0.1, clock=clock, snapshot=GovernorSnapshot((), 100))
    refused: list[QuotaExhausted] = []

    def take(_: int) -> None:
        try:
            governor.take(what="query")
        except QuotaExhausted as exc:
            refused.append(exc)

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(take, range(40)))
    assert governor.own_calls() == 10 and len(refused) == 30
