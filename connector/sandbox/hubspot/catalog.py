"""The contact property definitions a fresh HubSpot portal has (the subset the project uses).

Shapes follow the `Property` schema of crm-properties-v3; option lists follow HubSpot's
defaults (lifecycle stages in funnel order, the default lead statuses).
"""

from __future__ import annotations

from typing import Any

__all__ = ["DEFAULT_GROUPS", "LEAD_STATUSES", "LIFECYCLE_STAGES", "default_contact_properties"]

LIFECYCLE_STAGES: tuple[tuple[str, str], ...] = (
    ("subscriber", "Subscriber"),
    ("lead", "Lead"),
    ("marketingqualifiedlead", "Marketing Qualified Lead"),
    ("salesqualifiedlead", "Sales Qualified Lead"),
    ("opportunity", "Opportunity"),
    ("customer", "Customer"),
    ("evangelist", "Evangelist"),
    ("other", "Other"),
)

LEAD_STATUSES: tuple[tuple[str, str], ...] = (
    ("NEW", "New"),
    ("OPEN", "Open"),
    ("IN_PROGRESS", "In Progress"),
    ("OPEN_DEAL", "Open Deal"),
    ("UNQUALIFIED", "Unqualified"),
    ("ATTEMPTED_TO_CONTACT", "Attempted to Contact"),
    ("CONNECTED", "Connected"),
    ("BAD_TIMING", "Bad Timing"),
)

DEFAULT_GROUPS: tuple[tuple[str, str], ...] = (
    ("contactinformation", "Contact information"),
    ("analyticsinformation", "Web analytics history"),
    ("sales_properties", "Sales properties"),
    ("emailinformation", "Email information"),
    ("conversioninformation", "Conversion information"),
)

# name, label, type, fieldType, group, read-only value
_STANDARD: tuple[tuple[str, str, str, str, str, bool], ...] = (
    ("email", "Email", "string", "text", "contactinformation", False),
    ("firstname", "First Name", "string", "text", "contactinformation", False),
    ("lastname", "Last Name", "string", "text", "contactinformation", False),
    ("jobtitle", "Job Title", "string", "text", "contactinformation", False),
    ("company", "Company Name", "string", "text", "contactinformation", False),
    ("phone", "Phone Number", "string", "phonenumber", "contactinformation", False),
    ("website", "Website URL", "string", "text", "contactinformation", False),
    ("city", "City", "string", "text", "contactinformation", False),
    ("state", "State/Region", "string", "text", "contactinformation", False),
    ("country", "Country/Region", "string", "text", "contactinformation", False),
    ("industry", "Industry", "string", "text", "contactinformation", False),
    ("numemployees", "Number of Employees", "string", "text", "contactinformation", False),
    ("annualrevenue", "Annual Revenue", "string", "text", "contactinformation", False),
    ("hs_email_domain", "Email Domain", "string", "text", "contactinformation", True),
    (
        "hs_additional_emails",
        "Additional email addresses",
        "enumeration",
        "checkbox",
        "contactinformation",
        True,
    ),
    ("hubspot_owner_id", "Contact owner", "enumeration", "select", "sales_properties", False),
    ("hs_object_id", "Record ID", "number", "number", "contactinformation", True),
    ("createdate", "Create Date", "datetime", "date", "contactinformation", True),
    ("lastmodifieddate", "Last Modified Date", "datetime", "date", "contactinformation", True),
    (
        "hs_merged_object_ids",
        "Merged Contact IDs",
        "enumeration",
        "checkbox",
        "contactinformation",
        True,
    ),
    (
        "hs_analytics_num_page_views",
        "Number of Pageviews",
        "number",
        "number",
        "analyticsinformation",
        True,
    ),
    (
        "hs_analytics_num_visits",
        "Number of Sessions",
        "number",
        "number",
        "analyticsinformation",
        True,
    ),
    ("hs_analytics_first_url", "First Page Seen", "string", "text", "analyticsinformation", True),
    ("hs_analytics_last_url", "Last Page Seen", "string", "text", "analyticsinformation", True),
    (
        "hs_analytics_last_visit_timestamp",
        "Time Last Seen",
        "datetime",
        "date",
        "analyticsinformation",
        True,
    ),
    ("address", "Street Address", "string", "text", "contactinformation", False),
    ("zip", "Postal Code", "string", "text", "contactinformation", False),
    ("mobilephone", "Mobile Phone Number", "string", "phonenumber", "contactinformation", False),
    (
        "hs_analytics_source_data_1",
        "Original Source Drill-Down 1",
        "string",
        "text",
        "analyticsinformation",
        True,
    ),
    (
        "hs_analytics_source_data_2",
        "Original Source Drill-Down 2",
        "string",
        "text",
        "analyticsinformation",
        True,
    ),
    (
        "hs_analytics_first_timestamp",
        "Time First Seen",
        "datetime",
        "date",
        "analyticsinformation",
        True,
    ),
    (
        "hs_analytics_first_visit_timestamp",
        "Time of First Session",
        "datetime",
        "date",
        "analyticsinformation",
        True,
    ),
    (
        "hs_email_optout",
        "Unsubscribed from all email",
        "bool",
        "booleancheckbox",
        "emailinformation",
        True,
    ),
    (
        "notes_last_contacted",
        "Last Contacted",
        "datetime",
        "date",
        "sales_properties",
        True,
    ),
    (
        "hs_analytics_source",
        "Original Source",
        "enumeration",
        "select",
        "analyticsinformation",
        True,
    ),
    (
        "hs_email_last_open_date",
        "Last marketing email open date",
        "datetime",
        "date",
        "emailinformation",
        True,
    ),
    (
        "hs_email_last_click_date",
        "Last marketing email click date",
        "datetime",
        "date",
        "emailinformation",
        True,
    ),
    (
        "num_conversion_events",
        "Number of Form Submissions",
        "number",
        "number",
        "conversioninformation",
        True,
    ),
    (
        "recent_conversion_date",
        "Recent Conversion Date",
        "datetime",
        "date",
        "conversioninformation",
        True,
    ),
)

