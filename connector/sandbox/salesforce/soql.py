"""A small SOQL engine: parse a SELECT, filter, sort and project the state's records.

Supported (as documented in the SOQL reference,
https://developer.salesforce.com/docs/atlas.en-us.soql_sosl.meta/soql_sosl/sforce_api_calls_soql_select.htm):
field lists with relationship paths (Owner.Email, Who.Name), COUNT(), WHERE with AND / OR /
NOT and parentheses, = != <> < <= > >=, IN / NOT IN, LIKE (% and _), null, true/false, quoted
strings with backslash escapes, numbers, date literals (2026-01-31), datetime literals
(2026-01-31T10:00:00Z, optional .SSS milliseconds, +hh:mm offsets), the date literals TODAY,
YESTERDAY, TOMORROW, LAST_N_DAYS:n, NEXT_N_DAYS:n, N_DAYS_AGO:n, ORDER BY ... ASC/DESC
NULLS FIRST/LAST, LIMIT and OFFSET. A datetime without zone or with more than millisecond
precision is MALFORMED_QUERY, as the real parser answers.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, timedelta
from typing import Any

from . import settings
from .schema import NAME_OBJECT, OBJECTS, FieldDef, ObjectDef, object_def, relationship_target
from .state import RequestError, SalesforceState, parse_datetime

__all__ = ["Query", "execute", "parse"]

_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<string>'(?:\\.|[^'\\])*')
  | (?P<datetime>\d{4}-\d{2}-\d{2}T[0-9:.]+(?:Z|[+-]\d{2}:?\d{2})?)
  | (?P<date>\d{4}-\d{2}-\d{2})
  | (?P<number>-?\d+(?:\.\d+)?)
  | (?P<op>!=|<>|<=|>=|=|<|>)
  | (?P<punct>[(),])
  | (?P<dateliteral>[A-Za-z_]+:\d+)
  | (?P<word>[A-Za-z_][A-Za-z0-9_.]*)
  | (?P<bad>.)
    """,
    re.VERBOSE,
)
_DATETIME_OK = re.compile(
    r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?(?:Z|[+-]\d{2}:\d{2})$"
)
_KEYWORDS = {
    "select",
    "from",
    "where",
    "and",
    "or",
    "not",
    "in",
    "like",
    "order",
    "by",
    "asc",
    "desc",
    "nulls",
    "first",
    "last",
    "limit",
    "offset",
    "null",
    "true",
    "false",
    "includes",
    "excludes",
    "group",
    "having",
    "with",
    "for",
    "using",
}
_ESCAPES = {
    "n": "\n",
    "t": "\t",
    "r": "\r",
    "b": "\b",
    "f": "\f",
    '"': '"',
    "'": "'",
    "\\": "\\",
    "_": "\\_",
    "%": "\\%",
}


@dataclass
class _Tok:
    kind: str
    text: str
    pos: int

    @property
    def upper(self) -> str:
        return self.text.upper()


@dataclass
class Cond:
    op: str  # "and", "or", "not", "cmp"
    parts: list[Cond] = field(default_factory=list)
    path: list[str] = field(default_factory=list)
    cmp: str = ""
    value: Any = None


@dataclass
class Query:
    sobject: str
    fields: list[list[str]]  # paths; [] means COUNT()
    count: bool
    where: Cond | None
    order: list[tuple[list[str], bool, bool]]  # path, descending, nulls_first
    limit: int | None
    offset: int
    text: str
    # COUNT(field) [alias] columns and the GROUP BY fields they are counted over
    aggregates: list[tuple[list[str], str]] = field(default_factory=list)
    group_by: list[list[str]] = field(default_factory=list)


def _malformed(text: str, pos: int, detail: str) -> RequestError:
    col = pos + 1
    return RequestError(
        400, "MALFORMED_QUERY", f"\n{text}\n{' ' * pos}^\nERROR at Row:1:Column:{col}\n{detail}"
    )


