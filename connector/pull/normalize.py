"""HubSpot answers → the store's records. A record that cannot be used raises `SkippableError`
with the reason; the stream parks it as a dead letter and goes on."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from connector.activities import ActivityType
from connector.errors import Actor, SkippableError
from connector.store import ActivityRecord, ContactRecord

__all__ = [
    "EMAIL_EVENT_TYPES",
    "activity_from_email_event",
    "activity_from_form_submission",
    "activity_from_page_view",
    "activity_from_participation",
    "contact_from_hubspot",
    "parse_ms",
    "parse_time",
]

# Legacy email event type -> normalised activity type; other types (PROCESSED, DEFERRED,
# DROPPED, FORWARD, PRINT, SUPPRESSED...) tell nothing about the lead's interest.
EMAIL_EVENT_TYPES = {
    "SENT": ActivityType.EMAIL_SENT,
    "DELIVERED": ActivityType.EMAIL_DELIVERED,
    "OPEN": ActivityType.EMAIL_OPEN,
    "CLICK": ActivityType.EMAIL_CLICK,
    "BOUNCE": ActivityType.EMAIL_BOUNCE,
    "SPAMREPORT": ActivityType.EMAIL_SPAMREPORT,
    "STATUSCHANGE": ActivityType.EMAIL_UNSUBSCRIBE,
}
PARTICIPATION_TYPES = {
    "REGISTERED": ActivityType.WEBINAR_REGISTERED,
    "ATTENDED": ActivityType.WEBINAR_ATTENDED,
    "NO_SHOW": ActivityType.WEBINAR_NO_SHOW,
    "CANCELLED": ActivityType.WEBINAR_CANCELLED,
}


def _bad(key: str, reason: str, **details: Any) -> SkippableError:
    return SkippableError(reason, system="hubspot", record_key=key, actor=Actor.DATA,
                          details=details)


def parse_time(value: Any) -> datetime | None:
    """ISO-8601 (v3) or epoch milliseconds (v1, and some v3 properties) → aware UTC datetime."""
    if value in (None, ""):
        return None
    if isinstance(value, int | float) or (isinstance(value, str) and value.isdigit()):
        return parse_ms(int(value))
    if isinstance(value, str):
        text = value.strip().replace("Z", "+00:00")
        parsed = datetime.fromisoformat(text)
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    raise ValueError(f"not a timestamp ({type(value).__name__})")  # the value is record data


def parse_ms(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1000, UTC)


def _checked_time(key: str, field: str, value: Any) -> datetime | None:
    try:
        return parse_time(value)
    except (ValueError, TypeError, OverflowError):
        raise _bad(key, f"{field} is not a valid date: {str(value)[:60]!r}", field=field) from None


def contact_from_hubspot(raw: dict[str, Any], *, archived: bool = False) -> ContactRecord:
    """A contact from a list/search/batch answer."""
    cid = str(raw.get("id") or "")
    if not cid:
        raise _bad("(no id)", "contact without an id")
    props = dict(raw.get("properties") or {})
    email = (props.get("email") or "").strip()
    if not archived and not email:
        raise _bad(cid, "contact has no email address: it cannot be matched or handed to sales "
                        "(add an email in HubSpot)")
    if email and ("@" not in email or " " in email):
        raise _bad(cid, f"email {email!r} is not an email address (fix it in HubSpot)")
    created = _checked_time(cid, "createdate", props.get("createdate") or raw.get("createdAt"))
    updated = _checked_time(cid, "lastmodifieddate",
                            props.get("lastmodifieddate") or raw.get("updatedAt"))
    for counter in ("hs_analytics_num_page_views", "hs_analytics_num_visits"):
        value = props.get(counter)
        if value not in (None, ""):
            try:
                float(value)
            except (TypeError, ValueError):
                raise _bad(cid, f"{counter} should be a number, got {str(value)[:40]!r}",
                           field=counter) from None
    return ContactRecord(
        hubspot_id=cid,
        email=email.lower() or None,
        properties=props,
        hubspot_created_at=created,
        hubspot_updated_at=updated,
        archived=archived or bool(raw.get("archived")),
    )


def activity_from_email_event(event: dict[str, Any], contact_id: str) -> ActivityRecord | None:
    kind = EMAIL_EVENT_TYPES.get(str(event.get("type")))
    if kind is None:
        return None
    if kind == ActivityType.EMAIL_UNSUBSCRIBE and not _is_unsubscribe(event):
        return None
    key = str(event.get("id") or "")
    occurred = _checked_time(key, "created", event.get("created"))
    if not key or occurred is None:
        raise _bad(key or "(no id)", "email event without id or time")
    details: dict[str, Any] = {k: event[k] for k in ("emailCampaignId", "sentBy", "category", "status",
                                     "response", "subscriptions", "portalSubscriptionStatus",
                                     "browser", "location", "deviceType") if k in event}
    return ActivityRecord(
        contact_id=contact_id, type=kind, occurred_at=occurred, source="email_event",
        source_id=key, title=event.get("subject") or None, url=event.get("url") or None,
        details=details,
    )


def _is_unsubscribe(event: dict[str, Any]) -> bool:
    """A STATUSCHANGE counts as an unsubscribe unless it re-subscribes."""
    status = str(event.get("portalSubscriptionStatus") or "").upper()
    change = str(event.get("subscriptionChange") or event.get("changeType") or "").upper()
    return status != "SUBSCRIBED" and change not in ("SUBSCRIBED", "RESUBSCRIBED")


def activity_from_form_submission(
    submission: dict[str, Any], form: dict[str, Any], contact_id: str
) -> ActivityRecord:
    values = {str(v.get("name")): v.get("value") for v in submission.get("values") or []}
    submitted = submission.get("submittedAt")
    guid = str(form.get("id") or form.get("guid"))
    key = f"{guid}:{submitted}:{contact_id}"
    occurred = _checked_time(key, "submittedAt", submitted)
    if occurred is None:
        raise _bad(key, "form submission without a time")
    return ActivityRecord(
        contact_id=contact_id, type=ActivityType.FORM_SUBMISSION, occurred_at=occurred,
        source="form_submission", source_id=key, title=form.get("name"),
        url=submission.get("pageUrl") or None,
        details={"form_id": guid, "form_name": form.get("name"), "values": values},
    )


def activity_from_page_view(event: dict[str, Any]) -> ActivityRecord:
    key = str(event.get("id") or "")
    occurred = _checked_time(key, "occurredAt", event.get("occurredAt"))
    if not key or occurred is None:
        raise _bad(key or "(no id)", "page view without id or time")
    props = event.get("properties") or {}
    url = props.get("hs_url") or props.get("hs_page_url") or props.get("url")
    title = props.get("hs_page_title") or props.get("hs_title") or props.get("title")
    return ActivityRecord(
        contact_id=str(event.get("objectId")), type=ActivityType.PAGE_VIEW, occurred_at=occurred,
        source="web_event", source_id=key, title=title, url=url,
        details={k: v for k, v in props.items() if k not in ("hs_url", "hs_page_title")},
    )


def activity_from_participation(
    participation: dict[str, Any], marketing_event: dict[str, Any]
) -> ActivityRecord | None:
    props = participation.get("properties") or {}
    kind = PARTICIPATION_TYPES.get(str(props.get("attendanceState")))
    if kind is None:
        return None
    contact = (participation.get("associations") or {}).get("contact") or {}
    contact_id = str(contact.get("contactId") or contact.get("id") or "")
    event_id = str(marketing_event.get("objectId") or marketing_event.get("id"))
    key = f"{event_id}:{contact_id}:{props.get('attendanceState')}"
    if not contact_id:
        raise _bad(key, "webinar participation without a contact")
    occurred = _checked_time(key, "occurredAt", props.get("occurredAt")
                             or participation.get("createdAt"))
    if occurred is None:
        raise _bad(key, "webinar participation without a time")
    return ActivityRecord(
        contact_id=contact_id, type=kind, occurred_at=occurred, source="webinar",
        source_id=key, title=marketing_event.get("eventName"),
        url=marketing_event.get("eventUrl") or None,
        details={"event_id": event_id, "state": props.get("attendanceState"),
                 "attendance_seconds": props.get("attendanceDurationSeconds"),
                 "attendance_percentage": props.get("attendancePercentage"),
                 "event_type": marketing_event.get("eventType")},
    )
