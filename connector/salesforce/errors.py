"""Salesforce's errors as data, at both levels: the whole call (the `SALESFORCE` dialect the
HTTP policy reads answers with) and each record of an sObject Collections answer.

The call: the table from status / `errorCode` / message / exception to action.

    SALESFORCE_RULES
    ├── 401 INVALID_SESSION_ID .......... REFRESH     SessionExpired: `on_session_expired` once,
    │                                                 then retry; without a hook, fail
    ├── 401 / OAuth invalid_grant ....... FAIL        AuthError
    ├── 403 REQUEST_LIMIT_EXCEEDED
    │   ├── "ConcurrentPerOrgLongTxn" ... RATE_LIMIT  RateLimited (the org's 25 long requests)
    │   └── "TotalRequests" / other ..... QUOTA       QuotaExhausted, resets_at = now + cool-down
    │                                                 (rolling 24 h allocation)
    ├── 403 (other) ..................... FAIL        AuthError (insufficient access, API off)
    ├── 429 (some services, proxies) .... RATE_LIMIT  wait Retry-After or backoff
    ├── 400 DUPLICATES_DETECTED,
    │   FIELD_CUSTOM_VALIDATION_EXCEPTION,
    │   REQUIRED_FIELD_MISSING,
    │   STRING_TOO_LONG ................. SKIP        RecordRejected (single-record writes)
    ├── 400 404 405 415 4xx ............. FAIL        RequestFailed
    ├── 500 502 503 504 5xx ............. RETRY       ServerError
    └── TRANSPORT_RULES (connector.http): a refused certificate FAILs (TlsError), a timeout,
        reset or dropped connection RETRYs (TransportError)

Besides the table, Salesforce's answers say: error codes in `errorCode` (OAuth: `error`), the
org's daily allocation in `Sforce-Limit-Info: api-usage=N/M`; simple-salesforce raises a
`SalesforceError` carrying the answer's `status`, `content` and `url`.

Each record: a collection call answers 200 with one result per record; a failed one carries
`errors: [{"statusCode", "message", "fields"[, "duplicateResult"]}]`. The HTTP policy never
sees those (the call succeeded), so this module reads them:

    RecordRejected (connector.errors)
    └── SalesforceRecordRejected   code, fields, errors, duplicates, retriable
        actor ADMIN  a mapping, validation rule, picklist, field permission or routing is wrong
        actor DATA   the record itself is wrong (invalid email, missing value, duplicate)
        actor WAIT   nobody: the record was rolled back or locked; send it again later

`REJECTIONS` is the table from status code to actor, reason and fix; an unknown code goes to
an admin, because nobody knows yet what it means. A fix may name `{fields}`: the fields
Salesforce named, as `Lead.Phone`. The reason reads, for an admin:

    Lead.Phone = 'call after 5pm' (HubSpot phone): a validation rule in Salesforce refused
    the value (FIELD_CUSTOM_VALIDATION_EXCEPTION: Phone must be ...) — fix: ...
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from connector.errors import (
    Actor,
    AuthError,
    QuotaExhausted,
    RateLimited,
    RecordRejected,
    RequestFailed,
    ServerError,
)
from connector.http.classify import (
    CLIENT_ERRORS,
    SERVER_ERRORS,
    TRANSPORT_RULES,
    Action,
    Dialect,
    ResponseView,
    Rule,
    SessionExpired,
    codes,
    statuses,
)
from connector.salesforce import settings as ss
from connector.salesforce.governor import parse_limit_info
from connector.salesforce.settings import SALESFORCE_SYSTEM

__all__ = [
    "REJECTIONS",
    "SALESFORCE",
    "SALESFORCE_RULES",
    "DuplicateMatch",
    "FieldError",
    "Rejection",
    "SalesforceRecordRejected",
    "classify_record_errors",
    "daily_usage",
    "sdk_answer",
]


# --- the whole call -----------------------------------------------------------------------

SALESFORCE_RULES: tuple[Rule, ...] = (
    Rule(
        Action.REFRESH,
        SessionExpired,
        "the session expired: log in again",
        status=statuses(401),
        codes=codes("INVALID_SESSION_ID"),
    ),
    Rule(Action.FAIL, AuthError, "the credentials were refused", status=statuses(401)),
    Rule(
        Action.FAIL,
        AuthError,
        "the OAuth grant was refused",
        status=statuses(400),
        codes=codes("invalid_grant", "invalid_client", "invalid_client_id", "unauthorized_client"),
    ),
    Rule(
        Action.RATE_LIMIT,
        RateLimited,
        "too many concurrent long-running requests in the org",
        status=statuses(403),
        codes=codes(ss.SALESFORCE_LIMIT_EXCEEDED),
        message=ss.SALESFORCE_CONCURRENT_MESSAGE,
    ),
    Rule(
        Action.QUOTA,
        QuotaExhausted,
        "the org's rolling 24-hour API allocation is spent",
        status=statuses(403),
        codes=codes(ss.SALESFORCE_LIMIT_EXCEEDED),
    ),
    Rule(Action.FAIL, AuthError, "access refused", status=statuses(403)),
    Rule(Action.RATE_LIMIT, RateLimited, "too many requests", status=statuses(429)),
    Rule(
        Action.SKIP,
        RecordRejected,
        "the record was refused",
        status=statuses(400),
        codes=codes(
            "DUPLICATES_DETECTED",
            "FIELD_CUSTOM_VALIDATION_EXCEPTION",
            "REQUIRED_FIELD_MISSING",
            "STRING_TOO_LONG",
        ),
    ),
    Rule(Action.FAIL, RequestFailed, "the request was refused", status=statuses(CLIENT_ERRORS)),
    Rule(Action.RETRY, ServerError, "Salesforce failed", status=statuses(SERVER_ERRORS)),
    *TRANSPORT_RULES,
)


def daily_usage(headers: Mapping[str, str]) -> tuple[int, int] | None:
    """`(used, allowed)` of the org's allocation from `Sforce-Limit-Info` (lower-case header
    names); None when the answer does not say."""
    usage = parse_limit_info(headers.get(ss.LIMIT_INFO_HEADER.lower()))
    return (usage.used, usage.allowed) if usage is not None else None


def sdk_answer(exc: BaseException) -> ResponseView | None:
    """The answer a simple-salesforce `SalesforceError` carries; None for any other exception."""
    # matched by name: `client` stays the only module importing simple-salesforce
    if not any(cls.__name__ == "SalesforceError" for cls in type(exc).__mro__):
        return None
    url = getattr(exc, "url", None)
    return ResponseView(
        status=int(getattr(exc, "status", 0)),
        headers={},
        body=getattr(exc, "content", None),
        path=urlsplit(url).path if isinstance(url, str) else None,
    )


SALESFORCE = Dialect(
    "salesforce",
    SALESFORCE_RULES,
    code_keys=ss.SALESFORCE_ERROR_CODE_KEYS,
    read_exception=sdk_answer,
    read_usage=daily_usage,
)


# --- each record of a collection answer ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class FieldError:
    """One error Salesforce reported for one record."""

    code: str
    message: str
    fields: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class DuplicateMatch:
    """A record a duplicate rule matched: link to it instead of creating another."""

    sobject: str
    id: str
    rule: str = ""


@dataclass(frozen=True, slots=True)
class Rejection:
    """What a status code means for Handshake: who acts, why, and how to fix it."""

    actor: Actor
    why: str
    fix: str
    retriable: bool = False


_MAPPING = "mappings/fields.toml"
_ROUTING = "mappings/routing.toml"

REJECTIONS: Mapping[str, Rejection] = {
    # --- an admin must change a mapping or the org -------------------------------------------
    "INVALID_FIELD": Rejection(
        Actor.ADMIN,
        "a mapped field does not exist on the object",
        f"correct or remove the [[fields]] entry for {{fields}} in {_MAPPING} (`handshake "
        f"mappings check --live` lists the object's fields), then run `handshake dlq retry`",
    ),
    "INVALID_FIELD_FOR_INSERT_UPDATE": Rejection(
        Actor.ADMIN,
        "a mapped field is not writable by the integration user",
        "grant edit access to the field (profile or permission set) or unmap it",
    ),
    "INVALID_FIELD_WHEN_USING_TEMPLATE": Rejection(
        Actor.ADMIN, "a mapped field cannot be written", f"unmap the field in {_MAPPING}"
    ),
    "INVALID_TYPE_ON_FIELD_IN_RECORD": Rejection(
        Actor.ADMIN,
        "a mapped value does not fit the field's type",
        f"transform {{fields}} to the field's type in {_MAPPING} (a `map`, `date` or "
        f"`matches`), then run `handshake dlq retry`",
    ),
    "FIELD_CUSTOM_VALIDATION_EXCEPTION": Rejection(
        Actor.ADMIN,
        "a validation rule in Salesforce refused the record",
        f"make the value pass the rule: transform {{fields}} in {_MAPPING} (e.g. `matches` "
        f"leaves out what the rule refuses) or relax the rule in Salesforce, then run "
        f"`handshake dlq retry`; or correct the value in HubSpot",
    ),
    "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST": Rejection(
        Actor.ADMIN,
        "a value is not allowed by a restricted picklist",
        f"give {{fields}} a value map (`map`, `unmapped = \"drop\"`, `default`) in "
        f"{_MAPPING}, or add the value to the picklist; then run `handshake dlq retry`",
    ),
    "STRING_TOO_LONG": Rejection(
        Actor.ADMIN,
        "a value is longer than the field allows",
        f"add `truncate = true` to the [[fields]] entry for {{fields}} in {_MAPPING}, "
        f"then run `handshake dlq retry` (an email, URL or phone cut short is wrong: for those, "
        f"correct the value in HubSpot instead)",
    ),
    "INACTIVE_OWNER_OR_USER": Rejection(
        Actor.ADMIN,
        "the owner is an inactive user",
        f"replace the inactive user in {_ROUTING}",
    ),
    "INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY": Rejection(
        Actor.ADMIN,
        "the integration user cannot see a referenced record",
        "share the referenced records with the integration user",
    ),
    "INSUFFICIENT_ACCESS_OR_READONLY": Rejection(
        Actor.ADMIN,
        "the integration user may not edit the record",
        "grant the integration user edit access",
    ),
    "CANNOT_EXECUTE_FLOW_TRIGGER": Rejection(
        Actor.ADMIN,
        "a flow or trigger in Salesforce failed on the record",
        "fix the flow named in the message",
    ),
    "FIELD_INTEGRITY_EXCEPTION": Rejection(
        Actor.ADMIN,
        "a value breaks a field's integrity rule",
        f"check the mapping of the fields named in {_MAPPING}",
    ),
    "INVALID_TYPE": Rejection(
        Actor.ADMIN, "the object type is not valid here", "check the object name used"
    ),
    # --- the record itself is wrong ------------------------------------------------------
    "REQUIRED_FIELD_MISSING": Rejection(
        Actor.DATA,
        "a required value is missing",
        f"fill {{fields}} in HubSpot, or give it a `default` or a stand-in under "
        f"[required.fields] in {_MAPPING}",
    ),
    "INVALID_EMAIL_ADDRESS": Rejection(
        Actor.DATA,
        "the email address is not valid",
        "correct the contact's email address in HubSpot: the next pull and push send it",
    ),
    "NUMBER_OUTSIDE_VALID_RANGE": Rejection(
        Actor.DATA, "a number is out of the field's range", "correct the value in HubSpot"
    ),
    "MALFORMED_ID": Rejection(
        Actor.DATA, "a reference is not a valid Salesforce id", "correct the referenced id"
    ),
    "INVALID_CROSS_REFERENCE_KEY": Rejection(
        Actor.DATA,
        "a referenced record does not exist (deleted or merged)",
        "re-match the record; the referenced record is gone",
    ),
    "ENTITY_IS_DELETED": Rejection(
        Actor.DATA, "the record was deleted in Salesforce", "re-match the record"
    ),
    "CANNOT_UPDATE_CONVERTED_LEAD": Rejection(
        Actor.DATA,
        "the Lead was converted in the meantime",
        "re-match: the activity belongs to the converted Contact",
    ),
    "DUPLICATE_VALUE": Rejection(
        Actor.DATA,
        "a unique field (the external id) already names another record",
        "link the records or clear the duplicate value",
    ),
    "DUPLICATES_DETECTED": Rejection(
        Actor.DATA,
        "a duplicate rule matched existing records",
        "link to the matched record instead of creating another",
    ),
    "MISSING_ARGUMENT": Rejection(
        Actor.DATA, "the record lacks its key", "give the record its external id or Id"
    ),
    # --- nobody: send it again ------------------------------------------------------------
    "ALL_OR_NONE_OPERATION_ROLLED_BACK": Rejection(
        Actor.WAIT, "rolled back with the other records of the call", "send it again", True
    ),
    "UNABLE_TO_LOCK_ROW": Rejection(
        Actor.WAIT, "another process held the record", "send it again later", True
    ),
    "REQUEST_RUNNING_TOO_LONG": Rejection(
        Actor.WAIT, "Salesforce timed out on the record", "send it again later", True
    ),
    # Handshake's own code: a Bulk API job stopped (aborted, out of batches) before this record
    "BULK_RECORD_UNPROCESSED": Rejection(
        Actor.WAIT,
        "the bulk job stopped before the record was processed",
        "nothing to do: the next push sends it again",
        True,
    ),
}

_UNKNOWN = Rejection(
    Actor.ADMIN,
    "Salesforce refused the record for a reason Handshake does not know",
    "read the message and the Salesforce setup it names",
)
# which of several errors on one record decides who must act: an admin's fix first
_ACTOR_ORDER = {Actor.ADMIN: 0, Actor.DATA: 1, Actor.WAIT: 2}


class SalesforceRecordRejected(RecordRejected):
    """Salesforce refused one record of a collection call.

    `code` is the deciding status code (all are in `errors`), `fields` the fields named,
    `duplicates` the records a duplicate rule matched, `retriable` whether sending the same
    record again later may succeed, `reason` the message without the record's key (what a
    dead letter shows next to its key).
    """

    def __init__(
        self,
        message: str,
        *,
        code: str,
        errors: Sequence[FieldError],
        actor: Actor,
        record_key: str | None = None,
        duplicates: Sequence[DuplicateMatch] = (),
        retriable: bool = False,
        fix: str = "",
        reason: str = "",
        sobject: str = "",
        why: str = "",
        values: Mapping[str, Any] | None = None,
    ) -> None:
        self.reason = reason or message
        self.sobject = sobject
        self.why = why
        self.values = dict(values or {})
        self.code = code
        self.errors = tuple(errors)
        self.fields = tuple(dict.fromkeys(f for e in self.errors for f in e.fields))
        self.duplicates = tuple(duplicates)
        self.retriable = retriable
        self.fix = fix
        super().__init__(
            message,
            system=SALESFORCE_SYSTEM,
            record_key=record_key,
            actor=actor,
            details={
                "codes": [e.code for e in self.errors],
                "fields": list(self.fields),
                "errors": [
                    {"code": e.code, "message": e.message, "fields": list(e.fields)}
                    for e in self.errors
                ],
                "duplicates": [{"sobject": d.sobject, "id": d.id} for d in self.duplicates],
                "fix": fix,
            },
        )


    def reason_with(self, sources: Mapping[str, Sequence[str]]) -> str:
        """The reason naming, after each field, the HubSpot properties it was mapped from
        (`sources`: Salesforce field -> properties, as `FieldMap.sources` gives them)."""
        return _reason(self.sobject, self.errors, self.why, self.fix or "", self.values, sources)


def _field_errors(raw: Any) -> list[FieldError]:
    out: list[FieldError] = []
    for item in raw if isinstance(raw, list) else []:
        if not isinstance(item, Mapping):
            continue
        code = str(item.get("statusCode") or item.get("errorCode") or "UNKNOWN")
        fields = item.get("fields") or []
        out.append(
            FieldError(
                code,
                str(item.get("message") or ""),
                tuple(str(f) for f in fields if isinstance(f, str)),
            )
        )
    return out


def _duplicates(raw: Any) -> list[DuplicateMatch]:
    """The matched records of every `duplicateResult` in a record's errors, in order."""
    out: list[DuplicateMatch] = []
    seen: set[str] = set()
    for item in raw if isinstance(raw, list) else []:
        result = item.get("duplicateResult") if isinstance(item, Mapping) else None
        if not isinstance(result, Mapping):
            continue
        for match in result.get("matchResults") or []:
            if not isinstance(match, Mapping):
                continue
            sobject = str(match.get("entityType") or "")
            rule = str(match.get("rule") or "")
            for record in match.get("matchRecords") or []:
                found = record.get("record") if isinstance(record, Mapping) else None
                if not isinstance(found, Mapping):
                    continue
                record_id = found.get("Id")
                if isinstance(record_id, str) and record_id not in seen:
                    seen.add(record_id)
                    kind = (found.get("attributes") or {}).get("type") or sobject
                    out.append(DuplicateMatch(str(kind), record_id, rule))
    return out


