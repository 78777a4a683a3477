"""Lead intelligence: what a rep needs to know about an MQL, as structured data and as text that
fits a Salesforce long text field (32,000 characters), most useful first.

`summarize(contact, activities, result, now)` is pure; `render_text(summary)` lays it out.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from connector.activities import WEBINAR_TYPES, ActivityType
from connector.scoring.engine import ActivityLike, ContactLike, ScoreResult, email_domain, url_path

__all__ = ["MAX_TEXT_CHARS", "LeadSummary", "render_text", "summarize"]

MAX_TEXT_CHARS = 32_000  # Salesforce Lead.Description / long text area
TOP_PAGES = 15
SECTION_LINES = 25  # per list section, so one long list cannot push the others out
ANSWER_CHARS = 200  # a form answer shown in the text
RECENT_HIGH_INTENT = 8
PROFILE_PROPERTIES = ("jobtitle", "seniority", "department", "company", "industry",
                      "numemployees", "phone", "country", "state", "city", "website")
# Form fields that only repeat the profile: the summary shows them once, under "Who they are".
ANSWERS_KNOWN = frozenset(("email", "firstname", "lastname", *PROFILE_PROPERTIES))
# Domains a person picks for themselves; a lead on one is less verified.
FREE_MAIL_HINTS = ("gmail.", "yahoo.", "outlook.", "hotmail.", "icloud.", "aol.", "proton.",
                   "gmx.")


@dataclass
class LeadSummary:
    contact_id: str
    name: str
    email: str
    headline: str
    grade: str
    fit_points: float
    interest: float
    mql_reason: str
    profile: dict[str, str]
    verification: dict[str, Any]
    source: dict[str, Any]
    pages: dict[str, Any]
    content: list[dict[str, Any]]
    email_engagement: dict[str, Any]
    webinars: list[dict[str, Any]]
    # why the score: fit rules with their points, the disqualifier, and each interest rule's
    # activities and points now (biggest first); the full explanation is stored with the score
    breakdown: dict[str, Any]
    high_intent: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return asdict(self)


def _day(when: datetime | None) -> str:
    return when.date().isoformat() if when else "-"


def _verification(contact: ContactLike, types: Counter[str], hard_bounce: bool,
                  ) -> dict[str, Any]:
    """How far the contact's data is verified (`types`: its activities by type)."""
    props = contact.properties
    domain = email_domain(contact.email) or ""
    checks = {
        "corporate email": bool(domain) and not domain.startswith(FREE_MAIL_HINTS),
        "email delivered": types[ActivityType.EMAIL_DELIVERED] > 0 and not hard_bounce,
        "email engaged (opened or clicked)":
            types[ActivityType.EMAIL_OPEN] + types[ActivityType.EMAIL_CLICK] > 0,
        "filled a form": types[ActivityType.FORM_SUBMISSION] > 0,
        "phone given": bool(props.get("phone")),
    }
    passed = sum(checks.values())
    level = "high" if passed >= 4 else "medium" if passed >= 2 else "low"
    return {"level": level, "checks": checks, "hard_bounce": hard_bounce,
            "opted_out": str(props.get("hs_email_optout") or "").lower() == "true"}


