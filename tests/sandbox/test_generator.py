"""The seeded generator: determinism, the documented sales-ready rule, persona and engagement
sanity. The rule is re-implemented here from the module docstring so a drift in either the
generator or its scoring helpers shows up."""

from __future__ import annotations

import json
import statistics
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from connector.sandbox.dataset import SandboxDataset
from connector.sandbox.generator import (
    ACTIVITY_TYPES,
    COMPETITOR_DOMAINS,
    DEFAULT_NOW,
    FREE_MAIL_DOMAINS,
    contact_activities,
    dataset_to_json,
    fit_grade,
    generate,
)

# --- the rule, written out again from the docstring -------------------------------------------
SENIORITY = {"c_level": 40, "vp": 35, "director": 30, "manager": 15,
             "individual_contributor": 5, "student": 0}
SIZE = {"1-5": 0, "5-25": 0, "25-50": 5, "50-100": 10, "100-500": 20, "500-1000": 25, "1000+": 25}
TARGET = {"Computer Software", "Information Technology and Services", "Financial Services",
          "Hospital & Health Care", "Manufacturing"}
BUYER_OR_IT = {"executive", "finance", "operations", "procurement", "it", "engineering", "data"}
FORM = {"whitepaper": 5, "case_study": 10, "webinar": 0, "consultation": 50, "demo": 50,
        "contact": 20, "newsletter": 2}
PART = {"REGISTERED": 15, "ATTENDED": 25}
EMAIL = {"OPEN": 1, "CLICK": 3}


def my_fit(props: dict[str, str | None]) -> tuple[int, bool]:
    domain = (props.get("email") or "").rsplit("@", 1)[-1]
    points = SENIORITY[props["seniority"] or ""] + SIZE[props["numemployees"] or ""]
    points += 20 if props.get("industry") in TARGET else 5
    points += 10 if props.get("department") in BUYER_OR_IT else 0
    points += 0 if domain in FREE_MAIL_DOMAINS else 15
    disq = (props["seniority"] == "student" or domain.endswith(".edu")
            or domain in COMPETITOR_DOMAINS)
    return points, disq


def my_grade(props: dict[str, str | None]) -> str:
    points, disq = my_fit(props)
    if disq:
        return "F"
    for grade, floor in (("A", 85), ("B", 65), ("C", 45), ("D", 25)):
        if points >= floor:
            return grade
    return "F"


def my_interest(ds: SandboxDataset, half_life: float) -> dict[str, float]:
    now = ds.generated_at
    email_to_id = {c.properties["email"]: c.id for c in ds.contacts if c.properties["email"]}
    kinds = {f.guid: f.kind for f in ds.forms}
    raw: dict[str, float] = {c.id: 0.0 for c in ds.contacts}

    def add(cid: str, points: int, at: datetime) -> None:
        age = (now - at).total_seconds() / 86400
        raw[cid] += points * 0.5 ** (age / half_life)

    for ev in ds.email_events:
        add(email_to_id[ev.recipient], EMAIL.get(ev.type, 0), ev.created)
    for sub in ds.form_submissions:
        add(sub.contact_id, FORM[kinds[sub.form_guid]], sub.submitted_at)
    for pv in ds.page_views:
        path = pv.url.split("handshake-demo.com", 1)[1]
        points = (5 if path.startswith(("/pricing", "/demo"))
                  else 0 if path.startswith("/careers") else 1)
        add(pv.contact_id, points, pv.occurred_at)
    for part in ds.participations:
        add(part.contact_id, PART.get(part.state, 0), part.occurred_at)
    return {cid: min(100.0, v) for cid, v in raw.items()}


def eligible(c) -> bool:  # type: ignore[no-untyped-def]
    return (not c.archived and c.merged_into is None and bool(c.properties["email"])
            and c.properties["lifecyclestage"] not in ("opportunity", "customer"))


@pytest.fixture(scope="module")
def ds() -> SandboxDataset:
    return generate(42, 2000)


# --- determinism ---------------------------------------------------------------------------------