def _invalid_field(text: str, pos: int, detail: str) -> RequestError:
    return RequestError(
        400, "INVALID_FIELD", f"\n{text}\n{' ' * pos}^\nERROR at Row:1:Column:{pos + 1}\n{detail}"
    )


def _tokenize(text: str) -> list[_Tok]:
    tokens = []
    for m in _TOKEN_RE.finditer(text):
        kind = m.lastgroup or "bad"
        if kind == "ws":
            continue
        if kind == "bad":
            raise _malformed(
                text,
                m.start(),
                f"line 1:{m.start()} no viable alternative at character '{m.group()}'",
            )
        if kind == "datetime" and not _DATETIME_OK.match(m.group()):
            raise _malformed(
                text,
                m.start(),
                f"line 1:{m.start()} no viable alternative at character "
                f"'{m.group()[19:20] or ' '}'",
            )
        tokens.append(_Tok(kind, m.group(), m.start()))
    tokens.append(_Tok("eof", "", len(text)))
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = _tokenize(text)
        self.i = 0

    def peek(self) -> _Tok:
        return self.toks[self.i]

    def take(self) -> _Tok:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def is_kw(self, *words: str) -> bool:
        tok = self.peek()
        return tok.kind == "word" and tok.upper in words

    def expect_kw(self, word: str) -> None:
        tok = self.take()
        if tok.kind != "word" or tok.upper != word:
            raise self.error(tok, f"unexpected token: '{tok.text or '<EOF>'}'")

    def error(self, tok: _Tok, detail: str) -> RequestError:
        return _malformed(self.text, tok.pos, detail)

    def parse(self) -> Query:
        self.expect_kw("SELECT")
        fields: list[list[str]] = []
        field_pos: list[int] = []
        count = False
        counted: list[tuple[list[str], int, str]] = []  # COUNT(field): path, position, alias
        while True:
            tok = self.take()
            if tok.kind != "word" or tok.text.lower() in _KEYWORDS:
                raise self.error(tok, f"unexpected token: '{tok.text or '<EOF>'}'")
            if tok.upper == "COUNT" and self.peek().text == "(":
                self.take()
                if self.peek().text != ")":
                    arg = self.take()
                    if arg.kind != "word" or self.peek().text != ")":
                        raise self.error(arg, f"unexpected token: '{arg.text or '<EOF>'}'")
                    self.take()
                    alias = f"expr{len(counted)}"
                    nxt = self.peek()
                    if nxt.kind == "word" and nxt.text.lower() not in _KEYWORDS:
                        alias = self.take().text
                    counted.append((arg.text.split("."), arg.pos, alias))
                else:
                    self.take()
                    count = True
            else:
                fields.append(tok.text.split("."))
                field_pos.append(tok.pos)
            if self.peek().text == ",":
                self.take()
                continue
            break
        self.expect_kw("FROM")
        tok = self.take()
        obj = object_def(tok.text) if tok.kind == "word" else None
        if obj is None:
            raise RequestError(
                400,
                "INVALID_TYPE",
                f"\n{self.text}\n{' ' * tok.pos}^\n"
                f"ERROR at Row:1:Column:{tok.pos + 1}\nsObject type "
                f"'{tok.text}' is not supported. If you are attempting to use a "
                "custom object, be sure to append the '__c' after the entity "
                "name. Please reference your WSDL or the describe call for the "
                "appropriate names.",
            )
        if count and (fields or counted):
            raise self.error(self.toks[1], "COUNT() cannot be combined with other fields")
        self.obj = obj
        resolved = [self.resolve(p, pos) for p, pos in zip(fields, field_pos)]
        aggregates = [(self.resolve(p, pos), alias) for p, pos, alias in counted]
        where = None
        if self.is_kw("WHERE"):
            self.take()
            where = self.parse_or()
        group_by: list[list[str]] = []
        if self.is_kw("GROUP"):
            self.take()
            self.expect_kw("BY")
            while True:
                tok = self.take()
                if tok.kind != "word":
                    raise self.error(tok, f"unexpected token: '{tok.text or '<EOF>'}'")
                group_by.append(self.resolve(tok.text.split("."), tok.pos))
                if self.peek().text == ",":
                    self.take()
                    continue
                break
        # Documented rule: with GROUP BY every selected field is grouped or aggregated.
        for path, pos in zip(resolved, field_pos):
            if (aggregates or group_by) and path not in group_by:
                raise self.error(self.toks[0], f"Field must be grouped or aggregated: "
                                               f"{'.'.join(path)}")
        if group_by and not aggregates and not resolved:
            raise self.error(self.toks[0], "GROUP BY needs a selected field or an aggregate")
        order: list[tuple[list[str], bool, bool]] = []
        if self.is_kw("ORDER"):
            self.take()
            self.expect_kw("BY")
            while True:
                tok = self.take()
                if tok.kind != "word":
                    raise self.error(tok, f"unexpected token: '{tok.text or '<EOF>'}'")
                path = self.resolve(tok.text.split("."), tok.pos)
                desc = False
                if self.is_kw("ASC", "DESC"):
                    desc = self.take().upper == "DESC"
                nulls_first = not desc
                if self.is_kw("NULLS"):
                    self.take()
                    word = self.take()
                    if word.upper not in ("FIRST", "LAST"):
                        raise self.error(word, f"unexpected token: '{word.text}'")
                    nulls_first = word.upper == "FIRST"
                order.append((path, desc, nulls_first))
                if self.peek().text == ",":
                    self.take()
                    continue
                break
        limit = None
        offset = 0
        if self.is_kw("LIMIT"):
            self.take()
            limit = self.integer()
        if self.is_kw("OFFSET"):
            self.take()
            offset = self.integer()
            if offset > settings.QUERY_MAX_OFFSET:
                raise RequestError(
                    400,
                    "NUMBER_OUTSIDE_VALID_RANGE",
                    f"Maximum SOQL offset allowed is {settings.QUERY_MAX_OFFSET}",
                )
        tok = self.peek()
        if tok.kind != "eof":
            raise self.error(tok, f"unexpected token: '{tok.text}'")
        return Query(obj.name, resolved, count, where, order, limit, offset, self.text,
                     aggregates, group_by)

    def integer(self) -> int:
        tok = self.take()
        if tok.kind != "number" or "." in tok.text or tok.text.startswith("-"):
            raise self.error(tok, f"unexpected token: '{tok.text or '<EOF>'}'")
        return int(tok.text)

    def resolve(self, path: list[str], pos: int) -> list[str]:
        """Canonical names for a field path, checked against the schema."""
        obj: ObjectDef | None = self.obj
        out: list[str] = []
        if len(path) > 1 and path[0].lower() == self.obj.name.lower():
            path = path[1:]  # "Lead.Email" is the object's own field
        for n, part in enumerate(path):
            assert obj is not None
            last = n == len(path) - 1
            if last:
                f = obj.field(part)
                if f is None:
                    raise _invalid_field(
                        self.text,
                        pos,
                        f"No such column '{part}' on entity '{obj.name}'. If you are attempting "
                        "to use a custom field, be sure to append the '__c' after the custom "
                        "field name. Please reference your WSDL or the describe call for the "
                        "appropriate names.",
                    )
                out.append(f.name)
            else:
                rel = next(
                    (
                        f
                        for f in obj.fields.values()
                        if f.relationship_name and f.relationship_name.lower() == part.lower()
                    ),
                    None,
                )
                if rel is None:
                    raise _invalid_field(
                        self.text,
                        pos,
                        f"Didn't understand relationship '{part}' in field path. If you are "
                        "attempting to use a custom relationship, be sure to append the '__r' "
                        "after the custom relationship name. Please reference your WSDL or the "
                        "describe call for the appropriate names.",
                    )
                out.append(rel.name)
                obj = relationship_target(rel)
                if obj is None or (obj is NAME_OBJECT and n < len(path) - 2):
                    raise _invalid_field(
                        self.text,
                        pos,
                        f"Didn't understand relationship '{path[n + 1]}' in "
                        "field path. Please reference your WSDL or the describe call for the "
                        "appropriate names.",
                    )
        return out

    def parse_or(self) -> Cond:
        parts = [self.parse_and()]
        while self.is_kw("OR"):
            self.take()
            parts.append(self.parse_and())
        return parts[0] if len(parts) == 1 else Cond("or", parts)

    def parse_and(self) -> Cond:
        parts = [self.parse_not()]
        while self.is_kw("AND"):
            self.take()
            parts.append(self.parse_not())
        return parts[0] if len(parts) == 1 else Cond("and", parts)

    def parse_not(self) -> Cond:
        if self.is_kw("NOT"):
            self.take()
            return Cond("not", [self.parse_not()])
        if self.peek().text == "(":
            self.take()
            inner = self.parse_or()
            tok = self.take()
            if tok.text != ")":
                raise self.error(tok, f"unexpected token: '{tok.text or '<EOF>'}'")
            return inner
        return self.parse_cmp()

    def parse_cmp(self) -> Cond:
        tok = self.take()
        if tok.kind != "word" or tok.text.lower() in _KEYWORDS:
            raise self.error(tok, f"unexpected token: '{tok.text or '<EOF>'}'")
        path = self.resolve(tok.text.split("."), tok.pos)
        f = self.field_of(path)
        if f.type == "textarea" and f.length > 255:
            # long text areas (Description) can be selected, never filtered (SOQL and SOSL
            # Reference, "Filterable fields"; describe says filterable = false)
            raise _invalid_field(
                self.text, tok.pos, f"field '{tok.text}' can not be filtered in a query call"
            )
        op_tok = self.take()
        if op_tok.kind == "op":
            op = "!=" if op_tok.text == "<>" else op_tok.text
            return Cond("cmp", path=path, cmp=op, value=self.value(f, tok))
        if op_tok.kind == "word" and op_tok.upper == "LIKE":
            return Cond("cmp", path=path, cmp="like", value=self.value(f, tok, like=True))
        negate = False
        if op_tok.kind == "word" and op_tok.upper == "NOT" and self.is_kw("IN"):
            self.take()
            negate = True
        elif not (op_tok.kind == "word" and op_tok.upper == "IN"):
            raise self.error(op_tok, f"unexpected token: '{op_tok.text or '<EOF>'}'")
        if self.take().text != "(":
            raise self.error(self.toks[self.i - 1], "expecting a left parentheses")
        values = [self.value(f, tok)]
        while self.peek().text == ",":
            self.take()
            values.append(self.value(f, tok))
        if self.take().text != ")":
            raise self.error(self.toks[self.i - 1], "expecting a right parentheses")
        return Cond("cmp", path=path, cmp="not in" if negate else "in", value=values)

    def field_of(self, path: list[str]) -> FieldDef:
        obj: ObjectDef | None = self.obj
        f: FieldDef | None = None
        for part in path:
            assert obj is not None
            f = obj.fields[part]
            if f.type == "reference" and part != path[-1]:
                obj = relationship_target(f)
        assert f is not None
        return f

    def value(self, f: FieldDef, field_tok: _Tok, like: bool = False) -> Any:
        tok = self.take()
        temporal = f.type in ("date", "datetime")
        if tok.kind == "string":
            if temporal:
                raise _invalid_field(
                    self.text,
                    tok.pos,
                    f"value of filter criterion for field '{field_tok.text}' must be of type "
                    f"{'dateTime' if f.type == 'datetime' else 'date'} and should not be "
                    "enclosed in quotes",
                )
            return _unescape(tok.text[1:-1], like)
        if tok.kind == "word" and tok.upper == "NULL":
            return None
        if tok.kind == "word" and tok.upper in ("TRUE", "FALSE"):
            return tok.upper == "TRUE"
        if tok.kind == "number":
            return float(tok.text) if "." in tok.text else int(tok.text)
        if tok.kind == "datetime":
            if f.type != "datetime":
                raise _invalid_field(
                    self.text,
                    tok.pos,
                    f"value of filter criterion for field '{field_tok.text}' "
                    f"must be of type {_kind(f)} and should not be enclosed "
                    "in quotes",
                )
            return parse_datetime(tok.text)
        if tok.kind == "date":
            if f.type != "date":
                raise _invalid_field(
                    self.text,
                    tok.pos,
                    f"value of filter criterion for field '{field_tok.text}' "
                    f"must be of type {_kind(f)} and should not be enclosed "
                    "in quotes",
                )
            return date.fromisoformat(tok.text)
        if tok.kind in ("word", "dateliteral") and temporal:
            return _DateRange(tok.text.upper(), f.type, tok, self)
        raise self.error(tok, f"unexpected token: '{tok.text or '<EOF>'}'")