_SOURCES: tuple[tuple[str, str], ...] = (
    ("ORGANIC_SEARCH", "Organic Search"),
    ("PAID_SEARCH", "Paid Search"),
    ("EMAIL_MARKETING", "Email Marketing"),
    ("SOCIAL_MEDIA", "Organic Social"),
    ("REFERRALS", "Referrals"),
    ("OTHER_CAMPAIGNS", "Other Campaigns"),
    ("DIRECT_TRAFFIC", "Direct Traffic"),
    ("OFFLINE", "Offline Sources"),
    ("PAID_SOCIAL", "Paid Social"),
)


def _options(pairs: tuple[tuple[str, str], ...]) -> list[dict[str, Any]]:
    return [
        {"label": label, "value": value, "displayOrder": i, "hidden": False, "description": ""}
        for i, (value, label) in enumerate(pairs)
    ]


def property_definition(
    name: str,
    label: str,
    type_: str,
    field_type: str,
    group: str,
    *,
    options: list[dict[str, Any]] | None = None,
    read_only: bool = False,
    hubspot_defined: bool = True,
    at: str,
    display_order: int = -1,
    description: str = "",
    has_unique_value: bool = False,
) -> dict[str, Any]:
    """One property in the `Property` shape of the properties API."""
    return {
        "name": name,
        "label": label,
        "type": type_,
        "fieldType": field_type,
        "groupName": group,
        "description": description,
        "options": options or [],
        "displayOrder": display_order,
        "calculated": False,
        "externalOptions": False,
        "hasUniqueValue": has_unique_value,
        "hidden": False,
        "hubspotDefined": hubspot_defined,
        "formField": not read_only,
        "archived": False,
        "createdAt": at,
        "updatedAt": at,
        "modificationMetadata": {
            "archivable": not hubspot_defined,
            "readOnlyDefinition": hubspot_defined,
            "readOnlyValue": read_only,
        },
        "dataSensitivity": "non_sensitive",
    }


def default_contact_properties(at: str) -> dict[str, dict[str, Any]]:
    """The portal's contact properties by name; `at` is the ISO timestamp they were created."""
    props: dict[str, dict[str, Any]] = {}
    for name, label, type_, field_type, group, read_only in _STANDARD:
        options = _options(_SOURCES) if name == "hs_analytics_source" else None
        if type_ == "bool":
            options = _options((("true", "Yes"), ("false", "No")))
        props[name] = property_definition(
            name,
            label,
            type_,
            field_type,
            group,
            options=options,
            read_only=read_only,
            at=at,
            has_unique_value=name == "email",
        )
    props["lifecyclestage"] = property_definition(
        "lifecyclestage",
        "Lifecycle Stage",
        "enumeration",
        "radio",
        "contactinformation",
        options=_options(LIFECYCLE_STAGES),
        at=at,
        description="The qualification of contacts to sales readiness. It can be set through "
        "imports, forms, workflows, and manually on a per contact basis.",
    )
    props["hs_lead_status"] = property_definition(
        "hs_lead_status",
        "Lead Status",
        "enumeration",
        "radio",
        "sales_properties",
        options=_options(LEAD_STATUSES),
        at=at,
        description="The contact's sales, prospecting or outreach status",
    )
    for value, label in LIFECYCLE_STAGES:
        name = f"hs_lifecyclestage_{value}_date"
        props[name] = property_definition(
            name,
            f"Became a {label} Date",
            "datetime",
            "date",
            "contactinformation",
            read_only=True,
            at=at,
        )
    return props
