"""The engine: the seeds' example, fit grades, decay, caps, expiry, negative signals, tracks."""

from __future__ import annotations

from datetime import timedelta

import pytest

from connector.clock import FrozenClock
from connector.scoring import Engine
from tests.scoring.helpers import (
    NOW,
    a_fit_contact,
    default_engine,
    email,
    form,
    model_with,
    page,
    webinar,
)

ENGINE = default_engine()


@pytest.mark.parametrize(
    ("activity", "rule", "points"),
    [
        (form("Whitepaper: The Lead Hand-off Playbook", NOW), "Whitepaper download", 5),
        (form("Case study: Acme Manufacturing", NOW), "Case study download", 10),
        (webinar("registered", NOW), "Webinar registration", 15),
        (webinar("attended", NOW), "Webinar attendance", 25),
        (form("Request a consultation", NOW), "Consultation request", 50),
    ],
)
def test_seed_example_actions_give_the_listed_points(activity, rule, points) -> None:  # type: ignore[no-untyped-def]
    result = ENGINE.score(a_fit_contact(), [activity], NOW)
    assert [(c.rule, c.points, c.decayed) for c in result.contributions] == [
        (rule, points, points)
    ]
    assert result.interest == points


def test_webinar_registered_attended_and_consultation_make_an_mql() -> None:
    acts = [webinar("registered", NOW - timedelta(days=10)),
            webinar("attended", NOW - timedelta(days=3)),
            form("Request a consultation", NOW - timedelta(days=1))]
    result = ENGINE.score(a_fit_contact(), acts, NOW)
    assert result.fit.grade == "A"
    assert result.interest >= 50
    assert result.is_mql
    assert result.nurture_track == ""


def test_a_single_whitepaper_download_is_not_an_mql() -> None:
    result = ENGINE.score(a_fit_contact(), [form("Whitepaper: The Lead Hand-off Playbook", NOW)],
                          NOW)
    assert result.interest == 5
    assert not result.is_mql
    assert result.nurture_track == "economic-buyer"


def test_fit_points_and_grades_follow_the_groups() -> None:
    fit = ENGINE.fit(a_fit_contact())
    assert fit.points == 35 + 20 + 20 + 10 + 15
    assert fit.grade == "A"
    assert [c.rule for c in fit.contributions] == [
        "VP", "Company 100-500", "Target industry", "Economic buyer", "Corporate email"]
    # Title is read only when the seniority property is empty; free mail gets nothing.
    other = a_fit_contact(seniority="", jobtitle="Director of IT", department="it",
                          email="ada@gmail.com", industry="Retail", numemployees="25-50")
    fit = ENGINE.fit(other)
    assert fit.points == 30 + 5 + 5 + 10
    assert fit.grade == "C"


@pytest.mark.parametrize(
    ("props", "why"),
    [
        ({"seniority": "student", "jobtitle": "Student"}, "Student"),
        ({"email": "ada@northfield.edu"}, "University address"),
        ({"email": "spy@leadbridge.io"}, "Competitor"),
    ],
)
def test_disqualifiers_force_grade_f(props, why) -> None:  # type: ignore[no-untyped-def]
    contact = a_fit_contact(**props)
    acts = [form("Request a consultation", NOW), form("Request a demo", NOW)]
    result = ENGINE.score(contact, acts, NOW)
    assert result.fit.grade == "F"
    assert result.fit.disqualified_by is not None and result.fit.disqualified_by.startswith(why)
    assert result.interest == 100
    assert not result.is_mql


def test_interest_decays_with_a_45_day_half_life_on_the_injected_clock() -> None:
    clock = FrozenClock(NOW)
    acts = [form("Request a consultation", NOW), webinar("attended", NOW)]
    contact = a_fit_contact()
    assert ENGINE.score(contact, acts, clock.now()).interest == 75
    clock.advance(timedelta(days=45))
    later = ENGINE.score(contact, acts, clock.now())
    assert later.interest == 37.5
    assert not later.is_mql
    assert {c.rule: round(c.decayed, 2) for c in later.contributions} == {
        "Consultation request": 25.0, "Webinar attendance": 12.5}
    clock.advance(timedelta(days=45))
    assert ENGINE.score(contact, acts, clock.now()).interest == 18.75


