"""Alerts without the sandbox: which activities alert and why (the scoring file decides), and
the webhook's delivery through the HTTP policy."""

from __future__ import annotations

from datetime import timedelta

import pytest

from connector.clock import FrozenClock
from connector.errors import Actor, RequestFailed, ServerError
from connector.push.alerts import AlertRules, WebhookSender
from tests.push.webhook_receiver import WebhookReceiver
from tests.scoring.helpers import NOW, default_model, email, form, model_with, page, webinar

RULES = AlertRules(default_model())


def test_a_pricing_or_demo_page_alerts_through_the_interest_rule_of_that_name() -> None:
    history = [page("/blog/fit-vs-interest", NOW - timedelta(days=2))]
    pricing = page("/pricing", NOW)
    alert = RULES.judge("101", pricing, [*history, pricing])
    assert alert is not None
    assert alert.headline == "visited pricing page"
    assert alert.reasons == ('interest rule "Pricing or demo page"',)
    demo = RULES.judge("101", page("/demo/book", NOW), history)
    assert demo is not None and demo.headline == "visited demo page"


def test_an_ordinary_page_or_email_does_not_alert() -> None:
    history = [page("/blog/a", NOW - timedelta(days=1))]
    assert RULES.judge("101", page("/blog/b", NOW), history) is None
    assert RULES.judge("101", page("/careers", NOW), history) is None
    assert RULES.judge("101", email("click", NOW), history) is None
    # webinar attendance is high intent, but the shipped [alerts] names only the page rule
    assert RULES.judge("101", webinar("attended", NOW), history) is None


def test_any_form_submission_alerts() -> None:
    alert = RULES.judge("101", form("Whitepaper: The Lead Hand-off Playbook", NOW), [])
    assert alert is not None
    assert alert.headline == 'submitted form "Whitepaper: The Lead Hand-off Playbook"'
    assert alert.reasons == ("a form submission",)


def test_a_page_view_after_the_quiet_period_is_a_return_visit() -> None:
    before = [page("/blog/a", NOW - timedelta(days=20)),
              # sending an email is not the contact's doing: it breaks no quiet period
              email("sent", NOW - timedelta(days=3)), email("delivered", NOW - timedelta(days=3))]
    alert = RULES.judge("101", page("/blog/b", NOW), before)
    assert alert is not None
    assert alert.headline == "back on the site after 20 days"
    assert alert.reasons == ("the first visit after 20 days without activity",)
    # an open 13 days ago keeps the period under 14 days
    assert RULES.judge("101", page("/blog/b", NOW),
                       [*before, email("open", NOW - timedelta(days=13))]) is None
    # a first visit ever is no return
    assert RULES.judge("101", page("/blog/b", NOW), []) is None


def test_a_return_visit_is_judged_alike_from_the_engagement_times() -> None:
    visit = page("/blog/b", NOW)
    history = [page("/blog/a", NOW - timedelta(days=20)), email("sent", NOW - timedelta(days=3)),
               visit]
    engaged = [NOW - timedelta(days=20), NOW]  # the store's times of the active kinds
    assert RULES.judge("101", visit, engaged=engaged) == RULES.judge("101", visit, history)
    alert = RULES.judge("101", visit, engaged=engaged)
    assert alert is not None and alert.headline == "back on the site after 20 days"
    assert RULES.judge("101", visit, engaged=[NOW - timedelta(days=2), NOW]) is None
    assert RULES.judge("101", visit, engaged=[NOW]) is None  # the visit itself is no return


def test_a_return_to_the_pricing_page_gives_both_reasons() -> None:
    alert = RULES.judge("101", page("/pricing", NOW), [page("/", NOW - timedelta(days=30))])
    assert alert is not None
    assert alert.headline == "visited pricing page"
    assert alert.reasons == ('interest rule "Pricing or demo page"',
                             "the first visit after 30 days without activity")


def test_the_scoring_file_decides_what_alerts() -> None:
    quiet_off = AlertRules(model_with("quiet_days = 14", "quiet_days = 0"))
    assert quiet_off.judge("1", page("/blog", NOW), [page("/", NOW - timedelta(days=60))]) is None
    no_forms = AlertRules(model_with("any_form = true", "any_form = false"))
    assert no_forms.judge("1", form("Whitepaper: x", NOW), []) is None
    assert no_forms.judge("1", form("Request a demo", NOW), []) is None
    # without `rules`, every interest rule marked high_intent alerts
    high_intent = AlertRules(model_with('rules = ["Pricing or demo page"]\n', ""))
    names = [name for name, _ in high_intent.rules]
    assert names == ["Consultation request", "Demo request", "Contact us", "Webinar attendance",
                     "Pricing or demo page"]
    attended = high_intent.judge("1", webinar("attended", NOW), [])
    assert attended is not None and attended.headline.startswith("attended webinar")
    off = AlertRules(model_with("[alerts]\nenabled = true", "[alerts]\nenabled = false"))
    assert not off.enabled


def test_the_webhook_is_retried_through_the_policy_and_delivered_once() -> None:
    with WebhookReceiver() as hook:
        hook.statuses = [503, 500]
        sender = WebhookSender(hook.url, max_attempts=3, clock=FrozenClock())
        try:
            sender.post({"alert_id": "101:7", "reason": "visited pricing page"})
        finally:
            sender.close()
        assert hook.attempts == 3
        assert hook.received == [{"alert_id": "101:7", "reason": "visited pricing page"}]


def test_an_unreachable_or_refusing_webhook_raises_who_must_act() -> None:
    with WebhookReceiver() as hook:
        hook.always = 500
        sender = WebhookSender(hook.url, max_attempts=2, clock=FrozenClock())
        with pytest.raises(ServerError) as failed:
            sender.post({"alert_id": "1"})
        assert failed.value.actor is Actor.WAIT
        assert hook.attempts == 2
        hook.always, hook.attempts = 404, 0
        with pytest.raises(RequestFailed) as refused:
            sender.post({"alert_id": "1"})
        sender.close()
        assert refused.value.actor is Actor.ADMIN
        assert hook.attempts == 1  # a refusal is not retried
        # the secret in the URL's path never shows in a message
        assert "T0SECRET" not in refused.value.message
        assert hook.received == []
