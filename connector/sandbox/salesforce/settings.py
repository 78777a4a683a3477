"""Every path, limit, fixed message and default of the emulated Salesforce API, in one place.

Sources (checked for this emulation):
- REST API Developer Guide, https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/
- sObject Collections, .../resources_composite_sobjects_collections.htm (200 records a call)
- Composite, .../resources_composite_composite_post.htm and requests_composite.htm (25
  subrequests, at most 5 of them sObject Collections or query operations, one API call for the
  whole series; subrequests inherit Accept, Authorization and Content-Type, naming them in
  `httpHeaders` fails the request with 400) and resources_composite_subrequest_result.htm
  (`{"body","httpHeaders","httpStatusCode","referenceId"}`; referenceIds of letters, digits
  and underscores)
- Get Updated / Get Deleted, .../resources_getupdated.htm, .../resources_getdeleted.htm
  (30 days back for updated, 15 days for deleted, 600,000 ids at most)
- Limits header, .../headers_api_usage.htm (`Sforce-Limit-Info: api-usage=N/M`)
- Query options header, .../headers_queryoptions.htm (batchSize 200..2000, default 2000)
- SOQL date formats, https://developer.salesforce.com/docs/atlas.en-us.soql_sosl.meta/soql_sosl/sforce_api_calls_soql_select_dateformats.htm
- Bulk API 2.0 ingest, https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/
  (create_job.htm, upload_job_data.htm, close_job.htm, get_job_info.htm,
  get_job_successful_results.htm, get_job_failed_results.htm, get_job_unprocessed_results.htm,
  datafiles_understanding_bulk2_ingest.htm: one batch per 10,000 records;
  bulk_common_limits.htm: 15,000 batches per rolling 24 hours, shared with Bulk API 1.0)
"""

from __future__ import annotations

import re

# Versions ------------------------------------------------------------------------------------
DEFAULT_API_VERSION = "62.0"
MIN_API_VERSION = 50.0
VERSION_LABELS: dict[str, str] = {
    "50.0": "Winter '21",
    "51.0": "Spring '21",
    "52.0": "Summer '21",
    "53.0": "Winter '22",
    "54.0": "Spring '22",
    "55.0": "Summer '22",
    "56.0": "Winter '23",
    "57.0": "Spring '23",
    "58.0": "Summer '23",
    "59.0": "Winter '24",
    "60.0": "Spring '24",
    "61.0": "Summer '24",
    "62.0": "Winter '25",
    "63.0": "Spring '25",
    "64.0": "Summer '25",
    "65.0": "Winter '26",
}

# Paths ---------------------------------------------------------------------------------------
OAUTH_TOKEN_PATH = "/services/oauth2/token"
SOAP_LOGIN_RE = re.compile(r"^/services/Soap/u/(?P<version>\d+\.\d)/?$")
DATA_ROOT = "/services/data"
SOAP_PARTNER_ROOT = "/services/Soap/u"
SOAP_METADATA_ROOT = "/services/Soap/m"
IDENTITY_ROOT = "/id"
DATA_PREFIX_RE = re.compile(r"^/services/data/v(?P<version>\d+\.\d)(?P<rest>/.*)?$")
SANDBOX_PREFIX = "/__sandbox__"
ORG_ID = "00D5g000004SBXAEA4"
INSTANCE_NAME = "SBX1"

# REST route templates under /services/data/vNN.N (regex, name used in statistics)
ROUTES: list[tuple[str, str]] = [
    (r"^/?$", "/"),
    (r"^/limits/?$", "/limits"),
    (r"^/query/?$", "/query"),
    (r"^/queryAll/?$", "/queryAll"),
    (r"^/query/(?P<locator>[^/]+)$", "/query/{locator}"),
    (r"^/queryAll/(?P<locator>[^/]+)$", "/queryAll/{locator}"),
    (r"^/sobjects/?$", "/sobjects"),
    (r"^/sobjects/(?P<sobject>\w+)/?$", "/sobjects/{sobject}"),
    (r"^/sobjects/(?P<sobject>\w+)/describe/?$", "/sobjects/{sobject}/describe"),
    (r"^/sobjects/(?P<sobject>\w+)/updated/?$", "/sobjects/{sobject}/updated"),
    (r"^/sobjects/(?P<sobject>\w+)/deleted/?$", "/sobjects/{sobject}/deleted"),
    (r"^/sobjects/(?P<sobject>\w+)/(?P<id>[^/]+)/?$", "/sobjects/{sobject}/{id}"),
    (
        r"^/sobjects/(?P<sobject>\w+)/(?P<field>\w+)/(?P<value>[^/]+)/?$",
        "/sobjects/{sobject}/{field}/{value}",
    ),
    (r"^/composite/?$", "/composite"),
    (r"^/composite/sobjects/?$", "/composite/sobjects"),
    (r"^/composite/sobjects/(?P<sobject>\w+)/?$", "/composite/sobjects/{sobject}"),
    (
        r"^/composite/sobjects/(?P<sobject>\w+)/(?P<field>\w+)/?$",
        "/composite/sobjects/{sobject}/{field}",
    ),
    (r"^/jobs/ingest/?$", "/jobs/ingest"),
    (r"^/jobs/ingest/(?P<job_id>\w+)/?$", "/jobs/ingest/{job_id}"),
    (r"^/jobs/ingest/(?P<job_id>\w+)/batches/?$", "/jobs/ingest/{job_id}/batches"),
    # successfulResults, failedResults or unprocessedrecords (the handler refuses others)
    (r"^/jobs/ingest/(?P<job_id>\w+)/(?P<results>\w+)/?$", "/jobs/ingest/{job_id}/{results}"),
]

