"""The Salesforce adapter: login, describe, matching, sObject Collections writes, per-record
error classification and the API allocation governor.

- `settings`: every path, limit, header and field name.
- `auth`: the four logins (password, JWT, client credentials, session id).
- `client`: `SalesforceClient`, the only module importing simple-salesforce.
- `records`: what the client answers with (matches, `WriteResult`, `LeadStatus`,
  `SalesVocabulary`).
- `bulk`: Bulk API 2.0 upserts, for backfills (`SalesforceClient.bulk_upsert`).
- `errors`: the `SALESFORCE` dialect (the HTTP policy's table for whole calls), and
  `classify_record_errors` / `SalesforceRecordRejected` for each record (who must act).
- `policy`: `build_salesforce_policy` / `salesforce_policy` (the org's HTTP policy).
- `governor`: `AllocationGovernor` (Handshake's share of the daily allocation).
"""

from __future__ import annotations

from connector.salesforce.auth import Credentials, Login, credentials_from_config
from connector.salesforce.client import SalesforceClient
from connector.salesforce.errors import (
    REJECTIONS,
    SALESFORCE,
    DuplicateMatch,
    FieldError,
    Rejection,
    SalesforceRecordRejected,
    classify_record_errors,
)
from connector.salesforce.governor import (
    AllocationGovernor,
    GovernorSnapshot,
    Usage,
    parse_limit_info,
)
from connector.salesforce.policy import build_salesforce_policy, salesforce_policy
from connector.salesforce.records import (
    ContactMatch,
    EmailMatches,
    ExternalIdMatches,
    LeadMatch,
    LeadStatus,
    SalesVocabulary,
    WriteResult,
)

__all__ = [
    "REJECTIONS",
    "SALESFORCE",
    "AllocationGovernor",
    "ContactMatch",
    "Credentials",
    "DuplicateMatch",
    "EmailMatches",
    "ExternalIdMatches",
    "FieldError",
    "GovernorSnapshot",
    "LeadMatch",
    "LeadStatus",
    "Login",
    "Rejection",
    "SalesVocabulary",
    "SalesforceClient",
    "SalesforceRecordRejected",
    "Usage",
    "WriteResult",
    "build_salesforce_policy",
    "classify_record_errors",
    "credentials_from_config",
    "parse_limit_info",
    "salesforce_policy",
]
