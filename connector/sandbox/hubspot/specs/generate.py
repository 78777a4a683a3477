"""Write `request_schemas.json`: the JSON request-body schemas of HubSpot's official OpenAPI
specs, as JSON Schema (draft 4) the sandbox validates request bodies with.

    python connector/sandbox/hubspot/specs/generate.py [SPEC_DIR]

SPEC_DIR defaults to the copies of the official specs kept for the tests,
tests/fixtures/hubspot-openapi/ (see README.md in this folder for where they come from). Run it
again whenever those copies change; tests/sandbox/test_hubspot_request_schemas.py fails while
the vendored file differs from what this script writes.

OpenAPI 3.0 schema objects become draft-4 JSON Schema: `#/components/schemas/X` refs point to
`#/definitions/X` (only the definitions some request body reaches are kept), `nullable` adds
"null" to the type, and annotations (description, example, format, default, x-*) are dropped.
Each definition keeps its component name as `title`, which the sandbox's error messages name.
`OVERLAYS` reconcile a spec schema with HubSpot's own guide where the two disagree; each says
which guide and why.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DEFAULT_SOURCE = HERE.parents[3] / "tests" / "fixtures" / "hubspot-openapi"
OUTPUT = HERE / "request_schemas.json"
COMPONENT_PREFIX = "#/components/schemas/"
BODY_METHODS = ("post", "put", "patch", "delete")
# draft-4 keywords whose value is a schema, a list of schemas or a map of schemas
SCHEMA_VALUED = ("items", "additionalProperties", "not")
SCHEMA_LISTS = ("oneOf", "anyOf", "allOf")
KEPT = (
    "type", "enum", "required", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
    "minLength", "maxLength", "pattern", "minItems", "maxItems", "uniqueItems", "multipleOf",
    "minProperties", "maxProperties",
)

CONTACT_SPECS = ("crm-contacts-v3.json", "crm-contacts-2026-03.json")
SEARCH_GUIDE = "https://developers.hubspot.com/docs/guides/api/crm/search"
CONTACTS_GUIDE = "https://developers.hubspot.com/docs/api-reference/crm-contacts-v3/guide"
SORT_OBJECT = {
    "type": "object",
    "required": ["propertyName"],
    "properties": {
        "propertyName": {"type": "string"},
        "direction": {"type": "string", "enum": ["ASCENDING", "DESCENDING"]},
    },
}
# (spec files, component, key path inside the converted component, new value or None to
# remove the key, why)
OVERLAYS: tuple[tuple[tuple[str, ...], str, tuple[str, ...], Any, str], ...] = (
    (
        CONTACT_SPECS,
        "PublicObjectSearchRequest",
        ("required",),
        None,
        (
            f"the spec requires all five fields; the search guide ({SEARCH_GUIDE}) says a search "
            "may send only an empty object ({}) and gives examples with filterGroups alone"
        ),
    ),
    (
        CONTACT_SPECS,
        "PublicObjectSearchRequest",
        ("properties", "sorts"),
        {"type": "array", "items": {"anyOf": [{"type": "string"}, SORT_OBJECT]}},
        (
            f"the spec types sort items as strings; the search guide ({SEARCH_GUIDE}) sorts with "
            'objects {"propertyName", "direction": "ASCENDING" | "DESCENDING"}'
        ),
    ),
    (
        CONTACT_SPECS,
        "SimplePublicObjectInputForCreate",
        ("required",),
        ["properties"],
        (
            f"the spec requires associations; the contacts guide ({CONTACTS_GUIDE}) creates a "
            'contact with {"properties": {...}} alone ("you can also add an associations object")'
        ),
    ),
    (
        CONTACT_SPECS,
        "SimplePublicObjectBatchInputForCreate",
        ("required",),
        ["properties"],
        (
            f"as for a single create: the contacts guide ({CONTACTS_GUIDE}) makes associations "
            "optional in batch creates too"
        ),
    ),
)


def convert(node: Any) -> Any:
    """One OpenAPI 3.0 schema object as a draft-4 JSON Schema (validation keywords only)."""
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str):
        # OpenAPI 3.0 ignores a $ref's siblings, as draft 4 does
        return {"$ref": "#/definitions/" + ref.removeprefix(COMPONENT_PREFIX)}
    out: dict[str, Any] = {key: node[key] for key in KEPT if key in node}
    if isinstance(node.get("properties"), dict):
        out["properties"] = {name: convert(sub) for name, sub in node["properties"].items()}
    for key in SCHEMA_VALUED:
        if isinstance(node.get(key), dict):
            out[key] = convert(node[key])
    for key in SCHEMA_LISTS:
        if isinstance(node.get(key), list):
            out[key] = [convert(sub) for sub in node[key]]
    if node.get("nullable") is True:
        if "type" in out:
            out["type"] = [out["type"], "null"]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
    return out


def _refs(node: Any) -> set[str]:
    """The component names a converted schema refers to directly."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        found = {ref.rsplit("/", 1)[-1]} if isinstance(ref, str) else set()
        return found.union(*(_refs(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_refs(v) for v in node))
    return set()


def _apply_overlays(spec_name: str, components: dict[str, Any]) -> None:
    for specs, component, keys, value, _why in OVERLAYS:
        if spec_name in specs:
            node = components[component]
            for key in keys[:-1]:
                node = node[key]
            if value is None:
                node.pop(keys[-1], None)
            else:
                node[keys[-1]] = value


def extract(spec_name: str, spec: dict[str, Any]) -> dict[str, Any]:
    """`{"operations": {"POST /path": schema}, "definitions": {...}}` for one spec document."""
    components = {
        name: {"title": name, **convert(schema)}
        for name, schema in (spec.get("components") or {}).get("schemas", {}).items()
    }
    _apply_overlays(spec_name, components)
    operations: dict[str, Any] = {}
    for path, item in sorted(spec.get("paths", {}).items()):
        for method in BODY_METHODS:
            operation = item.get(method)
            if not isinstance(operation, dict):
                continue
            content = (operation.get("requestBody") or {}).get("content") or {}
            schema = (content.get("application/json") or {}).get("schema")
            if schema is not None:
                operations[f"{method.upper()} {path}"] = convert(schema)
    reached: set[str] = set()
    todo = _refs(operations)
    while todo:
        name = todo.pop()
        if name not in reached:
            reached.add(name)
            todo |= _refs(components[name])
    return {
        "operations": operations,
        "definitions": {name: components[name] for name in sorted(reached)},
    }


def generate(source: Path) -> dict[str, Any]:
    """The whole vendored document, from every spec file in `source`."""
    specs = {}
    for path in sorted(source.glob("*.json")):
        extracted = extract(path.name, json.loads(path.read_text(encoding="utf-8")))
        if extracted["operations"]:
            specs[path.name] = extracted
    return {
        "generatedBy": "connector/sandbox/hubspot/specs/generate.py",
        "overlays": [
            {"specs": list(specs), "schema": ".".join((component, *keys)), "why": why}
            for specs, component, keys, _value, why in OVERLAYS
        ],
        "specs": specs,
    }


def render(document: dict[str, Any]) -> str:
    """The file's text (stable, so a regeneration shows as no diff)."""
    return json.dumps(document, indent=1, sort_keys=True) + "\n"


def main(argv: list[str]) -> int:
    """Write OUTPUT from the spec folder given (default: the test fixtures' copies)."""
    source = Path(argv[1]) if len(argv) > 1 else DEFAULT_SOURCE
    if not source.is_dir():
        print(f"no spec folder at {source}; pass the folder of HubSpot's OpenAPI JSON files")
        return 2
    OUTPUT.write_text(render(generate(source)), encoding="utf-8")
    print(f"wrote {OUTPUT} from {source}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