def _kind(f: FieldDef) -> str:
    return {"datetime": "dateTime", "date": "date", "boolean": "boolean"}.get(
        f.type, "double" if f.type in ("int", "double", "currency", "percent") else "string"
    )


def _unescape(body: str, like: bool) -> str:
    out = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            rep = _ESCAPES.get(nxt)
            out.append(rep if (rep and (like or nxt not in "_%")) else nxt)
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


class _DateRange:
    """A relative date literal (TODAY, LAST_N_DAYS:n...) resolved at evaluation time."""

    _NAMES = ("TODAY", "YESTERDAY", "TOMORROW", "LAST_N_DAYS", "NEXT_N_DAYS", "N_DAYS_AGO")

    def __init__(self, text: str, field_type: str, tok: _Tok, parser: _Parser) -> None:
        name, _, n = text.partition(":")
        if name not in self._NAMES or (name in ("TODAY", "YESTERDAY", "TOMORROW")) != (n == ""):
            raise parser.error(tok, f"unexpected token: '{tok.text}'")
        self.name = name
        self.n = int(n or 0)
        self.field_type = field_type

    def bounds(self, today: date) -> tuple[date, date]:
        """[start, end) in days."""
        if self.name == "TODAY":
            return today, today + timedelta(days=1)
        if self.name == "YESTERDAY":
            return today - timedelta(days=1), today
        if self.name == "TOMORROW":
            return today + timedelta(days=1), today + timedelta(days=2)
        if self.name == "LAST_N_DAYS":
            return today - timedelta(days=self.n), today + timedelta(days=1)
        if self.name == "NEXT_N_DAYS":
            return today + timedelta(days=1), today + timedelta(days=self.n + 1)
        day = today - timedelta(days=self.n)
        return day, day + timedelta(days=1)


