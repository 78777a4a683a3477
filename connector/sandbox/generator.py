"""Seeded synthetic data for the sandbox: a HubSpot portal with a year of marketing engagement,
a Salesforce org with its sales team and existing records, and the ground truth a correct sync
must reproduce.

`generate(seed, contacts)` is a pure function of its arguments: it draws only from
`random.Random(seed)`, never from wall time, the global generator, `hash()` or set order, so
`dataset_to_json(generate(s, n))` is byte-identical across runs and machines.

The sales-ready rule (what `ground_truth.sales_ready` is, exactly)
------------------------------------------------------------------
The default scoring model must reproduce this set; the generator computes it with the functions
`fit_points`, `fit_grade`, `activity_points`, `interest` and `is_sales_ready` below.

Fit (0..110 points, from contact properties):
    seniority (custom property `seniority`, also readable from `jobtitle`):
        c_level 40, vp 35, director 30, manager 15, individual_contributor 5, student 0
    company size (`numemployees`): 1-5 0, 5-25 0, 25-50 5, 50-100 10, 100-500 20,
        500-1000 25, 1000+ 25
    industry (`industry`): one of TARGET_INDUSTRIES 20, any other 5
    department (custom property `department`): economic buyer (executive, finance, operations,
        procurement) or IT user (it, engineering, data) 10, other 0
    email domain: corporate 15, free-mail (FREE_MAIL_DOMAINS) 0
    Grade: A >= 85, B >= 65, C >= 45, D >= 25, F below. Disqualified (grade F whatever the
    points): students (seniority student, jobtitle "Student" or a .edu domain) and competitors
    (COMPETITOR_DOMAINS).

Interest (0..100, from engagement; `now` = dataset.generated_at):
    form submissions by form kind: whitepaper 5, case_study 10, consultation 50, demo 50,
        contact 20, newsletter 2, webinar 0 (the registration is scored by its participation)
    webinar participations: REGISTERED 15, ATTENDED 25, NO_SHOW 0, CANCELLED 0
    page views: /pricing and /demo pages 5, /careers pages 0, any other page 1
    email events: OPEN 1, CLICK 3, every other type 0
    interest = min(100, sum(points * 0.5 ** (age_days / half_life))), half_life 45 days.

Sales-ready (an MQL under the default model): a live contact (not archived, not merged away)
with an email, lifecyclestage not opportunity/customer, and fit grade A or B with interest >= 50,
or grade C with interest >= 80. Grades D and F never qualify.

Margins, so a model with any half-life from 30 to 60 days gives the same set: every sales-ready
contact has interest >= 65 at half-life 30 (and more at longer half-lives); every other contact
whose fit points are >= 20 and who is not a student or competitor has interest <= 25 at
half-life 60 (and less at shorter ones). Only clear misfits (fit points < 20, students,
competitors) may be very active. Sales-ready contacts are all grade A, made by one recent
pattern (`_Generator.ready_acts`): a consultation or a demo request in the last ten days with
strong budget and timeframe answers, then, each drawn on its own, the latest webinar attended
(else a registration for the upcoming one), pricing/demo page visits and a case study; their
older engagement has neither pricing/demo page views nor webinars attended.

The sales team's hidden truth (`ground_truth.conversion`, `conversion_truth`)
-----------------------------------------------------------------------------
Whether sales accepts a sales-ready contact's Lead (converts it to an opportunity) is drawn by
the sales simulator from the contact's propensity: CONVERSION_BASE times the multiplier of each
of CONVERSION_DRIVERS its activities show (a webinar attended x4, a pricing or demo page viewed
x3, a consultation request x2: strongest first), at most CONVERSION_CAP. `best_threshold` is
the lowest whole interest threshold whose contacts' mean propensity reaches
CONVERSION_TARGET_ACCEPTANCE: what a calibration from the sales outcomes should recover.

Other generated facts: a few contacts archived, a few merged pairs (the survivor lists the
merged id), a few live bad records without email or engagement (`ground_truth.bad_records`),
HubSpot owners are the Salesforce users (same emails), some contact emails are already
Salesforce Contacts (with Accounts, some with Opportunities) or open Leads. `ground_truth.activities_by_type` counts normalised types
(ACTIVITY_TYPES) for live contacts only.
"""

from __future__ import annotations

import json
import random
import sys
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, is_dataclass
from datetime import UTC, datetime, timedelta
from operator import attrgetter
from types import MappingProxyType
from typing import Any

from connector.sandbox.dataset import (
    NO_EXTRA,
    EmailEventSeed,
    FormSeed,
    FormSubmissionSeed,
    GroundTruth,
    HubSpotContactSeed,
    HubSpotOwnerSeed,
    MarketingEventSeed,
    PageViewSeed,
    ParticipationSeed,
    SalesforceRecordSeed,
    SalesforceUserSeed,
    SandboxDataset,
)
from connector.sandbox.salesforce.ids import base62, to_18

__all__ = [
    "ACTIVITY_TYPES",
    "COMPETITOR_DOMAINS",
    "DEFAULT_HALF_LIFE_DAYS",
    "DEFAULT_NOW",
    "FREE_MAIL_DOMAINS",
    "TARGET_INDUSTRIES",
    "activity_points",
    "best_threshold",
    "contact_activities",
    "conversion_drivers",
    "conversion_propensity",
    "conversion_truth",
    "dataset_to_json",
    "fit_grade",
    "fit_points",
    "generate",
    "interest",
    "is_sales_ready",
    "model_interest",
]

# ---------------------------------------------------------------------------------------------
# Settings: every table the generator and the documented rule use.
# ---------------------------------------------------------------------------------------------

DEFAULT_NOW = datetime(2026, 11, 1, tzinfo=UTC)
DEFAULT_HALF_LIFE_DAYS = 45.0
SITE = "https://www.handshake-demo.com"
PORTAL_ID = 12345678
EMAIL_APP_ID = 113
EMAIL_APP_NAME = "BatchEmail"
MARKETING_ORGANIZER = "Handshake Demo Marketing"
YEAR_DAYS = 365

SENIORITY_POINTS = {
    "c_level": 40,
    "vp": 35,
    "director": 30,
    "manager": 15,
    "individual_contributor": 5,
    "student": 0,
}
SIZE_POINTS = {
    "1-5": 0,
    "5-25": 0,
    "25-50": 5,
    "50-100": 10,
    "100-500": 20,
    "500-1000": 25,
    "1000+": 25,
}
SIZE_EMPLOYEES = {  # bucket -> (min, max) headcount, for Salesforce NumberOfEmployees
    "1-5": (1, 5),
    "5-25": (5, 25),
    "25-50": (25, 50),
    "50-100": (50, 100),
    "100-500": (100, 500),
    "500-1000": (500, 1000),
    "1000+": (1000, 40000),
}
TARGET_INDUSTRIES = (
    "Computer Software",
    "Information Technology and Services",
    "Financial Services",
    "Hospital & Health Care",
    "Manufacturing",
)
OTHER_INDUSTRIES = (
    "Retail",
    "Education Management",
    "Non-Profit Organization Management",
    "Hospitality",
    "Construction",
    "Real Estate",
    "Marketing and Advertising",
)
INDUSTRY_POINTS_TARGET = 20
INDUSTRY_POINTS_OTHER = 5
DEPARTMENT_SEGMENT = {
    "executive": "economic_buyer",
    "finance": "economic_buyer",
    "operations": "economic_buyer",
    "procurement": "economic_buyer",
    "it": "it_user",
    "engineering": "it_user",
    "data": "it_user",
    "marketing": "other",
    "sales": "other",
    "hr": "other",
    "customer_success": "other",
}
DEPARTMENT_POINTS = {"economic_buyer": 10, "it_user": 10, "other": 0}
DOMAIN_POINTS_CORPORATE = 15
FIT_GRADES = (("A", 85), ("B", 65), ("C", 45), ("D", 25))
FREE_MAIL_DOMAINS = (
    "gmail.com",
    "yahoo.com",
    "outlook.com",
    "hotmail.com",
    "icloud.com",
    "aol.com",
    "proton.me",
    "gmx.de",
)
COMPETITOR_DOMAINS = ("leadbridge.io", "funnelforge.com", "syncwise.com")
UNIVERSITY_DOMAINS = ("northfield.edu", "lakeshore.edu", "westbrook.edu", "harmon.edu")

FORM_POINTS = {
    "whitepaper": 5,
    "case_study": 10,
    "webinar": 0,
    "consultation": 50,
    "demo": 50,
    "contact": 20,
    "newsletter": 2,
}
PARTICIPATION_POINTS = {"REGISTERED": 15, "ATTENDED": 25, "NO_SHOW": 0, "CANCELLED": 0}
EMAIL_POINTS = {"OPEN": 1, "CLICK": 3}
PAGE_POINTS_HIGH_INTENT = 5  # /pricing, /demo
PAGE_POINTS_ZERO_PREFIXES = ("/careers",)
PAGE_HIGH_INTENT_PREFIXES = ("/pricing", "/demo")
PAGE_POINTS_DEFAULT = 1
INTEREST_CAP = 100.0
MQL_THRESHOLDS = {"A": 50.0, "B": 50.0, "C": 80.0}
NOT_SCORED_STAGES = ("opportunity", "customer")

# Separation margins the generator enforces (see module docstring).
READY_MIN_INTEREST = 65.0
READY_CHECK_HALF_LIFE = 30.0
NOT_READY_MAX_INTEREST = 25.0
NOT_READY_CHECK_HALF_LIFE = 60.0
CLEAR_MISFIT_POINTS = 20  # below this many fit points a contact may be as active as it likes

SALES_READY_SHARE_OF_TARGETS = 0.30
# The parts of the sales-ready pattern drawn on their own (see `_Generator.ready_acts`).
READY_ATTEND_SHARE = 0.5
READY_PRICING_SHARE = 0.5
READY_CASE_STUDY_SHARE = 0.5