def test_a_lead_expires_after_180_days_without_engagement() -> None:
    clock = FrozenClock(NOW)
    acts = [form("Request a consultation", NOW), page("/pricing", NOW)]
    contact = a_fit_contact()
    clock.advance(timedelta(days=180))
    at_limit = ENGINE.score(contact, acts, clock.now())
    assert not at_limit.expired and at_limit.interest > 0
    clock.advance(timedelta(days=1))
    expired = ENGINE.score(contact, acts, clock.now())
    assert expired.expired and expired.interest == 0
    assert expired.nurture_track == "re-engagement"
    assert expired.last_engagement_at == NOW
    # New engagement revives it.
    fresh = ENGINE.score(contact, [*acts, page("/product", clock.now())], clock.now())
    assert not fresh.expired and fresh.interest > 0


def test_interest_is_capped_at_100() -> None:
    acts = [form("Request a demo", NOW) for _ in range(5)]
    result = ENGINE.score(a_fit_contact(), acts, NOW)
    assert result.raw_interest == 250
    assert result.interest == 100


def test_page_group_counts_the_first_matching_rule_only() -> None:
    acts = [page("/pricing", NOW), page("/careers/open-positions", NOW), page("/blog/x", NOW)]
    result = ENGINE.score(a_fit_contact(), acts, NOW)
    assert sorted((c.rule, c.points) for c in result.contributions) == [
        ("Other page", 1), ("Pricing or demo page", 5)]
    assert result.interest == 6


def test_negative_signals_count_once_each() -> None:
    acts = [form("Request a consultation", NOW), email("unsubscribe", NOW),
            email("unsubscribe", NOW - timedelta(days=2)), email("spamreport", NOW),
            email("bounce", NOW, category="HARD_BOUNCE"), email("bounce", NOW, category="POLICY")]
    result = ENGINE.score(a_fit_contact(), acts, NOW)
    assert result.interest == 50 - 5 - 5 - 3
    assert "Unsubscribed" in result.capped


def test_self_reported_answers_count_the_latest_answer_once() -> None:
    acts = [form("Contact us", NOW - timedelta(days=1), budget="$100k+",
                 purchase_timeframe="This quarter"),
            form("Request a demo", NOW, budget="$50k - $100k", purchase_timeframe="Within a year")]
    result = ENGINE.score(a_fit_contact(), acts, NOW)
    rules = sorted(c.rule for c in result.contributions)
    assert rules.count("Budget $50k+") == 1
    assert rules.count("Buying within 6 months") == 1
    assert result.interest == pytest.approx(
        50 + 20 * 0.5 ** (1 / 45) + 5 + 5 * 0.5 ** (1 / 45), abs=0.01)


def test_rule_caps_total_and_per_period() -> None:
    model = model_with('name = "Email open"\nactivity = "email_open"\npoints = 1',
                       'name = "Email open"\nactivity = "email_open"\npoints = 1\n'
                       'period_days = 7\nmax_points_per_period = 2')
    engine = Engine(model)
    opens = [email("open", NOW - timedelta(days=d, hours=h)) for d in (0, 1, 2, 10) for h in (1, 2)]
    result = engine.score(a_fit_contact(), opens, NOW)
    counted = sorted(c.occurred_at for c in result.contributions)
    # Oldest first: day 10 (two), then only two of the six in the last week.
    assert len(counted) == 4
    assert "Email open" in result.capped
    model = model_with('name = "Other page"\nactivity = "page_view"\ngroup = "pages"\npoints = 1',
                       'name = "Other page"\nactivity = "page_view"\ngroup = "pages"\npoints = 1\n'
                       'max_points = 3')
    result = Engine(model).score(a_fit_contact(), [page(f"/blog/{i}", NOW) for i in range(10)],
                                 NOW)
    assert result.interest == 3
    assert sum(c.decayed for c in result.contributions) == pytest.approx(3)