def classify_record_errors(
    raw_errors: Any,
    *,
    sobject: str,
    record_key: str | None = None,
    values: Mapping[str, Any] | None = None,
    sources: Mapping[str, Sequence[str]] | None = None,
) -> SalesforceRecordRejected:
    """The classified rejection of one record from its `errors` list in a collection result.

    The error whose code needs an admin decides over data errors, data over waiting: if a
    mapping is wrong too, fixing the data alone would not help. `values` (the record sent)
    puts the refused values in the reason, `sources` (Salesforce field -> HubSpot
    properties) where they came from.
    """
    errors = _field_errors(raw_errors) or [FieldError("UNKNOWN", "no error detail given")]
    ranked = sorted(errors, key=lambda e: _ACTOR_ORDER[REJECTIONS.get(e.code, _UNKNOWN).actor])
    lead = ranked[0]
    rejection = REJECTIONS.get(lead.code, _UNKNOWN)
    actor = rejection.actor
    fix = rejection.fix
    if lead.code in ("MALFORMED_ID", "INVALID_CROSS_REFERENCE_KEY") and "OwnerId" in lead.fields:
        # a bad owner comes from routing, not from the record
        actor = Actor.ADMIN
        fix = f"correct the owner in {_ROUTING}"
    retriable = all(REJECTIONS.get(e.code, _UNKNOWN).retriable for e in errors)
    where = f"{sobject} {record_key}" if record_key else sobject
    fields = tuple(dict.fromkeys(f for e in errors for f in e.fields))
    fix = fix.replace("{fields}", _names(sobject, fields) or "the field")
    reason = _reason(sobject, errors, rejection.why, fix, values, sources)
    return SalesforceRecordRejected(
        f"{where}: {reason}",
        code=lead.code,
        errors=errors,
        actor=actor,
        record_key=record_key,
        duplicates=_duplicates(raw_errors),
        retriable=retriable,
        fix=fix,
        reason=reason,
        sobject=sobject,
        why=rejection.why,
        values=values,
    )