def test_same_seed_gives_byte_identical_data_and_ground_truth() -> None:
    a = dataset_to_json(generate(7, 300))
    b = dataset_to_json(generate(7, 300))
    assert a == b
    doc = json.loads(a)
    assert doc["ground_truth"]["sales_ready"]
    assert list(doc) == sorted(doc)  # canonical: keys sorted


def test_same_bytes_across_processes_with_different_hash_seeds() -> None:
    import hashlib
    import os
    import subprocess
    import sys

    code = ("import hashlib, sys; from connector.sandbox.generator import generate, "
            "dataset_to_json; sys.stdout.write(hashlib.sha256(dataset_to_json("
            "generate(7, 300))).hexdigest())")
    digests = {
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                       env={**os.environ, "PYTHONHASHSEED": hash_seed}).stdout
        for hash_seed in ("1", "2")
    }
    assert digests == {hashlib.sha256(dataset_to_json(generate(7, 300))).hexdigest()}


def test_different_seeds_differ() -> None:
    a = generate(7, 300)
    b = generate(8, 300)
    assert dataset_to_json(a) != dataset_to_json(b)
    assert a.ground_truth.sales_ready != b.ground_truth.sales_ready
    assert [c.properties["email"] for c in a.contacts] != [
        c.properties["email"] for c in b.contacts
    ]


def test_default_now_is_fixed_and_now_is_honoured() -> None:
    assert generate(1, 50).generated_at == DEFAULT_NOW
    later = datetime(2027, 3, 1, tzinfo=UTC)
    ds = generate(1, 50, now=later)
    assert ds.generated_at == later
    assert max(pv.occurred_at for pv in ds.page_views) <= later
    assert min(c.created_at for c in ds.contacts) >= later - timedelta(days=365)


def test_rejects_empty_dataset() -> None:
    with pytest.raises(ValueError, match="contacts"):
        generate(1, 0)


# --- the sales-ready rule ------------------------------------------------------------------------


def test_sales_ready_share_is_the_seeds_figure(ds: SandboxDataset) -> None:
    live = ds.ground_truth.contact_ids
    share = len(ds.ground_truth.sales_ready) / len(live)
    assert 0.05 <= share <= 0.15, share


@pytest.mark.parametrize("half_life", [30.0, 45.0, 60.0])
def test_documented_rule_reproduces_ground_truth_for_every_contact(
    ds: SandboxDataset, half_life: float
) -> None:
    scores = my_interest(ds, half_life)
    expected = set()
    for c in ds.contacts:
        if not eligible(c):
            continue
        grade = my_grade(c.properties)
        threshold = {"A": 50, "B": 50, "C": 80}.get(grade)
        if threshold is not None and scores[c.id] >= threshold:
            expected.add(c.properties["email"])
    assert expected == set(ds.ground_truth.sales_ready)


def test_no_contact_sits_near_the_boundary(ds: SandboxDataset) -> None:
    fast = my_interest(ds, 30.0)  # lowest interest a 30..60-day half-life gives
    slow = my_interest(ds, 60.0)  # highest
    ready = set(ds.ground_truth.sales_ready)
    for c in ds.contacts:
        if not eligible(c):
            continue
        points, disq = my_fit(c.properties)
        if c.properties["email"] in ready:
            assert my_grade(c.properties) == "A"
            assert fast[c.id] >= 65, (c.id, fast[c.id])
        elif points >= 20 and not disq:
            assert slow[c.id] <= 25, (c.id, slow[c.id], points)


def test_misfits_can_be_very_active_but_never_ready(ds: SandboxDataset) -> None:
    scores = my_interest(ds, 45.0)
    ready = set(ds.ground_truth.sales_ready)
    hot_misfits = [c for c in ds.contacts if eligible(c) and my_grade(c.properties) in ("D", "F")
                   and scores[c.id] >= 80]
    assert len(hot_misfits) >= 5
    assert not {c.properties["email"] for c in hot_misfits} & ready


def test_module_helpers_agree_with_the_written_rule(ds: SandboxDataset) -> None:
    for c in ds.contacts[:500]:
        if c.properties["email"]:
            assert fit_grade(c.properties) == my_grade(c.properties)
    acts = contact_activities(ds)
    assert sum(len(v) for v in acts.values()) == (
        len(ds.email_events) + len(ds.form_submissions) + len(ds.page_views)
        + len(ds.participations)
    )