# The sales team's hidden truth (ground_truth.conversion, see `conversion_truth`): a sales-ready
# contact's Lead is accepted (converted to an opportunity) with a propensity of
# CONVERSION_BASE times the multiplier of each driver its activities show, at most
# CONVERSION_CAP. Drivers: (name, activity category, detail matched, multiplier), strongest
# first; a page_view driver matches a path prefix.
CONVERSION_BASE = 0.04
CONVERSION_CAP = 0.9
CONVERSION_DRIVERS: tuple[tuple[str, str, tuple[str, ...], float], ...] = (
    ("webinar_attended", "participation", ("ATTENDED",), 4.0),
    ("pricing_page_view", "page_view", PAGE_HIGH_INTENT_PREFIXES, 3.0),
    ("consultation_request", "form", ("consultation",), 2.0),
)
# The default model's self-reported answers: points for the latest answer in these values.
ANSWER_POINTS = 5
ANSWER_VALUES = {"budget": ("$50k - $100k", "$100k+"),
                 "purchase_timeframe": ("This quarter", "Within 6 months")}
# The acceptance rate the best threshold is chosen for.
CONVERSION_TARGET_ACCEPTANCE = 0.4
TARGET_PERSONA_SHARE = 0.30
ARCHIVED_SHARE = 0.02
MERGED_PAIR_SHARE = 0.004
BAD_RECORD_SHARE = 0.004
# What is wrong with a bad record (ground_truth.bad_records values).
BAD_NO_EMAIL = "no email"
EXISTING_SF_CONTACT_SHARE = 0.04
EXISTING_SF_LEAD_SHARE = 0.04
RANDOM_OWNER_SHARE = 0.08

# Normalised activity types counted in the ground truth.
ACTIVITY_TYPES = (
    "email_sent",
    "email_delivered",
    "email_open",
    "email_click",
    "email_bounce",
    "email_spamreport",
    "email_unsubscribe",
    "form_submission",
    "page_view",
    "webinar_registered",
    "webinar_attended",
    "webinar_no_show",
    "webinar_cancelled",
)
EMAIL_TYPE_TO_ACTIVITY = {
    "SENT": "email_sent",
    "DELIVERED": "email_delivered",
    "OPEN": "email_open",
    "CLICK": "email_click",
    "BOUNCE": "email_bounce",
    "SPAMREPORT": "email_spamreport",
    "STATUSCHANGE": "email_unsubscribe",
}
PARTICIPATION_TO_ACTIVITY = {
    "REGISTERED": "webinar_registered",
    "ATTENDED": "webinar_attended",
    "NO_SHOW": "webinar_no_show",
    "CANCELLED": "webinar_cancelled",
}

FIRST_NAMES = (
    "James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda", "David",
    "Elizabeth", "William", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah",
    "Charles", "Karen", "Christopher", "Lisa", "Daniel", "Nancy", "Matthew", "Sandra", "Anthony",
    "Ashley", "Mark", "Emily", "Oliver", "Amelia", "Lukas", "Sofia", "Mateo", "Chloe", "Noah",
    "Hannah", "Liam", "Aiko", "Kenji", "Priya", "Arjun", "Mei", "Wei", "Fatima", "Omar", "Ingrid",
    "Lars", "Camille", "Louis", "Giulia", "Marco", "Ana", "Pablo", "Zoe", "Ethan", "Grace",
)
LAST_NAMES = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez",
    "Martinez", "Hernandez", "Lopez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson",
    "Martin", "Lee", "Thompson", "White", "Harris", "Clark", "Lewis", "Walker", "Young", "King",
    "Wright", "Scott", "Müller", "Schmidt", "Schneider", "Dubois", "Bernard", "Rossi", "Bianchi",
    "Novak", "Jansen", "de Vries", "Nilsson", "Larsen", "Tanaka", "Suzuki", "Sato", "Wang", "Li",
    "Chen", "Kumar", "Sharma", "Patel", "Singh", "O'Brien", "Murphy", "Kelly", "Fernández",
)
COMPANY_WORDS_A = (
    "Blue", "North", "Bright", "Silver", "Iron", "Summit", "Cedar", "Granite", "Harbor", "Atlas",
    "Vertex", "Lumen", "Nova", "Pioneer", "Crest", "Falcon", "Orbit", "Pacific", "Evergreen",
    "Red", "Quantum", "Sterling", "Maple", "Apex", "Clear", "Golden", "Prairie", "Coastal",
)
COMPANY_WORDS_B = (
    "wave", "point", "field", "stone", "ridge", "bridge", "works", "path", "line", "gate", "labs",
    "logic", "core", "grid", "forge", "peak", "well", "brook", "side", "mark", "view", "craft",
)
COMPANY_SUFFIXES = (
    "Inc.", "LLC", "Group", "Systems", "Technologies", "Holdings", "GmbH", "Ltd", "Partners",
    "Solutions", "Health", "Capital", "Manufacturing", "Corp.",
)
COMPANY_TLDS = (".com", ".com", ".com", ".io", ".net", ".co")

# country -> (weight, states or None, phone prefix, Salesforce territory)
COUNTRIES: dict[str, tuple[int, tuple[str, ...] | None, str, str]] = {
    "United States": (
        40,
        ("California", "New York", "Texas", "Massachusetts", "Illinois", "Washington",
         "Georgia", "Florida", "Colorado", "Virginia"),
        "+1",
        "NA",
    ),
    "Canada": (6, ("Ontario", "British Columbia", "Quebec", "Alberta"), "+1", "NA"),
    "United Kingdom": (10, None, "+44", "EMEA"),
    "Germany": (8, None, "+49", "EMEA"),
    "France": (6, None, "+33", "EMEA"),
    "Netherlands": (4, None, "+31", "EMEA"),
    "Spain": (3, None, "+34", "EMEA"),
    "Sweden": (3, None, "+46", "EMEA"),
    "Australia": (6, ("New South Wales", "Victoria", "Queensland"), "+61", "APAC"),
    "Japan": (4, None, "+81", "APAC"),
    "Singapore": (3, None, "+65", "APAC"),
    "India": (7, ("Karnataka", "Maharashtra", "Delhi"), "+91", "APAC"),
}
WEST_US_STATES = ("California", "Washington", "Colorado", "Texas")

TITLES: dict[str, list[tuple[str, str]]] = {  # seniority -> [(jobtitle, department)]
    "c_level": [
        ("Chief Executive Officer", "executive"),
        ("Chief Financial Officer", "finance"),
        ("Chief Operating Officer", "operations"),
        ("Chief Information Officer", "it"),
        ("Chief Technology Officer", "engineering"),
        ("Chief Marketing Officer", "marketing"),
        ("Chief Revenue Officer", "sales"),
    ],
    "vp": [
        ("VP of Finance", "finance"),
        ("VP of Operations", "operations"),
        ("VP of IT", "it"),
        ("VP of Engineering", "engineering"),
        ("VP of Data", "data"),
        ("VP of Marketing", "marketing"),
        ("VP of Sales", "sales"),
        ("VP of Procurement", "procurement"),
    ],
    "director": [
        ("Director of Finance", "finance"),
        ("Director of Operations", "operations"),
        ("Director of IT", "it"),
        ("Director of Engineering", "engineering"),
        ("Director of Data & Analytics", "data"),
        ("Director of Marketing", "marketing"),
        ("Director of Human Resources", "hr"),
        ("Director of Customer Success", "customer_success"),
    ],
    "manager": [
        ("Finance Manager", "finance"),
        ("Operations Manager", "operations"),
        ("IT Manager", "it"),
        ("Engineering Manager", "engineering"),
        ("Marketing Manager", "marketing"),
        ("Sales Manager", "sales"),
        ("HR Manager", "hr"),
        ("Procurement Manager", "procurement"),
    ],
    "individual_contributor": [
        ("Financial Analyst", "finance"),
        ("Operations Analyst", "operations"),
        ("Systems Administrator", "it"),
        ("Software Engineer", "engineering"),
        ("Data Analyst", "data"),
        ("Marketing Specialist", "marketing"),
        ("Account Executive", "sales"),
        ("HR Generalist", "hr"),
        ("Customer Success Associate", "customer_success"),
    ],
    "student": [("Student", "other")],
}
SENIORITY_WEIGHTS = (  # for non-target personas
    ("c_level", 5),
    ("vp", 7),
    ("director", 12),
    ("manager", 26),
    ("individual_contributor", 44),
    ("student", 6),
)
SIZE_WEIGHTS = (
    ("1-5", 10),
    ("5-25", 16),
    ("25-50", 14),
    ("50-100", 14),
    ("100-500", 20),
    ("500-1000", 12),
    ("1000+", 14),
)
ANALYTICS_SOURCES = (
    ("ORGANIC_SEARCH", 30),
    ("PAID_SEARCH", 14),
    ("EMAIL_MARKETING", 10),
    ("SOCIAL_MEDIA", 10),
    ("PAID_SOCIAL", 5),
    ("REFERRALS", 10),
    ("DIRECT_TRAFFIC", 12),
    ("OTHER_CAMPAIGNS", 3),
    ("OFFLINE", 6),
)

# Pages of the marketing site: (path, title, weight).
PAGES = (
    ("/", "Handshake Demo | Home", 14),
    ("/blog/lead-scoring-101", "Lead scoring 101", 8),
    ("/blog/sales-marketing-alignment", "Aligning sales and marketing", 8),
    ("/blog/nurture-tracks", "Designing nurture tracks", 6),
    ("/blog/sla-for-leads", "A lead SLA that works", 6),
    ("/blog/crm-data-quality", "CRM data quality checklist", 6),
    ("/product", "Product overview", 10),
    ("/product/integrations", "Integrations", 6),
    ("/product/analytics", "Analytics", 5),
    ("/pricing", "Pricing", 6),
    ("/demo", "Book a demo", 2),
    ("/case-studies", "Customer stories", 5),
    ("/case-studies/acme-manufacturing", "How Acme cut lead response time", 3),
    ("/careers", "Careers", 4),
    ("/careers/open-positions", "Open positions", 3),
)
HIGH_INTENT_PAGES = tuple(p for p in PAGES if p[0].startswith(PAGE_HIGH_INTENT_PREFIXES))
WEIGHTED_PAGES = tuple((pg, pg[2]) for pg in PAGES)
BROWSING_PAGES = tuple((pg, pg[2]) for pg in PAGES if pg not in HIGH_INTENT_PAGES)

