"""Every HubSpot path, page size, limit and header Handshake relies on, in one place.

Sources of the API limits (checked while writing this module):
- Burst and daily limits per private app: Free/Starter 100 per 10 s and 250,000 a day;
  Professional 190 and 650,000; Enterprise 190 and 1,000,000; the "API limit increase" capacity
  pack adds 1,000,000 a day per pack (at most two) and lifts the burst to 250 per 10 s (the burst
  does not stack) -- developers.hubspot.com/changelog/increasing-our-api-limits.
- Search: "The search endpoints are rate limited to five requests per second per account"
  and its responses carry no rate-limit headers -- HubSpot "Search the CRM" guide, Limits.
- The daily limit resets at midnight in the time zone set on the HubSpot account
  (API usage guidelines; legacy "check daily API usage": "midnight to midnight based on the
  connected account's time zone settings"), hence a setting, not a constant.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

# Page sizes: the documented maxima.
CONTACTS_LIST_LIMIT = 100
SEARCH_LIMIT = 200
SEARCH_RESULT_CAP = 10_000  # paging a search past this answers 400
EMAIL_EVENTS_LIMIT = 1000
FORM_SUBMISSIONS_LIMIT = 50
FORMS_LIMIT = 100
WEB_EVENTS_LIMIT = 100
MARKETING_EVENTS_LIMIT = 100
PARTICIPATIONS_LIMIT = 100
BATCH_LIMIT = 100
OWNERS_LIMIT = 100

# A GET query string beyond this many characters risks 414 at HubSpot's edge: chunk properties.
MAX_QUERY_CHARS = 6000

# Date-versioned object paths replace /crm/v3/objects from September 2027.
CONTACTS_V3 = "/crm/v3/objects/contacts"
CONTACTS_DATED = "/crm/objects/{version}/contacts"
PROPERTIES = "/crm/v3/properties/contacts"
OWNERS = "/crm/v3/owners"
EMAIL_EVENTS = "/email/public/v1/events"
FORMS = "/marketing/v3/forms"
FORM_SUBMISSIONS = "/form-integrations/v1/submissions/forms/{guid}"
WEB_EVENTS = "/events/v3/events"
MARKETING_EVENTS = "/marketing/marketing-events/v3"
PARTICIPATIONS = "/marketing/v3/marketing-events/participations/{event_id}/breakdown"

PAGE_VIEW_EVENT = "e_visited_page"

# Properties every pull needs, whatever the mapping files say.
CORE_PROPERTIES = (
    "email",
    "firstname",
    "lastname",
    "company",
    "jobtitle",
    "phone",
    "website",
    "country",
    "state",
    "city",
    "industry",
    "numemployees",
    "annualrevenue",
    "lifecyclestage",
    "hs_lead_status",
    "hubspot_owner_id",
    "hs_analytics_source",
    "hs_analytics_source_data_1",
    "hs_analytics_num_page_views",
    "hs_analytics_num_visits",
    "hs_analytics_last_visit_timestamp",
    "hs_analytics_first_url",
    "hs_analytics_last_url",
    "hs_analytics_first_timestamp",
    "hs_email_optout",
    "hs_merged_object_ids",
    "hs_additional_emails",
    "num_conversion_events",
    "recent_conversion_date",
    "createdate",
    "lastmodifieddate",
)

# Write-back (scores, grades, lifecycle stage) to contacts.
CONTACTS_BATCH_UPDATE = "/batch/update"  # appended to the contacts path
WRITE_BATCH_LIMIT = BATCH_LIMIT  # more inputs answer 400 VALIDATION_ERROR
# HubSpot datetime properties take ISO-8601 UTC with milliseconds (or epoch ms).
DATETIME_FORMAT = "%Y-%m-%dT%H:%M:%S.000Z"

# Pull-back: outcomes, lifecycle moves and the re-engagement list.
# Lists stay on v3 (supported until September 2027); the v1 lists API was sunset 30 April 2026.
PROPERTY = PROPERTIES + "/{name}"
LISTS = "/crm/v3/lists"
LIST_BY_NAME = LISTS + "/object-type-id/{object_type_id}/name/{name}"  # name: case ignored
LIST_MEMBERSHIPS_ADD = LISTS + "/{list_id}/memberships/add"
CONTACT_OBJECT_TYPE_ID = "0-1"
LIFECYCLE_PROPERTY = "lifecyclestage"
LIST_PROCESSING_MANUAL = "MANUAL"
MEMBERSHIP_LISTS = ("MANUAL", "SNAPSHOT")  # the only lists memberships/add accepts
# HubSpot documents no per-request maximum for memberships/add: keep it to a batch's 100.
LIST_MEMBERSHIPS_BATCH = BATCH_LIMIT
LIST_NAME_TAKEN = "ILS.LIST_NAME_ALREADY_EXISTS"  # subCategory of a create under a taken name

# --- the HTTP policy: limits, limiter names and the headers HubSpot answers with -------------
HUBSPOT_SYSTEM = "hubspot"  # the `system` of every error HubSpot's policy raises

# limiter names (what `HttpPolicy.execute(limiter=...)` and the httpx LIMITER extension take)
HUBSPOT_BURST = "burst"
HUBSPOT_SEARCH = "search"

HUBSPOT_BURST_WINDOW_SECONDS = 10.0
HUBSPOT_SEARCH_PER_SECOND = 5
HUBSPOT_SEARCH_WINDOW_SECONDS = 1.0
HUBSPOT_SECONDLY_WINDOW_SECONDS = 1.0


@dataclass(frozen=True)
class HubSpotLimits:
    """A HubSpot account's request allowance: a burst per 10-second window and a daily total."""

    burst: int
    daily: int


# developers.hubspot.com/docs/developer-tooling/platform/usage-guidelines (2026-11): Professional
# is 625,000 a day (the 2023 changelog's 650,000 is out of date), as the sandbox answers.
HUBSPOT_TIERS: Mapping[str, HubSpotLimits] = MappingProxyType(
    {
        "free": HubSpotLimits(burst=100, daily=250_000),
        "starter": HubSpotLimits(burst=100, daily=250_000),
        "professional": HubSpotLimits(burst=190, daily=625_000),
        "enterprise": HubSpotLimits(burst=190, daily=1_000_000),
    }
)
# What one "API limit increase" capacity pack changes; the burst lift does not stack.
HUBSPOT_CAPACITY_PACK = HubSpotLimits(burst=250, daily=1_000_000)
HUBSPOT_CAPACITY_PACK_MAX = 2

# Response headers the policy reads (lower-case: every transport lower-cases header names).
HUBSPOT_INTERVAL_HEADER = "x-hubspot-ratelimit-interval-milliseconds"
HUBSPOT_DAILY_HEADER = "x-hubspot-ratelimit-daily"
HUBSPOT_DAILY_REMAINING_HEADER = "x-hubspot-ratelimit-daily-remaining"

# 429 `policyName` values and what each one means for waiting.
HUBSPOT_POLICY_DAILY = "DAILY"
HUBSPOT_POLICY_TEN_SECONDLY = "TEN_SECONDLY_ROLLING"
HUBSPOT_POLICY_SECONDLY = "SECONDLY"

# The keys of a HubSpot error body that carry its codes (`policyName` on a 429).
HUBSPOT_ERROR_CODE_KEYS = ("category", "subCategory", "errorType", "policyName")