def parse(text: str) -> Query:
    """Parse a SOQL SELECT; raises RequestError (MALFORMED_QUERY, INVALID_FIELD...)."""
    return _Parser(text.strip()).parse()


# ------------------------------------------------------------------------------ evaluation
# stored values repeat from query to query: parse each distinct string once
_parse_dt = functools.lru_cache(maxsize=1 << 19)(parse_datetime)
_parse_date = functools.lru_cache(maxsize=1 << 16)(date.fromisoformat)


def _typed(f: FieldDef, raw: Any) -> Any:
    if raw is None:
        return None
    if f.type == "datetime":
        return _parse_dt(raw)
    if f.type == "date":
        return _parse_date(raw)
    return raw


def _resolve(
    state: SalesforceState, sobject: str, record: dict[str, Any], path: list[str]
) -> tuple[FieldDef | None, Any]:
    obj = OBJECTS.get(sobject) or object_def(sobject)
    if len(path) == 1 and obj is not None:
        return obj.fields.get(path[0]), record.get(path[0])
    current: dict[str, Any] | None = record
    current_type = sobject
    f: FieldDef | None = None
    for n, part in enumerate(path):
        if current is None or obj is None:
            return f, None
        f = obj.fields.get(part)
        if n == len(path) - 1:
            if obj is NAME_OBJECT and part == "Type":
                return f, current_type
            return f, current.get(part)
        value = current.get(part)
        hit = state.lookup_any(value) if value else None
        if hit is None or f is None:
            return f, None
        obj = relationship_target(f)
        current_type, current = hit
    return f, None