BUDGET_OPTIONS = ("No budget yet", "< $10k", "$10k - $50k", "$50k - $100k", "$100k+")
TIMEFRAME_OPTIONS = ("Just researching", "Within a year", "Within 6 months", "This quarter")
STRONG_BUDGETS = ("$50k - $100k", "$100k+")
STRONG_TIMEFRAMES = ("This quarter", "Within 6 months")

# Forms: (kind, name, page path, asks budget/timeframe, extra fields)
FORM_DEFS = (
    ("whitepaper", "Whitepaper: The Lead Hand-off Playbook", "/resources/lead-handoff-playbook",
     False),
    ("case_study", "Case study: Acme Manufacturing", "/case-studies/acme-manufacturing", False),
    ("webinar", "Webinar registration", "/webinars", False),
    ("consultation", "Request a consultation", "/consultation", True),
    ("demo", "Request a demo", "/demo", True),
    ("contact", "Contact us", "/contact", True),
    ("newsletter", "Newsletter sign-up", "/blog", False),
)
FORM_WEIGHTS_BY_LEVEL = {  # kind -> weight when a contact fills a random form
    "cold": (("newsletter", 6), ("whitepaper", 3), ("case_study", 1)),
    "warm": (("newsletter", 3), ("whitepaper", 5), ("case_study", 3), ("contact", 1)),
    "active": (
        ("whitepaper", 5), ("case_study", 4), ("contact", 2), ("consultation", 1), ("demo", 1),
    ),
    "very_active": (
        ("whitepaper", 5), ("case_study", 5), ("contact", 2), ("consultation", 2), ("demo", 2),
    ),
}

EMAIL_CAMPAIGN_COUNT = 24  # one every ~15 days over the year
EMAIL_CAMPAIGN_SUBJECTS = (
    "Your monthly revenue-ops digest",
    "New: scoring templates for B2B teams",
    "5 ways to speed up lead follow-up",
    "Customer story: closing the loop with sales",
    "Webinar invite: fit versus interest",
    "What changed in our product this month",
)
CAMPAIGN_INCLUDE_P = {"cold": 0.35, "warm": 0.6, "active": 0.75, "very_active": 0.85}
WEBINAR_COUNT_PAST = 12
WEBINAR_SPACING_DAYS = 28
LATEST_WEBINAR_DAYS_AGO = 5
UPCOMING_WEBINAR_DAYS_AHEAD = 9
WEBINAR_TOPICS = (
    "Fit versus interest: scoring that sales trusts",
    "From MQL to SQL in 24 hours",
    "Nurture tracks for economic buyers",
    "Closing the loop: sales outcomes in marketing",
)

# Engagement intensity per level.
LEVEL_WEIGHTS_CAPPED = (("cold", 60), ("warm", 32), ("active", 8))
LEVEL_WEIGHTS_FREE = (("cold", 35), ("warm", 30), ("active", 22), ("very_active", 13))
OPEN_P = {"cold": 0.08, "warm": 0.25, "active": 0.45, "very_active": 0.6}
CLICK_P = {"cold": 0.1, "warm": 0.2, "active": 0.35, "very_active": 0.45}
SESSIONS = {"cold": (0, 2), "warm": (1, 5), "active": (4, 12), "very_active": (15, 45)}
FORM_FILLS = {"cold": (0, 1), "warm": (0, 2), "active": (1, 4), "very_active": (3, 8)}
WEBINAR_REGS = {"cold": (0, 0), "warm": (0, 1), "active": (0, 2), "very_active": (1, 4)}
BOUNCE_P = 0.015
SPAMREPORT_P = 0.002
UNSUBSCRIBE_P = 0.006
BOUNCE_CATEGORIES = ("HARD_BOUNCE", "MAILBOX_FULL", "UNKNOWN_USER", "POLICY")
BOUNCE_RESPONSE = "550 5.1.1 The email account that you tried to reach does not exist"

SF_USERS = (  # (first, last, team, territory, active)
    ("Avery", "Collins", "SDR-NA", "NA-East", True),
    ("Jordan", "Reyes", "SDR-NA", "NA-East", True),
    ("Taylor", "Brooks", "SDR-NA", "NA-West", True),
    ("Morgan", "Hayes", "SDR-NA", "NA-West", False),  # left the company: leads owned stay idle
    ("Sophie", "Laurent", "SDR-EMEA", "EMEA", True),
    ("Jonas", "Becker", "SDR-EMEA", "EMEA", True),
    ("Emma", "Clarke", "SDR-EMEA", "EMEA", True),
    ("Hiro", "Nakamura", "SDR-APAC", "APAC", True),
    ("Aarav", "Mehta", "SDR-APAC", "APAC", True),
    ("Rachel", "Stein", "Enterprise", "Enterprise-NA", True),
    ("Marcus", "Weber", "Enterprise", "Enterprise-EMEA", True),
    ("Lina", "Tan", "Enterprise", "Enterprise-APAC", True),
)
SF_USER_DOMAIN = "handshake-demo.com"
SF_MANAGER = ("Dana", "Whitfield", f"dana.whitfield@{SF_USER_DOMAIN}")  # the reps' manager
OWNER_ID_BASE = 70000001
OWNER_USER_ID_BASE = 9000001
CONTACT_ID_BASE = 1001
SF_LEAD_SOURCES = {
    "ORGANIC_SEARCH": "Web",
    "PAID_SEARCH": "Web",
    "EMAIL_MARKETING": "Web",
    "SOCIAL_MEDIA": "Web",
    "PAID_SOCIAL": "Web",
    "REFERRALS": "Partner Referral",
    "DIRECT_TRAFFIC": "Web",
    "OTHER_CAMPAIGNS": "Other",
    "OFFLINE": "Other",
}
SF_INDUSTRIES = {  # HubSpot industry text -> Salesforce Industry picklist value
    "Computer Software": "Technology",
    "Information Technology and Services": "Technology",
    "Financial Services": "Finance",
    "Hospital & Health Care": "Healthcare",
    "Manufacturing": "Manufacturing",
    "Retail": "Retail",
    "Education Management": "Education",
    "Non-Profit Organization Management": "Not For Profit",
    "Hospitality": "Hospitality",
    "Construction": "Construction",
    "Real Estate": "Other",
    "Marketing and Advertising": "Media",
}
SF_OPEN_LEAD_STATUSES = (("Open - Not Contacted", 70), ("Working - Contacted", 30))
SF_OPPORTUNITY_STAGES_OPEN = ("Qualification", "Needs Analysis", "Proposal/Price Quote")

_SF_SEED_POD = "Hs"  # seeded records carry this pod segment, unlike ids the server mints

DAY = 86400.0


# ---------------------------------------------------------------------------------------------
# The documented rule
# ---------------------------------------------------------------------------------------------


def fit_points(properties: dict[str, str | None]) -> int:
    """Fit points of a contact from its properties (see the module docstring)."""
    seniority = properties.get("seniority") or _seniority_from_title(properties.get("jobtitle"))
    points = SENIORITY_POINTS.get(seniority or "", 0)
    points += SIZE_POINTS.get(properties.get("numemployees") or "", 0)
    industry = properties.get("industry") or ""
    points += INDUSTRY_POINTS_TARGET if industry in TARGET_INDUSTRIES else INDUSTRY_POINTS_OTHER
    segment = DEPARTMENT_SEGMENT.get(properties.get("department") or "", "other")
    points += DEPARTMENT_POINTS[segment]
    domain = _domain(properties.get("email"))
    if domain and domain not in FREE_MAIL_DOMAINS:
        points += DOMAIN_POINTS_CORPORATE
    return points


def is_disqualified(properties: dict[str, str | None]) -> bool:
    """Students and competitors are grade F whatever their points."""
    domain = _domain(properties.get("email")) or ""
    title = (properties.get("jobtitle") or "").strip().lower()
    return (
        properties.get("seniority") == "student"
        or title == "student"
        or domain.endswith(".edu")
        or domain in COMPETITOR_DOMAINS
    )


def fit_grade(properties: dict[str, str | None]) -> str:
    """Fit grade A-F of a contact (see the module docstring)."""
    if is_disqualified(properties):
        return "F"
    points = fit_points(properties)
    for grade, minimum in FIT_GRADES:
        if points >= minimum:
            return grade
    return "F"


def activity_points(activity: tuple[str, str, datetime]) -> int:
    """Interest points of one activity `(category, detail, occurred_at)` as given by
    `contact_activities`: category is "form" (detail = form kind), "participation" (detail =
    state), "page_view" (detail = URL path) or "email" (detail = event type)."""
    category, detail, _ = activity
    if category == "form":
        return FORM_POINTS.get(detail, 0)
    if category == "participation":
        return PARTICIPATION_POINTS.get(detail, 0)
    if category == "page_view":
        return _page_points(detail)
    if category == "email":
        return EMAIL_POINTS.get(detail, 0)
    return 0


def interest(
    activities: Iterable[tuple[str, str, datetime]],
    now: datetime,
    half_life_days: float = DEFAULT_HALF_LIFE_DAYS,
) -> float:
    """Decayed interest (0..100) of a contact's activities at `now`."""
    total = 0.0
    for activity in activities:
        points = activity_points(activity)
        if points:
            age_days = max(0.0, (now - activity[2]).total_seconds() / DAY)
            total += points * 0.5 ** (age_days / half_life_days)
    return min(INTEREST_CAP, total)