# Limits --------------------------------------------------------------------------------------
DAILY_WINDOW_SECONDS = 24 * 3600
DEFAULT_DAILY_ALLOCATION = 100_000
COLLECTION_MAX_RECORDS = 200
COMPOSITE_MAX_SUBREQUESTS = 25
COMPOSITE_MAX_HEAVY = 5  # sObject Collections and query subrequests in one composite call
# Resources a composite subrequest may name (route names above); anything else is not found.
COMPOSITE_RESOURCES = ("/sobjects", "/query", "/queryAll", "/composite/sobjects")
COMPOSITE_HEAVY = ("/query", "/queryAll", "/composite/sobjects")  # counted against the 5
COMPOSITE_INHERITED_HEADERS = ("accept", "authorization", "content-type")
COMPOSITE_REFERENCE_ID_RE = re.compile(r"^\w+$", re.ASCII)
COLLECTION_RETRIEVE_GET_MAX = 800  # URL length bound the docs give for GET ?ids=
COLLECTION_RETRIEVE_POST_MAX = 2000
QUERY_DEFAULT_BATCH = 2000
QUERY_MIN_BATCH = 200
QUERY_MAX_BATCH = 2000
QUERY_LOCATOR_IDLE_SECONDS = 15 * 60
QUERY_MAX_OFFSET = 2000
UPDATED_MAX_DAYS = 30
DELETED_MAX_DAYS = 15
REPLICATION_MAX_IDS = 600_000
SESSION_TTL_SECONDS = 7200
BULK_BATCH_RECORDS = 10_000  # Bulk API 2.0 makes one batch of every 10,000 records
BULK_SAVE_RECORDS = 200  # ...and saves a batch 200 records at a time
DEFAULT_BULK_BATCH_ALLOCATION = 15_000  # per rolling 24 h, shared by Bulk API 1.0 and 2.0
BULK_JOB_ID_PREFIX = "750"
JWT_AUDIENCES = ("https://login.salesforce.com", "https://test.salesforce.com")

# Headers -------------------------------------------------------------------------------------
LIMIT_INFO_HEADER = "Sforce-Limit-Info"
AUTO_ASSIGN_HEADER = "sforce-auto-assign"
DUPLICATE_RULE_HEADER = "sforce-duplicate-rule-header"
QUERY_OPTIONS_HEADER = "sforce-query-options"

# Fixed error bodies --------------------------------------------------------------------------
MSG_SESSION_INVALID = "Session expired or invalid"
MSG_REQUEST_LIMIT = "TotalRequests Limit exceeded."
MSG_CONCURRENT_LIMIT = "ConcurrentPerOrgLongTxn Limit exceeded."
MSG_SERVER_UNAVAILABLE = "Server temporarily unavailable"
MSG_UNKNOWN_EXCEPTION = (
    "An unexpected error occurred. Please include this ErrorId if you contact support: "
    "1730263381-22913 (-1604219345)"
)
MSG_COLLECTION_LIMIT = "record limit reached. cannot submit more than 200 records into this call"
MSG_ROLLED_BACK = (
    "Record rolled back because not all records were valid and the request was using "
    "AllOrNone header"
)
MSG_NOT_FOUND = "The requested resource does not exist"
# The docs give the composite limits, not the wording of the refusal: these are the sandbox's.
MSG_COMPOSITE_TOO_MANY = (
    "Composite requests may contain at most 25 subrequests; this one has {n}"
)
MSG_COMPOSITE_TOO_HEAVY = (
    "Composite requests may contain at most 5 sObject Collections or query subrequests; "
    "this one has {n}"
)
MSG_COMPOSITE_HEADER = "Subrequest {ref}: the {header} header is inherited and cannot be set"
MSG_PROCESSING_HALTED = (
    "The transaction was rolled back since another operation in the same transaction failed."
)
MSG_DUPLICATE = "Use one of these records?"
MSG_DUPLICATE_RULE = (
    "You're creating a duplicate record. We recommend you use an existing record instead."
)
SOAP_INVALID_LOGIN = "Invalid username, password, security token; or user locked out."
# Bulk API 2.0: a second PUT on one job is refused when the job is closed (message as sent,
# typo included); a CSV header naming no field fails the whole job.
MSG_BULK_MULTIPLE_UPLOADS = (
    "Found multipe contents for job: <{job_id}>, please 'Close' / 'Abort' / 'Delete' the "
    "current Job then create a new Job and make sure you only do 'PUT' once on a given Job."
)
MSG_BULK_FIELD_NOT_FOUND = "InvalidBatch : Field name not found : {field}"
MSG_BULK_BATCHES_EXCEEDED = (
    "ExceededQuota : The daily batch allocation (shared by Bulk API and Bulk API 2.0) is spent"
)
LEAD_ASSIGNMENT_RULE_NAME = "Sandbox Territories"

