"""Dead leads back to marketing: every recycling reason, customers never, disqualification after
the recycle limit, the interest score reset or decayed, one decision per hand-off."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from connector.clock import FrozenClock
from connector.mapping.sla import parse_sla
from connector.sla import LeadOutcome, interest_after, recycle

SLA = parse_sla("").spec
HANDED = datetime(2026, 1, 5, 9, tzinfo=UTC)
TOUCHED = HANDED + timedelta(days=1)
LEAD = LeadOutcome("00Q000000000001AAA", handed_off_at=HANDED, status="Working - Contacted",
                   last_touch_at=TOUCHED)
SOON = HANDED + timedelta(days=10)


def test_a_lead_sales_is_working_stays_with_sales() -> None:
    assert recycle(SLA, LEAD, SOON) is None


def test_closed_not_converted_goes_back_with_its_reason() -> None:
    closed = replace(LEAD, status="Closed - Not Converted", status_reason="No budget")
    decision = recycle(SLA, closed, SOON)
    assert decision is not None
    assert (decision.action, decision.reason, decision.detail, decision.count) == (
        "recycle", "closed_not_converted", "No budget", 1)
    assert decision.lead_status == "Open - Not Contacted"
    assert decision.owner_queue == "Marketing Nurture"
    assert decision.reengagement_list == "Handshake re-engagement"
    assert decision.hubspot_lead_status == "OPEN"
    no_reason = recycle(SLA, replace(closed, status_reason=None), SOON)
    assert no_reason is not None and "Closed - Not Converted" in no_reason.detail


def test_an_opportunity_lost_goes_back_with_its_loss_reason() -> None:
    lost = replace(LEAD, status="Closed - Converted", is_converted=True, opportunity_closed=True,
                   loss_reason="Chose a competitor")
    decision = recycle(SLA, lost, SOON)
    assert decision is not None
    assert (decision.reason, decision.detail) == ("opportunity_lost", "Chose a competitor")
    off = parse_sla("[recycling]\nopportunity_lost = false\n").spec
    assert recycle(off, lost, SOON) is None


def test_a_converted_lead_with_an_open_opportunity_is_never_recycled() -> None:
    deal = replace(LEAD, status="Closed - Converted", is_converted=True)
    assert recycle(SLA, deal, HANDED + timedelta(days=400)) is None


def test_untouched_for_90_days_goes_back() -> None:
    clock = FrozenClock(TOUCHED + timedelta(days=89, hours=23))
    assert recycle(SLA, LEAD, clock.now()) is None
    clock.advance(timedelta(hours=1))
    decision = recycle(SLA, LEAD, clock.now())
    assert decision is not None
    assert (decision.reason, decision.detail) == ("untouched", "no sales activity for 90 days")
    # Never touched at all: counted from the hand-off.
    never = replace(LEAD, last_touch_at=None)
    assert recycle(SLA, never, HANDED + timedelta(days=89)) is None
    assert recycle(SLA, never, HANDED + timedelta(days=90)) is not None
    # 0 turns the rule off; another number moves it.
    assert recycle(parse_sla("[recycling]\nuntouched_days = 0\n").spec, LEAD,
                   HANDED + timedelta(days=900)) is None
    assert recycle(parse_sla("[recycling]\nuntouched_days = 30\n").spec, LEAD,
                   HANDED + timedelta(days=31)) is not None


def test_never_accepted_goes_back() -> None:
    ignored = replace(LEAD, status="Open - Not Contacted", last_touch_at=None,
                      never_accepted=True)
    decision = recycle(SLA, ignored, SOON)
    assert decision is not None and decision.reason == "never_accepted"
    assert recycle(parse_sla("[recycling]\nnever_accepted = false\n").spec, ignored, SOON) \
        is None


def test_customers_are_never_recycled() -> None:
    won = replace(LEAD, is_converted=True, opportunity_closed=True, opportunity_won=True)
    assert recycle(SLA, won, HANDED + timedelta(days=400)) is None
    customer = replace(LEAD, status="Closed - Not Converted", is_customer=True,
                       never_accepted=True)
    assert recycle(SLA, customer, HANDED + timedelta(days=400)) is None


def test_after_max_recycles_a_lead_is_disqualified_instead() -> None:
    closed = replace(LEAD, status="Closed - Not Converted", status_reason="No fit")
    third = recycle(SLA, replace(closed, recycle_count=2), SOON)
    assert third is not None and (third.action, third.count) == ("recycle", 3)
    fourth = recycle(SLA, replace(closed, recycle_count=3), SOON)
    assert fourth is not None
    assert (fourth.action, fourth.reason, fourth.count) == ("disqualify", "closed_not_converted",
                                                            3)
    assert fourth.hubspot_lead_status == "UNQUALIFIED"
    assert (fourth.reengagement_list, fourth.lead_status, fourth.owner_queue) == (None,) * 3
    assert interest_after(fourth, 42) == 42
    assert fourth.key != third.key


def test_one_decision_per_hand_off() -> None:
    closed = replace(LEAD, status="Closed - Not Converted")
    first = recycle(SLA, closed, SOON)
    assert first is not None
    assert recycle(SLA, closed, SOON + timedelta(days=1)) == first  # same inputs, same key
    assert recycle(SLA, replace(closed, settled=True), SOON) is None
    assert recycle(parse_sla("[recycling]\nenabled = false\n").spec, closed, SOON) is None


@pytest.mark.parametrize(("file", "score", "kept"), [
    ("", 80, 40),
    ("[recycling]\ndecay_to_percent = 25\n", 80, 20),
    ('[recycling]\ninterest = "reset"\n', 80, 0),
])
def test_the_interest_score_is_reset_or_decayed(file: str, score: float, kept: float) -> None:
    decision = recycle(parse_sla(file).spec, replace(LEAD, status="Closed - Not Converted"),
                       SOON)
    assert decision is not None
    assert interest_after(decision, score) == kept


def test_the_opportunity_loss_wins_over_other_reasons() -> None:
    both = replace(LEAD, status="Closed - Not Converted", opportunity_closed=True,
                   loss_reason="Price", never_accepted=True, last_touch_at=None)
    decision = recycle(SLA, both, HANDED + timedelta(days=200))
    assert decision is not None and decision.reason == "opportunity_lost"