def is_sales_ready(
    contact: HubSpotContactSeed,
    activities: Iterable[tuple[str, str, datetime]],
    now: datetime,
    half_life_days: float = DEFAULT_HALF_LIFE_DAYS,
) -> bool:
    """Whether the default model makes this contact an MQL (see the module docstring)."""
    props = contact.properties
    if contact.archived or contact.merged_into or not props.get("email"):
        return False
    if (props.get("lifecyclestage") or "") in NOT_SCORED_STAGES:
        return False
    threshold = MQL_THRESHOLDS.get(fit_grade(props))
    if threshold is None:
        return False
    return interest(activities, now, half_life_days) >= threshold


def conversion_drivers(activities: Iterable[tuple[str, str, datetime]]) -> list[str]:
    """The CONVERSION_DRIVERS (by name, strongest first) that a contact's activities show."""
    seen = set()
    for category, detail, _ in activities:
        for name, kind, details, _m in CONVERSION_DRIVERS:
            if category == kind and (detail.startswith(details) if kind == "page_view"
                                     else detail in details):
                seen.add(name)
    return [name for name, *_ in CONVERSION_DRIVERS if name in seen]


def conversion_propensity(activities: Iterable[tuple[str, str, datetime]]) -> float:
    """How likely sales accepts (converts) this contact's Lead: CONVERSION_BASE times the
    multiplier of every driver its activities show, at most CONVERSION_CAP."""
    multiplier = {name: m for name, _k, _d, m in CONVERSION_DRIVERS}
    p = CONVERSION_BASE
    for name in conversion_drivers(activities):
        p *= multiplier[name]
    return round(min(CONVERSION_CAP, p), 6)


def best_threshold(scored: Sequence[tuple[float, float]], target: float) -> int:
    """The lowest whole score threshold (0..100) at which the contacts scoring at least it
    have a mean acceptance `target` or more: as many leads as the target allows. `scored`:
    (score, acceptance 0..1) per contact. When no threshold reaches the target, the one with
    the highest mean (the lowest of equals)."""
    best, best_mean = 0, -1.0
    for t in range(101):
        kept = [a for s, a in scored if s >= t]
        if not kept:
            break
        mean = sum(kept) / len(kept)
        if mean >= target:
            return t
        if mean > best_mean + 1e-12:
            best, best_mean = t, mean
    return best


def model_interest(
    activities: Iterable[tuple[str, str, datetime]],
    submissions: Iterable[FormSubmissionSeed],
    now: datetime,
    half_life_days: float = DEFAULT_HALF_LIFE_DAYS,
) -> float:
    """The interest the default scoring model gives (0..100, to 0.01): `interest`, plus its
    self-reported answers, ANSWER_POINTS for the most recent submission answering each of
    ANSWER_VALUES' fields with one of its values, faded the same way. (`interest` leaves the
    answers out: the sales-ready margins hold without them.)"""
    total = 0.0
    for category, detail, at in activities:
        points = activity_points((category, detail, at))
        if points:
            total += points * 0.5 ** (max(0.0, (now - at).total_seconds() / DAY) / half_life_days)
    for name, values in ANSWER_VALUES.items():
        answered = [s.submitted_at for s in submissions if s.values.get(name) in values]
        if answered:
            age = max(0.0, (now - max(answered)).total_seconds() / DAY)
            total += ANSWER_POINTS * 0.5 ** (age / half_life_days)
    return round(min(INTEREST_CAP, total), 2)


def conversion_truth(
    contacts: Sequence[HubSpotContactSeed],
    activities: dict[str, list[tuple[str, str, datetime]]],
    submissions: Sequence[FormSubmissionSeed],
    sales_ready: Iterable[str],
    now: datetime,
) -> dict[str, Any]:
    """The hidden truth the sales simulator converts Leads by: the drivers (strongest first),
    each sales-ready contact's propensity and default-model interest at `now` (by email), and
    the best threshold on that interest for CONVERSION_TARGET_ACCEPTANCE."""
    ready = {e.lower() for e in sales_ready}
    by_contact: dict[str, list[FormSubmissionSeed]] = {}
    for sub in submissions:
        by_contact.setdefault(sub.contact_id, []).append(sub)
    propensity: dict[str, float] = {}
    scores: dict[str, float] = {}
    for c in contacts:
        email = (c.properties.get("email") or "").lower()
        if email not in ready:
            continue
        propensity[email] = conversion_propensity(activities[c.id])
        scores[email] = model_interest(activities[c.id], by_contact.get(c.id, []), now)
    scored = [(scores[e], propensity[e]) for e in sorted(propensity)]
    return {
        "drivers": [{"name": name, "activity": kind, "matches": list(details),
                     "multiplier": m} for name, kind, details, m in CONVERSION_DRIVERS],
        "base": CONVERSION_BASE,
        "cap": CONVERSION_CAP,
        "score": "interest",
        "target_acceptance": CONVERSION_TARGET_ACCEPTANCE,
        "best_threshold": best_threshold(scored, CONVERSION_TARGET_ACCEPTANCE),
        "propensity": dict(sorted(propensity.items())),
        "interest": dict(sorted(scores.items())),
    }


def contact_activities(ds: SandboxDataset) -> dict[str, list[tuple[str, str, datetime]]]:
    """Every contact's scorable activities `(category, detail, occurred_at)`, by contact id.

    Email events are attributed by recipient email; forms, page views and participations by
    contact id. Form kinds come from the dataset's form definitions.
    """
    return _activities(
        ds.contacts, ds.email_events, ds.form_submissions, ds.page_views, ds.participations,
        ds.forms,
    )


def _activities(
    contacts: Sequence[HubSpotContactSeed],
    email_events: Sequence[EmailEventSeed],
    submissions: Sequence[FormSubmissionSeed],
    page_views: Sequence[PageViewSeed],
    participations: Sequence[ParticipationSeed],
    forms: Sequence[FormSeed],
) -> dict[str, list[tuple[str, str, datetime]]]:
    by_email = {
        (c.properties.get("email") or "").lower(): c.id
        for c in contacts
        if c.properties.get("email")
    }
    kinds = {f.guid: f.kind for f in forms}
    out: dict[str, list[tuple[str, str, datetime]]] = {c.id: [] for c in contacts}
    for ev in email_events:
        cid = by_email.get(ev.recipient.lower())
        if cid is not None:
            out[cid].append(("email", ev.type, ev.created))
    for sub in submissions:
        out[sub.contact_id].append(("form", kinds[sub.form_guid], sub.submitted_at))
    for pv in page_views:
        out[pv.contact_id].append(("page_view", _path_of(pv.url), pv.occurred_at))
    for part in participations:
        out[part.contact_id].append(("participation", part.state, part.occurred_at))
    return out


def _page_points(path: str) -> int:
    if path.startswith(PAGE_HIGH_INTENT_PREFIXES):
        return PAGE_POINTS_HIGH_INTENT
    if path.startswith(PAGE_POINTS_ZERO_PREFIXES):
        return 0
    return PAGE_POINTS_DEFAULT


def _path_of(url: str) -> str:
    rest = url.split("://", 1)[-1]
    slash = rest.find("/")
    path = rest[slash:] if slash >= 0 else "/"
    return path.split("?", 1)[0]


def _domain(email: str | None) -> str | None:
    if not email or "@" not in email:
        return None
    return email.rsplit("@", 1)[1].strip().lower() or None


def _seniority_from_title(title: str | None) -> str | None:
    text = (title or "").lower()
    if not text:
        return None
    if text == "student":
        return "student"
    if text.startswith("chief") or text in ("ceo", "cfo", "coo", "cio", "cto", "cmo", "cro"):
        return "c_level"
    if text.startswith(("vp", "vice president")):
        return "vp"
    if text.startswith("director"):
        return "director"
    if "manager" in text:
        return "manager"
    return "individual_contributor"


# ---------------------------------------------------------------------------------------------
# Generation
# ---------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Company:
    name: str
    domain: str
    industry: str
    size: str
    country: str
    state: str | None
    website: str


@dataclass(slots=True)
class _Persona:
    """Everything decided about one contact before its engagement is drawn."""

    index: int
    first: str
    last: str
    email: str | None
    seniority: str
    title: str
    department: str
    company: _Company
    domain_kind: str  # corporate, free, competitor, student
    created: float  # epoch seconds
    source: str
    target: bool = False
    ready_path: str | None = None  # "a" or "b" for sales-ready contacts
    archived: bool = False
    merged_away: bool = False
    bad_reason: str | None = None
    sf_kind: str | None = None  # "contact", "customer", "opportunity", "lead"
    contact_id: str = ""


@dataclass(slots=True)
class _Act:
    """A unit of engagement kept or trimmed whole (one email send, one visit, one form...)."""

    records: list[tuple[Any, ...]] = field(default_factory=list)


_UUID_KEEP = ~((0xC000 << 48) | (0xF000 << 64)) & ((1 << 128) - 1)
_UUID_V4 = (0x8000 << 48) | (4 << 76)


