"""Every Salesforce path, limit, header and field name the adapter uses, in one place.

Sources (checked while writing this module):
- REST API Developer Guide, https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/
  - sObject Collections create/update (`/composite/sobjects`) and upsert by external id
    (`PATCH /composite/sobjects/{SObject}/{ExternalIdField}`): at most 200 records a call,
    `allOrNone` false by default, one result per record in order.
  - Composite (`POST /composite`, resources_composite_composite_post.htm,
    requests_composite.htm): up to 25 subrequests, at most 5 of them sObject Collections or
    query operations (Query, QueryAll, the next page of either), one API call for the whole
    series; sObject resources (`/sobjects/{type}/deleted/` too) may be subrequests; `allOrNone` false lets the others run when one
    fails; each subrequest's `httpHeaders` carry the headers its resource takes (not Accept,
    Authorization, Content-Type, which it inherits). Its answer is `{"compositeResponse":
    [{"body","httpHeaders","httpStatusCode","referenceId"}]}`, a failed subrequest's body the
    error list its direct call would answer (resources_composite_subrequest_result.htm).
  - Query: `nextRecordsUrl` pages of up to 2,000 rows.
  - sObject Get Deleted (resources_getdeleted.htm, SOAP getDeleted()): at most 15 days back,
    start more than a minute before end, seconds ignored; a start before that, or before the
    delete log's purge (`earliestDateAvailable`), answers INVALID_REPLICATION_DATE: resync.
  - Headers: `Sforce-Limit-Info: api-usage=N/M[, per-app-api-usage=N/M(appName=...)]`
    (headers_api_usage.htm), `Sforce-Auto-Assign` (TRUE when absent, headers_autoassign.htm),
    `Sforce-Duplicate-Rule-Header: allowSave=true; includeRecordDetails=false;
    runAsCurrentUser=false` (headers_duplicaterules.htm).
- Request size: URI plus headers at most 16,384 bytes, else 431 / 414 (Salesforce Help
  article 000386264); SOQL statements at most 100,000 characters (Salesforce limits cheat
  sheet, SOQL and SOSL limits).
- Bulk API 2.0 ingest, https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/
  (create_job.htm, upload_job_data.htm: one upload per job, at most 100 MB of CSV before
  base64; close_job.htm; get_job_info.htm; get_job_successful_results.htm,
  get_job_failed_results.htm, get_job_unprocessed_results.htm: result rows in no set order;
  datafiles_prepare_csv.htm: `#N/A` sets a field to null, an empty value leaves it alone).
  Salesforce suggests it above ~2,000 records (salesforce_app_limits_platform_bulkapi.htm).
- API allocation: a rolling 24 h window (no fixed reset: calls age out); at most 25 concurrent
  long-running (> 20 s) requests per production org; past either, 403 REQUEST_LIMIT_EXCEEDED
  (the message names `TotalRequests` or `ConcurrentPerOrgLongTxn`).
- OAuth 2.0: token endpoint `/services/oauth2/token`; JWT bearer `aud` is
  https://login.salesforce.com (production) or https://test.salesforce.com (sandboxes);
  the assertion expires within 3 minutes. SOAP partner login `/services/Soap/u/{version}`.
"""

from __future__ import annotations

from datetime import timedelta

# --- paths (relative to the REST root `/services/data/vNN.N/`) --------------------------------
DESCRIBE = "sobjects/{sobject}/describe"
QUERY = "query"
QUERY_ALL = "queryAll"  # deleted, merged and archived records too
COLLECTIONS = "composite/sobjects"
COLLECTIONS_UPSERT = "composite/sobjects/{sobject}/{field}"
COMPOSITE = "composite"
DELETED = "sobjects/{sobject}/deleted/"  # ?start=&end=: 15 days back at most
BULK_INGEST = "jobs/ingest"
BULK_JOB = "jobs/ingest/{job_id}"
BULK_BATCHES = "jobs/ingest/{job_id}/batches"
BULK_RESULTS = "jobs/ingest/{job_id}/{kind}"  # successfulResults | failedResults | unprocessedrecords

# --- login paths (relative to the login URL) --------------------------------------------------
OAUTH_TOKEN = "/services/oauth2/token"
SOAP_LOGIN = "/services/Soap/u/{version}"
SOAP_NS = "urn:partner.soap.sforce.com"
SOAP_ENV_NS = "http://schemas.xmlsoap.org/soap/envelope/"
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
JWT_LIFETIME = timedelta(minutes=3)
JWT_AUDIENCE_PRODUCTION = "https://login.salesforce.com"
JWT_AUDIENCE_SANDBOX = "https://test.salesforce.com"
SALESFORCE_HOST_SUFFIX = ".salesforce.com"

# --- limits -------------------------------------------------------------------------------
COLLECTION_MAX_RECORDS = 200
COMPOSITE_MAX_COLLECTIONS = 5  # collection subrequests in one composite call: 1,000 records
COMPOSITE_MAX_QUERIES = 5  # query operations (Query, QueryAll, next pages) in one composite call
COMPOSITE_MAX_SUBREQUESTS = 25
# The composite body limit is not documented; a call is kept well under the REST API's request
# sizes seen in practice (a few MB) by closing it early when records are large.
COMPOSITE_MAX_BODY_BYTES = 3_000_000
QUERY_MAX_BATCH = 2000
MAX_SOQL_CHARS = 100_000
MAX_URI_BYTES = 16_384  # URI plus headers; past it Salesforce answers 431 or 414
HEADERS_ROOM = 4_384  # our headers are far smaller; the rest of the 16 KB is the URI's
MAX_QUERY_URI_CHARS = MAX_URI_BYTES - HEADERS_ROOM  # path plus encoded query string
EMAIL_MAX_LENGTH = 80  # Lead.Email / Contact.Email: a longer address cannot be stored
DAILY_WINDOW = timedelta(hours=24)  # the API allocation is a rolling 24 hours
BULK_MAX_UPLOAD_BYTES = 100 * 1024 * 1024  # one job's CSV; a larger upsert takes more jobs
BULK_SPOOL_BYTES = 8 * 1024 * 1024  # CSV held in memory up to this, then on disk
BULK_POLL_FIRST_SECONDS = 1.0  # waits between job status reads double up to the max
BULK_POLL_MAX_SECONDS = 30.0
BULK_POLL_TIMEOUT = timedelta(hours=2)  # a job still running then is left to the next run
BULK_NULL = "#N/A"
BULK_TERMINAL_STATES = ("JobComplete", "Failed", "Aborted")

