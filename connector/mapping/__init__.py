"""The admin-edited mapping files the push reads: `fields.toml` (HubSpot property ->
Salesforce field, transforms, sync rules) and `routing.toml` (who owns a new Lead)."""

from __future__ import annotations

from connector.mapping.fields import FieldMap, MappedRecord, load_fields, parse_fields
from connector.mapping.routing import Assignment, Routing, load_routing, parse_routing

__all__ = [
    "Assignment",
    "FieldMap",
    "MappedRecord",
    "Routing",
    "load_fields",
    "load_routing",
    "parse_fields",
    "parse_routing",
]