class _Ids:
    """Deterministic identifiers drawn from the dataset's generator."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.sf_counters: Counter[str] = Counter()

    def uuid(self) -> str:
        # str(uuid.UUID(int=bits, version=4)) without the UUID object (a million ids at
        # 100,000 contacts): the version and variant bits set, then the 8-4-4-4-12 hex form
        n = (self.rng.getrandbits(128) & _UUID_KEEP) | _UUID_V4
        h = f"{n:032x}"
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

    def sf(self, prefix: str) -> str:
        self.sf_counters[prefix] += 1
        return salesforce_id(prefix, self.sf_counters[prefix])


def salesforce_id(prefix: str, number: int, pod: str = _SF_SEED_POD) -> str:
    """An 18-character Salesforce-style id: 3-char key prefix, 2-char pod, 10-char base-62
    number, and the 3-char case-checksum suffix the real API appends."""
    return to_18(prefix + pod + base62(number, 10))


def _pick(rng: random.Random, weighted: Sequence[tuple[Any, int]]) -> Any:
    total = sum(w for _, w in weighted)
    roll = rng.random() * total
    for value, weight in weighted:
        roll -= weight
        if roll < 0:
            return value
    return weighted[-1][0]


def _iso_ms(dt: datetime) -> str:
    """HubSpot v3 datetime property format: ISO-8601 UTC with milliseconds and Z."""
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def _sf_datetime(dt: datetime) -> str:
    """Salesforce REST datetime format."""
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}+0000"


# an OPEN event's extra fields by device type: one shared read-only mapping each, not a dict
# per event (a 100,000-contact dataset has hundreds of thousands of opens)
_OPEN_EXTRA: dict[str, Mapping[str, Any]] = {
    device: MappingProxyType({"deviceType": device, "filteredEvent": False})
    for device in ("COMPUTER", "MOBILE")
}


def _dt(ts: float) -> datetime:
    # Whole milliseconds, so JSON round trips and ms-based APIs lose nothing.
    return datetime.fromtimestamp(round(ts * 1000) / 1000, tz=UTC)


class _Generator:
    """One generation run; all randomness comes from `self.rng`."""

    def __init__(self, seed: int, contacts: int, now: datetime) -> None:
        self.seed = seed
        self.n = contacts
        self.now = now
        self.now_ts = now.timestamp()
        self.rng = random.Random(seed)
        self.ids = _Ids(self.rng)
        self.emails: set[str] = set()  # every address handed out, to keep them unique

    # -- reference data --------------------------------------------------------------------

    def build_users(self) -> tuple[list[SalesforceUserSeed], list[HubSpotOwnerSeed]]:
        users: list[SalesforceUserSeed] = []
        owners: list[HubSpotOwnerSeed] = []
        for i, (first, last, team, territory, active) in enumerate(SF_USERS):
            email = f"{first.lower()}.{last.lower()}@{SF_USER_DOMAIN}"
            users.append(
                SalesforceUserSeed(
                    id=self.ids.sf("005"),
                    username=email,
                    email=email,
                    first_name=first,
                    last_name=last,
                    territory=territory,
                    team=team,
                    is_active=active,
                )
            )
            owners.append(
                HubSpotOwnerSeed(
                    id=str(OWNER_ID_BASE + i),
                    email=email,
                    first_name=first,
                    last_name=last,
                    user_id=OWNER_USER_ID_BASE + i,
                    teams=[team],
                )
            )
        # the reps' sales manager (their User.ManagerId): owns no lead and is in no territory,
        # so no assignment rule or routing team gives them one; drawn after the reps so their
        # ids stay as they were
        first, last, email = SF_MANAGER
        self.manager = SalesforceUserSeed(
            id=self.ids.sf("005"), username=email, email=email, first_name=first,
            last_name=last, territory="", team="Sales Management")
        for user in users:
            user.manager_id = self.manager.id
        return users, owners

    def build_forms(self) -> list[FormSeed]:
        forms = []
        for kind, name, _page, asks_budget in FORM_DEFS:
            form_fields: list[dict[str, Any]] = [
                {"name": "email", "label": "Email", "fieldType": "email", "options": []},
                {"name": "firstname", "label": "First name", "fieldType": "single_line_text",
                 "options": []},
                {"name": "lastname", "label": "Last name", "fieldType": "single_line_text",
                 "options": []},
            ]
            if kind != "newsletter":
                form_fields += [
                    {"name": "company", "label": "Company", "fieldType": "single_line_text",
                     "options": []},
                    {"name": "jobtitle", "label": "Job title", "fieldType": "single_line_text",
                     "options": []},
                ]
            if asks_budget:
                form_fields += [
                    {"name": "budget", "label": "What is your budget?",
                     "fieldType": "dropdown", "options": list(BUDGET_OPTIONS)},
                    {"name": "purchase_timeframe", "label": "When do you plan to buy?",
                     "fieldType": "dropdown", "options": list(TIMEFRAME_OPTIONS)},
                ]
            if kind in ("consultation", "contact"):
                form_fields.append(
                    {"name": "message", "label": "How can we help?",
                     "fieldType": "multi_line_text", "options": []}
                )
            forms.append(FormSeed(guid=self.ids.uuid(), name=name, fields=form_fields, kind=kind))
        return forms

    def build_campaigns(self) -> list[tuple[int, float, str]]:
        campaigns = []
        for k in range(EMAIL_CAMPAIGN_COUNT):
            sent = self.now_ts - (3 + k * (YEAR_DAYS / EMAIL_CAMPAIGN_COUNT)) * DAY
            sent = sent - sent % 3600 + 9 * 3600  # mid-morning sends
            subject = EMAIL_CAMPAIGN_SUBJECTS[k % len(EMAIL_CAMPAIGN_SUBJECTS)]
            campaigns.append((310000000 + k * 7 + 1, sent, subject))
        campaigns.sort(key=lambda c: c[1])
        return campaigns

    def build_webinars(self) -> list[MarketingEventSeed]:
        events = []
        starts = [self.now_ts + UPCOMING_WEBINAR_DAYS_AHEAD * DAY] + [
            self.now_ts - (LATEST_WEBINAR_DAYS_AGO + k * WEBINAR_SPACING_DAYS) * DAY
            for k in range(WEBINAR_COUNT_PAST)
        ]
        for k, start in enumerate(sorted(starts)):
            start = start - start % DAY + 16 * 3600  # webinars start at 16:00 UTC
            begin = _dt(start)
            topic = WEBINAR_TOPICS[k % len(WEBINAR_TOPICS)]
            events.append(
                MarketingEventSeed(
                    id=str(520000 + k * 3),
                    external_event_id=f"webinar-{begin:%Y-%m-%d}",
                    name=f"Webinar: {topic}",
                    event_type="WEBINAR",
                    start=begin,
                    end=begin + timedelta(hours=1),
                    organizer=MARKETING_ORGANIZER,
                )
            )
        return events

    def build_companies(self) -> list[_Company]:
        count = max(40, self.n // 3)
        companies: list[_Company] = []
        seen: set[str] = set()
        for i in range(count):
            target = self.rng.random() < 0.5
            name_core = self.rng.choice(COMPANY_WORDS_A) + self.rng.choice(COMPANY_WORDS_B)
            suffix = self.rng.choice(COMPANY_SUFFIXES)
            slug = name_core.lower()
            domain = slug + self.rng.choice(COMPANY_TLDS)
            if domain in seen:
                slug = f"{slug}{i}"
                domain = slug + ".com"
            seen.add(domain)
            industry = self.rng.choice(TARGET_INDUSTRIES if target else OTHER_INDUSTRIES)
            size = (
                self.rng.choice(("100-500", "500-1000", "1000+"))
                if target
                else _pick(self.rng, SIZE_WEIGHTS)
            )
            country = _pick(self.rng, [(c, v[0]) for c, v in COUNTRIES.items()])
            states = COUNTRIES[country][1]
            state = self.rng.choice(states) if states else None
            companies.append(
                _Company(
                    name=f"{name_core} {suffix}",
                    domain=domain,
                    industry=industry,
                    size=size,
                    country=country,
                    state=state,
                    website=f"https://www.{domain}",
                )
            )
        return companies

    # -- personas --------------------------------------------------------------------------

    def build_personas(self, companies: list[_Company]) -> list[_Persona]:
        rng = self.rng
        target_companies = [
            c for c in companies if c.industry in TARGET_INDUSTRIES and SIZE_POINTS[c.size] >= 20
        ]
        created = sorted(self.now_ts - rng.random() * YEAR_DAYS * DAY for _ in range(self.n))
        emails = self.emails
        personas: list[_Persona] = []
        for i, created_ts in enumerate(created):
            first = rng.choice(FIRST_NAMES)
            last = rng.choice(LAST_NAMES)
            target = rng.random() < TARGET_PERSONA_SHARE
            if target:
                seniority = rng.choice(("c_level", "vp", "director"))
                company = rng.choice(target_companies)
                domain_kind = "corporate"
            else:
                seniority = _pick(rng, SENIORITY_WEIGHTS)
                company = rng.choice(companies)
                roll = rng.random()
                if seniority == "student":
                    domain_kind = "student"
                elif roll < 0.03:
                    domain_kind = "competitor"
                elif roll < 0.33:
                    domain_kind = "free"
                else:
                    domain_kind = "corporate"
            title, department = rng.choice(TITLES[seniority])
            if domain_kind == "corporate":
                domain = company.domain
            elif domain_kind == "free":
                domain = rng.choice(FREE_MAIL_DOMAINS)
            elif domain_kind == "competitor":
                domain = rng.choice(COMPETITOR_DOMAINS)
            else:
                domain = rng.choice(UNIVERSITY_DOMAINS)
            email = self.unique_email(first, last, domain, emails)
            personas.append(
                _Persona(
                    index=i,
                    first=first,
                    last=last,
                    email=email,
                    seniority=seniority,
                    title=title,
                    department=department,
                    company=company,
                    domain_kind=domain_kind,
                    created=created_ts,
                    source=_pick(rng, ANALYTICS_SOURCES),
                    target=target,
                )
            )
        return personas

    def unique_email(self, first: str, last: str, domain: str, used: set[str]) -> str:
        local = _ascii_slug(first) + "." + _ascii_slug(last)
        candidate = f"{local}@{domain}"
        n = 1
        while candidate in used:
            n += 1
            candidate = f"{local}{n}@{domain}"
        used.add(candidate)
        return candidate

    def assign_roles(self, personas: list[_Persona]) -> list[tuple[int, int]]:
        """Choose archived, merged, bad, existing-Salesforce and sales-ready contacts.

        Returns merged pairs as (survivor index, merged-away index)."""
        rng = self.rng
        n = len(personas)
        order = list(range(n))
        rng.shuffle(order)
        cursor = 0

        def take(count: int, ok: Any) -> list[int]:
            nonlocal cursor
            chosen: list[int] = []
            while len(chosen) < count and cursor < n:
                idx = order[cursor]
                cursor += 1
                if ok(personas[idx]):
                    chosen.append(idx)
            return chosen

        for idx in take(max(1, round(n * BAD_RECORD_SHARE)), lambda p: True):
            personas[idx].bad_reason = BAD_NO_EMAIL
            personas[idx].email = None
        for idx in take(max(1, round(n * ARCHIVED_SHARE)), lambda p: True):
            personas[idx].archived = True
        pairs: list[tuple[int, int]] = []
        merged_count = max(1, round(n * MERGED_PAIR_SHARE))
        for a, b in zip(
            take(merged_count, lambda p: True), take(merged_count, lambda p: True), strict=False
        ):
            survivor, away = (a, b) if personas[a].created <= personas[b].created else (b, a)
            kept, gone = personas[survivor], personas[away]
            # A duplicate of the same person under another (free-mail) address.
            gone.merged_away = True
            gone.first, gone.last = kept.first, kept.last
            gone.domain_kind = "free"
            gone.email = self.unique_email(
                kept.first, kept.last, rng.choice(FREE_MAIL_DOMAINS), self.emails
            )
            pairs.append((survivor, away))
        for idx in take(max(1, round(n * EXISTING_SF_CONTACT_SHARE)), lambda p: p.email):
            roll = rng.random()
            personas[idx].sf_kind = (
                "customer" if roll < 0.4 else "opportunity" if roll < 0.65 else "contact"
            )
        for idx in take(max(1, round(n * EXISTING_SF_LEAD_SHARE)), lambda p: p.email):
            personas[idx].sf_kind = "lead"
        # The remaining contacts, in shuffled order: targets become sales-ready at a fixed rate.
        for idx in order[cursor:]:
            p = personas[idx]
            if (
                p.target
                and p.email
                and p.created <= self.now_ts - 40 * DAY
                and rng.random() < SALES_READY_SHARE_OF_TARGETS
            ):
                p.ready_path = "a" if rng.random() < 0.6 else "b"
        # Existing open Leads may be sales-ready too: the connector must update, not duplicate.
        for idx in order:
            p = personas[idx]
            if (p.sf_kind == "lead" and p.target and p.created <= self.now_ts - 40 * DAY
                    and rng.random() < SALES_READY_SHARE_OF_TARGETS):
                p.ready_path = "a" if rng.random() < 0.6 else "b"
        return pairs

    # -- engagement --------------------------------------------------------------------------

    def natural_acts(
        self,
        p: _Persona,
        level: str,
        campaigns: list[tuple[int, float, str]],
        webinars: list[MarketingEventSeed],
    ) -> list[_Act]:
        """Engagement over the year for a contact of the given activity level."""
        rng = self.rng
        acts: list[_Act] = []
        start = p.created
        span = self.now_ts - start
        # Email campaigns.
        stopped = False
        for campaign_id, sent_ts, subject in campaigns:
            if stopped or sent_ts < start or rng.random() >= CAMPAIGN_INCLUDE_P[level]:
                continue
            act = _Act()
            t = sent_ts + rng.random() * 1800
            act.records.append(("email", "SENT", t, campaign_id, subject, None))
            if rng.random() < BOUNCE_P:
                act.records.append(
                    ("email", "BOUNCE", t + 20 + rng.random() * 60, campaign_id, subject,
                     rng.choice(BOUNCE_CATEGORIES))
                )
                stopped = True
                acts.append(act)
                continue
            delivered = t + 5 + rng.random() * 60
            act.records.append(("email", "DELIVERED", delivered, campaign_id, subject, None))
            last = delivered
            if rng.random() < OPEN_P[level]:
                last = delivered + rng.random() * 2 * DAY
                act.records.append(("email", "OPEN", last, campaign_id, subject, None))
                if rng.random() < CLICK_P[level]:
                    last = last + 10 + rng.random() * 600
                    page = _pick(rng, [(pg, pg[2]) for pg in PAGES])
                    act.records.append(("email", "CLICK", last, campaign_id, subject, page[0]))
            if rng.random() < SPAMREPORT_P:
                act.records.append(
                    ("email", "SPAMREPORT", last + 30, campaign_id, subject, None)
                )
                stopped = True
            elif rng.random() < UNSUBSCRIBE_P:
                act.records.append(
                    ("email", "STATUSCHANGE", last + 60, campaign_id, subject, None)
                )
                stopped = True
            acts.append(act)
        # Website visits.
        lo, hi = SESSIONS[level]
        # a sales-ready contact's pricing and demo page views, and its webinar attended, are
        # those of its pattern (`ready_acts`): the conversion drivers are its draws alone
        ready = p.ready_path is not None
        for _ in range(rng.randint(lo, hi)):
            t = start + rng.random() * span
            acts.append(self.visit(t, rng.randint(1, 5), browsing=ready))
        # Forms.
        lo, hi = FORM_FILLS[level]
        for _ in range(rng.randint(lo, hi)):
            kind = _pick(rng, FORM_WEIGHTS_BY_LEVEL[level])
            t = start + rng.random() * span
            acts.append(self.form_act(kind, t, strong=False))
        # Webinars.
        lo, hi = WEBINAR_REGS[level]
        candidates = [w for w in webinars if w.start.timestamp() - 2 * DAY > start]
        if p.ready_path is not None:
            # The recent webinars belong to the sales-ready pattern; keep them single.
            candidates = [w for w in candidates if w.start.timestamp() < self.now_ts - 20 * DAY]
        for _ in range(rng.randint(lo, hi)):
            if not candidates:
                break
            webinar = candidates.pop(rng.randrange(len(candidates)))
            outcome = _pick(rng, (("NO_SHOW", 35), ("CANCELLED", 10)) if ready else
                            (("ATTENDED", 55), ("NO_SHOW", 35), ("CANCELLED", 10)))
            attended = self.webinar_act(webinar, outcome, start)
            if attended is not None:
                acts.append(attended)
        return acts

    def visit(self, t: float, pages: int, *, high_intent: bool = False,
              browsing: bool = False) -> _Act:
        """A session of `pages` page views from `t`: pricing and demo pages only when
        `high_intent`, none of them when `browsing`, else any page by its weight."""
        act = _Act()
        session = self.ids.uuid()
        for _ in range(pages):
            page = self.rng.choice(HIGH_INTENT_PAGES) if high_intent else _pick(
                self.rng, BROWSING_PAGES if browsing else WEIGHTED_PAGES
            )
            act.records.append(("page_view", page[0], min(t, self.now_ts - 60), page[1], session))
            t += 20 + self.rng.random() * 240
        return act

    def form_act(self, kind: str, t: float, *, strong: bool) -> _Act:
        rng = self.rng
        budget: str | None = None
        timeframe: str | None = None
        if kind in ("consultation", "demo", "contact"):
            if strong:
                budget = rng.choice(STRONG_BUDGETS)
                timeframe = rng.choice(STRONG_TIMEFRAMES)
            else:
                budget = rng.choice(BUDGET_OPTIONS)
                timeframe = rng.choice(TIMEFRAME_OPTIONS)
        act = _Act()
        act.records.append(("form", kind, min(t, self.now_ts - 60), budget, timeframe))
        return act

    def webinar_act(
        self, webinar: MarketingEventSeed, outcome: str, not_before: float,
        *, registered_at: float | None = None,
    ) -> _Act | None:
        start = webinar.start.timestamp()
        if registered_at is None:
            lo = max(not_before, start - 14 * DAY)
            hi = min(start - 3600, self.now_ts - 60)
            if hi <= lo:
                return None
            registered_at = lo + self.rng.random() * (hi - lo)
        act = _Act()
        act.records.append(("form", "webinar", registered_at, None, None))
        act.records.append(("participation", "REGISTERED", registered_at, webinar.id))
        if start >= self.now_ts:
            return act  # upcoming: nothing has happened yet
        if outcome == "CANCELLED":
            t = registered_at + self.rng.random() * max(60.0, start - registered_at - 60)
            act.records.append(("participation", "CANCELLED", t, webinar.id))
        else:
            act.records.append(("participation", outcome, start, webinar.id))
        return act

    def ready_acts(self, p: _Persona, webinars: list[MarketingEventSeed]) -> list[_Act]:
        """The recent, strong intent that makes a good-fit contact sales-ready: a consultation
        (path "a") or demo (path "b") request in the last ten days, then, each drawn on its
        own, the latest webinar attended (else a registration for the upcoming one), visits to
        the pricing and demo pages, and a case study download. The draws are independent so
        that the conversion drivers (CONVERSION_DRIVERS) vary apart from each other."""
        rng = self.rng
        now = self.now_ts
        acts: list[_Act] = []
        past = [w for w in webinars if w.start.timestamp() < now]
        upcoming = [w for w in webinars if w.start.timestamp() >= now]
        kind = "consultation" if p.ready_path == "a" else "demo"
        acts.append(self.form_act(kind, now - (1 + rng.random() * 9) * DAY, strong=True))
        if rng.random() < READY_ATTEND_SHARE:
            latest = past[-1]
            reg = latest.start.timestamp() - (3 + rng.random() * 7) * DAY
            webinar = self.webinar_act(latest, "ATTENDED", p.created, registered_at=reg)
        else:
            reg = now - (1 + rng.random() * 6) * DAY
            webinar = self.webinar_act(upcoming[0], "REGISTERED", p.created, registered_at=reg)
        assert webinar is not None
        acts.append(webinar)
        if rng.random() < READY_PRICING_SHARE:
            for _ in range(rng.randint(1, 3)):
                acts.append(self.visit(now - (0.5 + rng.random() * 11) * DAY, 2,
                                       high_intent=True))
        if rng.random() < READY_CASE_STUDY_SHARE:
            acts.append(self.form_act("case_study", now - (3 + rng.random() * 17) * DAY,
                                      strong=True))
        return acts

    def engagement(
        self,
        p: _Persona,
        campaigns: list[tuple[int, float, str]],
        webinars: list[MarketingEventSeed],
    ) -> list[_Act]:
        """All engagement of one contact, with the separation margins enforced."""
        if p.email is None or p.merged_away or p.bad_reason is not None:
            return []
        misfit = (
            p.domain_kind in ("student", "competitor")
            or self._fit_of(p) < CLEAR_MISFIT_POINTS
        )
        if p.ready_path is not None:
            level = _pick(self.rng, (("cold", 40), ("warm", 60)))
        elif misfit and not p.archived:
            level = _pick(self.rng, LEVEL_WEIGHTS_FREE)
        else:
            level = _pick(self.rng, LEVEL_WEIGHTS_CAPPED)
        acts = self.natural_acts(p, level, campaigns, webinars)
        if p.ready_path is not None:
            acts += self.ready_acts(p, webinars)
            # topped up with case studies (no conversion driver) up to the margin
            while self._interest(acts, READY_CHECK_HALF_LIFE) < READY_MIN_INTEREST:
                acts.append(self.form_act("case_study",
                                          self.now_ts - (0.2 + self.rng.random()) * DAY,
                                          strong=True))
        elif not misfit:
            self._trim(acts)
        return acts

    def _fit_of(self, p: _Persona) -> int:
        return fit_points(self._fit_props(p))

    def _fit_props(self, p: _Persona) -> dict[str, str | None]:
        return {
            "seniority": p.seniority,
            "jobtitle": p.title,
            "department": p.department,
            "numemployees": p.company.size,
            "industry": p.company.industry,
            "email": p.email,
        }

    def _interest(self, acts: list[_Act], half_life: float) -> float:
        total = 0.0
        for act in acts:
            total += self._act_interest(act, half_life)
        return min(INTEREST_CAP, total)

    def _act_interest(self, act: _Act, half_life: float) -> float:
        total = 0.0
        for rec in act.records:
            points = _record_points(rec)
            if points:
                age = max(0.0, (self.now_ts - rec[2]) / DAY)
                total += points * 0.5 ** (age / half_life)
        return total

    def _trim(self, acts: list[_Act]) -> None:
        """Drop the strongest acts until interest is well under any MQL threshold."""
        total = sum(self._act_interest(a, NOT_READY_CHECK_HALF_LIFE) for a in acts)
        if total <= NOT_READY_MAX_INTEREST:
            return
        ranked = sorted(
            range(len(acts)),
            key=lambda i: (-self._act_interest(acts[i], NOT_READY_CHECK_HALF_LIFE), i),
        )
        drop: set[int] = set()
        for i in ranked:
            if total <= NOT_READY_MAX_INTEREST:
                break
            total -= self._act_interest(acts[i], NOT_READY_CHECK_HALF_LIFE)
            drop.add(i)
        acts[:] = [a for i, a in enumerate(acts) if i not in drop]

    # -- assembling --------------------------------------------------------------------------

    def run(self) -> SandboxDataset:
        users, owners = self.build_users()
        forms = self.build_forms()
        form_by_kind = {f.kind: f for f in forms}
        form_pages = {kind: page for kind, _n, page, _b in FORM_DEFS}
        campaigns = self.build_campaigns()
        webinars = self.build_webinars()
        companies = self.build_companies()
        personas = self.build_personas(companies)
        pairs = self.assign_roles(personas)
        active_users = [u for u in users if u.is_active]

        contact_id = CONTACT_ID_BASE
        for p in personas:
            p.contact_id = str(contact_id)
            contact_id += self.rng.randint(1, 4)

        contacts: list[HubSpotContactSeed] = []
        email_events: list[EmailEventSeed] = []
        submissions: list[FormSubmissionSeed] = []
        page_views: list[PageViewSeed] = []
        participations: list[ParticipationSeed] = []
        live_counts: Counter[str] = Counter({t: 0 for t in ACTIVITY_TYPES})
        by_contact: dict[str, int] = {}
        owner_of: dict[int, str] = {}  # persona index -> Salesforce user id
        user_by_id = {u.id: u for u in users}
        owner_by_email = {o.email: o for o in owners}

        for p in personas:
            if p.sf_kind is not None or self.rng.random() < RANDOM_OWNER_SHARE:
                owner_of[p.index] = self.owner_for(p, users, active_users).id

        for p in personas:
            acts = self.engagement(p, campaigns, webinars)
            live = not p.archived and not p.merged_away
            count = 0
            views: list[float] = []
            sessions: set[str] = set()
            forms_seen: list[str] = []
            last_activity = p.created
            budget = timeframe = None
            for act in acts:
                for rec in act.records:
                    category = rec[0]
                    t = rec[2]
                    last_activity = max(last_activity, t)
                    if category == "email":
                        kind = EMAIL_TYPE_TO_ACTIVITY[rec[1]]
                        email_events.append(self.email_event(p, rec))
                    elif category == "page_view":
                        kind = "page_view"
                        page_views.append(
                            PageViewSeed(
                                id=self.ids.uuid(),
                                contact_id=p.contact_id,
                                occurred_at=_dt(t),
                                url=sys.intern(SITE + rec[1]),
                                title=rec[3],
                                session_id=rec[4],
                            )
                        )
                        views.append(t)
                        sessions.add(rec[4])
                    elif category == "form":
                        kind = "form_submission"
                        forms_seen.append(rec[1])
                        values = self.form_values(p, rec)
                        budget = values.get("budget", budget)
                        timeframe = values.get("purchase_timeframe", timeframe)
                        submissions.append(
                            FormSubmissionSeed(
                                form_guid=form_by_kind[rec[1]].guid,
                                submitted_at=_dt(t),
                                page_url=SITE + form_pages[rec[1]],
                                values=values,
                                contact_id=p.contact_id,
                            )
                        )
                    else:
                        kind = PARTICIPATION_TO_ACTIVITY[rec[1]]
                        participations.append(
                            ParticipationSeed(
                                event_id=rec[3],
                                contact_id=p.contact_id,
                                state=rec[1],
                                occurred_at=_dt(t),
                            )
                        )
                    if live:
                        live_counts[kind] += 1
                    count += 1
            if live:
                by_contact[p.contact_id] = count
            props = self.contact_properties(
                p, views, len(sessions), forms_seen, budget, timeframe,
                owner_by_email, user_by_id, owner_of,
            )
            created = _dt(p.created)
            touched = max(p.created, last_activity) + 3600 * self.rng.random()
            updated = _dt(min(self.now_ts - 60, touched))
            props["lastmodifieddate"] = _iso_ms(updated)
            contacts.append(
                HubSpotContactSeed(
                    id=p.contact_id,
                    properties=props,
                    created_at=created,
                    updated_at=updated,
                    archived=p.archived,
                )
            )

        by_id = {c.id: c for c in contacts}
        merged: dict[str, str] = {}
        for survivor_idx, away_idx in pairs:
            survivor = by_id[personas[survivor_idx].contact_id]
            away = by_id[personas[away_idx].contact_id]
            away.merged_into = survivor.id
            survivor.merged_ids.append(away.id)
            merged[away.id] = survivor.id
        for c in contacts:
            if c.merged_ids:
                c.properties["hs_merged_object_ids"] = ";".join(c.merged_ids)

        # Activity in time order, as the APIs keep it (and cheap to load in order). By (time,
        # id) as two stable sorts: no key tuple for each of a million events.
        for events, at in ((email_events, "created"), (page_views, "occurred_at")):
            events.sort(key=attrgetter("id"))
            events.sort(key=attrgetter(at))
        submissions.sort(key=lambda s: (s.submitted_at, s.contact_id, s.form_guid))
        participations.sort(key=lambda x: (x.occurred_at, x.contact_id, x.event_id, x.state))
        sf_records = self.salesforce_records(personas, by_id, owner_of, user_by_id)
        ground = self.ground_truth(
            personas, contacts, email_events, submissions, page_views, participations, forms,
            merged, live_counts, by_contact, sf_records,
        )
        return SandboxDataset(
            seed=self.seed,
            generated_at=self.now,
            contacts=contacts,
            owners=owners,
            email_events=email_events,
            forms=forms,
            form_submissions=submissions,
            page_views=page_views,
            marketing_events=webinars,
            participations=participations,
            sf_users=[*users, self.manager],
            sf_records=sf_records,
            ground_truth=ground,
        )

    def owner_for(
        self, p: _Persona, users: list[SalesforceUserSeed], active: list[SalesforceUserSeed]
    ) -> SalesforceUserSeed:
        region = COUNTRIES[p.company.country][3]
        if p.company.size == "1000+":
            team = [u for u in users if u.team == "Enterprise" and u.territory.endswith(region)]
        else:
            team = [u for u in users if u.territory.startswith(region)]
        if region == "NA" and p.company.size != "1000+":
            west = p.company.state in WEST_US_STATES
            team = [u for u in team if u.territory == ("NA-West" if west else "NA-East")]
        return self.rng.choice(team or active)

    def email_event(self, p: _Persona, rec: tuple[Any, ...]) -> EmailEventSeed:
        _, etype, t, campaign_id, subject, extra_value = rec
        extra: Mapping[str, Any] = NO_EXTRA
        url = None
        if etype == "CLICK":
            url = sys.intern(SITE + extra_value + "?utm_source=hs_email&utm_medium=email")
        elif etype == "BOUNCE":
            extra = {"category": extra_value, "status": "5.1.1", "response": BOUNCE_RESPONSE}
        elif etype == "STATUSCHANGE":
            extra = {
                "source": "SOURCE_RECIPIENT",
                "requestedBy": p.email,
                "portalSubscriptionStatus": "UNSUBSCRIBED",
                "subscriptions": [{"id": 4000001, "status": "UNSUBSCRIBED"}],
            }
        elif etype == "OPEN":
            extra = _OPEN_EXTRA[self.rng.choice(("COMPUTER", "MOBILE"))]
        return EmailEventSeed(
            id=self.ids.uuid(),
            recipient=p.email or "",
            type=etype,
            created=_dt(t),
            email_campaign_id=campaign_id,
            subject=subject,
            url=url,
            extra=extra,
        )

    def form_values(self, p: _Persona, rec: tuple[Any, ...]) -> dict[str, str]:
        _, kind, _t, budget, timeframe = rec
        values = {"email": p.email or "", "firstname": p.first, "lastname": p.last}
        if kind != "newsletter":
            values["company"] = p.company.name
            values["jobtitle"] = p.title
        if budget is not None:
            values["budget"] = budget
            values["purchase_timeframe"] = timeframe
        if kind in ("consultation", "contact"):
            values["message"] = "We would like to talk about routing marketing leads to sales."
        return values

    def contact_properties(
        self,
        p: _Persona,
        views: list[float],
        visits: int,
        forms_seen: list[str],
        budget: str | None,
        timeframe: str | None,
        owner_by_email: dict[str, HubSpotOwnerSeed],
        user_by_id: dict[str, SalesforceUserSeed],
        owner_of: dict[int, str],
    ) -> dict[str, str | None]:
        rng = self.rng
        company = p.company
        prefix = COUNTRIES[company.country][2]
        if p.sf_kind in ("customer", "opportunity"):
            stage = p.sf_kind
        elif any(k != "newsletter" for k in forms_seen) or p.source == "OFFLINE":
            stage = "lead"
        else:
            stage = "subscriber"
        owner_id = None
        if p.index in owner_of:
            owner_id = owner_by_email[user_by_id[owner_of[p.index]].email].id
        props: dict[str, str | None] = {
            "hs_object_id": p.contact_id,
            "email": p.email,
            "firstname": p.first,
            "lastname": p.last,
            "jobtitle": p.title,
            "seniority": p.seniority,
            "department": p.department,
            "company": company.name if p.domain_kind != "student" else None,
            "website": company.website if p.domain_kind == "corporate" else None,
            "phone": (
                f"{prefix} {rng.randint(200, 989)} {rng.randint(100, 999)} "
                f"{rng.randint(1000, 9999)}" if rng.random() < 0.7 else None
            ),
            "numemployees": company.size,
            "industry": company.industry,
            "country": company.country,
            "state": company.state,
            "lifecyclestage": stage,
            "hs_lead_status": None,
            "hs_analytics_source": p.source,
            "hubspot_owner_id": owner_id,
            "createdate": _iso_ms(_dt(p.created)),
            "hs_analytics_num_page_views": str(len(views)),
            "hs_analytics_num_visits": str(visits),
            "hs_analytics_last_visit_timestamp": _iso_ms(_dt(max(views))) if views else None,
            "budget": budget,
            "purchase_timeframe": timeframe,
        }
        return props

    def salesforce_records(
        self,
        personas: list[_Persona],
        by_id: dict[str, HubSpotContactSeed],
        owner_of: dict[int, str],
        user_by_id: dict[str, SalesforceUserSeed],
    ) -> list[SalesforceRecordSeed]:
        rng = self.rng
        records: list[SalesforceRecordSeed] = []
        accounts: dict[str, str] = {}  # company domain -> Account Id
        for p in personas:
            if p.sf_kind is None or p.email is None:
                continue
            props = by_id[p.contact_id].properties
            owner = owner_of[p.index]
            created = _sf_datetime(_dt(p.created - rng.random() * 30 * DAY))
            employees = rng.randint(*SIZE_EMPLOYEES[p.company.size])
            if p.sf_kind == "lead":
                status = _pick(rng, SF_OPEN_LEAD_STATUSES)
                records.append(
                    SalesforceRecordSeed(
                        "Lead",
                        {
                            "Id": self.ids.sf("00Q"),
                            "FirstName": p.first,
                            "LastName": p.last,
                            "Email": p.email,
                            "Company": p.company.name
                            if p.domain_kind != "student" else "[not provided]",
                            "Title": p.title,
                            "Phone": props.get("phone"),
                            "Status": status,
                            "LeadSource": SF_LEAD_SOURCES[p.source],
                            "Industry": SF_INDUSTRIES[p.company.industry],
                            "NumberOfEmployees": employees,
                            "Country": p.company.country,
                            "State": p.company.state,
                            "Website": props.get("website"),
                            "OwnerId": owner,
                            "IsConverted": False,
                            "CreatedDate": created,
                        },
                    )
                )
                continue
            account_id = accounts.get(p.company.domain)
            if account_id is None:
                account_id = self.ids.sf("001")
                accounts[p.company.domain] = account_id
                records.append(
                    SalesforceRecordSeed(
                        "Account",
                        {
                            "Id": account_id,
                            "Name": p.company.name,
                            "Website": p.company.website,
                            "Industry": SF_INDUSTRIES[p.company.industry],
                            "NumberOfEmployees": employees,
                            "BillingCountry": p.company.country,
                            "BillingState": p.company.state,
                            "OwnerId": owner,
                            "CreatedDate": created,
                        },
                    )
                )
            records.append(
                SalesforceRecordSeed(
                    "Contact",
                    {
                        "Id": self.ids.sf("003"),
                        "AccountId": account_id,
                        "FirstName": p.first,
                        "LastName": p.last,
                        "Email": p.email,
                        "Title": p.title,
                        "Phone": props.get("phone"),
                        "MailingCountry": p.company.country,
                        "MailingState": p.company.state,
                        "LeadSource": SF_LEAD_SOURCES[p.source],
                        "OwnerId": owner,
                        "CreatedDate": created,
                    },
                )
            )
            if p.sf_kind in ("customer", "opportunity"):
                won = p.sf_kind == "customer"
                offset_days = -rng.randint(10, 200) if won else rng.randint(10, 90)
                close = _dt(self.now_ts + offset_days * DAY)
                records.append(
                    SalesforceRecordSeed(
                        "Opportunity",
                        {
                            "Id": self.ids.sf("006"),
                            "Name": f"{p.company.name} - Platform",
                            "AccountId": account_id,
                            "StageName": "Closed Won"
                            if won else rng.choice(SF_OPPORTUNITY_STAGES_OPEN),
                            "CloseDate": close.strftime("%Y-%m-%d"),
                            "Amount": float(rng.choice((12000, 24000, 48000, 90000, 150000))),
                            "OwnerId": owner,
                            "CreatedDate": created,
                        },
                    )
                )
        return records

    def ground_truth(
        self,
        personas: list[_Persona],
        contacts: list[HubSpotContactSeed],
        email_events: list[EmailEventSeed],
        submissions: list[FormSubmissionSeed],
        page_views: list[PageViewSeed],
        participations: list[ParticipationSeed],
        forms: list[FormSeed],
        merged: dict[str, str],
        live_counts: Counter[str],
        by_contact: dict[str, int],
        sf_records: list[SalesforceRecordSeed],
    ) -> GroundTruth:
        live = [c.id for c in contacts if not c.archived and c.merged_into is None]
        archived = [c.id for c in contacts if c.archived]
        activities = _activities(
            contacts, email_events, submissions, page_views, participations, forms
        )
        sales_ready = [
            c.properties["email"] or ""
            for c in contacts
            if is_sales_ready(c, activities[c.id], self.now)
        ]
        bad = {p.contact_id: p.bad_reason for p in personas if p.bad_reason is not None}
        return GroundTruth(
            contact_ids=live,
            archived_ids=archived,
            merged=merged,
            activities_by_type={t: live_counts[t] for t in ACTIVITY_TYPES},
            activities_by_contact=by_contact,
            sales_ready=sorted(sales_ready),
            existing_sf_contacts=sorted(
                r.fields["Email"] for r in sf_records if r.sobject == "Contact"
            ),
            existing_sf_leads=sorted(r.fields["Email"] for r in sf_records if r.sobject == "Lead"),
            bad_records=bad,
            conversion=conversion_truth(contacts, activities, submissions, sales_ready,
                                        self.now),
        )


def _record_points(rec: tuple[Any, ...]) -> int:
    category, detail = rec[0], rec[1]
    if category == "form":
        return FORM_POINTS.get(detail, 0)
    if category == "participation":
        return PARTICIPATION_POINTS.get(detail, 0)
    if category == "page_view":
        return _page_points(detail)
    return EMAIL_POINTS.get(detail, 0)


_ASCII = str.maketrans({"ü": "ue", "ö": "oe", "ä": "ae", "é": "e", "á": "a", "'": "", " ": ""})


def _ascii_slug(name: str) -> str:
    return name.lower().translate(_ASCII)


def generate(seed: int, contacts: int, *, now: datetime | None = None) -> SandboxDataset:
    """A seeded synthetic dataset of `contacts` HubSpot contacts with 12 months of engagement
    before `now` (default DEFAULT_NOW, never wall time), the Salesforce org they meet, and the
    ground truth. Same arguments, same bytes from `dataset_to_json`."""
    if contacts < 1:
        raise ValueError(f"contacts must be at least 1, got {contacts}")
    when = (now or DEFAULT_NOW).astimezone(UTC)
    return _Generator(seed, contacts, when).run()


# ---------------------------------------------------------------------------------------------
# Canonical JSON
# ---------------------------------------------------------------------------------------------

_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return _iso_ms(value.astimezone(UTC)) if value.microsecond % 1000 == 0 else (
            value.astimezone(UTC).isoformat()
        )
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if is_dataclass(value) and not isinstance(value, type):
        cls = type(value)
        names = _FIELD_NAMES.get(cls)
        if names is None:
            names = tuple(f.name for f in fields(cls))
            _FIELD_NAMES[cls] = names
        return {name: _plain(getattr(value, name)) for name in names}
    raise TypeError(f"cannot serialise {type(value).__name__} in a sandbox dataset")


def dataset_to_json(ds: SandboxDataset) -> bytes:
    """Canonical JSON of a dataset (sorted keys, no whitespace, UTF-8): equal datasets give
    equal bytes."""
    return json.dumps(
        _plain(ds), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")
