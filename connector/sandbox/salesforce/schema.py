"""Field metadata of the emulated sObjects, and the describe payloads built from it.

Field properties follow the DescribeSObjectResult / Field shapes of the REST API
(https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_sobject_describe.htm
and https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/sforce_api_calls_describesobjects_describesobjectresult.htm).
Lead.Status picklist values are not listed here: describe reads them from LeadStatus records.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import settings

__all__ = ["OBJECTS", "FieldDef", "ObjectDef", "describe_global", "describe_object"]


@dataclass(frozen=True)
class FieldDef:
    name: str
    type: str  # id, string, textarea, email, phone, url, picklist, reference, boolean,
    # datetime, date, double, int, currency, percent, combobox
    label: str = ""
    length: int = 0
    nillable: bool = True
    createable: bool = True
    updateable: bool = True
    defaulted_on_create: bool = False
    external_id: bool = False
    unique: bool = False
    picklist: tuple[str, ...] = ()
    default_value: str | None = None
    restricted: bool = False
    reference_to: tuple[str, ...] = ()
    relationship_name: str | None = None
    custom: bool = False
    filterable: bool = True

    @property
    def required(self) -> bool:
        """Required on create: not nillable, createable and not defaulted by the server."""
        return not self.nillable and self.createable and not self.defaulted_on_create


@dataclass(frozen=True)
class ObjectDef:
    name: str
    label: str
    label_plural: str
    fields: dict[str, FieldDef]
    createable: bool = True
    updateable: bool = True
    deletable: bool = True
    has_owner: bool = True
    lower: dict[str, str] = field(default_factory=dict)  # lower-case name -> API name

    def field(self, name: str) -> FieldDef | None:
        api = self.lower.get(name.lower())
        return self.fields[api] if api else None


def _f(name: str, type_: str, **kw: Any) -> FieldDef:
    label = kw.pop("label", None) or _label(name)
    if type_ == "reference" and "relationship_name" not in kw:
        kw["relationship_name"] = name[:-2] if name.endswith("Id") else None
    return FieldDef(name=name, type=type_, label=label, **kw)


def _label(name: str) -> str:
    base = name.removesuffix("__c").replace("_", " ")
    out = ""
    for i, ch in enumerate(base):
        if ch.isupper() and i and base[i - 1].islower():
            out += " "
        out += ch
    return out


def _system(has_owner: bool, owner_refs: tuple[str, ...]) -> list[FieldDef]:
    fields = [
        _f(
            "Id",
            "id",
            length=18,
            nillable=False,
            createable=False,
            updateable=False,
            defaulted_on_create=True,
            label="Record ID",
        ),
        _f(
            "IsDeleted",
            "boolean",
            nillable=False,
            createable=False,
            updateable=False,
            defaulted_on_create=True,
            label="Deleted",
        ),
        _f(
            "CreatedDate",
            "datetime",
            nillable=False,
            createable=False,
            updateable=False,
            defaulted_on_create=True,
        ),
        _f(
            "CreatedById",
            "reference",
            length=18,
            nillable=False,
            createable=False,
            updateable=False,
            defaulted_on_create=True,
            reference_to=("User",),
        ),
        _f(
            "LastModifiedDate",
            "datetime",
            nillable=False,
            createable=False,
            updateable=False,
            defaulted_on_create=True,
        ),
        _f(
            "LastModifiedById",
            "reference",
            length=18,
            nillable=False,
            createable=False,
            updateable=False,
            defaulted_on_create=True,
            reference_to=("User",),
        ),
        _f(
            "SystemModstamp",
            "datetime",
            nillable=False,
            createable=False,
            updateable=False,
            defaulted_on_create=True,
            label="System Modstamp",
        ),
    ]
    if has_owner:
        fields.append(
            _f(
                "OwnerId",
                "reference",
                length=18,
                nillable=False,
                defaulted_on_create=True,
                reference_to=owner_refs,
                label="Owner ID",
            )
        )
    return fields


LEAD_SOURCES = (
    "Web",
    "Phone Inquiry",
    "Partner Referral",
    "Purchased List",
    "Other",
    "Webinar",
    "Content Download",
    "Marketing Automation",
)
INDUSTRIES = (
    "Agriculture",
    "Apparel",
    "Banking",
    "Biotechnology",
    "Chemicals",
    "Communications",
    "Construction",
    "Consulting",
    "Education",
    "Electronics",
    "Energy",
    "Engineering",
    "Entertainment",
    "Environmental",
    "Finance",
    "Food & Beverage",
    "Government",
    "Healthcare",
    "Hospitality",
    "Insurance",
    "Machinery",
    "Manufacturing",
    "Media",
    "Not For Profit",
    "Recreation",
    "Retail",
    "Shipping",
    "Technology",
    "Telecommunications",
    "Transportation",
    "Utilities",
    "Other",
)
RATINGS = ("Hot", "Warm", "Cold")
# Custom Lead fields an org adds for marketing's hand-off: the buying timeframe a form asked
# (restricted: reports group by it) and the date of the webinar that brought the lead.
PURCHASE_TIMEFRAMES = ("Just researching", "Within a year", "Within 6 months", "This quarter")
NOT_CONVERTED_REASONS = (
    "No Budget",
    "No Authority",
    "No Need",
    "Bad Timing",
    "Competitor",
    "Unresponsive",
    "Bad Contact Data",
    "Not a Fit",
    "Duplicate",
)
TASK_STATUSES = ("Not Started", "In Progress", "Completed", "Waiting on someone else", "Deferred")
TASK_PRIORITIES = ("High", "Normal", "Low")
ACTIVITY_TYPES = ("Call", "Email", "Meeting", "Other")
TASK_SUBTYPES = ("Task", "Email", "ListEmail", "Cadence", "Call", "LinkedIn")
EVENT_SUBTYPES = ("Event",)
OPP_STAGES = (
    "Prospecting",
    "Qualification",
    "Needs Analysis",
    "Value Proposition",
    "Id. Decision Makers",
    "Perception Analysis",
    "Proposal/Price Quote",
    "Negotiation/Review",
    "Closed Won",
    "Closed Lost",
)
ACCOUNT_TYPES = (
    "Prospect",
    "Customer - Direct",
    "Customer - Channel",
    "Channel Partner / Reseller",
    "Installation Partner",
    "Technology Partner",
    "Other",
)


def _obj(
    name: str,
    label: str,
    plural: str,
    fields: list[FieldDef],
    *,
    has_owner: bool = True,
    createable: bool = True,
    owner_refs: tuple[str, ...] = ("User",),
) -> ObjectDef:
    all_fields = _system(has_owner, owner_refs) + fields
    by_name = {f.name: f for f in all_fields}
    return ObjectDef(
        name=name,
        label=label,
        label_plural=plural,
        fields=by_name,
        createable=createable,
        updateable=createable,
        deletable=createable,
        has_owner=has_owner,
        lower={n.lower(): n for n in by_name},
    )


_LEAD = _obj(
    "Lead",
    "Lead",
    "Leads",
    [
        _f(
            "MasterRecordId",
            "reference",
            length=18,
            createable=False,
            updateable=False,
            reference_to=("Lead",),
            label="Master Record ID",
        ),
        _f("Salutation", "picklist", length=40, picklist=("Mr.", "Ms.", "Mrs.", "Dr.", "Prof.")),
        _f("FirstName", "string", length=40),
        _f("LastName", "string", length=80, nillable=False),
        _f("Name", "string", length=121, createable=False, updateable=False, label="Full Name"),
        _f("Title", "string", length=128),
        _f("Company", "string", length=255, nillable=False),
        _f("Email", "email", length=80),
        _f("Phone", "phone", length=40),
        _f("MobilePhone", "phone", length=40),
        _f("Website", "url", length=255),
        _f("Street", "textarea", length=255),
        _f("City", "string", length=40),
        _f("State", "string", length=80, label="State/Province"),
        _f("PostalCode", "string", length=20, label="Zip/Postal Code"),
        _f("Country", "string", length=80),
        _f("Description", "textarea", length=32000),
        _f("LeadSource", "picklist", length=255, picklist=LEAD_SOURCES),
        _f(
            "Status",
            "picklist",
            length=255,
            nillable=False,
            defaulted_on_create=True,
            restricted=True,
        ),
        _f("Industry", "picklist", length=255, picklist=INDUSTRIES),
        _f("Rating", "picklist", length=255, picklist=RATINGS),
        _f("AnnualRevenue", "currency"),
        _f("NumberOfEmployees", "int", label="Employees"),
        _f(
            "HasOptedOutOfEmail",
            "boolean",
            nillable=False,
            defaulted_on_create=True,
            label="Email Opt Out",
        ),
        _f(
            "IsConverted",
            "boolean",
            nillable=False,
            defaulted_on_create=True,
            updateable=False,
            label="Converted",
        ),
        _f("ConvertedDate", "date", createable=False, updateable=False),
        _f(
            "ConvertedAccountId",
            "reference",
            length=18,
            createable=False,
            updateable=False,
            reference_to=("Account",),
        ),
        _f(
            "ConvertedContactId",
            "reference",
            length=18,
            createable=False,
            updateable=False,
            reference_to=("Contact",),
        ),
        _f(
            "ConvertedOpportunityId",
            "reference",
            length=18,
            createable=False,
            updateable=False,
            reference_to=("Opportunity",),
        ),
        _f(
            "IsUnreadByOwner",
            "boolean",
            nillable=False,
            defaulted_on_create=True,
            label="Unread By Owner",
        ),
        _f("LastActivityDate", "date", createable=False, updateable=False),
        _f(
            "Handshake_Id__c",
            "string",
            length=64,
            external_id=True,
            unique=True,
            custom=True,
            label="Handshake ID",
        ),
        _f(
            "Reason_Not_Converted__c",
            "picklist",
            length=255,
            picklist=NOT_CONVERTED_REASONS,
            restricted=True,
            custom=True,
            label="Reason Not Converted",
        ),
        _f(
            "Purchase_Timeframe__c",
            "picklist",
            length=255,
            picklist=PURCHASE_TIMEFRAMES,
            restricted=True,
            custom=True,
            label="Purchase Timeframe",
        ),
        _f("Webinar_Date__c", "date", custom=True, label="Webinar Date"),
    ],
    owner_refs=("Group", "User"),
)  # leads may sit in a queue

_CONTACT = _obj(
    "Contact",
    "Contact",
    "Contacts",
    [
        _f(
            "MasterRecordId",
            "reference",
            length=18,
            createable=False,
            updateable=False,
            reference_to=("Contact",),
            label="Master Record ID",
        ),
        _f("AccountId", "reference", length=18, reference_to=("Account",)),
        _f("Salutation", "picklist", length=40, picklist=("Mr.", "Ms.", "Mrs.", "Dr.", "Prof.")),
        _f("FirstName", "string", length=40),
        _f("LastName", "string", length=80, nillable=False),
        _f("Name", "string", length=121, createable=False, updateable=False, label="Full Name"),
        _f("Title", "string", length=128),
        _f("Email", "email", length=80),
        _f("Phone", "phone", length=40),
        _f("MobilePhone", "phone", length=40),
        _f("MailingCity", "string", length=40),
        _f("MailingState", "string", length=80),
        _f("MailingCountry", "string", length=80),
        _f("Description", "textarea", length=32000),
        _f("LeadSource", "picklist", length=255, picklist=LEAD_SOURCES),
        _f(
            "HasOptedOutOfEmail",
            "boolean",
            nillable=False,
            defaulted_on_create=True,
            label="Email Opt Out",
        ),
        _f("LastActivityDate", "date", createable=False, updateable=False),
        _f(
            "Handshake_Id__c",
            "string",
            length=64,
            external_id=True,
            unique=True,
            custom=True,
            label="Handshake ID",
        ),
    ],
)

_ACCOUNT = _obj(
    "Account",
    "Account",
    "Accounts",
    [
        _f("Name", "string", length=255, nillable=False, label="Account Name"),
        _f("Type", "picklist", length=255, picklist=ACCOUNT_TYPES, label="Account Type"),
        _f("Industry", "picklist", length=255, picklist=INDUSTRIES),
        _f("Website", "url", length=255),
        _f("Phone", "phone", length=40),
        _f("BillingCity", "string", length=40),
        _f("BillingState", "string", length=80),
        _f("BillingCountry", "string", length=80),
        _f("AnnualRevenue", "currency"),
        _f("NumberOfEmployees", "int", label="Employees"),
        _f("Description", "textarea", length=32000),
        _f("LastActivityDate", "date", createable=False, updateable=False),
    ],
)

_OPPORTUNITY = _obj(
    "Opportunity",
    "Opportunity",
    "Opportunities",
    [
        _f("AccountId", "reference", length=18, reference_to=("Account",)),
        _f("Name", "string", length=120, nillable=False),
        _f(
            "StageName",
            "picklist",
            length=255,
            nillable=False,
            picklist=OPP_STAGES,
            restricted=True,
            label="Stage",
        ),
        _f("CloseDate", "date", nillable=False),
        _f("Amount", "currency"),
        _f("Probability", "percent"),
        _f("LeadSource", "picklist", length=255, picklist=LEAD_SOURCES),
        _f(
            "Type",
            "picklist",
            length=255,
            picklist=(
                "Existing Customer - Upgrade",
                "Existing Customer - Replacement",
                "Existing Customer - Downgrade",
                "New Customer",
            ),
            label="Opportunity Type",
        ),
        _f(
            "IsClosed",
            "boolean",
            nillable=False,
            createable=False,
            updateable=False,
            defaulted_on_create=True,
            label="Closed",
        ),
        _f(
            "IsWon",
            "boolean",
            nillable=False,
            createable=False,
            updateable=False,
            defaulted_on_create=True,
            label="Won",
        ),
        _f("Description", "textarea", length=32000),
    ],
)

_ACTIVITY_COMMON = [
    _f("WhoId", "reference", length=18, reference_to=("Contact", "Lead"), label="Name ID"),
    _f(
        "WhatId",
        "reference",
        length=18,
        reference_to=("Account", "Opportunity"),
        label="Related To ID",
    ),
    _f("Subject", "combobox", length=255, picklist=("Call", "Send Letter", "Send Quote", "Other")),
    _f("Description", "textarea", length=32000),
    _f("Type", "picklist", length=255, picklist=ACTIVITY_TYPES),
]

_TASK = _obj(
    "Task",
    "Task",
    "Tasks",
    _ACTIVITY_COMMON
    + [
        _f("ActivityDate", "date", label="Due Date Only"),
        _f(
            "Status",
            "picklist",
            length=255,
            nillable=False,
            defaulted_on_create=True,
            picklist=TASK_STATUSES,
            default_value="Not Started",
            restricted=True,
        ),
        _f(
            "Priority",
            "picklist",
            length=255,
            nillable=False,
            defaulted_on_create=True,
            picklist=TASK_PRIORITIES,
            default_value="Normal",
            restricted=True,
        ),
        _f(
            "TaskSubtype",
            "picklist",
            length=255,
            updateable=False,
            picklist=TASK_SUBTYPES,
            restricted=True,
        ),
        _f(
            "IsClosed",
            "boolean",
            nillable=False,
            createable=False,
            updateable=False,
            defaulted_on_create=True,
            label="Closed",
        ),
        _f("CompletedDateTime", "datetime", createable=False, updateable=False),
        _f("CallDurationInSeconds", "int", label="Call Duration"),
        _f(
            "CallType",
            "picklist",
            length=255,
            picklist=("Internal", "Inbound", "Outbound"),
            restricted=True,
        ),
        _f("CallDisposition", "string", length=255, label="Call Result"),
    ],
)

_EVENT = _obj(
    "Event",
    "Event",
    "Events",
    _ACTIVITY_COMMON
    + [
        _f("StartDateTime", "datetime", label="Start"),
        _f("EndDateTime", "datetime", label="End"),
        _f("ActivityDateTime", "datetime", label="Due Date Time"),
        _f("ActivityDate", "date", label="Due Date Only"),
        _f("DurationInMinutes", "int", label="Duration"),
        _f("Location", "string", length=255),
        _f(
            "EventSubtype",
            "picklist",
            length=255,
            updateable=False,
            picklist=EVENT_SUBTYPES,
            restricted=True,
        ),
    ],
)

_USER = _obj(
    "User",
    "User",
    "Users",
    [
        _f("Username", "string", length=80, nillable=False, unique=True),
        _f("Email", "email", length=128, nillable=False),
        _f("FirstName", "string", length=40),
        _f("LastName", "string", length=80, nillable=False),
        _f("Name", "string", length=121, createable=False, updateable=False, label="Full Name"),
        _f("Alias", "string", length=8, nillable=False),
        _f("IsActive", "boolean", nillable=False, defaulted_on_create=True, label="Active"),
        _f("Department", "string", length=80),
        _f("Division", "string", length=80),
        _f("Territory__c", "string", length=80, custom=True, label="Territory"),
        _f("ManagerId", "reference", length=18, reference_to=("User",), label="Manager ID"),
    ],
    has_owner=False,
    createable=False,
)

_LEAD_STATUS = _obj(
    "LeadStatus",
    "Lead Status Value",
    "Lead Status Values",
    [
        _f("MasterLabel", "string", length=255, nillable=False, label="Master Label"),
        _f("ApiName", "string", length=255, nillable=False),
        _f("SortOrder", "int"),
        _f("IsDefault", "boolean", nillable=False, defaulted_on_create=True, label="Is Default"),
        _f(
            "IsConverted", "boolean", nillable=False, defaulted_on_create=True, label="Is Converted"
        ),
    ],
    has_owner=False,
    createable=False,
)

# OpportunityStage and TaskStatus as the SOAP API object reference describes them: one record a
# picklist value, read-only, saying which values close (and win) the record.
_OPPORTUNITY_STAGE = _obj(
    "OpportunityStage",
    "Opportunity Stage",
    "Opportunity Stages",
    [
        _f("MasterLabel", "string", length=255, nillable=False, label="Master Label"),
        _f("ApiName", "string", length=255, nillable=False),
        _f("SortOrder", "int"),
        _f("IsActive", "boolean", nillable=False, defaulted_on_create=True, label="Is Active"),
        _f("IsClosed", "boolean", nillable=False, defaulted_on_create=True, label="Is Closed"),
        _f("IsWon", "boolean", nillable=False, defaulted_on_create=True, label="Is Won"),
        _f("DefaultProbability", "percent", label="Default Probability"),
        _f("ForecastCategoryName", "string", length=40, label="Forecast Category"),
    ],
    has_owner=False,
    createable=False,
)

_TASK_STATUS = _obj(
    "TaskStatus",
    "Task Status Value",
    "Task Status Values",
    [
        _f("MasterLabel", "string", length=255, nillable=False, label="Master Label"),
        _f("ApiName", "string", length=255, nillable=False),
        _f("SortOrder", "int"),
        _f("IsDefault", "boolean", nillable=False, defaulted_on_create=True, label="Is Default"),
        _f("IsClosed", "boolean", nillable=False, defaulted_on_create=True, label="Is Closed"),
    ],
    has_owner=False,
    createable=False,
)

_GROUP = _obj(
    "Group",
    "Group",
    "Groups",
    [
        _f("Name", "string", length=40, nillable=False),
        _f("DeveloperName", "string", length=80),
        _f("Type", "picklist", length=255, nillable=False, picklist=("Queue", "Regular")),
        _f("Email", "email", length=255),
    ],
)

# Which objects a queue may own (Setup > Queues > Supported Objects): a Lead queue has one
# row with SobjectType "Lead". Created and deleted, never updated.
_QUEUE_SOBJECT = _obj(
    "QueueSobject",
    "Queue sObject",
    "Queue sObjects",
    [
        _f("QueueId", "reference", length=18, nillable=False, reference_to=("Group",),
           label="Group ID"),
        _f("SobjectType", "picklist", length=40, nillable=False, label="sObject Type",
           picklist=("Case", "Lead"), restricted=True),
    ],
    has_owner=False,
)
_QUEUE_SOBJECT = ObjectDef(**{**_QUEUE_SOBJECT.__dict__, "updateable": False})

# The org's assignment rules (read only): Bulk API 2.0 runs one only when a job names its id.
_ASSIGNMENT_RULE = _obj(
    "AssignmentRule",
    "Assignment Rule",
    "Assignment Rules",
    [
        _f("Name", "string", length=120, nillable=False),
        _f("SobjectType", "picklist", length=40, nillable=False, picklist=("Case", "Lead")),
        _f("Active", "boolean", nillable=False, defaulted_on_create=True),
    ],
    has_owner=False,
    createable=False,
)

# Polymorphic lookups (Lead.Owner, Task.Who, Task.What) are read through the Name object,
# which offers only these fields; Type is the record's sObject name.
NAME_OBJECT = ObjectDef(
    name="Name",
    label="Name",
    label_plural="Names",
    fields={
        f.name: f
        for f in (
            _f("Id", "id", length=18),
            _f("Name", "string", length=255),
            _f("FirstName", "string", length=40),
            _f("LastName", "string", length=80),
            _f("Email", "email", length=80),
            _f("Phone", "phone", length=40),
            _f("Title", "string", length=128),
            _f("Alias", "string", length=8),
            _f("Username", "string", length=80),
            _f("IsActive", "boolean"),
            _f("Type", "picklist", length=40),
        )
    },
    createable=False,
    has_owner=False,
)
NAME_OBJECT.lower.update({n.lower(): n for n in NAME_OBJECT.fields})

OBJECTS: dict[str, ObjectDef] = {
    o.name: o
    for o in (
        _LEAD,
        _CONTACT,
        _ACCOUNT,
        _OPPORTUNITY,
        _TASK,
        _EVENT,
        _USER,
        _LEAD_STATUS,
        _OPPORTUNITY_STAGE,
        _TASK_STATUS,
        _GROUP,
        _QUEUE_SOBJECT,
        _ASSIGNMENT_RULE,
    )
}
OBJECTS_LOWER: dict[str, str] = {name.lower(): name for name in OBJECTS}


def relationship_target(rel: FieldDef) -> ObjectDef | None:
    """The object a relationship reads: the Name object when the lookup is polymorphic."""
    if len(rel.reference_to) > 1:
        return NAME_OBJECT
    return OBJECTS.get(rel.reference_to[0])


def object_def(name: str) -> ObjectDef | None:
    """The object definition for a case-insensitive sObject name."""
    api = OBJECTS_LOWER.get(name.lower())
    return OBJECTS[api] if api else None


def _soap_type(f: FieldDef) -> str:
    return {
        "id": "tns:ID",
        "reference": "tns:ID",
        "boolean": "xsd:boolean",
        "datetime": "xsd:dateTime",
        "date": "xsd:date",
        "double": "xsd:double",
        "currency": "xsd:double",
        "percent": "xsd:double",
        "int": "xsd:int",
    }.get(f.type, "xsd:string")


def describe_field(f: FieldDef, picklist_values: list[dict[str, Any]]) -> dict[str, Any]:
    """One entry of `fields` in a describe answer."""
    is_text = f.type in (
        "string",
        "textarea",
        "email",
        "phone",
        "url",
        "picklist",
        "combobox",
        "id",
        "reference",
    )
    return {
        "aggregatable": f.type != "textarea",
        "autoNumber": False,
        "byteLength": f.length * 3 if is_text else 0,
        "calculated": False,
        "caseSensitive": False,
        "createable": f.createable,
        "custom": f.custom,
        "defaultValue": None,
        "defaultedOnCreate": f.defaulted_on_create,
        "dependentPicklist": False,
        "digits": 9 if f.type == "int" else 0,
        "externalId": f.external_id,
        "filterable": f.type != "textarea" or f.length <= 255,
        "groupable": f.type not in ("textarea", "double", "currency", "percent", "datetime"),
        "htmlFormatted": False,
        "idLookup": f.name == "Id" or f.external_id or f.type == "email",
        "label": f.label,
        "length": f.length if is_text else 0,
        "name": f.name,
        "nameField": f.name == "Name",
        "nillable": f.nillable,
        "picklistValues": picklist_values,
        "polymorphicForeignKey": len(f.reference_to) > 1,
        "precision": 18 if f.type in ("currency", "double") else (3 if f.type == "percent" else 0),
        "referenceTo": list(f.reference_to),
        "relationshipName": f.relationship_name,
        "restrictedPicklist": f.restricted,
        "scale": 2 if f.type in ("currency", "double") else 0,
        "soapType": _soap_type(f),
        "sortable": f.type != "textarea" or f.length <= 255,
        "type": f.type,
        "unique": f.unique,
        "updateable": f.updateable,
    }


def picklist_entries(values: list[str], default: str | None) -> list[dict[str, Any]]:
    return [
        {"active": True, "defaultValue": v == default, "label": v, "validFor": None, "value": v}
        for v in values
    ]


def _urls(version: str, name: str) -> dict[str, str]:
    base = f"{settings.data_path(version)}/sobjects/{name}"
    return {
        "compactLayouts": f"{base}/describe/compactLayouts",
        "rowTemplate": f"{base}/{{ID}}",
        "defaultValues": f"{base}/defaultValues?recordTypeId&fields",
        "describe": f"{base}/describe",
        "sobject": base,
    }


def describe_object(
    obj: ObjectDef, version: str, picklists: dict[str, tuple[list[str], str | None]]
) -> dict[str, Any]:
    """The `/sobjects/{name}/describe` answer. `picklists` gives values and default per field."""
    fields = []
    for f in obj.fields.values():
        values, default = picklists.get(f.name, (list(f.picklist), f.default_value))
        entries = picklist_entries(values, default) if f.type in ("picklist", "combobox") else []
        fields.append(describe_field(f, entries))
    return {
        **_global_entry(obj, version),
        "childRelationships": [],
        "fields": fields,
        "namedLayoutInfos": [],
        "networkScopeFieldName": None,
        "recordTypeInfos": [],
        "supportedScopes": [
            {"label": "All " + obj.label_plural.lower(), "name": "everything"},
            {"label": "My " + obj.label_plural.lower(), "name": "mine"},
        ],
    }


def _global_entry(obj: ObjectDef, version: str) -> dict[str, Any]:
    return {
        "activateable": False,
        "createable": obj.createable,
        "custom": False,
        "customSetting": False,
        "deletable": obj.deletable,
        "deprecatedAndHidden": False,
        "feedEnabled": obj.has_owner,
        "hasSubtypes": False,
        "isSubtype": False,
        "keyPrefix": settings.KEY_PREFIXES[obj.name],
        "label": obj.label,
        "labelPlural": obj.label_plural,
        "layoutable": obj.has_owner,
        "mergeable": obj.name in ("Lead", "Contact", "Account"),
        "mruEnabled": obj.has_owner,
        "name": obj.name,
        "queryable": True,
        "replicateable": True,
        "retrieveable": True,
        "searchable": obj.has_owner,
        "triggerable": obj.createable,
        "undeletable": obj.deletable,
        "updateable": obj.updateable,
        "urls": _urls(version, obj.name),
    }


def describe_global(version: str) -> dict[str, Any]:
    """The `/sobjects` answer (global describe)."""
    return {
        "encoding": "UTF-8",
        "maxBatchSize": settings.COLLECTION_MAX_RECORDS,
        "sobjects": [_global_entry(o, version) for o in OBJECTS.values()],
    }