def test_c_grade_needs_80_and_d_never_qualifies() -> None:
    c_grade = a_fit_contact(seniority="director", department="it", email="x@gmail.com",
                            industry="Retail", numemployees="25-50")
    assert ENGINE.fit(c_grade).grade == "C"
    acts = [form("Request a consultation", NOW), webinar("attended", NOW)]
    assert not ENGINE.score(c_grade, acts, NOW).is_mql
    acts.append(form("Request a demo", NOW))
    assert ENGINE.score(c_grade, acts, NOW).is_mql
    d_grade = a_fit_contact(seniority="manager", department="hr", email="x@gmail.com",
                            industry="Retail", numemployees="50-100")
    assert ENGINE.fit(d_grade).grade == "D"
    assert not ENGINE.score(d_grade, acts, NOW).is_mql


def test_opportunities_and_customers_are_never_mqls() -> None:
    acts = [form("Request a consultation", NOW), webinar("attended", NOW)]
    for stage in ("opportunity", "customer"):
        contact = a_fit_contact(lifecyclestage=stage)
        result = ENGINE.score(contact, acts, NOW)
        assert not result.is_mql and "owned by sales" in result.mql_reason


def test_nurture_tracks_by_segment() -> None:
    it = a_fit_contact(department="engineering")
    other = a_fit_contact(department="marketing")
    assert ENGINE.score(it, [], NOW).nurture_track == "it-user"
    assert ENGINE.score(other, [], NOW).nurture_track == "general"


def test_reasons_text_names_the_biggest_rules() -> None:
    acts = [form("Request a consultation", NOW), page("/pricing", NOW)]
    text = ENGINE.score(a_fit_contact(), acts, NOW).reasons_text()
    assert text.startswith("Grade A (100 fit pts); interest 55; Consultation request +50.0")


def test_remembered_matches_answer_as_the_rules_do() -> None:
    """Which rules an activity fires is remembered per text value: the same page or form
    answers the same the second time, and a number is never taken for the text it equals
    (1, 1.0 and True are one dictionary key; the rule tells them apart)."""
    engine = Engine(model_with('attribute = "details.category"\nequals = "HARD_BOUNCE"',
                               'attribute = "details.category"\nequals = "1"'))
    pages = [page("/pricing", NOW), page("/careers", NOW), page("/pricing", NOW),
             page("/blog", NOW), page("/careers", NOW)]
    for _ in range(2):
        result = engine.score(a_fit_contact(), pages, NOW)
        assert sorted(c.rule for c in result.contributions) == [
            "Other page", "Pricing or demo page", "Pricing or demo page"]
    # `equals = "1"` compares text: 1 is "1", 1.0 is "1.0", True is "True"
    for category, counted in (("1", True), (1, True), (1.0, False), (True, False), ("1", True)):
        result = engine.score(a_fit_contact(), [email("bounce", NOW, category=category)], NOW)
        assert [c.rule for c in result.contributions] == (["Hard bounce"] if counted else [])


def test_form_values_not_stored_as_a_mapping_read_as_absent() -> None:
    """A form whose stored `values` are not the pull's mapping (a hand-edited or damaged row)
    scores as a form without those answers: the run goes on."""
    answered = form("Request a consultation", NOW, budget="$100k+")
    damaged = form("Request a consultation", NOW)
    damaged.details["values"] = [["budget", "$100k+"]]
    rules = {c.rule for c in ENGINE.score(a_fit_contact(), [answered], NOW).contributions}
    assert "Budget $50k+" in rules
    result = ENGINE.score(a_fit_contact(), [damaged], NOW)
    assert {c.rule for c in result.contributions} == rules - {"Budget $50k+"}