# --- the HTTP policy ------------------------------------------------------------------------
SALESFORCE_SYSTEM = "salesforce"  # the `system` of every error the adapter raises
CONCURRENCY = "concurrency"  # the policy's limiter name
SALESFORCE_CONCURRENT_LONG_REQUESTS = 25
SALESFORCE_DEFAULT_CONCURRENCY = 5  # our share of the org's 25: other integrations need theirs
SALESFORCE_QUOTA_COOLDOWN_SECONDS = 3600.0  # rolling 24 h: try again once old calls aged out
# REQUEST_LIMIT_EXCEEDED messages: the daily total vs the concurrency cap.
SALESFORCE_LIMIT_EXCEEDED = "REQUEST_LIMIT_EXCEEDED"
SALESFORCE_TOTAL_REQUESTS_MESSAGE = r"TotalRequests"
SALESFORCE_CONCURRENT_MESSAGE = r"Concurrent"
# The keys of an error body that carry its codes: REST `errorCode`, OAuth `error`.
SALESFORCE_ERROR_CODE_KEYS = ("errorCode", "error")

# --- headers ------------------------------------------------------------------------------
LIMIT_INFO_HEADER = "Sforce-Limit-Info"
AUTO_ASSIGN_HEADER = "Sforce-Auto-Assign"
DUPLICATE_RULE_HEADER = "Sforce-Duplicate-Rule-Header"
API_USAGE_RE = r"(?<![\w-])api-usage=(\d+)/(\d+)"
PER_APP_USAGE_RE = r"per-app-api-usage=(\d+)/(\d+)"

# --- objects and fields -------------------------------------------------------------------
LEAD = "Lead"
CONTACT = "Contact"
TASK = "Task"
LEAD_STATUS = "LeadStatus"
ASSIGNMENT_RULE = "AssignmentRule"
EMAIL = "Email"
ID = "Id"
CONTACT_MATCH_FIELDS = ("Id", "Email", "OwnerId", "AccountId")
LEAD_MATCH_FIELDS = (
    "Id",
    "Email",
    "OwnerId",
    "Status",
    "IsConverted",
    "ConvertedContactId",
    "ConvertedAccountId",
)
LEAD_STATUS_FIELDS = ("Id", "MasterLabel", "ApiName", "SortOrder", "IsDefault", "IsConverted")
OPPORTUNITY = "Opportunity"
EVENT = "Event"
OPPORTUNITY_STAGE = "OpportunityStage"
TASK_STATUS = "TaskStatus"
# merged Leads and Contacts: deleted, MasterRecordId naming the survivor (through queryAll)
MERGE_FIELDS: dict[str, tuple[str, ...]] = {
    "Lead": ("Id", "IsDeleted", "MasterRecordId"),
    "Contact": ("Id", "IsDeleted", "MasterRecordId"),
    "Opportunity": ("Id", "IsDeleted"),
}
OPPORTUNITY_STAGE_FIELDS = ("Id", "MasterLabel", "ApiName", "SortOrder", "IsClosed", "IsWon")
TASK_STATUS_FIELDS = ("Id", "MasterLabel", "ApiName", "SortOrder", "IsClosed")
# The cursor of incremental reads: moves on every change, user or system (LastModifiedDate
# does not, and can be back-dated by imports); ties broken by Id.
MODSTAMP = "SystemModstamp"
# What the pull-back reads of each object (a mapped reason field is added when configured).
PULLBACK_FIELDS: dict[str, tuple[str, ...]] = {
    LEAD: ("Id", "OwnerId", "Status", "IsConverted", "ConvertedContactId",
           "ConvertedAccountId", "ConvertedOpportunityId", "ConvertedDate",
           "LastModifiedDate", "LastModifiedById", "SystemModstamp", "IsDeleted"),
    OPPORTUNITY: ("Id", "OwnerId", "StageName", "Amount", "CloseDate", "IsClosed", "IsWon",
                  "LastModifiedDate", "LastModifiedById", "SystemModstamp", "IsDeleted"),
    TASK: ("Id", "WhoId", "WhatId", "OwnerId", "Subject", "Status", "TaskSubtype", "Type",
           "CallDisposition", "CallDurationInSeconds", "ActivityDate", "CompletedDateTime",
           "CreatedDate", "CreatedById", "LastModifiedDate", "LastModifiedById",
           "SystemModstamp", "IsDeleted"),
    EVENT: ("Id", "WhoId", "WhatId", "OwnerId", "Subject", "Type", "StartDateTime",
            "EndDateTime", "CreatedDate", "CreatedById", "LastModifiedDate", "LastModifiedById",
            "SystemModstamp", "IsDeleted"),
}
USER = "User"
USER_FIELDS = ("Id", "Email", "Username", "Name", "IsActive")
