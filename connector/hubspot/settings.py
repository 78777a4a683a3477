"""Every HubSpot path, page size and limit Handshake relies on, in one place."""

from __future__ import annotations

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
