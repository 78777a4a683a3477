"""CRM search semantics: validation of a `PublicObjectSearchRequest`, filter evaluation
(filterGroups are ORed, filters in a group ANDed), the single sort and its tie-break by id."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from . import settings
from .errors import validation

__all__ = ["SearchQuery", "compile_query", "parse_search_request", "to_ms"]

OPERATORS = {
    "EQ",
    "NEQ",
    "LT",
    "LTE",
    "GT",
    "GTE",
    "BETWEEN",
    "IN",
    "NOT_IN",
    "HAS_PROPERTY",
    "NOT_HAS_PROPERTY",
    "CONTAINS_TOKEN",
    "NOT_CONTAINS_TOKEN",
}
# Properties the free-text `query` looks in (contacts' default searchable properties).
QUERY_PROPERTIES = (
    "firstname",
    "lastname",
    "email",
    "phone",
    "company",
    "website",
    "hs_additional_emails",
)
_TOKEN_SPLIT = re.compile(r"[^0-9a-z]+")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class SearchQuery:
    """A validated search: the part that defines the result set, plus paging and properties."""

    filter_groups: tuple[tuple[tuple[str, str, Any, Any], ...], ...]
    sort_property: str | None
    sort_descending: bool
    query: str | None
    properties: tuple[str, ...] | None
    limit: int
    after: int

    def cache_key(self) -> tuple[Any, ...]:
        """Identifies the result set (not the page) for caching across pages."""
        return (self.filter_groups, self.sort_property, self.sort_descending, self.query)


@lru_cache(maxsize=1 << 18)
def to_ms(value: str) -> int | None:
    """A datetime filter or property value (epoch ms, ISO-8601, or a date) as epoch ms."""
    text = value.strip()
    if not text:
        return None
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return (parsed - _EPOCH) // timedelta(milliseconds=1)


def _freeze(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(str(v) for v in value)
    return None if value is None else str(value)


def parse_search_request(body: Any) -> SearchQuery:
    """Validate a search body against HubSpot's documented limits (400 VALIDATION_ERROR)."""
    if not isinstance(body, dict):
        raise validation("Invalid input JSON on line 1: expected a JSON object")
    groups_in = body.get("filterGroups") or []
    if not isinstance(groups_in, list):
        raise validation("filterGroups must be an array")
    if len(groups_in) > settings.SEARCH_MAX_FILTER_GROUPS:
        raise validation(
            f"Too many filter groups: {len(groups_in)}. The maximum is "
            f"{settings.SEARCH_MAX_FILTER_GROUPS}.",
            context={"filterGroups": [str(len(groups_in))]},
        )
    total = 0
    groups: list[tuple[tuple[str, str, Any, Any], ...]] = []
    for group in groups_in:
        filters = (group or {}).get("filters") or []
        if len(filters) > settings.SEARCH_MAX_FILTERS_PER_GROUP:
            raise validation(
                f"Too many filters in a filter group: {len(filters)}. The maximum is "
                f"{settings.SEARCH_MAX_FILTERS_PER_GROUP}."
            )
        total += len(filters)
        parsed: list[tuple[str, str, Any, Any]] = []
        for f in filters:
            op = str(f.get("operator", "EQ")).upper()
            name = f.get("propertyName")
            if op not in OPERATORS:
                raise validation(f"Unknown filter operator: {op}")
            if not name:
                raise validation("A filter needs a propertyName")
            if op in ("IN", "NOT_IN"):
                values = f.get("values")
                if not isinstance(values, list) or not values:
                    raise validation(f"The {op} operator needs a non-empty 'values' array")
                parsed.append((str(name), op, _freeze(values), None))
            elif op == "BETWEEN":
                if f.get("value") is None or f.get("highValue") is None:
                    raise validation("The BETWEEN operator needs 'value' and 'highValue'")
                parsed.append((str(name), op, _freeze(f.get("value")), _freeze(f.get("highValue"))))
            elif op in ("HAS_PROPERTY", "NOT_HAS_PROPERTY"):
                parsed.append((str(name), op, None, None))
            else:
                if f.get("value") is None:
                    raise validation(f"The {op} operator needs a 'value'")
                parsed.append((str(name), op, _freeze(f.get("value")), None))
        if parsed:
            groups.append(tuple(parsed))
    if total > settings.SEARCH_MAX_FILTERS_TOTAL:
        raise validation(
            f"Too many filters: {total}. The maximum is {settings.SEARCH_MAX_FILTERS_TOTAL}."
        )
    sorts = body.get("sorts") or []
    if len(sorts) > settings.SEARCH_MAX_SORTS:
        raise validation(f"Only {settings.SEARCH_MAX_SORTS} sort is allowed per search")
    sort_property: str | None = None
    descending = False
    if sorts:
        s = sorts[0]
        if isinstance(s, dict):
            sort_property = s.get("propertyName")
            descending = str(s.get("direction", "ASCENDING")).upper() == "DESCENDING"
        elif isinstance(s, str):
            descending = s.startswith("-")
            sort_property = s.lstrip("-")
    query = body.get("query")
    if query is not None and len(str(query)) > settings.SEARCH_QUERY_MAX_CHARS:
        raise validation(f"query is longer than {settings.SEARCH_QUERY_MAX_CHARS} characters")
    limit_raw = body.get("limit")
    limit = settings.SEARCH_PAGE_DEFAULT if limit_raw in (None, "") else _as_int(limit_raw, "limit")
    if limit < 1 or limit > settings.SEARCH_PAGE_MAX:
        raise validation(
            f"limit must be between 1 and {settings.SEARCH_PAGE_MAX}, was {limit}",
            context={"limit": [str(limit)]},
        )
    after_raw = body.get("after")
    after = 0 if after_raw in (None, "") else _as_int(after_raw, "after")
    if after < 0:
        raise validation("after must not be negative")
    props = body.get("properties")
    return SearchQuery(
        filter_groups=tuple(groups),
        sort_property=sort_property,
        sort_descending=descending,
        query=str(query).strip() if query else None,
        properties=tuple(props) if props else None,
        limit=limit,
        after=after,
    )