def _like(pattern: str) -> re.Pattern[str]:
    out = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
        i += 1
    return re.compile("^" + "".join(out) + "$", re.IGNORECASE | re.DOTALL)


def _compare(f: FieldDef | None, stored: Any, op: str, wanted: Any, today: date) -> bool:
    if f is None:
        return False
    value = _typed(f, stored)
    if isinstance(wanted, _DateRange):
        if value is None:
            return op == "!="
        start, end = wanted.bounds(today)
        if f.type == "datetime":
            value = value.astimezone(UTC).date()
        inside = start <= value < end
        return bool(
            {
                "=": inside,
                "!=": not inside,
                "<": value < start,
                "<=": value < end,
                ">": value >= end,
                ">=": value >= start,
            }.get(op, False)
        )
    if op in ("in", "not in"):
        hit = any(_eq(value, w) for w in wanted)
        return hit if op == "in" else (not hit and value is not None)
    if op == "like":
        return value is not None and wanted is not None and bool(_like(wanted).match(str(value)))
    if op == "=":
        return _eq(value, wanted)
    if op == "!=":
        return not _eq(value, wanted)
    if value is None or wanted is None:
        return False
    if isinstance(value, str) and isinstance(wanted, str):
        value, wanted = value.lower(), wanted.lower()
    try:
        return bool(
            {
                "<": value < wanted,
                "<=": value <= wanted,
                ">": value > wanted,
                ">=": value >= wanted,
            }[op]
        )
    except TypeError:
        return False


