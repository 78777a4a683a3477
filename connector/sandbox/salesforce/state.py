"""The in-memory org behind the emulated API: records, indexes, validation, duplicate and
assignment rules, and lead conversion. Thread-safe; the sales-team simulator uses it directly.

Rules emulated (documented here because a real org configures them in Setup):
- Duplicate rule: a Lead whose Email (case-insensitive) equals that of a live, unconverted Lead
  or of a Contact, and a Contact whose Email equals another Contact's, is a duplicate. The rule
  action is "Allow" with an alert, which the API enforces as a block unless the request sends
  `Sforce-Duplicate-Rule-Header: allowSave=true` (so `duplicateResult.allowSave` is true).
- Records saved in one call are compared only with records already in the org, never with
  each other ("records within the same save aren't compared to each other", Salesforce Help,
  Duplicate Rules; `begin_save`/`end_save` bracket a collection call).
- The Standard Lead Matching Rule also matches a Lead whose FirstName, LastName and Company
  (case-insensitive, none blank) equal those of a live, unconverted Lead, when
  `lead_name_matching` is on (off by default: generated data may hold namesakes).
- Validation rules: none by default; `add_validation_rule` defines one as an admin would in
  Setup. They run after the system checks (required, length, email, picklist) and before the
  duplicate rule; every rule that refuses is reported, each as
  FIELD_CUSTOM_VALIDATION_EXCEPTION at its error location (a field, or none: top of page).
- Lead assignment rule: the Lead's Country (names or ISO codes, see settings.COUNTRY_REGIONS)
  picks a region NA / EMEA / APAC; active users whose territory starts with that region get the
  leads in turn (round robin, ordered by user id); any other country, or a region without
  users, goes to the "Unassigned Leads" queue (a Group of type Queue, id prefix 00G). It is
  the org's one active Lead AssignmentRule record (`lead_assignment_rule_id`), which Bulk API
  2.0 jobs name in `assignmentRuleId`.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from . import settings
from .ids import IdFactory, is_valid_id
from .schema import OBJECTS, FieldDef, ObjectDef, object_def

__all__ = [
    "RecordError",
    "RequestError",
    "SalesforceState",
    "ValidationRule",
    "format_datetime",
    "parse_datetime",
]

_EMAIL_RE = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$"
)
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TEXT_TYPES = {"string", "textarea", "email", "phone", "url", "picklist", "combobox"}
_NUMBER_TYPES = {"int", "double", "currency", "percent"}
_DEFAULT_LEAD_STATUSES = [
    ("Open - Not Contacted", True, False),
    ("Working - Contacted", False, False),
    ("Closed - Converted", False, True),
    ("Closed - Not Converted", False, False),
]

# (label, sort order, closed, won, probability, forecast category): a new org's stages
_DEFAULT_OPPORTUNITY_STAGES = [
    ("Prospecting", False, False, 10, "Pipeline"),
    ("Qualification", False, False, 10, "Pipeline"),
    ("Needs Analysis", False, False, 20, "Pipeline"),
    ("Value Proposition", False, False, 50, "Pipeline"),
    ("Id. Decision Makers", False, False, 60, "Pipeline"),
    ("Perception Analysis", False, False, 70, "Pipeline"),
    ("Proposal/Price Quote", False, False, 75, "Pipeline"),
    ("Negotiation/Review", False, False, 90, "Pipeline"),
    ("Closed Won", True, True, 100, "Closed"),
    ("Closed Lost", True, False, 0, "Omitted"),
]
# (label, default, closed): a new org's Task statuses
_DEFAULT_TASK_STATUSES = [
    ("Not Started", True, False),
    ("In Progress", False, False),
    ("Completed", False, True),
    ("Waiting on someone else", False, False),
    ("Deferred", False, False),
]


class RecordError(Exception):
    """One record was refused; `errors` are `{"statusCode","message","fields"}` dicts."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(errors[0]["message"] if errors else "record refused")
        self.errors = errors

    @classmethod
    def one(cls, code: str, message: str, fields: list[str] | None = None) -> RecordError:
        return cls([{"statusCode": code, "message": message, "fields": fields or []}])


class RequestError(Exception):
    """The whole request is refused: `[{"message","errorCode"}]` with `status`."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def body(self) -> list[dict[str, Any]]:
        return [{"message": self.message, "errorCode": self.code}]


def format_datetime(value: datetime) -> str:
    """Salesforce's JSON datetime: UTC, milliseconds, "+0000"."""
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}+0000"


def parse_datetime(value: str) -> datetime:
    """Parse an ISO-8601 datetime as Salesforce accepts it in JSON ("Z", "+0000", "+00:00",
    or none = UTC)."""
    text = value.strip()
    if re.search(r"[+-]\d{4}$", text):
        text = text[:-2] + ":" + text[-2:]
    text = text.replace("Z", "+00:00")
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


@dataclass(frozen=True)
class ValidationRule:
    """A validation rule as an admin writes it in Setup: when `refuses(record)` is true (the
    error condition formula, given the record as it would be saved) the save fails with
    `message`, shown at `field` (None: at the top of the page, so `fields` is empty).
    Answer shape: `{"statusCode": "FIELD_CUSTOM_VALIDATION_EXCEPTION", "message": ...,
    "fields": ["Phone"]}` (https://github.com/jsforce/jsforce/issues/861)."""

    sobject: str
    name: str
    refuses: Callable[[Mapping[str, Any]], bool]
    message: str
    field: str | None = None


@dataclass
class _Deletion:
    sobject: str
    id: str
    when: datetime


