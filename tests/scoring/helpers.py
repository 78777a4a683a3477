"""Small in-memory contacts and activities for the scoring tests, and the shipped model."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from connector.scoring import Engine, ScoringModel, load_model, parse_model

REPO = Path(__file__).resolve().parents[2]
DEFAULT_MODEL = REPO / "mappings" / "scoring.toml"
NOW = datetime(2026, 11, 1, 12, tzinfo=UTC)
SITE = "https://www.handshake-demo.com"
_ids = itertools.count(1)


@dataclass
class FakeContact:
    hubspot_id: str = "101"
    email: str | None = "ada@acme-corp.com"
    properties: dict[str, Any] = field(default_factory=dict)
    lifecycle_stage: str | None = None
    hubspot_created_at: datetime | None = NOW - timedelta(days=60)


@dataclass
class FakeActivity:
    type: str
    occurred_at: datetime
    title: str | None = None
    url: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    id: int = field(default_factory=lambda: next(_ids))


def a_fit_contact(**props: Any) -> FakeContact:
    """Grade A: VP, 100-500 staff, target industry, economic buyer, corporate email (100 pts)."""
    base = {"firstname": "Ada", "lastname": "Lovelace", "email": "ada@acme-corp.com",
            "jobtitle": "VP of Finance", "seniority": "vp", "department": "finance",
            "numemployees": "100-500", "industry": "Financial Services", "company": "Acme Corp"}
    base.update(props)
    return FakeContact(email=base.get("email"), properties=base)


def form(name: str, at: datetime, **values: Any) -> FakeActivity:
    return FakeActivity("form_submission", at, title=name,
                        details={"form_id": f"guid-{name[:8]}", "form_name": name,
                                 "values": values})


def page(path: str, at: datetime, title: str = "") -> FakeActivity:
    return FakeActivity("page_view", at, title=title or path, url=SITE + path)


def webinar(state: str, at: datetime, title: str = "Webinar: Fit versus interest") -> FakeActivity:
    return FakeActivity(f"webinar_{state}", at, title=title)


def email(kind: str, at: datetime, **details: Any) -> FakeActivity:
    return FakeActivity(f"email_{kind}", at, title="Your monthly digest", details=details)


def default_model() -> ScoringModel:
    return load_model(DEFAULT_MODEL)


def default_engine() -> Engine:
    return Engine(default_model())


def model_with(old: str, new: str) -> ScoringModel:
    """The shipped model with one piece of text replaced (which must occur exactly once)."""
    text = DEFAULT_MODEL.read_text(encoding="utf-8")
    assert text.count(old) == 1, old
    return parse_model(text.replace(old, new), "scoring-copy.toml")
