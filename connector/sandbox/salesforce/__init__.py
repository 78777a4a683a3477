"""An emulated Salesforce org (REST API, OAuth 2.0 and SOAP login) for tests and demos.

    from connector.sandbox.base import SandboxClock
    from connector.sandbox.salesforce import SalesforceSandbox, salesforce_session

    sandbox = SalesforceSandbox(SandboxClock())
    served = sandbox.serve()                     # HTTPS on 127.0.0.1, throw-away CA
    ca = sandbox.tls.ca_bundle

Pointing simple-salesforce 1.12 at it (it builds every login URL as
`https://{domain}.salesforce.com/...`, so it cannot be given `127.0.0.1:PORT` directly):

1. Username/password/security token (SOAP login), unchanged client code: give it a requests
   session that routes `*.salesforce.com` to the sandbox and trusts its CA::

       session = salesforce_session(served.base_url, ca)
       sf = Salesforce(username=..., password=..., security_token=..., session=session)

   The login answer's serverUrl is the sandbox itself, so every later call goes to
   `https://127.0.0.1:PORT/services/data/vNN.N/...` directly, verified with the CA.
2. OAuth token first (any flow), then `instance_url` + `session_id`::

       token = requests.post(f"{served.base_url}/services/oauth2/token", data={...},
                             verify=ca).json()
       session = requests.Session(); session.verify = str(ca)
       session.trust_env = False  # else REQUESTS_CA_BUNDLE overrides session.verify
       sf = Salesforce(instance_url=token["instance_url"], session_id=token["access_token"],
                       session=session)

   or simply `session_id=sandbox.session_id` (a fixed session, valid until
   `expire_sessions()`).

`salesforce_session` pins the CA in its adapter, so it verifies with the sandbox CA even
when REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE are set in the environment.

Routes: see `settings.ROUTES`; rules (duplicate, assignment) in `state`; SOQL in `soql`.
A composite call is one API call whatever it carries (at most 25 subrequests, 5 of them
query operations or collections). Deletions: `state.delete` (recycle bin, queryAll sees it),
`state.merge` (Leads, Contacts: losers deleted with MasterRecordId, their activities moved),
`state.purge_recycle_bin` (gone for good; the deleted resource then refuses an earlier start
with INVALID_REPLICATION_DATE, as it does past 15 days or for a window of a minute or less).
Injected "429" faults render as Salesforce throttles REST: 403 REQUEST_LIMIT_EXCEEDED
"ConcurrentPerOrgLongTxn Limit exceeded." (or 503 SERVER_UNAVAILABLE with
`sandbox.throttle_style = "unavailable"`); the spent daily allocation is 403
REQUEST_LIMIT_EXCEEDED "TotalRequests Limit exceeded.".

Bulk API 2.0 ingest jobs (`/jobs/ingest`) are emulated in `bulk`: CSV upload, close, status
polls (`sandbox.bulk_in_progress_polls` InProgress answers, then processed whole), results
files, and the shared 15,000 batches a day; each row goes through the collections code path.

Not emulated: Bulk API 1.0, Bulk API 2.0 query jobs, the generic /composite and /composite/batch resources,
aggregate SOQL (GROUP BY, COUNT(field)), semi-joins and child subqueries, and a REST lead
conversion (the real REST API has none: conversion is the SOAP `convertLead()` call; the
simulator converts through `SalesforceState.convert_lead`).
"""

from __future__ import annotations

from .app import SalesforceApp
from .routing import SalesforceRoutingAdapter, salesforce_session
from .sandbox import SalesforceSandbox
from .state import RecordError, RequestError, SalesforceState, ValidationRule

__all__ = [
    "RecordError",
    "RequestError",
    "SalesforceApp",
    "SalesforceRoutingAdapter",
    "SalesforceSandbox",
    "SalesforceState",
    "ValidationRule",
    "salesforce_session",
]