class SalesforceState:
    """The org's data. Records are flat dicts of JSON-ready values keyed by field API name;
    every read returns copies with `attributes` as the REST API shows them."""

    def __init__(
        self,
        clock: Any,
        *,
        api_version: str = settings.DEFAULT_API_VERSION,
        integration_username: str = "integration@handshake.sandbox",
    ) -> None:
        self.clock = clock
        self.api_version = api_version
        self._lock = threading.RLock()
        self._ids = IdFactory()
        self._data: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in OBJECTS}
        self._by_id: dict[str, str] = {}  # id -> sobject, for every live or deleted record
        self._email: dict[str, dict[str, set[str]]] = {"Lead": {}, "Contact": {}}
        self._lead_names: dict[tuple[str, str, str], set[str]] = {}
        self.lead_name_matching = False
        self.validation_rules: list[ValidationRule] = []
        self._saving: set[str] | None = None  # ids written by the collection call under way
        self._ext: dict[str, dict[str, dict[str, str]]] = {
            o.name: {f.name: {} for f in o.fields.values() if f.external_id or f.unique}
            for o in OBJECTS.values()
        }
        self._deletions: list[_Deletion] = []
        self.purged_through: datetime | None = None  # the delete log is gone before this
        self._round_robin: dict[str, int] = {}
        self._undo: list[tuple[str, str, dict[str, Any] | None]] | None = None
        self._marks: list[int] = []  # where each open `begin` starts in `_undo`
        self.integration_user_id = self._seed_system(integration_username)

    # ----------------------------------------------------------------- seeding
    def _seed_system(self, username: str) -> str:
        user_id = self._ids.new("User")
        now = format_datetime(self.clock.now())
        self._raw_insert(
            "User",
            user_id,
            {
                "Username": username,
                "Email": username,
                "FirstName": "Integration",
                "LastName": "User",
                "Alias": "integ",
                "IsActive": True,
                "Department": "Integration",
            },
            user_id,
            now,
        )
        self.queue_id = self._seed_lead_queue(settings.UNASSIGNED_QUEUE_NAME, user_id, now)
        self.marketing_queue_id = self._seed_lead_queue(settings.MARKETING_QUEUE_NAME, user_id,
                                                        now)
        self.lead_assignment_rule_id = self._ids.new("AssignmentRule")
        self._raw_insert(
            "AssignmentRule",
            self.lead_assignment_rule_id,
            {"Name": settings.LEAD_ASSIGNMENT_RULE_NAME, "SobjectType": "Lead", "Active": True},
            user_id,
            now,
        )
        for order, (label, is_default, converted) in enumerate(_DEFAULT_LEAD_STATUSES, 1):
            self._raw_insert(
                "LeadStatus",
                self._ids.new("LeadStatus"),
                {
                    "MasterLabel": label,
                    "ApiName": label,
                    "SortOrder": order,
                    "IsDefault": is_default,
                    "IsConverted": converted,
                },
                user_id,
                now,
            )
        for order, (label, closed, won, probability, forecast) in enumerate(
            _DEFAULT_OPPORTUNITY_STAGES, 1
        ):
            self._raw_insert(
                "OpportunityStage",
                self._ids.new("OpportunityStage"),
                {
                    "MasterLabel": label,
                    "ApiName": label,
                    "SortOrder": order,
                    "IsActive": True,
                    "IsClosed": closed,
                    "IsWon": won,
                    "DefaultProbability": probability,
                    "ForecastCategoryName": forecast,
                },
                user_id,
                now,
            )
        for order, (label, is_default, closed) in enumerate(_DEFAULT_TASK_STATUSES, 1):
            self._raw_insert(
                "TaskStatus",
                self._ids.new("TaskStatus"),
                {
                    "MasterLabel": label,
                    "ApiName": label,
                    "SortOrder": order,
                    "IsDefault": is_default,
                    "IsClosed": closed,
                },
                user_id,
                now,
            )
        return user_id

    def _seed_lead_queue(self, name: str, user_id: str, now: str) -> str:
        """A queue as Setup makes it: a Group of Type Queue and its QueueSobject for Lead."""
        queue_id = self._ids.new("Group")
        self._raw_insert(
            "Group",
            queue_id,
            {"Name": name, "DeveloperName": name.replace(" ", "_"), "Type": "Queue",
             "OwnerId": user_id},
            user_id,
            now,
        )
        self._raw_insert("QueueSobject", self._ids.new("QueueSobject"),
                         {"QueueId": queue_id, "SobjectType": "Lead"}, user_id, now)
        return queue_id

    def add_user(
        self,
        *,
        id: str | None,
        username: str,
        email: str,
        first_name: str,
        last_name: str,
        territory: str | None,
        team: str | None,
        is_active: bool = True,
        manager_id: str | None = None,
    ) -> str:
        """Add a sales user (the dataset's users; users are not createable over the API).
        `manager_id`: the user they report to (User.ManagerId, as Setup sets it)."""
        with self._lock:
            user_id = id or self._ids.new("User")
            self._raw_insert(
                "User",
                user_id,
                {
                    "Username": username,
                    "Email": email,
                    "FirstName": first_name,
                    "LastName": last_name,
                    "Alias": (first_name[:1] + last_name)[:8].lower(),
                    "IsActive": is_active,
                    "Department": team,
                    "Division": territory,
                    "Territory__c": territory,
                    "ManagerId": manager_id,
                },
                self.integration_user_id,
                format_datetime(self.clock.now()),
            )
            return user_id

    def add_validation_rule(self, rule: ValidationRule) -> None:
        """Activate a validation rule (Setup > Object Manager > Validation Rules)."""
        self._obj(rule.sobject)
        with self._lock:
            self.validation_rules.append(rule)

    def load_record(self, sobject: str, fields: dict[str, Any]) -> str:
        """Load an existing record as is (keeps its Id and system fields when given); no
        validation, duplicate or assignment rule runs."""
        obj = self._obj(sobject)
        with self._lock:
            record_id = fields.get("Id") or self._ids.new(obj.name)
            values = {k: _to_json(v) for k, v in fields.items() if k != "Id"}
            if obj.has_owner and not values.get("OwnerId"):
                values["OwnerId"] = self.integration_user_id
            now = format_datetime(self.clock.now())
            self._raw_insert(
                obj.name,
                record_id,
                values,
                values.get("CreatedById") or self.integration_user_id,
                values.get("CreatedDate") or now,
            )
            return str(record_id)

    def begin_save(self) -> None:
        """Start one save (a collection call): its records are not compared to each other by
        the duplicate rule. The caller holds `lock` until `end_save`."""
        self._saving = set()

    def end_save(self) -> None:
        self._saving = None

    def begin(self) -> None:
        """Start recording an undo log (the caller holds `lock` until commit/rollback). Calls
        nest: an allOrNone collection inside an allOrNone composite request rolls back alone."""
        if self._undo is None:
            self._undo = []
        self._marks.append(len(self._undo))

    def commit(self) -> None:
        self._marks.pop()
        if not self._marks:
            self._undo = None

    def rollback(self) -> None:
        """Undo every write since the matching `begin` (allOrNone collections and composite
        requests)."""
        mark = self._marks.pop()
        log = self._undo or []
        undo, log[mark:] = log[mark:], []
        if not self._marks:
            self._undo = None
        for sobject, record_id, before in reversed(undo):
            current = self._data[sobject].get(record_id)
            if current is not None:
                self._index_remove(sobject, current)
            if before is None:
                self._data[sobject].pop(record_id, None)
                self._by_id.pop(record_id, None)
                self._deletions = [d for d in self._deletions if d.id != record_id]
            else:
                self._data[sobject][record_id] = before
                self._index_add(sobject, before)
                if not before["IsDeleted"]:
                    self._deletions = [d for d in self._deletions if d.id != record_id]

    @property
    def lock(self) -> threading.RLock:
        return self._lock

    def _remember(self, sobject: str, record_id: str) -> None:
        if self._undo is not None:
            before = self._data[sobject].get(record_id)
            self._undo.append((sobject, record_id, dict(before) if before else None))

    def check_columns(self, sobject: str, fields: dict[str, Any]) -> None:
        """Refuse the whole request when a record names a field the object lacks: the API
        deserializes every record before saving any, as it does for a value of the wrong
        type, so one unknown column fails a collection call of 200 (400 INVALID_FIELD,
        the answer of the one-record resource too)."""
        obj = self._obj(sobject)
        for key in fields:
            if key != "attributes" and obj.field(key) is None:
                raise RequestError(
                    400, "INVALID_FIELD", f"No such column '{key}' on sobject of type {obj.name}"
                )

    def check_types(self, sobject: str, fields: dict[str, Any]) -> None:
        """Deserialize every known field as the API does before any record is processed;
        raises RequestError(JSON_PARSER_ERROR) on a value of the wrong type."""
        obj = self._obj(sobject)
        for key, raw in fields.items():
            f = obj.field(key) if key != "attributes" else None
            if f is not None:
                self._coerce(f, raw)

    def _raw_insert(
        self, sobject: str, record_id: str, values: dict[str, Any], by: str, created: str
    ) -> None:
        obj = OBJECTS[sobject]
        self._remember(sobject, record_id)
        record: dict[str, Any] = {name: None for name in obj.fields}
        for f in obj.fields.values():
            if f.type == "boolean":
                record[f.name] = False
        record.update(values)
        record["Id"] = record_id
        record["IsDeleted"] = False
        record["CreatedDate"] = values.get("CreatedDate") or created
        record["CreatedById"] = values.get("CreatedById") or by
        record["LastModifiedDate"] = values.get("LastModifiedDate") or record["CreatedDate"]
        record["LastModifiedById"] = values.get("LastModifiedById") or by
        record["SystemModstamp"] = values.get("SystemModstamp") or record["LastModifiedDate"]
        self._derive(obj, record)
        self._data[sobject][record_id] = record
        self._by_id[record_id] = sobject
        self._index_add(sobject, record)

    # ----------------------------------------------------------------- reads
    def _obj(self, sobject: str) -> ObjectDef:
        obj = object_def(sobject)
        if obj is None:
            raise RequestError(404, "NOT_FOUND", settings.MSG_NOT_FOUND)
        return obj

    def attributes(self, sobject: str, record_id: str) -> dict[str, str]:
        return {
            "type": sobject,
            "url": f"{settings.data_path(self.api_version)}/sobjects/{sobject}/{record_id}",
        }

    def _copy(self, sobject: str, record: dict[str, Any]) -> dict[str, Any]:
        return {"attributes": self.attributes(sobject, record["Id"]), **record}

    def records(self, sobject: str, *, include_deleted: bool = False) -> list[dict[str, Any]]:
        """Copies of every live record of `sobject` (deleted ones too if asked)."""
        obj = self._obj(sobject)
        with self._lock:
            return [
                self._copy(obj.name, r)
                for r in self._data[obj.name].values()
                if include_deleted or not r["IsDeleted"]
            ]

    def set_value_record(self, sobject: str, label: str, values: dict[str, Any]) -> None:
        """Change one picklist value record (LeadStatus, OpportunityStage, TaskStatus) as an
        admin does in Setup: rename it, or say whether it closes, wins or converts."""
        obj = self._obj(sobject)
        with self._lock:
            record = next(r for r in self._data[obj.name].values() if r["MasterLabel"] == label)
            record.update(values)
            record["SystemModstamp"] = format_datetime(self.clock.now())

    def raw_records(self, sobject: str) -> list[dict[str, Any]]:
        """The stored records themselves, deleted included (for the query engine: read only)."""
        obj = self._obj(sobject)
        with self._lock:
            return list(self._data[obj.name].values())

    def get(self, sobject: str, id: str) -> dict[str, Any] | None:
        """A copy of one live record, or None."""
        obj = self._obj(sobject)
        with self._lock:
            record = self._data[obj.name].get(_to_18(id))
            if record is None or record["IsDeleted"]:
                return None
            return self._copy(obj.name, record)

    def lookup_any(self, record_id: str) -> tuple[str, dict[str, Any]] | None:
        """The sObject name and stored record for an id of any type (read only)."""
        with self._lock:
            rid = _to_18(record_id) if isinstance(record_id, str) else record_id
            sobject = self._by_id.get(rid)
            if sobject is None:
                return None
            return sobject, self._data[sobject][rid]

    def find(self, sobject: str, **equals: Any) -> list[dict[str, Any]]:
        """Live records whose fields equal the given values (Email and external ids indexed)."""
        obj = self._obj(sobject)
        with self._lock:
            candidates: Iterable[dict[str, Any]]
            email = equals.get("Email")
            ext = next(((k, v) for k, v in equals.items() if k in self._ext[obj.name]), None)
            if email is not None and obj.name in self._email:
                ids = self._email[obj.name].get(str(email).lower(), set())
                candidates = [self._data[obj.name][i] for i in ids]
            elif ext is not None and ext[1] is not None:
                hit = self._ext[obj.name][ext[0]].get(str(ext[1]).lower())
                candidates = [self._data[obj.name][hit]] if hit else []
            else:
                candidates = self._data[obj.name].values()
            out = []
            for r in candidates:
                if r["IsDeleted"]:
                    continue
                if all(_loose_eq(r.get(k), v) for k, v in equals.items()):
                    out.append(self._copy(obj.name, r))
            return out

    def indexed_rows(
        self, sobject: str, field: str, values: list[str], *, include_deleted: bool
    ) -> list[dict[str, Any]] | None:
        """Stored records (read only) whose `field` is one of `values`, from an index; None
        when `field` has no index usable here. Callers still apply the full filter."""
        obj = self._obj(sobject)
        with self._lock:
            table = self._data[obj.name]
            if field == "Id":
                found = (table.get(_to_18(v)) for v in values if is_valid_id(v))
                return [r for r in found if r is not None]
            if include_deleted:
                return None  # the Email and external-id indexes hold live records only
            if field == "Email" and obj.name in self._email:
                ids = set().union(*(self._email[obj.name].get(v.lower(), ()) for v in values))
                return [table[i] for i in sorted(ids)]
            index = self._ext[obj.name].get(field)
            if index is not None:
                hits = {index.get(v.lower()) for v in values} - {None}
                return [table[i] for i in sorted(h for h in hits if h)]
            return None

    def find_by_external_id(self, sobject: str, field: str, value: str) -> str | None:
        with self._lock:
            return self._ext[sobject].get(field, {}).get(str(value).lower())

    def users(self) -> list[dict[str, Any]]:
        """Every user (the integration user included)."""
        return self.records("User")

    def lead_statuses(self) -> list[dict[str, Any]]:
        return sorted(self.records("LeadStatus"), key=lambda r: r["SortOrder"] or 0)

    def counts(self) -> dict[str, int]:
        with self._lock:
            return {
                name: sum(1 for r in recs.values() if not r["IsDeleted"])
                for name, recs in self._data.items()
            }

    def updated_ids(self, sobject: str, start: datetime, end: datetime) -> list[str]:
        obj = self._obj(sobject)
        with self._lock:
            return [
                r["Id"]
                for r in self._data[obj.name].values()
                if not r["IsDeleted"] and start <= parse_datetime(r["SystemModstamp"]) < end
            ]

    def deletions(self, sobject: str, start: datetime, end: datetime) -> list[tuple[str, datetime]]:
        obj = self._obj(sobject)
        with self._lock:
            return [
                (d.id, d.when)
                for d in self._deletions
                if d.sobject == obj.name
                and start <= d.when < end
                and self._data[obj.name][d.id]["IsDeleted"]
            ]

    def earliest_deletion(self) -> datetime | None:
        with self._lock:
            return min((d.when for d in self._deletions), default=self.purged_through)

    # ----------------------------------------------------------------- writes
    def insert(
        self,
        sobject: str,
        fields: dict[str, Any],
        *,
        as_user_id: str | None = None,
        auto_assign: bool | None = None,
        allow_duplicates: bool = False,
    ) -> str:
        """Create a record after the org's validation, duplicate and assignment rules; raises
        RecordError. Lead assignment runs when `auto_assign` is true, or (None) when no OwnerId
        is given."""
        obj = self._obj(sobject)
        if not obj.createable:
            raise RecordError.one(
                "INVALID_TYPE_FOR_OPERATION", f"entity type {obj.name} does not support insert"
            )
        with self._lock:
            values = self._validate(obj, fields, existing=None)
            self._check_rules(obj, values)
            self._check_unique(obj, values, None)
            if not allow_duplicates:
                self._check_duplicates(obj, values, None)
            user = as_user_id or self.integration_user_id
            if obj.name == "Lead" and (
                auto_assign or (auto_assign is None and not values.get("OwnerId"))
            ):
                values["OwnerId"] = self._assign(values.get("Country"))
            if obj.has_owner and not values.get("OwnerId"):
                values["OwnerId"] = user
            self._apply_defaults(obj, values)
            record_id = self._ids.new(obj.name)
            if self._saving is not None:
                self._saving.add(record_id)
            self._raw_insert(obj.name, record_id, values, user, format_datetime(self.clock.now()))
            self._touch_activity(obj, self._data[obj.name][record_id])
            return record_id

    def update(
        self,
        sobject: str,
        id: str,
        fields: dict[str, Any],
        *,
        as_user_id: str | None = None,
        auto_assign: bool = False,
        allow_duplicates: bool = False,
    ) -> None:
        """Update a live record (same rules as insert; assignment only if `auto_assign`)."""
        obj = self._obj(sobject)
        with self._lock:
            record = self._live(obj, id)
            if obj.name == "Lead" and record["IsConverted"]:
                raise RecordError.one(
                    "CANNOT_UPDATE_CONVERTED_LEAD", "cannot reference converted lead", []
                )
            values = self._validate(obj, fields, existing=record)
            self._check_rules(obj, {**record, **values})
            self._check_unique(obj, values, record["Id"])
            if not allow_duplicates:
                self._check_duplicates(obj, {**record, **values}, record["Id"])
            if obj.name == "Lead" and auto_assign:
                values["OwnerId"] = self._assign(values.get("Country", record.get("Country")))
            if self._saving is not None:
                self._saving.add(record["Id"])
            self._write(obj, record, values, as_user_id or self.integration_user_id)
            self._touch_activity(obj, record)

    def _touch_activity(self, obj: ObjectDef, activity: dict[str, Any]) -> None:
        """LastActivityDate of the Who/What record: the later of the latest event date and the
        latest closed task's due date (object_reference, Lead.LastActivityDate)."""
        if obj.name not in ("Task", "Event") or (obj.name == "Task" and not activity["IsClosed"]):
            return
        when = (
            activity.get("ActivityDate")
            or (activity.get("StartDateTime") or format_datetime(self.clock.now()))[:10]
        )
        for ref in (activity.get("WhoId"), activity.get("WhatId")):
            found = self.lookup_any(ref) if ref else None
            if found and "LastActivityDate" in OBJECTS[found[0]].fields:
                target = found[1]
                if not target.get("LastActivityDate") or target["LastActivityDate"] < when:
                    self._remember(found[0], target["Id"])
                    target["LastActivityDate"] = when

    def delete(self, sobject: str, id: str) -> None:
        """Move a record to the recycle bin (IsDeleted; still visible to queryAll)."""
        obj = self._obj(sobject)
        with self._lock:
            record = self._live(obj, id)
            if not obj.deletable:
                raise RecordError.one(
                    "INVALID_TYPE_FOR_OPERATION", f"entity type {obj.name} does not support delete"
                )
            self._remember(obj.name, record["Id"])
            self._index_remove(obj.name, record)
            now = self.clock.now()
            record["IsDeleted"] = True
            record["SystemModstamp"] = format_datetime(now)
            self._deletions.append(_Deletion(obj.name, record["Id"], now))

    def merge(self, sobject: str, master_id: str, loser_ids: list[str], *,
              as_user_id: str | None = None) -> None:
        """Merge Leads or Contacts as the merge call does: each loser is deleted with its
        MasterRecordId set to the master (queryAll still sees it, the deleted resource lists
        it), and its Tasks and Events move to the master (WhoId)."""
        obj = self._obj(sobject)
        if obj.name not in ("Lead", "Contact"):
            raise RecordError.one(
                "INVALID_TYPE_FOR_OPERATION", f"entity type {obj.name} does not support merge"
            )
        with self._lock:
            master = self._live(obj, master_id)
            user = as_user_id or self.integration_user_id
            for loser_id in loser_ids:
                loser = self._live(obj, loser_id)
                if loser["Id"] == master["Id"]:
                    raise RecordError.one("INVALID_ID_FIELD", "cannot merge a record with itself")
                for kind in ("Task", "Event"):
                    for activity in list(self._data[kind].values()):
                        if activity["WhoId"] == loser["Id"] and not activity["IsDeleted"]:
                            self._write(OBJECTS[kind], activity, {"WhoId": master["Id"]}, user)
                self._write(obj, loser, {"MasterRecordId": master["Id"]}, user)
                self.delete(obj.name, loser["Id"])
            self._write(obj, master, {}, user)

    def purge_recycle_bin(self) -> None:
        """Empty the recycle bin: deleted records are gone for good (queryAll no longer sees
        them) and the delete log before now is purged, so the deleted resource refuses a
        start before it (INVALID_REPLICATION_DATE: only a full re-read is safe)."""
        with self._lock:
            now = self.clock.now()
            for d in self._deletions:
                self._data[d.sobject].pop(d.id, None)
                self._by_id.pop(d.id, None)
            self._deletions = []
            self.purged_through = now

    def convert_lead(
        self,
        lead_id: str,
        *,
        converted_status: str = "Closed - Converted",
        create_opportunity: bool = True,
        opportunity_name: str | None = None,
        account_id: str | None = None,
        contact_id: str | None = None,
        as_user_id: str | None = None,
    ) -> dict[str, str | None]:
        """Convert a Lead as LeadConvert does: create (or reuse) the Account and Contact,
        optionally an Opportunity, and mark the Lead converted."""
        with self._lock:
            lead = self._live(OBJECTS["Lead"], lead_id)
            if lead["IsConverted"]:
                raise RecordError.one("INVALID_STATUS", "Lead has already been converted.")
            statuses = {s["MasterLabel"]: s for s in self.lead_statuses()}
            status = statuses.get(converted_status)
            if status is None or not status["IsConverted"]:
                raise RecordError.one(
                    "INVALID_STATUS", f"invalid convertedStatus: {converted_status}"
                )
            user = as_user_id or self.integration_user_id
            owner = lead["OwnerId"] if str(lead["OwnerId"]).startswith("005") else user
            if account_id is None:
                account_id = self.insert(
                    "Account",
                    {
                        "Name": lead["Company"],
                        "Industry": lead["Industry"],
                        "Website": lead["Website"],
                        "BillingCountry": lead["Country"],
                        "BillingState": lead["State"],
                        "BillingCity": lead["City"],
                        "NumberOfEmployees": lead["NumberOfEmployees"],
                        "OwnerId": owner,
                    },
                    as_user_id=user,
                )
            else:
                self._live(OBJECTS["Account"], account_id)
            if contact_id is None:
                contact_id = self.insert(
                    "Contact",
                    {
                        "AccountId": account_id,
                        "FirstName": lead["FirstName"],
                        "LastName": lead["LastName"],
                        "Email": lead["Email"],
                        "Title": lead["Title"],
                        "Phone": lead["Phone"],
                        "LeadSource": lead["LeadSource"],
                        "MailingCountry": lead["Country"],
                        "MailingState": lead["State"],
                        "MailingCity": lead["City"],
                        "OwnerId": owner,
                    },
                    as_user_id=user,
                    allow_duplicates=True,
                )
            else:
                self._live(OBJECTS["Contact"], contact_id)
            opportunity_id = None
            if create_opportunity:
                today = self.clock.now().astimezone(UTC).date()
                opportunity_id = self.insert(
                    "Opportunity",
                    {
                        "Name": opportunity_name or f"{lead['Company']}-",
                        "AccountId": account_id,
                        "StageName": "Prospecting",
                        "CloseDate": (today + timedelta(days=30)).isoformat(),
                        "LeadSource": lead["LeadSource"],
                        "OwnerId": owner,
                    },
                    as_user_id=user,
                )
            self._write(
                OBJECTS["Lead"],
                lead,
                {
                    "IsConverted": True,
                    "Status": converted_status,
                    "ConvertedDate": self.clock.now().astimezone(UTC).date().isoformat(),
                    "ConvertedAccountId": account_id,
                    "ConvertedContactId": contact_id,
                    "ConvertedOpportunityId": opportunity_id,
                },
                user,
            )
            return {
                "accountId": account_id,
                "contactId": contact_id,
                "opportunityId": opportunity_id,
            }

    # ----------------------------------------------------------------- internals
    def _live(self, obj: ObjectDef, record_id: str) -> dict[str, Any]:
        record = self._data[obj.name].get(_to_18(record_id)) if is_valid_id(record_id) else None
        if record is None or record["IsDeleted"]:
            if not is_valid_id(record_id):
                raise RecordError.one("MALFORMED_ID", f"malformed id {record_id}")
            raise RecordError.one(
                "ENTITY_IS_DELETED" if record else "INVALID_CROSS_REFERENCE_KEY",
                "entity is deleted" if record else "invalid cross reference id",
            )
        return record

    def _write(
        self, obj: ObjectDef, record: dict[str, Any], values: dict[str, Any], user: str
    ) -> None:
        self._remember(obj.name, record["Id"])
        self._index_remove(obj.name, record)
        record.update(values)
        now = format_datetime(self.clock.now())
        record["LastModifiedDate"] = now
        record["SystemModstamp"] = now
        record["LastModifiedById"] = user
        self._derive(obj, record)
        self._index_add(obj.name, record)

    def _derive(self, obj: ObjectDef, record: dict[str, Any]) -> None:
        """Fields the org computes: Name, IsClosed/IsWon, CompletedDateTime, Event times."""
        if "Name" in obj.fields and obj.name in ("Lead", "Contact", "User"):
            record["Name"] = " ".join(
                p for p in (record.get("FirstName"), record.get("LastName")) if p
            )
        if obj.name == "Task":
            closed = record.get("Status") in self._flagged("TaskStatus", "IsClosed")
            if closed and not record.get("IsClosed"):
                record["CompletedDateTime"] = format_datetime(self.clock.now())
            record["IsClosed"] = closed
        if obj.name == "Event":
            start = record.get("StartDateTime") or record.get("ActivityDateTime")
            if start:
                record["StartDateTime"] = record["ActivityDateTime"] = start
                record["ActivityDate"] = start[:10]
                begin = parse_datetime(start)
                if record.get("EndDateTime"):
                    length = parse_datetime(record["EndDateTime"]) - begin
                    record["DurationInMinutes"] = int(length.total_seconds() // 60)
                elif record.get("DurationInMinutes") is not None:
                    end = begin + timedelta(minutes=int(record["DurationInMinutes"]))
                    record["EndDateTime"] = format_datetime(end)
        if obj.name == "Opportunity":
            stage = record.get("StageName")
            record["IsClosed"] = stage in self._flagged("OpportunityStage", "IsClosed")
            record["IsWon"] = stage in self._flagged("OpportunityStage", "IsWon")

    def _flagged(self, sobject: str, flag: str) -> set[str]:
        """The picklist values whose value record (TaskStatus, OpportunityStage) sets `flag`."""
        return {
            r["MasterLabel"]
            for r in self._data[sobject].values()
            if r.get(flag) and not r["IsDeleted"]
        }

    def _apply_defaults(self, obj: ObjectDef, values: dict[str, Any]) -> None:
        if obj.name == "Lead" and not values.get("Status"):
            default = next((s for s in self.lead_statuses() if s["IsDefault"]), None)
            values["Status"] = default["MasterLabel"] if default else None
        for f in obj.fields.values():
            if f.default_value is not None and values.get(f.name) is None:
                values[f.name] = f.default_value

    def _index_add(self, sobject: str, record: dict[str, Any]) -> None:
        if record["IsDeleted"]:
            return
        if sobject in self._email and record.get("Email"):
            self._email[sobject].setdefault(record["Email"].lower(), set()).add(record["Id"])
        key = _name_key(record) if sobject == "Lead" else None
        if key is not None:
            self._lead_names.setdefault(key, set()).add(record["Id"])
        for name, index in self._ext[sobject].items():
            if record.get(name) is not None:
                index[str(record[name]).lower()] = record["Id"]

    def _index_remove(self, sobject: str, record: dict[str, Any]) -> None:
        if sobject in self._email and record.get("Email"):
            self._email[sobject].get(record["Email"].lower(), set()).discard(record["Id"])
        key = _name_key(record) if sobject == "Lead" else None
        if key is not None:
            self._lead_names.get(key, set()).discard(record["Id"])
        for name, index in self._ext[sobject].items():
            if (
                record.get(name) is not None
                and index.get(str(record[name]).lower()) == record["Id"]
            ):
                del index[str(record[name]).lower()]

    def picklist_values(self, obj: ObjectDef, f: FieldDef) -> tuple[list[str], str | None]:
        if obj.name == "Lead" and f.name == "Status":
            statuses = self.lead_statuses()
            default = next((s["MasterLabel"] for s in statuses if s["IsDefault"]), None)
            return [s["MasterLabel"] for s in statuses], default
        return list(f.picklist), f.default_value

    def _validate(
        self, obj: ObjectDef, fields: dict[str, Any], existing: dict[str, Any] | None
    ) -> dict[str, Any]:
        creating = existing is None
        values: dict[str, Any] = {}
        not_writable: list[str] = []
        errors: list[dict[str, Any]] = []
        for key, raw in fields.items():
            if key == "attributes" or (key == "Id" and not creating):
                continue
            f = obj.field(key)
            if f is None:
                raise RecordError.one(
                    "INVALID_FIELD", f"No such column '{key}' on sobject of type {obj.name}"
                )
            if not (f.createable if creating else f.updateable):
                not_writable.append(f.name)
                continue
            values[f.name] = self._coerce(f, raw)
        if not_writable:
            raise RecordError.one(
                "INVALID_FIELD_FOR_INSERT_UPDATE",
                f"Unable to create/update fields: {', '.join(not_writable)}. Please check the "
                "security settings of this field and verify that it is read/write for your "
                "profile or permission set.",
                not_writable,
            )
        merged = {**(existing or {}), **values}
        missing = [
            f.name
            for f in obj.fields.values()
            if f.required and merged.get(f.name) in (None, "") and (creating or f.name in values)
        ]
        if obj.name == "Event":
            # an Event needs a start and a length: ActivityDateTime or StartDateTime, and
            # DurationInMinutes or EndDateTime (object_reference, Event)
            if not (merged.get("StartDateTime") or merged.get("ActivityDateTime")):
                missing.append("ActivityDateTime")
            if merged.get("DurationInMinutes") is None and not merged.get("EndDateTime"):
                missing.append("DurationInMinutes")
        if missing:
            errors.append(
                {
                    "statusCode": "REQUIRED_FIELD_MISSING",
                    "message": f"Required fields are missing: [{', '.join(missing)}]",
                    "fields": missing,
                }
            )
        for name, value in values.items():
            if value is None:
                continue
            f = obj.fields[name]
            error = self._check_value(obj, f, value)
            if error:
                errors.append(error)
        if errors:
            raise RecordError(errors)
        return values

    def _coerce(self, f: FieldDef, raw: Any) -> Any:
        if raw is None:
            return None
        if f.type in _TEXT_TYPES or f.type in ("id", "reference"):
            if isinstance(raw, bool):
                return "true" if raw else "false"
            if isinstance(raw, (int, float, str)):
                return raw if isinstance(raw, str) else str(raw)
        elif f.type == "boolean":
            if isinstance(raw, bool):
                return raw
            if isinstance(raw, str) and raw.lower() in ("true", "false"):
                return raw.lower() == "true"
        elif f.type in _NUMBER_TYPES:
            try:
                number = float(raw) if not isinstance(raw, bool) else None
            except (TypeError, ValueError):
                number = None
            if number is not None:
                return int(number) if f.type == "int" else number
        elif f.type == "date":
            if isinstance(raw, str):
                try:
                    return (
                        date.fromisoformat(raw)
                        if _DATE_RE.match(raw)
                        else parse_datetime(raw).date()
                    ).isoformat()
                except ValueError:
                    pass
        elif f.type == "datetime" and isinstance(raw, str):
            try:
                return format_datetime(parse_datetime(raw))
            except ValueError:
                pass
        kind = {"date": "date", "datetime": "datetime", "boolean": "boolean"}.get(
            f.type, "double" if f.type in _NUMBER_TYPES else "String"
        )
        raise RequestError(
            400,
            "JSON_PARSER_ERROR",
            f"Cannot deserialize instance of {kind} from VALUE_STRING value "
            f"{raw} or request may be missing a required field",
        )

    def _check_value(self, obj: ObjectDef, f: FieldDef, value: Any) -> dict[str, Any] | None:
        if f.type in _TEXT_TYPES and f.length and len(value) > f.length:
            return {
                "statusCode": "STRING_TOO_LONG",
                "message": f"{f.label}: data value too large: {value[:200]} "
                f"(max length={f.length})",
                "fields": [f.name],
            }
        if f.type == "email" and not _EMAIL_RE.match(value):
            return {
                "statusCode": "INVALID_EMAIL_ADDRESS",
                "message": f"{f.label}: invalid email address: {value}",
                "fields": [f.name],
            }
        if f.type == "picklist" and f.restricted:
            allowed, _ = self.picklist_values(obj, f)
            if value not in allowed:
                return {
                    "statusCode": "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                    "message": f"{f.label}: bad value for restricted picklist field: {value}",
                    "fields": [f.name],
                }
        if f.type == "reference":
            return self._check_reference(f, value)
        return None

    def _check_reference(self, f: FieldDef, value: str) -> dict[str, Any] | None:
        targets = {settings.KEY_PREFIXES[t] for t in f.reference_to if t in settings.KEY_PREFIXES}
        if not is_valid_id(value) or value[:3] not in targets:
            label = "/".join(f.reference_to) + " ID" if len(f.reference_to) > 1 else f.label
            return {
                "statusCode": "MALFORMED_ID",
                "message": f"{label}: id value of incorrect type: {value}",
                "fields": [f.name],
            }
        found = self.lookup_any(value)
        if found is None or found[1]["IsDeleted"]:
            return {
                "statusCode": "INVALID_CROSS_REFERENCE_KEY",
                "message": "invalid cross reference id",
                "fields": [f.name],
            }
        if f.name == "OwnerId" and found[0] == "User" and not found[1]["IsActive"]:
            return {
                "statusCode": "INACTIVE_OWNER_OR_USER",
                "message": "operation performed with inactive user",
                "fields": [f.name],
            }
        return None

    def _check_rules(self, obj: ObjectDef, record: Mapping[str, Any]) -> None:
        """The active validation rules of the object, against the record as it would be saved."""
        errors = [
            {
                "statusCode": "FIELD_CUSTOM_VALIDATION_EXCEPTION",
                "message": rule.message,
                "fields": [rule.field] if rule.field else [],
            }
            for rule in self.validation_rules
            if rule.sobject == obj.name and rule.refuses(record)
        ]
        if errors:
            raise RecordError(errors)

    def _check_unique(self, obj: ObjectDef, values: dict[str, Any], self_id: str | None) -> None:
        for name, index in self._ext[obj.name].items():
            value = values.get(name)
            if value is None:
                continue
            hit = index.get(str(value).lower())
            if hit and hit != self_id:
                raise RecordError.one(
                    "DUPLICATE_VALUE",
                    f"duplicate value found: {name} duplicates value on record with id: {hit}",
                    [],
                )

    def _check_duplicates(
        self, obj: ObjectDef, values: dict[str, Any], self_id: str | None
    ) -> None:
        rule = settings.DUPLICATE_RULES.get(obj.name)
        email = values.get("Email")
        name = _name_key(values) if obj.name == "Lead" and self.lead_name_matching else None
        if rule is None or not (email or name):
            return
        rule_name, matchers = rule
        results = []
        for target, match_rule in matchers:
            found = set(self._email[target].get(email.lower(), ())) if email else set()
            if target == "Lead" and name is not None:
                found |= self._lead_names.get(name, set())
            same_save = self._saving or set()
            hits = [
                i
                for i in sorted(found)
                if i != self_id
                and i not in same_save
                and not self._data[target][i].get("IsConverted")
            ]
            if hits:
                results.append(
                    {
                        "entityType": target,
                        "errors": [],
                        "matchEngine": "ExactMatchEngine",
                        "matchRecords": [
                            {
                                "additionalInformation": [],
                                "fieldDiffs": [],
                                "matchConfidence": 100.0,
                                "record": {"attributes": self.attributes(target, i), "Id": i},
                            }
                            for i in hits
                        ],
                        "rule": match_rule,
                        "size": len(hits),
                        "success": True,
                    }
                )
        if results:
            raise RecordError(
                [
                    {
                        "statusCode": "DUPLICATES_DETECTED",
                        "message": settings.MSG_DUPLICATE,
                        "fields": [],
                        "duplicateResult": {
                            "allowSave": True,
                            "duplicateRule": rule_name,
                            "duplicateRuleEntityType": obj.name,
                            "errorMessage": settings.MSG_DUPLICATE_RULE,
                            "matchResults": results,
                        },
                    }
                ]
            )

    def _assign(self, country: Any) -> str:
        region = settings.COUNTRY_REGIONS.get(str(country or "").strip().lower())
        if region is None:
            return self.queue_id
        users = sorted(
            (
                u
                for u in self._data["User"].values()
                if u["IsActive"] and str(u.get("Territory__c") or "").startswith(region)
            ),
            key=lambda u: u["Id"],
        )
        if not users:
            return self.queue_id
        turn = self._round_robin.get(region, 0)
        self._round_robin[region] = turn + 1
        return str(users[turn % len(users)]["Id"])


def _name_key(record: Mapping[str, Any]) -> tuple[str, str, str] | None:
    """FirstName, LastName and Company as the name matching compares them; None if one is
    blank (a blank field never matches)."""
    parts = tuple(str(record.get(f) or "").strip().lower() for f in ("FirstName", "LastName",
                                                                      "Company"))
    return (parts[0], parts[1], parts[2]) if all(parts) else None


def _to_18(record_id: str) -> str:
    from .ids import to_18

    return to_18(record_id) if len(record_id) == 15 else record_id


def _to_json(value: Any) -> Any:
    if isinstance(value, datetime):
        return format_datetime(value if value.tzinfo else value.replace(tzinfo=UTC))
    if isinstance(value, date):
        return value.isoformat()
    return value


def _loose_eq(stored: Any, wanted: Any) -> bool:
    if isinstance(stored, str) and isinstance(wanted, str):
        return stored.lower() == wanted.lower()
    return bool(stored == _to_json(wanted))
