"""The admin-edited mapping files the push and the pull-back read: `fields.toml` (HubSpot
property -> Salesforce field, transforms, sync rules), `routing.toml` (who owns a new Lead) and
`sla.toml` (the follow-up SLA, breaches, the hs_lead_status map, recycling)."""

from __future__ import annotations

from connector.mapping.fields import FieldMap, MappedRecord, load_fields, parse_fields
from connector.mapping.routing import Assignment, Routing, load_routing, parse_routing
from connector.mapping.sla import Sla, SlaFile, load_sla, parse_sla

__all__ = [
    "Assignment",
    "FieldMap",
    "MappedRecord",
    "Routing",
    "Sla",
    "SlaFile",
    "load_fields",
    "load_routing",
    "load_sla",
    "parse_fields",
    "parse_routing",
    "parse_sla",
]
