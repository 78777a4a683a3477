"""`mappings/fields.toml`: which HubSpot property fills which Salesforce field, how the value is
transformed on the way, and which system wins when both hold a value (the sync rule).

    field_map = load_fields(Path("mappings/fields.toml"))     # ConfigError lists every problem
    record = field_map.lead_values(contact.properties, email=..., hubspot_id=...,
                                   describe=client.fields("Lead"))
    record.values      # {"LastName": "Doe", "Company": "Acme", "LeadSource": "Web", ...}
    record.fixed       # ["truncated Title from 300 to 128 characters", ...]
    record.changes(current_salesforce_values, hubspot_modified=..., salesforce_modified=...)

Transforms run in one fixed order: join -> trim -> replace -> case -> matches -> date -> map ->
default -> (with describe) type and picklist -> truncate. `trim` also drops control
characters. With describe, a value the field's type cannot take (text in a number, an
unparseable date) is left out and recorded in `fixed`, never sent: Salesforce would refuse
the whole call of 200 over it. Required fields (LastName and Company on a Lead) always get a
value. Everything here is pure: no I/O besides reading the file.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from connector.errors import ConfigError, ConfigProblem
from connector.mapping._toml import (
    Check,
    KeyLines,
    Loc,
    Strict,
    display,
    parse,
    read_text,
    suggest,
)

__all__ = [
    "DATE_INPUTS",
    "SYNC_RULES",
    "TRANSFORMS",
    "FieldMap",
    "FieldRule",
    "FieldsFile",
    "MappedRecord",
    "RequiredSection",
    "load_fields",
    "parse_fields",
    "problems_of",
]

# HubSpot's sync-rule vocabulary plus ours (see the shipped fields.toml for their meaning).
SYNC_RULES = ("hubspot", "salesforce", "salesforce_unless_blank", "two_way", "none")
DATE_INPUTS = ("epoch_ms", "iso")
TRANSFORMS = ("trim", "case", "truncate", "map", "unmapped", "default", "date", "date_as",
              "join", "replace", "matches")
ENTRY_KEYS = ("hubspot", "salesforce", "sync", *TRANSFORMS)
REQUIRED_SOURCES = ("email_local_part", "email_domain", "placeholder")
# Fields Handshake sets itself: a mapping must not fight over them.
RESERVED = {"ownerid": "the owner comes from routing.toml", "id": "Salesforce sets the id"}
# Lead fields Salesforce requires on create (DOMAIN.md: LastName and Company).
LEAD_REQUIRED = ("LastName", "Company")

_TEXT_TYPES = {"string", "textarea", "email", "phone", "url", "encryptedstring", "combobox"}
_CUT_BY_DEFAULT = {"string", "textarea", "encryptedstring"}  # cutting an email or URL breaks it
_NUMBER_TYPES = {"int", "double", "currency", "percent", "long"}
_PICKLIST_TYPES = {"picklist", "multipicklist"}
_DATE_TYPES = {"date", "datetime"}
_NOT_MAPPABLE = {"id", "reference", "base64", "address", "location"}
_TRUE = {"true", "yes", "1", "y", "on"}
_FALSE = {"false", "no", "0", "n", "off"}
SF_NAME = r"^[A-Za-z][A-Za-z0-9_]*$"
HUBSPOT_NAME = r"^[a-z0-9_]+$"

Scalar = str | int | float | bool


class Replace(Strict):
    """`replace = { pattern = '\\s+', with = ' ' }`: a regular-expression substitution."""

    pattern: str
    with_: str = Field(default="", alias="with")

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        return _check_regex(value)


def _check_regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"invalid regular expression {value!r}: {exc}") from None
    return value


class FieldRule(Strict):
    """One `[[fields]]` entry: HubSpot property (or several, joined) -> Salesforce field."""

    salesforce: str = Field(pattern=SF_NAME)
    hubspot: list[str] = Field(default_factory=list)
    sync: Literal["hubspot", "salesforce", "salesforce_unless_blank", "two_way", "none"] = \
        "hubspot"
    trim: bool = True
    case: Literal["lower", "upper", "title"] | None = None
    truncate: bool | int | None = None
    map: dict[str, Scalar] | None = None
    unmapped: Literal["keep", "drop"] = "keep"
    default: Scalar | None = None
    date: Literal["epoch_ms", "iso"] | None = None
    date_as: Literal["date", "datetime"] | None = None
    join: str | None = None
    replace: Replace | None = None
    matches: str | None = None

    @field_validator("hubspot", mode="before")
    @classmethod
    def _listify(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("hubspot")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        bad = [v for v in value if not re.match(HUBSPOT_NAME, v)]
        if bad:
            raise ValueError(f"{', '.join(map(repr, bad))} is not a HubSpot internal property "
                             f"name (lower-case letters, digits, underscores)")
        return value

    @field_validator("matches")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        return None if value is None else _check_regex(value)

    @field_validator("truncate")
    @classmethod
    def _positive(cls, value: bool | int | None) -> bool | int | None:
        if isinstance(value, int) and not isinstance(value, bool) and value <= 0:
            raise ValueError("truncate must be a positive number of characters, or true")
        return value

    @model_validator(mode="after")
    def _shape(self) -> FieldRule:
        if not self.hubspot and self.default is None:
            raise ValueError("give `hubspot` (the property to read) or a constant `default`")
        if self.join is not None and len(self.hubspot) < 2:
            raise ValueError("`join` needs several HubSpot properties in `hubspot = [...]`")
        if self.map is not None and not self.map:
            raise ValueError("`map` is empty")
        if self.unmapped == "drop" and self.map is None:
            raise ValueError("`unmapped` needs a `map`")
        if self.date_as is not None and self.date is None:
            raise ValueError("`date_as` needs `date` (the HubSpot format: epoch_ms or iso)")
        if self.date is not None and self.map is not None:
            raise ValueError("a date is not mapped through a value map: keep `date` or `map`")
        return self

    @property
    def cut_to(self) -> int | None:
        """The explicit character limit, when `truncate` is a number."""
        t = self.truncate
        return t if isinstance(t, int) and not isinstance(t, bool) else None


def _default_stand_ins() -> dict[str, Literal["email_local_part", "email_domain", "placeholder"]]:
    return {"LastName": "email_local_part", "Company": "email_domain"}


class RequiredSection(Strict):
    """How required fields get a value when the mapping leaves them blank."""

    placeholder: str = Field(default="[not provided]", min_length=1)
    # Company from the email domain is wrong for free-mail addresses: the placeholder then.
    free_mail_domains: list[str] = Field(default_factory=lambda: [
        "gmail.com", "googlemail.com", "yahoo.com", "outlook.com", "hotmail.com", "live.com",
        "icloud.com", "aol.com", "proton.me", "protonmail.com", "gmx.de", "gmx.net",
    ])
    fields: dict[str, Literal["email_local_part", "email_domain", "placeholder"]] = Field(
        default_factory=_default_stand_ins)


class FieldsFile(Strict):
    """The whole fields.toml."""

    sobject: str = Field(default="Lead", pattern=SF_NAME)
    fields: list[FieldRule] = Field(min_length=1)
    required: RequiredSection = RequiredSection()


# --- the loaded map -------------------------------------------------------------------------


@dataclass(frozen=True)
class MappedRecord:
    """A contact as Salesforce field values, with what the transforms had to fix."""

    values: dict[str, Any]
    fixed: list[str]
    rules: dict[str, str]
    # Fields that hold only a required-field stand-in ("[not provided]", the email domain).
    placeholders: frozenset[str] = field(default_factory=frozenset)

    def changes(
        self,
        current: Mapping[str, Any] | None,
        *,
        hubspot_modified: datetime | None = None,
        salesforce_modified: datetime | None = None,
    ) -> dict[str, Any]:
        """The values to write given the record's `current` Salesforce values (None: a new
        record), applying each field's sync rule; only fields whose value differs are returned.

        `two_way` writes when HubSpot changed after Salesforce (record modification times).
        A blank HubSpot value never clears Salesforce, and a stand-in never replaces a value.
        """
        if current is None:
            return {k: v for k, v in self.values.items() if self.rules.get(k) != "none"}
        now = {k.lower(): v for k, v in current.items()}
        out: dict[str, Any] = {}
        for name, value in self.values.items():
            rule = self.rules.get(name, "hubspot")
            have = now.get(name.lower())
            blank = _blank(have)
            if rule == "none" or (name in self.placeholders and not blank):
                continue
            if rule == "salesforce" or (rule == "salesforce_unless_blank" and not blank):
                continue
            if rule == "two_way" and not blank and salesforce_modified is not None and (
                hubspot_modified is None or hubspot_modified <= salesforce_modified
            ):
                continue
            if not _same(value, have):
                out[name] = value
        return out


class FieldMap:
    """The validated fields.toml and the pure functions on it."""

    def __init__(self, spec: FieldsFile, lines: KeyLines, file: str) -> None:
        self.spec = spec
        self.lines = lines
        self.file = file
        self.sobject = spec.sobject
        # the describe last mapped against, with its fields by lower-case name and each rule's
        # field and picklist values: the push maps every MQL of a run against one describe
        self._described: tuple[Mapping[str, Any], dict[str, Any],
                               list[tuple[Any, _Choices | None]]] | None = None

    @property
    def rules(self) -> list[FieldRule]:
        """The `[[fields]]` entries in file order."""
        return list(self.spec.fields)

    def hubspot_properties(self) -> list[str]:
        """Every HubSpot property the map reads, for the pull and for `--live` checks."""
        seen: dict[str, None] = {}
        for rule in self.spec.fields:
            for name in rule.hubspot:
                seen.setdefault(name, None)
        return list(seen)

    def sources(self) -> dict[str, list[str]]:
        """Salesforce field -> the HubSpot properties its entry reads (a Lead's Email: the
        contact's email, mapped or not), for reasons that say where a refused value came
        from."""
        out = {r.salesforce: list(r.hubspot) for r in self.spec.fields if r.hubspot}
        if self.sobject.lower() == "lead" and "email" not in {k.lower() for k in out}:
            out["Email"] = ["email"]
        return out

    def salesforce_fields(self) -> list[str]:
        """Every Salesforce field the map may write, required ones included."""
        names = [r.salesforce for r in self.spec.fields]
        lower = {n.lower() for n in names}
        return names + [n for n in self.spec.required.fields if n.lower() not in lower]

    def lead_values(
        self,
        properties: Mapping[str, Any],
        *,
        email: str,
        hubspot_id: str,
        describe: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> MappedRecord:
        """Map one contact's HubSpot properties to Salesforce field values.

        `email` and `hubspot_id` stand in for the `email` and `hs_object_id` properties when
        those are absent. With `describe` (Salesforce field name -> describe field), values are
        coerced to the field's type, cut to its length and checked against restricted picklists.
        """
        props = dict(properties)
        if _blank(props.get("email")):
            props["email"] = email
        if _blank(props.get("hs_object_id")):
            props["hs_object_id"] = hubspot_id
        fields_by_lower, metas = self._fields_of(describe)
        values: dict[str, Any] = {}
        fixed: list[str] = []
        rules: dict[str, str] = {}
        for rule, (meta, choices) in zip(self.spec.fields, metas, strict=True):
            rules[rule.salesforce] = rule.sync
            if rule.sync == "none":
                continue
            value = _apply(rule, props, meta, fixed, choices)
            if not _blank(value):
                values[rule.salesforce] = value
        placeholders: set[str] = set()
        lowered = {k.lower() for k in values}  # the fields filled so far, any case
        for name, source in self.spec.required.fields.items():
            if name.lower() in lowered:
                continue
            value, why = self._stand_in(source, email)
            meta = fields_by_lower.get(name.lower())
            limit = _length(meta)
            if limit and len(value) > limit:
                value = value[:limit]
            values[name] = value
            lowered.add(name.lower())
            if rules.get(name, "none") == "none":
                rules[name] = "salesforce"  # a stand-in is written when the record is created
            placeholders.add(name)
            fixed.append(f"defaulted {name} to {value!r} ({why})")
        # A Lead is matched by its email: it carries the contact's address unless told not to.
        email_rule = next((r for r in self.spec.fields if r.salesforce.lower() == "email"), None)
        wanted = email_rule is None or email_rule.sync != "none"
        if self.sobject.lower() == "lead" and wanted and email and "email" not in lowered:
            values[email_rule.salesforce if email_rule else "Email"] = email
            rules.setdefault("Email", "hubspot")
        return MappedRecord(values, fixed, rules, frozenset(placeholders))

    def _fields_of(self, describe: Mapping[str, Mapping[str, Any]] | None,
                   ) -> tuple[dict[str, Any], list[tuple[Any, _Choices | None]]]:
        """The describe's fields by lower-case name, and each rule's field (None without a
        describe) with its picklist's values, worked out once a describe."""
        if describe is None:
            return {}, [(None, None)] * len(self.spec.fields)
        known = self._described
        if known is None or known[0] is not describe:
            by_lower = {k.lower(): v for k, v in describe.items()}
            metas = [by_lower.get(r.salesforce.lower()) for r in self.spec.fields]
            known = self._described = (describe, by_lower, [
                (meta, _choices(meta) if meta is not None
                 and meta.get("type") in _PICKLIST_TYPES else None) for meta in metas])
        return known[1], known[2]

    def _stand_in(self, source: str, email: str) -> tuple[str, str]:
        required = self.spec.required
        local, _, domain = (email or "").strip().partition("@")
        domain = domain.lower()
        if source == "email_local_part" and local:
            return local, "the mapping left it blank: taken from the email address"
        if source == "email_domain" and domain and domain not in required.free_mail_domains:
            return domain, "the mapping left it blank: taken from the email domain"
        return required.placeholder, "the mapping left it blank and the email gives no value"

    def live_problems(
        self,
        sf_fields: Mapping[str, Mapping[str, Any]],
        hubspot_properties: set[str],
        file: str,
    ) -> list[ConfigProblem]:
        """What Salesforce's describe and HubSpot's property list say is wrong with the map:
        unknown or read-only fields, types that do not fit, lengths, picklist values of a
        `map`, unknown HubSpot properties and unmapped required fields."""
        by_lower = {k.lower(): v for k, v in sf_fields.items()}
        found: list[tuple[Loc, str, str]] = []
        for i, rule in enumerate(self.spec.fields):
            found += _hubspot_problems(i, rule, hubspot_properties)
            meta = by_lower.get(rule.salesforce.lower())
            if meta is None:
                found.append(((*_at(i), "salesforce"),
                              f"{self.sobject} has no field {rule.salesforce!r}",
                              (f"use a field API name from Setup > Object Manager > "
                              f"{self.sobject} > Fields{_close(rule.salesforce, sf_fields)}")))
                continue
            found += _field_problems(i, rule, meta)
        mapped = {r.salesforce.lower() for r in self.spec.fields} | {
            n.lower() for n in self.spec.required.fields}
        for name in self.spec.required.fields:
            if name.lower() not in by_lower:
                found.append((("required", "fields", name), (f"{self.sobject} has no field "
                              f"{name!r}"), "name required fields by their API name"))
        for name, meta in sf_fields.items():
            needed = (not meta.get("nillable", True) and meta.get("createable", False)
                      and not meta.get("defaultedOnCreate", False))
            if needed and name.lower() not in mapped:
                found.append((("required",), (f"{self.sobject}.{name} is required by Salesforce "
                              f"and nothing fills it"),
                              (f"add a [[fields]] entry for {name}, or list it in "
                              f"[required.fields]")))
        # A problem of a section the file leaves out is shown at the `sobject` line.
        return [ConfigProblem(file, display(loc), msg, how,
                              self.lines.line_of(loc) or self.lines.line_of(("sobject",)))
                for loc, msg, how in found]


# --- transforms -------------------------------------------------------------------------


def _apply(rule: FieldRule, props: Mapping[str, Any], meta: Mapping[str, Any] | None,
           fixed: list[str], choices: _Choices | None = None) -> Any:
    """One rule's value for one contact, every transform applied in order (`choices`: the
    values of the field's picklist, when it is one)."""
    name = rule.salesforce
    parts = [_text(props.get(h)) for h in rule.hubspot]
    if len(parts) > 1:
        sep = " " if rule.join is None else rule.join
        value: Any = sep.join(_trim(p) if rule.trim else p for p in parts if _trim(p))
    else:
        value = parts[0] if parts else ""
    if rule.trim:
        value = _trim(value)
    if value and rule.replace is not None:
        value = _regex(rule.replace.pattern).sub(rule.replace.with_, value)
    if value and rule.case is not None:
        value = _CASES[rule.case](value)
    if value and rule.matches is not None and not re.search(rule.matches, value):
        fixed.append(f"dropped {name} {_short(value)}: it does not match {rule.matches!r}")
        value = ""
    if value and rule.date is not None:
        value = _date(value, rule, meta, fixed)
    if not _blank(value) and rule.map is not None:
        value = _mapped(value, rule, fixed)
    if _blank(value) and rule.default is not None:
        value = rule.default
    if meta is not None and not _blank(value):
        value = _fit(value, rule, meta, fixed, choices)
    if isinstance(value, str) and value:
        value = _cut(value, rule, meta, fixed)
    return value


_CASES = {"lower": str.lower, "upper": str.upper, "title": str.title}


@functools.lru_cache(maxsize=64)
def _regex(pattern: str) -> re.Pattern[str]:
    """A `replace` pattern compiled once (checked when the file was loaded)."""
    return re.compile(pattern)


# Control characters other than tab and line breaks: invisible in Salesforce, they break
# exports, reports and matching (a NUL, a bell, an escape pasted from another tool).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# What `str.strip` leaves at the ends: zero-width spaces and joiners, the byte-order mark.
_INVISIBLE_ENDS = "\u200b\u200c\u200d\u2060\ufeff"


def _trim(value: str) -> str:
    """Drop control characters and strip spaces (and invisible characters) at both ends."""
    value = _CONTROL.sub("", value)
    previous = None
    while previous != value:
        previous = value
        value = value.strip().strip(_INVISIBLE_ENDS)
    return value


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ";".join(_text(v) for v in value)
    return str(value)


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _short(value: Any) -> str:
    text = str(value)
    return repr(text if len(text) <= 40 else text[:37] + "...")


def _date(value: str, rule: FieldRule, meta: Mapping[str, Any] | None,
          fixed: list[str]) -> str:
    """HubSpot epoch milliseconds or ISO-8601 -> Salesforce `YYYY-MM-DD` or
    `YYYY-MM-DDTHH:MM:SS.mmmZ`, by the field's type when described."""
    try:
        if rule.date == "epoch_ms":
            when = datetime.fromtimestamp(float(value) / 1000, tz=UTC)
        else:
            when = datetime.fromisoformat(value)
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
    except (ValueError, OverflowError, OSError):
        fixed.append(f"dropped {rule.salesforce} {_short(value)}: not a {rule.date} date")
        return ""
    kind: str = rule.date_as or "datetime"
    if meta is not None and meta.get("type") in _DATE_TYPES:
        kind = str(meta["type"])
    when = when.astimezone(UTC)
    if kind == "date":
        return when.date().isoformat()
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def _mapped(value: Any, rule: FieldRule, fixed: list[str]) -> Any:
    assert rule.map is not None
    key = _text(value)
    if key in rule.map:
        return rule.map[key]
    folded = {k.casefold(): v for k, v in rule.map.items()}
    if key.casefold() in folded:
        return folded[key.casefold()]
    if rule.unmapped == "drop":
        fixed.append(f"dropped {rule.salesforce} {_short(key)}: not in its value map")
        return ""
    return value


def _fit(value: Any, rule: FieldRule, meta: Mapping[str, Any], fixed: list[str],
         choices: _Choices | None = None) -> Any:
    """Coerce to the described type; keep restricted picklists to their values."""
    kind = str(meta.get("type") or "")
    name = rule.salesforce
    if kind in _NUMBER_TYPES and not isinstance(value, bool):
        if isinstance(value, int | float):
            return int(value) if kind in ("int", "long") else value
        text = _text(value).replace(",", "").strip()
        try:
            number = float(text)
        except ValueError:
            fixed.append(f"dropped {name} {_short(value)}: not a number")
            return None
        return int(number) if kind in ("int", "long") else number
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        text = _text(value).strip().lower()
        if text in _TRUE | _FALSE:
            return text in _TRUE
        fixed.append(f"dropped {name} {_short(value)}: not true or false")
        return None
    if kind in _PICKLIST_TYPES:
        return _picklist(_text(value), rule, meta, fixed, choices)
    if kind in _DATE_TYPES and rule.date is None:
        return _as_date(_text(value), kind, name, fixed)
    return value


def _as_date(value: str, kind: str, name: str, fixed: list[str]) -> str | None:
    """A value for a date or datetime field whose entry has no `date` transform: an ISO date
    or datetime, or epoch milliseconds, in Salesforce's format; anything else is dropped
    (Salesforce would refuse the whole call of 200 over it: JSON_PARSER_ERROR)."""
    text = value.strip()
    when: datetime | None = None
    if re.fullmatch(r"\d{11,14}", text):
        when = datetime.fromtimestamp(int(text) / 1000, tz=UTC)
    else:
        try:
            when = datetime.fromisoformat(text)
        except ValueError:
            when = None
    if when is None:
        fixed.append(f"dropped {name} {_short(value)}: not a date (write it as YYYY-MM-DD, or "
                     f"add date = \"iso\" or \"epoch_ms\" to the entry)")
        return None
    if kind == "date":
        return when.date().isoformat()  # the day as written, in its own offset
    when = (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def _picklist_values(meta: Mapping[str, Any]) -> list[str]:
    return [str(p.get("value")) for p in meta.get("picklistValues") or []
            if p.get("active", True)]


# A picklist's active values, and each by its case-folded form
_Choices = tuple[list[str], dict[str, str]]


def _choices(meta: Mapping[str, Any]) -> _Choices:
    allowed = _picklist_values(meta)
    return allowed, {a.casefold(): a for a in allowed}


def _picklist(value: str, rule: FieldRule, meta: Mapping[str, Any], fixed: list[str],
              choices: _Choices | None = None) -> Any:
    allowed, folded = choices or _choices(meta)
    name = rule.salesforce
    multi = meta.get("type") == "multipicklist"
    parts = [p.strip() for p in value.split(";")] if multi else [value]
    kept: list[str] = []
    for part in parts:
        if part in allowed:
            kept.append(part)
        elif part.casefold() in folded:
            kept.append(folded[part.casefold()])
            fixed.append(f"{name}: {part!r} written as the picklist value "
                          f"{folded[part.casefold()]!r}")
        elif not meta.get("restrictedPicklist"):
            kept.append(part)
        elif rule.default is not None and _text(rule.default) in allowed and not multi:
            fixed.append(f"{name}: {part!r} is not a value of the restricted picklist; "
                         f"used the default {rule.default!r}")
            kept.append(_text(rule.default))
        else:
            fixed.append(f"dropped {name} {_short(part)}: not a value of the restricted "
                         f"picklist")
    return ";".join(kept) if kept else None


def _length(meta: Mapping[str, Any] | None) -> int | None:
    if meta is None:
        return None
    length = meta.get("length")
    return int(length) if isinstance(length, int) and length > 0 else None


def _cut(value: str, rule: FieldRule, meta: Mapping[str, Any] | None, fixed: list[str]) -> str:
    """Cut to `truncate = N` and, with describe, to the field's length (text fields by
    default; email, URL and phone only when `truncate` asks, since cutting breaks them)."""
    if rule.truncate is False:
        return value
    limits = []
    if rule.cut_to is not None:
        limits.append(rule.cut_to)
    length = _length(meta)
    kind = str((meta or {}).get("type") or "")
    if length and (rule.truncate is not None or kind in _CUT_BY_DEFAULT):
        limits.append(length)
    if limits and len(value) > min(limits):
        limit = min(limits)
        fixed.append(f"truncated {rule.salesforce} from {len(value)} to {limit} characters")
        return value[:limit]
    return value


def _same(new: Any, old: Any) -> bool:
    """Equal as Salesforce stores them: numbers by value, datetimes by instant."""
    if _blank(new) and _blank(old):
        return True
    if isinstance(new, bool) or isinstance(old, bool):
        return bool(new == old)
    if isinstance(new, int | float) and isinstance(old, int | float):
        return float(new) == float(old)
    if isinstance(new, str) and isinstance(old, str) and new != old:
        a, b = _instant(new), _instant(old)
        return a is not None and a == b
    return bool(new == old)


def _instant(text: str) -> datetime | date | None:
    if not re.match(r"^\d{4}-\d{2}-\d{2}", text):
        return None
    fixed = re.sub(r"([+-]\d{2})(\d{2})$", r"\1:\2", text.replace("Z", "+00:00"))
    try:
        when = datetime.fromisoformat(fixed)
    except ValueError:
        return None
    if len(text) == 10:
        return when.date()
    return when if when.tzinfo else when.replace(tzinfo=UTC)


# --- live checks ----------------------------------------------------------------------------


def _at(i: int) -> Loc:
    return ("fields", i)


def _close(name: str, known: Mapping[str, Any]) -> str:
    hint = suggest(name, known)
    return f" ({hint.strip()})" if hint else ""


def _hubspot_problems(i: int, rule: FieldRule, known: set[str]) -> list[tuple[Loc, str, str]]:
    return [((*_at(i), "hubspot"), f"HubSpot has no contact property {name!r}",
             "use an existing property's internal name (Settings > Properties), or create it"
             + _close(name, dict.fromkeys(known)))
            for name in rule.hubspot if name not in known]


def _field_problems(i: int, rule: FieldRule, meta: Mapping[str, Any]) -> list[tuple[Loc, str,
                                                                                       str]]:
    name = rule.salesforce
    kind = str(meta.get("type") or "")
    found: list[tuple[Loc, str, str]] = []
    where = (*_at(i), "salesforce")
    if not meta.get("createable", False):
        found.append((where, f"{name} is not createable (Salesforce computes or locks it)",
                      "map another field, or remove the entry"))
    elif not meta.get("updateable", False) and rule.sync not in ("salesforce", "none"):
        found.append(((*_at(i), "sync"), (f"{name} is not updateable, so sync = {rule.sync!r} "
                      f"cannot keep it current"),
                      "use sync = \"salesforce\" (set on create only)"))
    if kind in _NOT_MAPPABLE:
        found.append((where, f"{name} is a {kind} field: Handshake sets ids itself",
                      "map a text, number, date or picklist field instead"))
        return found
    produced = _produces(rule)
    if kind in _DATE_TYPES and rule.date is None and produced != "empty":
        found.append(((*_at(i), "date"), (f"{name} is a {kind} field but the value is not read "
                      f"as a date"), "add date = \"epoch_ms\" or date = \"iso\""))
    if rule.date is not None and kind not in _DATE_TYPES and kind not in _TEXT_TYPES:
        found.append(((*_at(i), "date"), f"`date` writes a date into a {kind} field",
                      "map the date to a date or datetime field"))
    if rule.date_as is not None and kind in _DATE_TYPES and rule.date_as != kind:
        found.append(((*_at(i), "date_as"), f"{name} is a {kind} field, not a {rule.date_as}",
                      f"use date_as = \"{kind}\" or remove date_as"))
    outputs = _outputs(rule)
    if kind in _NUMBER_TYPES and rule.map is not None and any(
            not _numeric(v) for v in outputs):
        found.append(((*_at(i), "map"), f"{name} is a number field but the map gives text",
                      "map each value to a number"))
    if kind == "boolean" and any(not isinstance(v, bool) and _text(v).lower()
                                 not in _TRUE | _FALSE for v in outputs):
        found.append(((*_at(i), "map"), f"{name} is a checkbox but the map gives other values",
                      "map each value to true or false"))
    length = _length(meta)
    if length and rule.cut_to is not None and rule.cut_to > length:
        found.append(((*_at(i), "truncate"), (f"truncate = {rule.cut_to} is longer than "
                      f"{name}'s {length} characters"), f"use truncate = {length} or true"))
    if length and kind in _TEXT_TYPES | _PICKLIST_TYPES:
        long = [v for v in outputs if isinstance(v, str) and len(v) > length]
        for v in long:
            found.append(((*_at(i), "map" if rule.map else "default"),
                          f"{_short(v)} is longer than {name}'s {length} characters",
                          "shorten the value"))
    if kind in _PICKLIST_TYPES and meta.get("picklistValues") is not None:
        allowed = {a.casefold() for a in _picklist_values(meta)}
        outside = [v for v in outputs if _text(v).casefold() not in allowed]
        if outside:
            restricted = bool(meta.get("restrictedPicklist"))
            key = "map" if rule.map and any(v in rule.map.values() for v in outside) else "default"
            found.append(((*_at(i), key),
                          f"{', '.join(_short(v) for v in outside)} "
                          f"{'is' if len(outside) == 1 else 'are'} not "
                          f"{'a value' if len(outside) == 1 else 'values'} of the {name} "
                          f"picklist" + (" (restricted: Salesforce refuses it)" if restricted
                                         else " (the picklist would grow an unlisted value)"),
                          f"use one of: {', '.join(_picklist_values(meta))}"))
    return found


def _outputs(rule: FieldRule) -> list[Scalar]:
    out = list(rule.map.values()) if rule.map else []
    if rule.default is not None and rule.default not in out:
        out.append(rule.default)
    return out


def _produces(rule: FieldRule) -> str:
    return "empty" if not rule.hubspot and rule.default is None else "value"


def _numeric(value: Scalar) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return True
    try:
        float(value.replace(",", ""))
    except ValueError:
        return False
    return True


# --- loading --------------------------------------------------------------------------------

_FIXES = {
    "missing": "add it (the shipped mappings/fields.toml shows an example)",
    "literal_error": "use one of the allowed values",
    "string_pattern_mismatch": "use the API name (letters, digits, underscores; custom fields "
                               "end in __c)",
    "too_short": "add at least one [[fields]] entry",
}


def _fix(kind: str, msg: str, loc: Loc) -> str:
    if kind == "extra_forbidden":
        word = str(loc[-1]) if loc else ""
        if len(loc) == 3 and loc[0] == "fields":
            return (f"{suggest(word, ENTRY_KEYS)}a [[fields]] entry takes hubspot, salesforce, "
                    f"sync and the transforms {', '.join(TRANSFORMS)}")
        return f"{suggest(word, ('sobject', 'fields', 'required'))}remove the key or check " \
               f"its spelling against the shipped fields.toml"
    if "regular expression" in msg:
        return "fix the pattern (Python `re` syntax; in TOML prefer 'single quotes' for regexes)"
    if "HubSpot internal property" in msg:
        return "use the property's internal name (Settings > Properties > the property)"
    if loc and loc[-1] == "sync":
        return f"use one of {', '.join(SYNC_RULES)}"
    if kind in _FIXES:
        return _FIXES[kind]
    if kind.endswith(("_type", "_parsing")) or kind == "type":
        return "use a value of the expected type (see the shipped fields.toml)"
    return "see the comments in the shipped mappings/fields.toml"


def _semantic(raw: dict[str, Any]) -> list[Check]:
    """Checks across entries: duplicate or reserved Salesforce fields, unknown transforms
    worded as such, required fields of a Lead kept."""
    found: list[Check] = []
    seen: dict[str, int] = {}
    entries = raw.get("fields")
    for i, entry in enumerate(entries if isinstance(entries, list) else []):
        if not isinstance(entry, dict):
            continue
        target = entry.get("salesforce")
        if isinstance(target, str):
            low = target.lower()
            if low in seen:
                found.append((("fields", i, "salesforce"),
                              (f"duplicate Salesforce field {target!r} (first mapped by entry "
                              f"{seen[low] + 1})"),
                              ("map each Salesforce field once; join several properties with "
                              "hubspot = [...] and join")))
            else:
                seen[low] = i
            if low in RESERVED:
                found.append((("fields", i, "salesforce"),
                              f"{target} is set by Handshake: {RESERVED[low]}",
                              "remove the entry"))
    sobject = raw.get("sobject", "Lead")
    required = raw.get("required") if isinstance(raw.get("required"), dict) else {}
    named = required.get("fields") if isinstance(required, dict) else None
    if str(sobject).lower() == "lead" and isinstance(named, dict):
        lower = {str(k).lower() for k in named}
        for name in LEAD_REQUIRED:
            if name.lower() not in lower:
                found.append((("required", "fields"),
                              f"{name} is required on a Lead but has no stand-in",
                              (f"add {name} = \"placeholder\" (or email_local_part, "
                              f"email_domain)")))
    return found


def _unknown(loc: Loc) -> str:
    if len(loc) == 3 and loc[0] == "fields":
        return f"unknown transform or key {loc[-1]!r}"
    return f"unknown key {loc[-1]!r}" if loc else "unknown key"


def parse_fields(text: str, file: str = "fields.toml") -> FieldMap:
    """Validate fields.toml text; raise `ConfigError` listing every problem with its line."""
    spec, lines = parse(text, file, FieldsFile, _fix, _semantic, _unknown)
    return FieldMap(spec, lines, file)


def load_fields(path: Path) -> FieldMap:
    """Read and validate fields.toml; `ConfigError` lists every problem (file, line, key)."""
    return parse_fields(read_text(Path(path), "fields mapping", "fields"), str(path))


def problems_of(path: Path) -> list[ConfigProblem]:
    """Every problem of the file, or an empty list (for `mappings check`)."""
    try:
        load_fields(path)
    except ConfigError as exc:
        return list(exc.problems)
    return []
