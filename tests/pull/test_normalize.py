"""Unusable HubSpot records become SkippableErrors that say what is wrong and who must act."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from connector.errors import Actor, SkippableError
from connector.pull.normalize import (
    activity_from_email_event,
    activity_from_form_submission,
    activity_from_page_view,
    activity_from_participation,
    contact_from_hubspot,
    parse_time,
)


def raw(**props: str) -> dict[str, object]:
    base = {"email": "a@b.com", "createdate": "2026-01-02T03:04:05.678Z",
            "lastmodifieddate": "2026-02-02T00:00:00Z"}
    base.update(props)
    return {"id": "101", "properties": base}


def test_v3_iso_and_v1_epoch_ms_parse_to_the_same_instant() -> None:
    assert parse_time("2026-01-02T03:04:05.678Z") == parse_time(1767323045678)
    assert parse_time("1767323045678") == datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)


def test_a_good_contact() -> None:
    rec = contact_from_hubspot(raw(email="Ann@Example.COM"))
    assert rec.email == "ann@example.com"
    assert rec.hubspot_updated_at == datetime(2026, 2, 2, tzinfo=UTC)


@pytest.mark.parametrize(
    ("props", "words"),
    [
        ({"email": ""}, "no email address"),
        ({"email": "not-an-email"}, "not an email address"),
        ({"lastmodifieddate": "yesterday-ish"}, "lastmodifieddate is not a valid date"),
        ({"createdate": "2026-13-45"}, "createdate is not a valid date"),
        ({"hs_analytics_num_page_views": "lots"}, "should be a number"),
    ],
)
def test_unusable_contacts_say_why(props: dict[str, str], words: str) -> None:
    with pytest.raises(SkippableError) as info:
        contact_from_hubspot(raw(**props))
    assert words in info.value.message
    assert info.value.record_key == "101"
    assert info.value.actor is Actor.DATA


def test_archived_contact_without_email_is_kept() -> None:
    rec = contact_from_hubspot(raw(email=""), archived=True)
    assert rec.archived and rec.email is None


def test_email_events_normalise_and_skip_uninteresting_types() -> None:
    event = {"id": "e1", "type": "CLICK", "created": 1767323045678, "recipient": "a@b.com",
             "url": "https://x/pricing", "emailCampaignId": 9}
    act = activity_from_email_event(event, "101")
    assert act is not None and act.type == "email_click" and act.url == "https://x/pricing"
    assert activity_from_email_event({**event, "type": "PROCESSED"}, "101") is None
    resub = {**event, "type": "STATUSCHANGE", "portalSubscriptionStatus": "SUBSCRIBED"}
    assert activity_from_email_event(resub, "101") is None
    with pytest.raises(SkippableError, match="created is not a valid date"):
        activity_from_email_event({**event, "created": "soon"}, "101")


def test_form_page_view_and_webinar_records() -> None:
    form = {"id": "g1", "name": "Request a consultation"}
    sub = {"submittedAt": 1767323045678, "pageUrl": "https://x/contact",
           "values": [{"name": "email", "value": "a@b.com"}, {"name": "budget", "value": "50k+"}]}
    act = activity_from_form_submission(sub, form, "101")
    assert act.details["values"]["budget"] == "50k+" and act.title == "Request a consultation"
    view = {"id": "v1", "objectId": "101", "occurredAt": "2026-01-02T03:04:05Z",
            "properties": {"hs_url": "https://x/pricing", "hs_page_title": "Pricing"}}
    pv = activity_from_page_view(view)
    assert (pv.type, pv.url, pv.title) == ("page_view", "https://x/pricing", "Pricing")
    part = {"associations": {"contact": {"contactId": "101"}},
            "properties": {"attendanceState": "ATTENDED", "occurredAt": "2026-01-02T03:04:05Z"}}
    web = activity_from_participation(part, {"objectId": "55", "eventName": "Demo day"})
    assert web is not None and web.type == "webinar_attended" and web.source_id == "55:101:ATTENDED"
    with pytest.raises(SkippableError, match="without a contact"):
        activity_from_participation({"properties": {"attendanceState": "REGISTERED"}}, {"objectId": "5"})