def _eq(value: Any, wanted: Any) -> bool:
    if value is None or wanted is None:
        return value is None and wanted is None
    if isinstance(value, str) and isinstance(wanted, str):
        return value.lower() == wanted.lower()
    return bool(value == wanted)


Predicate = Callable[[dict[str, Any]], bool]


def _compile(state: SalesforceState, sobject: str, cond: Cond, today: date) -> Predicate:
    """A filter as nested closures: field definitions are looked up once, not per row."""
    if cond.op in ("and", "or"):
        parts = [_compile(state, sobject, c, today) for c in cond.parts]
        if cond.op == "and":
            return lambda r: all(p(r) for p in parts)
        return lambda r: any(p(r) for p in parts)
    if cond.op == "not":
        inner = _compile(state, sobject, cond.parts[0], today)
        return lambda r: not inner(r)
    path, op, value = cond.path, cond.cmp, cond.value
    obj = OBJECTS[sobject]
    if len(path) == 1:
        f = obj.fields[path[0]]
        name = path[0]
        return lambda r: _compare(f, r.get(name), op, value, today)

    def related(r: dict[str, Any]) -> bool:
        f_rel, stored = _resolve(state, sobject, r, path)
        return _compare(f_rel, stored, op, value, today)

    return related


def _sort(
    state: SalesforceState,
    sobject: str,
    rows: list[dict[str, Any]],
    order: list[tuple[list[str], bool, bool]],
) -> None:
    """ORDER BY as stable passes from the last key to the first; text compares without case;
    nulls go first or last as asked, whatever the direction."""
    for path, desc, nulls_first in reversed(order):
        # with reverse=True the higher rank comes first, so the null rank flips with desc
        null_rank = int(nulls_first == desc)
        value_rank = 1 - null_rank

        def key(
            r: dict[str, Any],
            path: list[str] = path,
            nulls: int = null_rank,
            values: int = value_rank,
        ) -> tuple[int, Any]:
            f, stored = _resolve(state, sobject, r, path)
            value = _typed(f, stored) if f is not None else None
            if value is None:
                return (nulls, None)
            return (values, value.lower() if isinstance(value, str) else value)

        rows.sort(key=key, reverse=desc)


def _project(
    state: SalesforceState, sobject: str, record: dict[str, Any], paths: list[list[str]]
) -> dict[str, Any]:
    out: dict[str, Any] = {"attributes": state.attributes(sobject, record["Id"])}
    for path in paths:
        _put(state, sobject, record, path, out)
    return out


