"""Every path, limit and fixed string of the emulated HubSpot API, in one place.

Sources (checked 2026-11):
- Rate limits and headers: https://developers.hubspot.com/docs/developer-tooling/platform/usage-guidelines
  (Professional is 625,000/day there; older pages said 500k/650k).
- Search limits: https://developers.hubspot.com/docs/api-reference/search/guide#limitations and
  https://developers.hubspot.com/changelog/breaking-change-expanded-filtering-capabilities-and-error-messaging-in-hubspots-search-api
- Batch limits: VALIDATION_ERROR bodies observed live (messages quoted below).
- Legacy email events: https://developers.hubspot.com/docs/api-reference/legacy/email-analytics-v1/guide
- Legacy form submissions:
  https://developers.hubspot.com/docs/api-reference/legacy/marketing/forms/v1/get-form-integrations-v1-submissions-forms-form_guid
"""

from __future__ import annotations

from dataclasses import dataclass

# --- API versions: the legacy v3 paths and the date-versioned ones behave the same.
CONTACTS_PREFIXES: tuple[str, ...] = ("/crm/v3/objects/contacts", "/crm/objects/2026-03/contacts")
PROPERTIES_PREFIX = "/crm/v3/properties/{objectType}"
OWNERS_PATH = "/crm/v3/owners"
LISTS_PATH = "/crm/v3/lists"
EMAIL_EVENTS_PATH = "/email/public/v1/events"
FORMS_PATH = "/marketing/v3/forms"
FORM_SUBMISSIONS_PATH = "/form-integrations/v1/submissions/forms/{formGuid}"
WEB_EVENTS_PATH = "/events/v3/events"
MARKETING_EVENTS_PREFIX = "/marketing/v3/marketing-events"
MARKETING_EVENTS_LIST_PATH = "/marketing/marketing-events/v3"
SANDBOX_PREFIX = "/__sandbox__"

# --- paging and batch limits
CONTACTS_PAGE_DEFAULT = 10
CONTACTS_PAGE_MAX = 100
# propertiesWithHistory lowers the page size of a contacts list (documented, not numbered; 50 as batch)
CONTACTS_PAGE_MAX_WITH_HISTORY = 50
SEARCH_PAGE_DEFAULT = 10
SEARCH_PAGE_MAX = 200
SEARCH_RESULT_CAP = 10_000
SEARCH_MAX_FILTER_GROUPS = 5
SEARCH_MAX_FILTERS_PER_GROUP = 10
SEARCH_MAX_FILTERS_TOTAL = 25
SEARCH_MAX_SORTS = 1
SEARCH_QUERY_MAX_CHARS = 3000
SEARCH_DEFAULT_PROPERTIES = (
    "createdate",
    "email",
    "firstname",
    "hs_object_id",
    "lastmodifieddate",
    "lastname",
)
LIST_DEFAULT_PROPERTIES = SEARCH_DEFAULT_PROPERTIES
ALWAYS_RETURNED_PROPERTIES = ("createdate", "hs_object_id", "lastmodifieddate")
SEARCH_CACHE_SIZE = 64
BATCH_MAX_INPUTS = 100
BATCH_MAX_INPUTS_WITH_HISTORY = 50
OWNERS_PAGE_DEFAULT = 100
OWNERS_PAGE_MAX = 500
LIST_MEMBERSHIPS_PAGE_DEFAULT = 100
LIST_MEMBERSHIPS_PAGE_MAX = 250
EMAIL_EVENTS_LIMIT_DEFAULT = 20
EMAIL_EVENTS_LIMIT_MAX = 1000
FORMS_PAGE_DEFAULT = 20
FORMS_PAGE_MAX = 100
FORM_SUBMISSIONS_LIMIT_DEFAULT = 20
FORM_SUBMISSIONS_LIMIT_MAX = 50
WEB_EVENTS_PAGE_DEFAULT = 20
WEB_EVENTS_PAGE_MAX = 1000
PARTICIPATIONS_PAGE_DEFAULT = 10
PARTICIPATIONS_PAGE_MAX = 100
MARKETING_EVENTS_PAGE_DEFAULT = 10
MARKETING_EVENTS_PAGE_MAX = 100