def test_sales_ready_contacts_show_recent_high_intent(ds: SandboxDataset) -> None:
    now = ds.generated_at
    kinds = {f.guid: f.kind for f in ds.forms}
    by_email = {c.properties["email"]: c.id for c in ds.contacts}
    ready = {by_email[e] for e in ds.ground_truth.sales_ready}
    asked: set[str] = set()
    for sub in ds.form_submissions:
        recent = now - sub.submitted_at <= timedelta(days=14)
        if sub.contact_id in ready and recent and kinds[sub.form_guid] in ("consultation", "demo"):
            asked.add(sub.contact_id)
            assert sub.values["budget"] in ("$50k - $100k", "$100k+")
            assert sub.values["purchase_timeframe"] in ("This quarter", "Within 6 months")
    assert asked == ready


# --- personas ------------------------------------------------------------------------------------


def test_personas_cover_the_segments(ds: SandboxDataset) -> None:
    live = [c for c in ds.contacts if c.properties["email"]]
    seniorities = Counter(c.properties["seniority"] for c in live)
    assert set(seniorities) == set(SENIORITY)
    departments = {c.properties["department"] for c in live}
    assert {"finance", "it", "marketing"} <= departments
    domains = Counter((c.properties["email"] or "").rsplit("@", 1)[1] for c in live)
    free = sum(n for d, n in domains.items() if d in FREE_MAIL_DOMAINS)
    assert 0.1 < free / len(live) < 0.4
    assert any(d in COMPETITOR_DOMAINS for d in domains)
    students = [c for c in live if c.properties["jobtitle"] == "Student"]
    assert students and all((c.properties["email"] or "").endswith(".edu") for c in students)
    assert {c.properties["numemployees"] for c in live} == set(SIZE)
    assert len({c.properties["industry"] for c in live}) >= 8
    assert len({c.properties["country"] for c in live}) >= 8
    us = [c for c in live if c.properties["country"] == "United States"]
    assert us and all(c.properties["state"] for c in us)
    assert sum(1 for c in live if c.properties["phone"]) > len(live) / 2
    assert all(c.properties["hs_lead_status"] in (None, "") for c in ds.contacts)
    stages = Counter(c.properties["lifecyclestage"] for c in ds.contacts)
    assert stages["subscriber"] > 0 and stages["lead"] > 0
    assert 0 < stages["opportunity"] + stages["customer"] < len(ds.contacts) * 0.05
    sources = {c.properties["hs_analytics_source"] for c in ds.contacts}
    assert {"ORGANIC_SEARCH", "PAID_SEARCH", "EMAIL_MARKETING", "SOCIAL_MEDIA", "REFERRALS",
            "DIRECT_TRAFFIC", "OFFLINE"} <= sources
    months = {c.created_at.strftime("%Y-%m") for c in ds.contacts}
    assert len(months) >= 12


def test_owners_are_the_salesforce_team(ds: SandboxDataset) -> None:
    reps = [u for u in ds.sf_users if u.team != "Sales Management"]
    assert len(reps) == 12
    teams = Counter(u.team for u in reps)
    assert set(teams) == {"SDR-NA", "SDR-EMEA", "SDR-APAC", "Enterprise"}
    assert all(u.id.startswith("005") and len(u.id) == 18 for u in ds.sf_users)
    assert {o.email for o in ds.owners} == {u.email for u in reps}
    # the reps report to one sales manager (User.ManagerId), who is in no territory
    (manager,) = [u for u in ds.sf_users if u.team == "Sales Management"]
    assert {u.manager_id for u in reps} == {manager.id}
    assert manager.territory == "" and manager.manager_id is None
    owner_ids = {o.id for o in ds.owners}
    owned = [c for c in ds.contacts if c.properties["hubspot_owner_id"]]
    assert 0 < len(owned) < len(ds.contacts) / 2
    assert all(c.properties["hubspot_owner_id"] in owner_ids for c in owned)