def summarize(
    contact: ContactLike, activities: Sequence[ActivityLike], result: ScoreResult,
    now: datetime, *, mql_at: datetime | None = None,
) -> LeadSummary:
    """The structured hand-off summary of one contact."""
    props = contact.properties
    name = " ".join(p for p in (props.get("firstname"), props.get("lastname")) if p) or (
        contact.email or contact.hubspot_id)
    profile = {k: str(props[k]) for k in PROFILE_PROPERTIES if props.get(k)}
    headline = ", ".join(p for p in (props.get("jobtitle"), props.get("company")) if p)

    created = contact.hubspot_created_at
    nurture_end = mql_at or now
    source = {
        "original_source": props.get("hs_analytics_source") or "unknown",
        "source_detail": props.get("hs_analytics_source_data_1") or "",
        "created": _day(created),
        "days_in_nurture": (nurture_end - created).days if created else None,
        "lifecycle_stage": result.stage or "",
    }

    # One pass over the activities (a hand-off summarises every MQL of a push): the count of
    # each type, the pages, forms and webinars, the last email of each kind, a hard bounce.
    sent, opened, clicked = (ActivityType.EMAIL_SENT, ActivityType.EMAIL_OPEN,
                             ActivityType.EMAIL_CLICK)
    types: Counter[str] = Counter()
    per_page: dict[str, dict[str, Any]] = {}
    last_visit: datetime | None = None
    forms: list[ActivityLike] = []
    webinar_events: list[ActivityLike] = []
    last_of: dict[str, datetime | None] = {sent: None, opened: None, clicked: None}
    hard_bounce = False
    for a in activities:
        kind = a.type
        types[kind] += 1
        if kind == ActivityType.PAGE_VIEW:
            path = url_path(a.url) or a.title or "?"
            entry = per_page.setdefault(path, {"path": path, "title": a.title or "", "views": 0,
                                               "last": a.occurred_at})
            entry["views"] += 1
            entry["last"] = max(entry["last"], a.occurred_at)
            if last_visit is None or a.occurred_at > last_visit:
                last_visit = a.occurred_at
        elif kind == ActivityType.FORM_SUBMISSION:
            forms.append(a)
        elif kind in WEBINAR_TYPES:
            webinar_events.append(a)
        elif kind in last_of:
            last = last_of[kind]
            if last is None or a.occurred_at > last:
                last_of[kind] = a.occurred_at
        elif kind == ActivityType.EMAIL_BOUNCE and not hard_bounce:
            hard_bounce = (a.details or {}).get("category") == "HARD_BOUNCE"
    top = sorted(per_page.values(), key=lambda e: (-e["views"], -e["last"].timestamp()))
    pages = {
        "total_views": types[ActivityType.PAGE_VIEW],
        "distinct_pages": len(per_page),
        "last_visit": _day(last_visit),
        "top": [{**e, "last": _day(e["last"])} for e in top[:TOP_PAGES]],
    }

    content = [
        {"form": (a.details or {}).get("form_name") or a.title or "form",
         "date": _day(a.occurred_at),
         "answers": {k: v for k, v in ((a.details or {}).get("values") or {}).items()
                     if k not in ANSWERS_KNOWN and v not in (None, "")}}
        for a in sorted(forms, key=lambda a: a.occurred_at, reverse=True)
    ]

    engagement = {
        "sent": types[sent], "delivered": types[ActivityType.EMAIL_DELIVERED],
        "opened": types[opened], "clicked": types[clicked],
        "bounced": types[ActivityType.EMAIL_BOUNCE],
        "unsubscribed": types[ActivityType.EMAIL_UNSUBSCRIBE],
        "spam_reports": types[ActivityType.EMAIL_SPAMREPORT],
        "last_sent": _day(last_of[sent]), "last_open": _day(last_of[opened]),
        "last_click": _day(last_of[clicked]),
    }

    webinars = [
        {"webinar": a.title or "webinar", "state": a.type.removeprefix("webinar_"),
         "date": _day(a.occurred_at)}
        for a in sorted(webinar_events, key=lambda a: a.occurred_at, reverse=True)
    ]

    high = sorted((c for c in result.contributions if c.high_intent and c.points > 0),
                  key=lambda c: c.occurred_at, reverse=True)[:RECENT_HIGH_INTENT]
    high_intent = [{"action": c.rule, "what": c.label, "date": _day(c.occurred_at),
                    "points_now": round(c.decayed, 1)} for c in high]

    return LeadSummary(
        contact_id=contact.hubspot_id, name=name, email=contact.email or "", headline=headline,
        grade=result.fit.grade, fit_points=result.fit.points, interest=result.interest,
        mql_reason=result.mql_reason, profile=profile,
        verification=_verification(contact, types, hard_bounce), source=source, pages=pages,
        content=content, email_engagement=engagement, webinars=webinars,
        breakdown=_breakdown(result), high_intent=high_intent,
    )


def _breakdown(result: ScoreResult) -> dict[str, Any]:
    """The score's reasons as the hand-off lists them: read from its contributions (the
    high-intent actions' too), not from a full explanation made for one total a rule."""
    by_rule: dict[str, list[Any]] = {}
    for c in result.contributions:  # biggest first
        agg = by_rule.setdefault(c.rule, [0, 0.0])
        agg[0] += 1
        agg[1] += round(c.decayed, 4)  # as the stored explanation has each
    return {
        "fit": [[c.rule, c.points] for c in result.fit.contributions],
        "disqualified_by": result.fit.disqualified_by,
        "interest": [[name, n, total] for name, (n, total)
                     in sorted(by_rule.items(), key=lambda kv: -abs(kv[1][1]))],
    }