# Duplicate rules: (sobject being saved) -> [(matched sobject, matching rule name)]
DUPLICATE_RULES: dict[str, tuple[str, list[tuple[str, str]]]] = {
    "Lead": (
        "Standard_Rule_for_Leads_with_Duplicate_Contacts",
        [
            ("Lead", "Standard_Lead_Match_Rule_v1_0"),
            ("Contact", "Standard_Contact_Match_Rule_v1_1"),
        ],
    ),
    "Contact": (
        "Standard_Contact_Duplicate_Rule",
        [("Contact", "Standard_Contact_Match_Rule_v1_1")],
    ),
}

# Lead assignment rule: country (lower case) -> region; a region is served by the active users
# whose territory starts with it, in turn; anything else goes to the queue below.
UNASSIGNED_QUEUE_NAME = "Unassigned Leads"
# The marketing team's Lead queue, where recycled Leads go back to nurture (the shipped
# sla.toml's [recycling] owner_queue names it).
MARKETING_QUEUE_NAME = "Marketing Nurture"
COUNTRY_REGIONS: dict[str, str] = {
    **{
        c: "NA"
        for c in (
            "us",
            "usa",
            "united states",
            "united states of america",
            "canada",
            "ca",
            "mexico",
            "mx",
        )
    },
    **{
        c: "EMEA"
        for c in (
            "uk",
            "gb",
            "united kingdom",
            "great britain",
            "ireland",
            "ie",
            "france",
            "fr",
            "germany",
            "de",
            "spain",
            "es",
            "italy",
            "it",
            "netherlands",
            "nl",
            "belgium",
            "be",
            "sweden",
            "se",
            "norway",
            "no",
            "denmark",
            "dk",
            "finland",
            "fi",
            "switzerland",
            "ch",
            "austria",
            "at",
            "poland",
            "pl",
            "portugal",
            "pt",
            "israel",
            "il",
            "united arab emirates",
            "ae",
            "south africa",
            "za",
            "nigeria",
            "ng",
            "kenya",
            "ke",
            "egypt",
            "eg",
            "saudi arabia",
            "sa",
        )
    },
    **{
        c: "APAC"
        for c in (
            "australia",
            "au",
            "new zealand",
            "nz",
            "japan",
            "jp",
            "china",
            "cn",
            "india",
            "in",
            "singapore",
            "sg",
            "south korea",
            "kr",
            "korea",
            "hong kong",
            "hk",
            "indonesia",
            "id",
            "philippines",
            "ph",
            "vietnam",
            "vn",
            "thailand",
            "th",
            "malaysia",
            "my",
            "taiwan",
            "tw",
        )
    },
}

# Key prefixes of the emulated objects (first 3 characters of an id)
KEY_PREFIXES: dict[str, str] = {
    "Account": "001",
    "Contact": "003",
    "User": "005",
    "Opportunity": "006",
    "Lead": "00Q",
    "Task": "00T",
    "Event": "00U",
    "Group": "00G",
    "QueueSobject": "03g",
    "LeadStatus": "01J",
    # picklist-value objects all share 01J in a real org
    "OpportunityStage": "01J",
    "TaskStatus": "01J",
    "AssignmentRule": "01Q",
}
QUERY_LOCATOR_PREFIX = "01g"


def data_path(version: str) -> str:
    """The REST root of one API version, e.g. "/services/data/v62.0"."""
    return f"{DATA_ROOT}/v{version}"
