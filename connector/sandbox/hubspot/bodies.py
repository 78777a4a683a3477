"""Request bodies checked against HubSpot's official OpenAPI request schemas.

The schemas are vendored as package data in `specs/request_schemas.json` (written by
`specs/generate.py` from the official specs). A body the schema refuses gets HubSpot's 400
VALIDATION_ERROR, with one `errors` entry (the spec's `ErrorDetail`) per problem: `in` names
the field (`options[0].hidden`), `code` the kind of problem, and `message` is phrased after the
JSON-binding errors HubSpot answers with ("Cannot build OptionInput, some of required
attributes are not set [hidden]"). Validators are compiled once per operation and cached.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft4Validator
from jsonschema.exceptions import ValidationError

from .errors import validation

__all__ = ["check_body", "request_validator"]

SCHEMAS_FILE = "request_schemas.json"
CODE_REQUIRED = "REQUIRED_FIELD"
CODE_TYPE = "INVALID_TYPE"
CODE_ENUM = "INVALID_ENUM_VALUE"
CODE_SHAPE = "INVALID_VALUE"
MAX_DETAILS = 100  # a batch of 100 inputs each missing one field still lists them all

_KIND = {
    dict: "Object value",
    list: "Array value",
    str: "String value",
    bool: "Boolean value",
    int: "Number value",
    float: "Number value",
    type(None): "null value",
}


@cache
def _specs() -> dict[str, Any]:
    text = resources.files(__package__).joinpath("specs", SCHEMAS_FILE).read_text("utf-8")
    specs: dict[str, Any] = json.loads(text)["specs"]
    return specs


@cache
def request_validator(method: str, path: str) -> Draft4Validator | None:
    """The compiled validator of the request body of `method path` (a spec path template,
    e.g. `/crm/v3/properties/{objectType}`), or None when no official spec describes one."""
    key = f"{method.upper()} {path}"
    for spec in _specs().values():
        schema = spec["operations"].get(key)
        if schema is not None:
            return Draft4Validator({**schema, "definitions": spec["definitions"]})
    return None


def check_body(validator: Draft4Validator, body: Any) -> None:
    """Raise HubSpot's 400 VALIDATION_ERROR when `body` does not fit the operation's schema."""
    details = _details(validator.iter_errors(body))
    if not details:
        return
    first = details[0]
    more = f" ({len(details) - 1} more in errors)" if len(details) > 1 else ""
    raise validation(f"Invalid input JSON at {first['in']}: {first['message']}{more}",
                     errors=details)


def _details(errors: Iterable[ValidationError]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    for error in errors:
        for detail in _describe(error):
            key = (detail["in"], detail["code"])
            if key not in seen:
                seen.add(key)
                out.append(detail)
        if len(out) >= MAX_DETAILS:
            break
    return out[:MAX_DETAILS]


def _describe(error: ValidationError) -> list[dict[str, Any]]:
    """ErrorDetail entries for one jsonschema error. Values a client sent are not echoed
    (they may be a person's data), except enumeration values, which are vocabulary."""
    where = _path(error.absolute_path)
    schema = error.schema if isinstance(error.schema, dict) else {}
    name = schema.get("title", "the request body")
    if error.validator == "required" and isinstance(error.instance, dict):
        missing = [f for f in error.validator_value if f not in error.instance]
        return [
            _detail(
                _join(where, field),
                CODE_REQUIRED,
                f"Cannot build {name}, some of required attributes are not set [{field}]",
            )
            for field in missing
        ]
    if error.validator == "type":
        expected = error.validator_value
        wanted = " or ".join(expected) if isinstance(expected, list) else str(expected)
        kind = _KIND.get(type(error.instance), "value")
        message = f"Cannot deserialize value of type `{wanted}` from {kind}"
        return [_detail(where, CODE_TYPE, message)]
    if error.validator == "enum":
        allowed = ", ".join(str(v) for v in error.validator_value)
        sent = json.dumps(error.instance) if isinstance(error.instance, str) else "value"
        return [
            _detail(
                where,
                CODE_ENUM,
                f"Cannot deserialize value from String {sent}: not one of the values accepted "
                f"for Enum class: [{allowed}]",
            )
        ]
    if error.validator in ("oneOf", "anyOf"):
        return [_detail(where, CODE_SHAPE, "The value matches none of the accepted shapes")]
    return [_detail(where, CODE_SHAPE, f"The value breaks the `{error.validator}` rule")]


def _detail(where: str, code: str, message: str) -> dict[str, Any]:
    return {"message": message, "in": where, "code": code}


def _path(parts: Iterable[str | int]) -> str:
    text = ""
    for part in parts:
        text = f"{text}[{part}]" if isinstance(part, int) else _join(text, part)
    return text or "body"


def _join(where: str, field: str) -> str:
    return field if where in ("", "body") else f"{where}.{field}"