def _section(title: str, lines: Sequence[str], keep: int = 0) -> list[str]:
    """A titled block; lines after the first `keep` (when > 0 of a longer list) are counted."""
    if not lines:
        return []
    shown = list(lines)
    if keep and len(shown) > keep:
        shown = [*shown[:keep], f"... and {len(lines) - keep} more"]
    return [f"== {title} ==", *shown, ""]


def _short(value: Any) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= ANSWER_CHARS else text[: ANSWER_CHARS - 1] + "…"


def render_text(summary: LeadSummary, limit: int = MAX_TEXT_CHARS) -> str:
    """The summary as plain text, most useful first, never longer than `limit` characters."""
    s = summary
    head = [
        f"{s.name} <{s.email}>" + (f" - {s.headline}" if s.headline else ""),
        (f"Fit grade {s.grade} ({s.fit_points:g} pts), interest {s.interest:g}/100. "
         f"{s.mql_reason}."),
        "",
    ]
    recent = [f"- {h['date']}  {h['action']}: {h['what']} (+{h['points_now']:g} now)"
              for h in s.high_intent]
    answers = []
    for c in s.content:
        if c["answers"]:
            shown = "; ".join(f"{k}: {_short(v)}" for k, v in c["answers"].items())
            answers.append(f"- {c['date']}  {c['form']}: {shown}")
    b = s.breakdown
    why = ["Fit: " + ", ".join(f"{name} {points:+g}" for name, points in b["fit"] if points)]
    if b["disqualified_by"]:
        why.append(f"Disqualified: {b['disqualified_by']}")
    why += [f"- {name}: {n}x, {total:+.1f} now" for name, n, total in b["interest"]]
    v = s.verification
    who = [f"Data verification: {v['level']} ("
           + ", ".join(f"{k} {'yes' if ok else 'no'}" for k, ok in v["checks"].items()) + ")"]
    if v["opted_out"]:
        who.append("Opted out of marketing email.")
    who += [f"{k}: {val}" for k, val in s.profile.items()]
    src = s.source
    origin = [f"Original source: {src['original_source']}"
              + (f" ({src['source_detail']})" if src["source_detail"] else ""),
              f"Created {src['created']}; {src['days_in_nurture']} days in nurture"]
    p = s.pages
    pages = [(f"{p['total_views']} page views on {p['distinct_pages']} pages, last visit "
              f"{p['last_visit']}")]
    pages += [f"- {e['path']} ({e['title']}): {e['views']}x, last {e['last']}" for e in p["top"]]
    content = [f"- {c['date']}  {c['form']}" for c in s.content]
    e = s.email_engagement
    emails = [(f"Sent {e['sent']}, delivered {e['delivered']}, opened {e['opened']}, clicked "
               f"{e['clicked']}, bounced {e['bounced']}, unsubscribed {e['unsubscribed']}; last "
               f"open {e['last_open']}, last click {e['last_click']}")]
    webinars = [f"- {w['date']}  {w['webinar']}: {w['state']}" for w in s.webinars]

    parts = [
        head,
        _section("Recent high-intent actions", recent),
        _section("What they told us", answers, SECTION_LINES),
        _section("Why this score", why),
        _section("Who they are", who),
        _section("Source and nurture", origin),
        _section("Pages viewed", pages),
        _section("Content consumed", content, SECTION_LINES),
        _section("Email engagement", emails),
        _section("Webinars", webinars, SECTION_LINES),
    ]
    text = "\n".join(line for part in parts for line in part).rstrip() + "\n"
    if len(text) <= limit:
        return text
    marker = "\n... (truncated to fit the field)\n"
    return text[: limit - len(marker)].rsplit("\n", 1)[0] + marker


def summary_for(contact: ContactLike, activities: Sequence[ActivityLike], result: ScoreResult,
                now: datetime, mql_at: datetime | None = None) -> Mapping[str, Any]:
    """Structured summary plus its text, ready to store or push."""
    summary = summarize(contact, activities, result, now, mql_at=mql_at)
    return {"summary": summary.as_dict(), "text": render_text(summary)}