def _reason(
    sobject: str,
    errors: Sequence[FieldError],
    why: str,
    fix: str,
    values: Mapping[str, Any] | None,
    sources: Mapping[str, Sequence[str]] | None,
) -> str:
    fields = tuple(dict.fromkeys(f for e in errors for f in e.fields))
    subject = ", ".join(_field_subject(sobject, f, values, sources) for f in fields)
    said = "; ".join(f"{e.code}: {e.message}" if e.message else e.code
                     for e in dict.fromkeys(errors))
    return f"{subject + ': ' if subject else ''}{why} ({said}) — fix: {fix}"


def _names(sobject: str, fields: Sequence[str]) -> str:
    return ", ".join(f"{sobject}.{f}" for f in fields)


def _field_subject(
    sobject: str,
    name: str,
    values: Mapping[str, Any] | None,
    sources: Mapping[str, Sequence[str]] | None,
) -> str:
    """`Lead.Phone = 'call after 5pm' (HubSpot phone)`: the field, the value sent, its source."""
    text = f"{sobject}.{name}"
    sent = {k.lower(): v for k, v in (values or {}).items()}
    if sent.get(name.lower()) not in (None, ""):
        value = str(sent[name.lower()])
        text += f" = {value if len(value) <= 60 else value[:57] + '...'!r}"
    origin = {k.lower(): v for k, v in (sources or {}).items()}.get(name.lower())
    if origin:
        text += f" (HubSpot {', '.join(origin)})"
    return text