def test_analytics_counters_match_page_views(ds: SandboxDataset) -> None:
    views: dict[str, list[datetime]] = {}
    sessions: dict[str, set[str]] = {}
    for pv in ds.page_views:
        views.setdefault(pv.contact_id, []).append(pv.occurred_at)
        sessions.setdefault(pv.contact_id, set()).add(pv.session_id)
    for c in ds.contacts:
        mine = views.get(c.id, [])
        assert c.properties["hs_analytics_num_page_views"] == str(len(mine))
        assert c.properties["hs_analytics_num_visits"] == str(len(sessions.get(c.id, ())))
        last = c.properties["hs_analytics_last_visit_timestamp"]
        if mine:
            newest = max(mine)
            ms = newest.microsecond // 1000
            assert last == newest.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms:03d}Z"
        else:
            assert last is None


def test_archived_merged_and_bad_records(ds: SandboxDataset) -> None:
    gt = ds.ground_truth
    by_id = {c.id: c for c in ds.contacts}
    assert gt.archived_ids and all(by_id[i].archived for i in gt.archived_ids)
    assert gt.merged
    for away, survivor in gt.merged.items():
        assert by_id[away].merged_into == survivor
        assert away in by_id[survivor].merged_ids
        assert by_id[survivor].properties["lastname"] == by_id[away].properties["lastname"]
    everyone = {c.id for c in ds.contacts}
    assert set(gt.contact_ids) == everyone - set(gt.archived_ids) - set(gt.merged)
    assert gt.bad_records
    for cid, reason in gt.bad_records.items():
        assert reason == "no email" and by_id[cid].properties["email"] is None
        assert cid in gt.contact_ids  # live, so a sync meets them
        assert gt.activities_by_contact[cid] == 0
    ids = [int(c.id) for c in ds.contacts]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    emails = [c.properties["email"] for c in ds.contacts if c.properties["email"]]
    assert len(set(emails)) == len(emails)


def test_existing_salesforce_records(ds: SandboxDataset) -> None:
    gt = ds.ground_truth
    emails = {c.properties["email"] for c in ds.contacts}
    assert gt.existing_sf_contacts and set(gt.existing_sf_contacts) <= emails
    assert gt.existing_sf_leads and set(gt.existing_sf_leads) <= emails
    assert not set(gt.existing_sf_contacts) & set(gt.existing_sf_leads)
    by_type: dict[str, list[dict]] = {}
    for r in ds.sf_records:
        by_type.setdefault(r.sobject, []).append(r.fields)
    accounts = {a["Id"] for a in by_type["Account"]}
    assert all(c["AccountId"] in accounts for c in by_type["Contact"])
    users = {u.id for u in ds.sf_users}
    for lead in by_type["Lead"]:
        assert lead["Id"].startswith("00Q") and len(lead["Id"]) == 18
        assert lead["LastName"] and lead["Company"] and lead["OwnerId"] in users
        assert lead["Status"] in ("Open - Not Contacted", "Working - Contacted")
        assert lead["IsConverted"] is False
    ids = [r.fields["Id"] for r in ds.sf_records]
    assert len(set(ids)) == len(ids)
    assert set(gt.sales_ready) & set(gt.existing_sf_leads)  # the connector must update these


# --- engagement ----------------------------------------------------------------------------------


