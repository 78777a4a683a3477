"""Shared pieces of the mapping tests: the shipped files and a fake Salesforce describe."""

from __future__ import annotations

from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SHIPPED_FIELDS = ROOT / "mappings" / "fields.toml"
SHIPPED_ROUTING = ROOT / "mappings" / "routing.toml"


def sf_field(name: str, type_: str = "string", length: int = 0, *, nillable: bool = True,
             createable: bool = True, updateable: bool = True, defaulted: bool = False,
             picklist: tuple[str, ...] = (), restricted: bool = False) -> dict[str, Any]:
    """One describe `fields` entry, as Salesforce's REST describe returns it."""
    return {
        "name": name,
        "type": type_,
        "length": length,
        "nillable": nillable,
        "createable": createable,
        "updateable": updateable,
        "defaultedOnCreate": defaulted,
        "picklistValues": [{"value": v, "label": v, "active": True, "defaultValue": False}
                           for v in picklist],
        "restrictedPicklist": restricted,
    }


def fake_lead_describe() -> dict[str, dict[str, Any]]:
    """A Lead describe with the fields the tests map (field name -> describe entry)."""
    fields = [
        sf_field("Id", "id", 18, nillable=False, createable=False, updateable=False,
                 defaulted=True),
        sf_field("OwnerId", "reference", 18, nillable=False, defaulted=True),
        sf_field("FirstName", "string", 40),
        sf_field("LastName", "string", 80, nillable=False),
        sf_field("Company", "string", 255, nillable=False),
        sf_field("Title", "string", 128),
        sf_field("Email", "email", 80),
        sf_field("Phone", "phone", 40),
        sf_field("Website", "url", 255),
        sf_field("City", "string", 40),
        sf_field("State", "string", 80),
        sf_field("PostalCode", "string", 20),
        sf_field("Country", "string", 80),
        sf_field("Description", "textarea", 32000),
        sf_field("LeadSource", "picklist", 255,
                 picklist=("Web", "Partner Referral", "Other", "Webinar")),
        sf_field("Industry", "picklist", 255,
                 picklist=("Technology", "Finance", "Healthcare", "Manufacturing", "Retail",
                           "Education", "Not For Profit", "Hospitality", "Construction",
                           "Media", "Banking", "Insurance", "Biotechnology",
                           "Telecommunications", "Government", "Other")),
        sf_field("Rating", "picklist", 255, picklist=("Hot", "Warm", "Cold"), restricted=True),
        sf_field("NumberOfEmployees", "int"),
        sf_field("AnnualRevenue", "currency"),
        sf_field("HasOptedOutOfEmail", "boolean", nillable=False, defaulted=True),
        sf_field("Last_Form_Date__c", "datetime"),
        sf_field("First_Seen__c", "date"),
        sf_field("Name", "string", 121, createable=False, updateable=False),
        sf_field("IsConverted", "boolean", nillable=False, updateable=False, defaulted=True),
        sf_field("Interests__c", "multipicklist", 4099, picklist=("CRM", "Scoring", "Routing"),
                 restricted=True),
    ]
    return {f["name"]: f for f in fields}