def _as_int(value: Any, name: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise validation(f"{name} must be an integer, was {value!r}") from None


def _tokens(text: str) -> list[str]:
    return [t for t in _TOKEN_SPLIT.split(text.lower()) if t]


@lru_cache(maxsize=1 << 18)
def _normalise(kind: str, raw: str | None) -> Any:
    """A property or filter value in a comparable form for the property's type (memoised:
    a search over 100k contacts parses the same ISO timestamps on every query)."""
    if raw is None or raw == "":
        return None
    if kind in ("datetime", "date"):
        return to_ms(raw)
    if kind == "number":
        try:
            return float(raw)
        except ValueError:
            return None
    return raw.lower()


Predicate = Callable[[Mapping[str, str]], bool]


def _compile_filter(name: str, op: str, value: Any, high: Any, kind: str) -> Predicate:
    if op == "HAS_PROPERTY":
        return lambda props: bool(props.get(name))
    if op == "NOT_HAS_PROPERTY":
        return lambda props: not props.get(name)
    if op in ("IN", "NOT_IN"):
        wanted = {_normalise(kind, v) for v in value}
        if op == "IN":
            return lambda props: _normalise(kind, props.get(name)) in wanted
        return lambda props: _normalise(kind, props.get(name)) not in wanted
    if op in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
        pattern = str(value).lower()

        def contains(props: Mapping[str, str]) -> bool:
            raw = props.get(name)
            if not raw:
                return False
            text = raw.lower()
            if "*" in pattern:
                return fnmatch.fnmatchcase(text, pattern) or any(
                    fnmatch.fnmatchcase(t, pattern) for t in _tokens(text)
                )
            return pattern == text or pattern in _tokens(text)

        if op == "CONTAINS_TOKEN":
            return contains
        return lambda props: not contains(props)
    target = _normalise(kind, value)
    if op == "EQ":
        return lambda props: target is not None and _normalise(kind, props.get(name)) == target
    if op == "NEQ":
        return lambda props: _normalise(kind, props.get(name)) != target
    if op == "BETWEEN":
        upper = _normalise(kind, high)

        def between(props: Mapping[str, str]) -> bool:
            v = _normalise(kind, props.get(name))
            return (
                v is not None and target is not None and upper is not None and target <= v <= upper
            )

        return between
    compare: dict[str, Callable[[Any, Any], bool]] = {
        "LT": lambda a, b: a < b,
        "LTE": lambda a, b: a <= b,
        "GT": lambda a, b: a > b,
        "GTE": lambda a, b: a >= b,
    }
    cmp = compare[op]

    def ordered(props: Mapping[str, str]) -> bool:
        v = _normalise(kind, props.get(name))
        if v is None or target is None:
            return False
        try:
            return cmp(v, target)
        except TypeError:
            return False

    return ordered


def compile_query(q: SearchQuery, kind_of: Callable[[str], str]) -> Predicate:
    """A predicate over a contact's property map for the query's filters and free text."""
    groups = [
        [_compile_filter(name, op, value, high, kind_of(name)) for name, op, value, high in group]
        for group in q.filter_groups
    ]
    text_tokens = _tokens(q.query) if q.query else []

    def text_match(props: Mapping[str, str]) -> bool:
        haystack: list[str] = []
        for p in QUERY_PROPERTIES:
            raw = props.get(p)
            if raw:
                haystack.extend(_tokens(raw))
        return all(any(h.startswith(t) for h in haystack) for t in text_tokens)

    def predicate(props: Mapping[str, str]) -> bool:
        if groups and not any(all(f(props) for f in group) for group in groups):
            return False
        return not text_tokens or text_match(props)

    return predicate


def sort_key(kind: str, raw: str | None) -> tuple[int, Any]:
    """Sort key putting records without a value last whatever the direction."""
    value = _normalise(kind, raw)
    return (1, 0) if value is None else (0, value)
