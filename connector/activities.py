"""The activity vocabulary: the kinds of engagement the pull stores, scoring rules test, and the
push tells sales about. Defined once here; the store keeps each kind as its plain string value.

    ActivityType.PAGE_VIEW == "page_view"      # compares (and hashes) as the stored string
    label("email_open")                        # "Email opened": how a rep reads it
"""

from __future__ import annotations

import functools
from enum import StrEnum
from typing import Any

__all__ = ["EMAIL_TYPES", "PASSIVE_TYPES", "WEBINAR_TYPES", "ActivityType", "activity_label",
           "label", "url_path"]


class ActivityType(StrEnum):
    """A stored activity's `type` (the order is the one `scoring.toml` errors list them in)."""

    EMAIL_SENT = "email_sent"
    EMAIL_DELIVERED = "email_delivered"
    EMAIL_OPEN = "email_open"
    EMAIL_CLICK = "email_click"
    EMAIL_BOUNCE = "email_bounce"
    EMAIL_SPAMREPORT = "email_spamreport"
    EMAIL_UNSUBSCRIBE = "email_unsubscribe"
    FORM_SUBMISSION = "form_submission"
    PAGE_VIEW = "page_view"
    WEBINAR_REGISTERED = "webinar_registered"
    WEBINAR_ATTENDED = "webinar_attended"
    WEBINAR_NO_SHOW = "webinar_no_show"
    WEBINAR_CANCELLED = "webinar_cancelled"


EMAIL_TYPES = tuple(t for t in ActivityType if t.startswith("email_"))
WEBINAR_TYPES = tuple(t for t in ActivityType if t.startswith("webinar_"))
# Done to the contact rather than by them: no sign of interest on their part.
PASSIVE_TYPES = frozenset({ActivityType.EMAIL_SENT, ActivityType.EMAIL_DELIVERED,
                           ActivityType.EMAIL_BOUNCE})

_LABELS: dict[str, str] = {
    ActivityType.PAGE_VIEW: "Page view",
    ActivityType.FORM_SUBMISSION: "Form submitted",
    ActivityType.WEBINAR_REGISTERED: "Webinar registration",
    ActivityType.WEBINAR_ATTENDED: "Webinar attended",
    ActivityType.WEBINAR_NO_SHOW: "Webinar missed",
    ActivityType.WEBINAR_CANCELLED: "Webinar registration cancelled",
    ActivityType.EMAIL_SENT: "Email sent",
    ActivityType.EMAIL_DELIVERED: "Email delivered",
    ActivityType.EMAIL_OPEN: "Email opened",
    ActivityType.EMAIL_CLICK: "Email link clicked",
    ActivityType.EMAIL_BOUNCE: "Email bounced",
    ActivityType.EMAIL_SPAMREPORT: "Email reported as spam",
    ActivityType.EMAIL_UNSUBSCRIBE: "Unsubscribed from email",
}


def label(kind: str) -> str:
    """How a rep reads an activity type ("Email opened"); an unknown one as its words."""
    return _LABELS.get(kind) or str(kind).replace("_", " ").capitalize()


@functools.lru_cache(maxsize=8192)
def url_path(url: str | None) -> str | None:
    """The path of a URL without query or fragment ("/pricing" of https://x.com/pricing?a=1)."""
    if not url:
        return None
    rest = url.split("://", 1)[-1]
    slash = rest.find("/")
    path = rest[slash:] if slash >= 0 else "/"
    return path.split("?", 1)[0].split("#", 1)[0]


# plain text: a label is made for every counted activity, and an enum member is slower to reach
_FORM, _PAGE = str(ActivityType.FORM_SUBMISSION), str(ActivityType.PAGE_VIEW)


def activity_label(activity: Any) -> str:
    """The form, page or email behind an activity (anything with the stored activity's `type`,
    `title`, `url` and `details`; the details are read of forms only), as a score's
    explanation names it."""
    kind = activity.type
    if kind == _FORM:
        details = activity.details or {}
        return str(details.get("form_name") or activity.title or "form")
    if kind == _PAGE:
        return str(url_path(activity.url) or activity.title or "page")
    return str(activity.title or activity.url or activity.type)
