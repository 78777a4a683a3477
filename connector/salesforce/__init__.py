"""The Salesforce adapter: login, describe, matching, sObject Collections writes, per-record
error classification and the API allocation governor.

- `settings`: every path, limit, header and field name.
- `auth`: the four logins (password, JWT, client credentials, session id).
- `client`: `SalesforceClient`, the only module importing simple-salesforce.
- `errors`: `classify_record_errors` and `SalesforceRecordRejected` (who must act).
- `governor`: `AllocationGovernor` (Handshake's share of the daily allocation).
"""

from __future__ import annotations

from connector.salesforce.auth import Credentials, Login, credentials_from_config
from connector.salesforce.client import (
    ContactMatch,
    EmailMatches,
    ExternalIdMatches,
    LeadMatch,
    LeadStatus,
    SalesforceClient,
    WriteResult,
    build_salesforce_policy,
)
from connector.salesforce.errors import (
    REJECTIONS,
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

__all__ = [
    "REJECTIONS",
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
    "SalesforceClient",
    "SalesforceRecordRejected",
    "Usage",
    "WriteResult",
    "build_salesforce_policy",
    "classify_record_errors",
    "credentials_from_config",
    "parse_limit_info",
]