# HubSpot's edge refuses long request targets with 414 (reported ~8 KB by dlt in 2023, ~16 KB
# by PostHog in 2025); 8,192 also stays under uvicorn's 16 KB request-head limit
URL_MAX_CHARS = 8192
MSG_URI_TOO_LONG = (
    "<html><head><title>414 Request-URI Too Large</title></head><body><center>"
    "<h1>414 Request-URI Too Large</h1></center><hr><center>cloudflare</center></body></html>"
)

PAGE_VIEW_EVENT_TYPE = "e_visited_page"
# A visit (session) ends after 30 minutes without activity, as HubSpot counts sessions.
VISIT_GAP_MINUTES = 30

# --- error messages as HubSpot words them
MSG_BATCH_TOO_MANY = (
    "The maximum number of inputs supported in a batch is {max}. "
    "Please reduce the number of items and try again"
)
MSG_BATCH_HISTORY_TOO_MANY = (
    "The maximum number of inputs supported in a batch request for property histories is {max}. "
    "Please reduce the number of items and try again"
)
# HubSpot does not document the wording of the 10,000-cap error; the status and category are.
MSG_SEARCH_CAP = (
    "Search results are limited to {cap} total results for any given query. "
    "Narrow the query (for example by a lastmodifieddate window) to page further"
)
MSG_AUTH_MISSING = (
    "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can "
    "find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview"
)
# The events API: Enterprise accounts only; others (or tokens without the scope) get this 403.
EVENTS_SCOPE = "oauth"  # the only scope the reference spec (events-v3.json) names
MSG_MISSING_SCOPES = (
    "This app hasn't been granted all required scopes to make this call. Read more about "
    "required scopes here: https://developers.hubspot.com/scopes."
)
MSG_TEN_SECONDLY = "You have reached your ten_secondly_rolling limit."
MSG_SECONDLY = "You have reached your secondly limit."
MSG_DAILY = "You have reached your daily limit."
MSG_INTERNAL = "internal error"
MSG_UNAVAILABLE = "Service Unavailable. The server is temporarily unable to handle the request."

# --- rate-limit headers the real API sends (search responses carry none)
H_DAILY = "X-HubSpot-RateLimit-Daily"
H_DAILY_REMAINING = "X-HubSpot-RateLimit-Daily-Remaining"
H_INTERVAL = "X-HubSpot-RateLimit-Interval-Milliseconds"
H_MAX = "X-HubSpot-RateLimit-Max"
H_REMAINING = "X-HubSpot-RateLimit-Remaining"
H_SECONDLY = "X-HubSpot-RateLimit-Secondly"
H_SECONDLY_REMAINING = "X-HubSpot-RateLimit-Secondly-Remaining"
H_CORRELATION = "X-HubSpot-Correlation-Id"

POLICY_TEN_SECONDLY = "TEN_SECONDLY_ROLLING"
POLICY_SECONDLY = "SECONDLY"
POLICY_DAILY = "DAILY"


@dataclass(frozen=True)
class RateLimits:
    """Per-token limits: a rolling window, the search per-second cap and a daily budget."""

    window_max: int
    window_seconds: float = 10.0
    daily: int = 250_000
    search_per_second: int = 5


TIERS: dict[str, RateLimits] = {
    "free": RateLimits(window_max=100, daily=250_000),
    "starter": RateLimits(window_max=100, daily=250_000),
    "professional": RateLimits(window_max=190, daily=625_000),
    "enterprise": RateLimits(window_max=190, daily=1_000_000),
    # The API limit increase: 250 per 10 s and +1M a day on top of the base subscription.
    "capacity_pack": RateLimits(window_max=250, daily=2_000_000),
}

# Legacy email event types (email analytics v1 guide).
EMAIL_EVENT_TYPES = (
    "PROCESSED",
    "DROPPED",
    "DELIVERED",
    "DEFERRED",
    "BOUNCE",
    "SENT",
    "OPEN",
    "CLICK",
    "PRINT",
    "FORWARD",
    "STATUSCHANGE",
    "SPAMREPORT",
    "SUPPRESSED",
    "SUPPRESSION",
    "UNBOUNCE",
)

PARTICIPATION_STATES = ("REGISTERED", "ATTENDED", "CANCELLED", "NO_SHOW")
LIFECYCLE_PROPERTY = "lifecyclestage"
# the stage a new contact from a form submission gets (HubSpot's default form setting)
FORM_DEFAULT_STAGE = "lead"