def _put(
    state: SalesforceState,
    sobject: str,
    record: dict[str, Any],
    path: list[str],
    out: dict[str, Any],
) -> None:
    if len(path) == 1:
        out[path[0]] = record.get(path[0])
        return
    obj = object_def(sobject)
    assert obj is not None
    rel = obj.fields[path[0]]
    rel_name = rel.relationship_name or path[0]
    ref = record.get(path[0])
    hit = state.lookup_any(ref) if ref else None
    if hit is None:
        out.setdefault(rel_name, None)
        return
    target, child = hit
    attributes = state.attributes(target, child["Id"])
    if len(rel.reference_to) > 1:
        attributes["type"] = "Name"  # polymorphic lookups are read through the Name object
    nested = out.get(rel_name) or {"attributes": attributes}
    out[rel_name] = nested
    if len(rel.reference_to) > 1 and path[1] == "Type":
        nested["Type"] = target
    elif path[1] in child:
        _put(state, target, child, path[1:], nested)
    else:
        nested[path[1]] = None


def _indexed(
    state: SalesforceState, q: Query, cond: Cond | None, include_deleted: bool
) -> list[dict[str, Any]] | None:
    """Rows from an index when the filter pins an indexed field (Id, Email, external ids)
    with = or IN, alone or inside an AND; None when every row must be read."""
    if cond is None:
        return None
    if cond.op == "and":
        for part in cond.parts:
            rows = _indexed(state, q, part, include_deleted)
            if rows is not None:
                return rows
        return None
    if cond.op != "cmp" or len(cond.path) != 1 or cond.cmp not in ("=", "in"):
        return None
    values = cond.value if cond.cmp == "in" else [cond.value]
    if any(not isinstance(v, str) for v in values):
        return None
    return state.indexed_rows(q.sobject, cond.path[0], values, include_deleted=include_deleted)


def execute(state: SalesforceState, q: Query, *, include_deleted: bool) -> tuple[int, list[Any]]:
    """Run a parsed query: (totalSize, projected records); COUNT() gives (n, [])."""
    today = state.clock.now().astimezone(UTC).date()
    candidates = _indexed(state, q, q.where, include_deleted)
    keep = _compile(state, q.sobject, q.where, today) if q.where is not None else None
    rows = [
        r
        for r in (state.raw_records(q.sobject) if candidates is None else candidates)
        if (include_deleted or not r["IsDeleted"]) and (keep is None or keep(r))
    ]
    if q.aggregates or q.group_by:
        return _aggregate(state, q, rows)
    if q.order:
        _sort(state, q.sobject, rows, q.order)
    rows = rows[q.offset :]
    if q.limit is not None:
        rows = rows[: q.limit]
    if q.count:
        return len(rows), []
    return len(rows), [_project(state, q.sobject, r, q.fields) for r in rows]


def _aggregate(state: SalesforceState, q: Query, rows: list[dict[str, Any]]) -> tuple[int, list[Any]]:
    """COUNT(field) over GROUP BY groups, answered as AggregateResult rows: an unaliased
    aggregate is named expr0, expr1... (SOQL and SOSL reference, "Using Aliases with GROUP BY")."""
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for r in rows:
        key = tuple(_project(state, q.sobject, r, [p]).get(p[0]) if len(p) > 1
                    else r.get(p[0]) for p in q.group_by)
        groups.setdefault(key, []).append(r)
    if not q.group_by:
        groups = {(): rows}
    out: list[dict[str, Any]] = []
    for key, members in groups.items():
        row: dict[str, Any] = {"attributes": {"type": "AggregateResult"}}
        for path, value in zip(q.group_by, key):
            row[path[-1]] = value.get(path[-1]) if isinstance(value, dict) else value
        for path, alias in q.aggregates:
            row[alias] = sum(1 for m in members
                             if (_project(state, q.sobject, m, [path]).get(path[0])
                                 if len(path) > 1 else m.get(path[0])) is not None)
        out.append(row)
    out = out[q.offset :]
    if q.limit is not None:
        out = out[: q.limit]
    return len(out), out
