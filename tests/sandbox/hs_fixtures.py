"""Helpers for the HubSpot sandbox tests: a tiny hand-made dataset and a validator of
requests/responses against the official OpenAPI specs copied in tests/fixtures/hubspot-openapi/."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

from connector.sandbox.dataset import (
    EmailEventSeed,
    FormSeed,
    FormSubmissionSeed,
    GroundTruth,
    HubSpotContactSeed,
    HubSpotOwnerSeed,
    MarketingEventSeed,
    PageViewSeed,
    ParticipationSeed,
    SandboxDataset,
)

SPECS = Path(__file__).resolve().parent.parent / "fixtures" / "hubspot-openapi"
NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
TOKEN = "pat-sandbox-0000"
FORM_GUID = "0b0c4d4e-0000-4000-8000-000000000001"
FORM_GUID_2 = "0b0c4d4e-0000-4000-8000-000000000002"
WEBINAR_ID = "501"
STAGES = ("subscriber", "lead", "marketingqualifiedlead")


def tiny_dataset(contacts: int = 30, now: datetime = NOW) -> SandboxDataset:
    """`contacts` contacts (ids 101..), each modified at a distinct minute, with a little
    activity for the first few; contact 103 is archived; 104 was merged into 105."""
    seeds: list[HubSpotContactSeed] = []
    for i in range(contacts):
        cid = str(101 + i)
        created = now - timedelta(days=60, minutes=i)
        seeds.append(
            HubSpotContactSeed(
                id=cid,
                properties={
                    "email": f"person{i}@example{i % 3}.com",
                    "firstname": f"First{i}",
                    "lastname": f"Last{i}",
                    "jobtitle": "VP Marketing" if i % 2 else "Engineer",
                    "company": f"Company {i % 5}",
                    "lifecyclestage": STAGES[i % 3],
                    "hs_lead_status": "NEW" if i % 4 == 0 else None,
                },
                created_at=created,
                updated_at=now - timedelta(days=30) + timedelta(minutes=i),
            )
        )
    seeds[2].archived = True
    seeds[3].merged_into = "105"
    seeds[4].merged_ids = ["104"]
    owners = [
        HubSpotOwnerSeed(
            id=str(9001 + i),
            email=f"rep{i}@corp.example",
            first_name=f"Rep{i}",
            last_name="Seller",
            user_id=7001 + i,
            teams=["SDR-NA"] if i == 0 else [],
        )
        for i in range(3)
    ]
    events = [
        EmailEventSeed(
            id=f"e{i}",
            recipient="person0@example0.com",
            type=t,
            created=now - timedelta(days=5, hours=-i),
            email_campaign_id=42,
            subject="Webinar invite" if t == "SENT" else None,
            url="https://example.com/webinar" if t == "CLICK" else None,
        )
        for i, t in enumerate(["SENT", "DELIVERED", "OPEN", "CLICK", "OPEN"])
    ] + [
        EmailEventSeed(
            id="e9",
            recipient="person1@example1.com",
            type="BOUNCE",
            created=now - timedelta(days=4),
            email_campaign_id=43,
            extra={"category": "HARD_BOUNCE", "status": "5.1.1"},
        ),
    ]
    forms = [
        FormSeed(
            guid=FORM_GUID,
            name="Whitepaper download",
            kind="whitepaper",
            fields=[
                {"name": "email", "label": "Email", "fieldType": "email"},
                {"name": "firstname", "label": "First name", "fieldType": "text"},
                {
                    "name": "budget",
                    "label": "Budget",
                    "fieldType": "select",
                    "options": [
                        {"label": "< 10k", "value": "lt10k"},
                        {"label": "10k+", "value": "gte10k"},
                    ],
                },
            ],
        ),
        FormSeed(
            guid=FORM_GUID_2,
            name="Contact us",
            kind="contact",
            fields=[
                {"name": "email", "label": "Email", "fieldType": "email"},
                {"name": "message", "label": "Message", "fieldType": "textarea"},
            ],
        ),
    ]
    submissions = [
        FormSubmissionSeed(
            form_guid=FORM_GUID,
            submitted_at=now - timedelta(days=10 - i),
            page_url="https://example.com/whitepaper",
            values={
                "email": f"person{i}@example{i % 3}.com",
                "firstname": f"First{i}",
                "budget": "gte10k",
            },
            contact_id=str(101 + i),
        )
        for i in range(3)
    ]
    views = [
        PageViewSeed(
            id=f"pv{i}",
            contact_id="101",
            occurred_at=now - timedelta(days=3, minutes=-i * 5),
            url=f"https://example.com/page{i}",
            title=f"Page {i}",
            session_id="s1" if i < 3 else "s2",
        )
        for i in range(5)
    ]
    webinar = MarketingEventSeed(
        id=WEBINAR_ID,
        external_event_id="web-2026-10",
        name="October webinar",
        event_type="WEBINAR",
        start=now - timedelta(days=20),
        end=now - timedelta(days=20, hours=-1),
        organizer="Marketing",
    )
    participations = [
        ParticipationSeed(
            event_id=WEBINAR_ID,
            contact_id="101",
            state="REGISTERED",
            occurred_at=now - timedelta(days=25),
        ),
        ParticipationSeed(
            event_id=WEBINAR_ID,
            contact_id="101",
            state="ATTENDED",
            occurred_at=now - timedelta(days=20),
        ),
        ParticipationSeed(
            event_id=WEBINAR_ID,
            contact_id="102",
            state="REGISTERED",
            occurred_at=now - timedelta(days=24),
        ),
        ParticipationSeed(
            event_id=WEBINAR_ID,
            contact_id="102",
            state="NO_SHOW",
            occurred_at=now - timedelta(days=20),
        ),
    ]
    truth = GroundTruth(
        contact_ids=[],
        archived_ids=["103"],
        merged={"104": "105"},
        activities_by_type={},
        activities_by_contact={},
        sales_ready=[],
        existing_sf_contacts=[],
        existing_sf_leads=[],
        bad_records={},
    )
    return SandboxDataset(
        seed=0,
        generated_at=now,
        contacts=seeds,
        owners=owners,
        email_events=events,
        forms=forms,
        form_submissions=submissions,
        page_views=views,
        marketing_events=[webinar],
        participations=participations,
        sf_users=[],
        sf_records=[],
        ground_truth=truth,
    )


# ---------------------------------------------------------------------- spec validation


@cache
def _spec(name: str) -> dict[str, Any]:
    return json.loads((SPECS / name).read_text())


def _relax(node: Any) -> Any:
    """HubSpot sends null for unset properties although the spec types the map values as
    strings; allow null in string-valued maps only (everything else stays strict)."""
    if isinstance(node, dict):
        out = {k: _relax(v) for k, v in node.items() if k != "example"}
        extra = out.get("additionalProperties")
        if isinstance(extra, dict) and extra.get("type") == "string":
            out["additionalProperties"] = {**extra, "type": ["string", "null"]}
        return out
    if isinstance(node, list):
        return [_relax(v) for v in node]
    return node


def _schema_for(spec_name: str, path: str, method: str, status: int | None) -> dict[str, Any]:
    spec = _spec(spec_name)
    op = spec["paths"][path][method.lower()]
    if status is None:
        content = op["requestBody"]["content"]["application/json"]["schema"]
    else:
        content = op["responses"][str(status)]["content"]["application/json"]["schema"]
    # a JSON Schema whose $refs resolve inside the spec document itself
    return {**_relax({"components": spec.get("components", {})}), **_relax(content)}


def validate_response(spec_name: str, path: str, method: str, status: int, body: Any) -> None:
    """Raise jsonschema.ValidationError unless `body` fits the spec's response schema."""
    jsonschema.validate(body, _schema_for(spec_name, path, method, status))


def validate_request(spec_name: str, path: str, method: str, body: Any) -> None:
    """Raise unless `body` fits the spec's request schema for the operation."""
    jsonschema.validate(body, _schema_for(spec_name, path, method, None))


def validate_schema(spec_name: str, schema_name: str, body: Any) -> None:
    """Raise unless `body` fits the named component schema of the spec."""
    spec = _spec(spec_name)
    jsonschema.validate(
        body,
        {
            **_relax({"components": spec.get("components", {})}),
            "$ref": f"#/components/schemas/{schema_name}",
        },
    )


def spec_path_exists(spec_name: str, path: str, method: str) -> bool:
    """Whether the official spec declares this path and method."""
    return method.lower() in _spec(spec_name)["paths"].get(path, {})


def template_matches(template: str, path: str) -> bool:
    """Whether a concrete path fits a spec path template."""
    pattern = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$"
    return re.match(pattern, path) is not None