def test_activity_counts_match_the_data_for_live_contacts(ds: SandboxDataset) -> None:
    gt = ds.ground_truth
    live = set(gt.contact_ids)
    id_of = {c.properties["email"]: c.id for c in ds.contacts if c.properties["email"]}
    counts: Counter[str] = Counter()
    per: Counter[str] = Counter()
    email_map = {"SENT": "email_sent", "DELIVERED": "email_delivered", "OPEN": "email_open",
                 "CLICK": "email_click", "BOUNCE": "email_bounce",
                 "SPAMREPORT": "email_spamreport", "STATUSCHANGE": "email_unsubscribe"}
    for ev in ds.email_events:
        cid = id_of[ev.recipient]
        if cid in live:
            counts[email_map[ev.type]] += 1
            per[cid] += 1
    for sub in ds.form_submissions:
        if sub.contact_id in live:
            counts["form_submission"] += 1
            per[sub.contact_id] += 1
    for pv in ds.page_views:
        if pv.contact_id in live:
            counts["page_view"] += 1
            per[pv.contact_id] += 1
    for part in ds.participations:
        if part.contact_id in live:
            counts["webinar_" + part.state.lower()] += 1
            per[part.contact_id] += 1
    assert set(gt.activities_by_type) == set(ACTIVITY_TYPES)
    assert gt.activities_by_type == {t: counts[t] for t in ACTIVITY_TYPES}
    assert all(n > 0 for n in gt.activities_by_type.values())
    assert set(gt.activities_by_contact) == live
    assert {k: v for k, v in gt.activities_by_contact.items() if v} == dict(per)
    archived = set(gt.archived_ids)
    assert any(pv.contact_id in archived for pv in ds.page_views) or any(
        id_of.get(ev.recipient) in archived for ev in ds.email_events
    )


def test_engagement_volume_is_skewed(ds: SandboxDataset) -> None:
    per = sorted(ds.ground_truth.activities_by_contact.values())
    mean = statistics.mean(per)
    median = statistics.median(per)
    assert 14 <= mean <= 30
    assert median < mean
    top = per[int(len(per) * 0.99)]
    assert top >= 3 * median


def test_engagement_is_within_the_year_and_ordered(ds: SandboxDataset) -> None:
    now = ds.generated_at
    start = now - timedelta(days=366)
    created = {c.id: c.created_at for c in ds.contacts}
    for pv in ds.page_views:
        assert start <= pv.occurred_at <= now and pv.occurred_at >= created[pv.contact_id]
        assert pv.url.startswith("https://")
    for sub in ds.form_submissions:
        assert created[sub.contact_id] <= sub.submitted_at <= now
    sent: dict[tuple[str, int], datetime] = {}
    for ev in ds.email_events:
        assert start <= ev.created <= now
        if ev.type == "SENT":
            sent[(ev.recipient, ev.email_campaign_id)] = ev.created
    for ev in ds.email_events:
        if ev.type != "SENT":
            assert ev.created > sent[(ev.recipient, ev.email_campaign_id)]
        if ev.type == "CLICK":
            assert ev.url
    types = Counter(ev.type for ev in ds.email_events)
    assert types["SENT"] > types["DELIVERED"] > types["OPEN"] > types["CLICK"] > types["BOUNCE"]
    assert types["SPAMREPORT"] > 0 and types["STATUSCHANGE"] > 0


def test_forms_and_webinars(ds: SandboxDataset) -> None:
    kinds = {f.kind for f in ds.forms}
    assert kinds == {"whitepaper", "case_study", "webinar", "consultation", "demo", "contact",
                     "newsletter"}
    kind_of = {f.guid: f.kind for f in ds.forms}
    with_budget = [
        s for s in ds.form_submissions if kind_of[s.form_guid] in ("consultation", "demo")
    ]
    assert with_budget and all("budget" in s.values and "purchase_timeframe" in s.values
                               for s in with_budget)
    for s in ds.form_submissions:
        assert s.values["email"]
    assert all(e.event_type == "WEBINAR" for e in ds.marketing_events)
    assert len(ds.marketing_events) >= 12
    states = Counter(p.state for p in ds.participations)
    assert set(states) == {"REGISTERED", "ATTENDED", "NO_SHOW", "CANCELLED"}
    registered = {(p.event_id, p.contact_id) for p in ds.participations if p.state == "REGISTERED"}
    for p in ds.participations:
        assert (p.event_id, p.contact_id) in registered
    starts = {e.id: e.start for e in ds.marketing_events}
    for p in ds.participations:
        if p.state in ("ATTENDED", "NO_SHOW"):
            assert p.occurred_at == starts[p.event_id]


@pytest.mark.slow
def test_full_size_dataset_keeps_its_shape() -> None:
    big = generate(2026, 25_000)
    share = len(big.ground_truth.sales_ready) / len(big.ground_truth.contact_ids)
    assert 0.05 <= share <= 0.15
    assert 15 <= statistics.mean(big.ground_truth.activities_by_contact.values()) <= 30
