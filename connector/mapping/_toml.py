"""The one loader of the admin-edited mapping files (fields.toml, routing.toml, scoring.toml):
the file's text, its TOML syntax, the line of every key (tomllib gives none), pydantic
validation and cross-entry checks, every problem reported at once with file, line and key.

    spec, lines = parse(read_text(path, "routing", "routing"), str(path), RoutingFile, fix, checks)

Line numbers: only what the mapping files use is understood: `[table]`, `[[array.of.tables]]`,
`key = value` (also dotted and quoted keys) and values that span lines (arrays, strings).
"""

from __future__ import annotations

import difflib
import functools
import re
import tomllib
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from connector.errors import ConfigError, ConfigProblem

__all__ = ["Check", "KeyLines", "Loc", "Strict", "display", "load_toml", "parse", "read_text",
           "suggest"]

Loc = tuple[str | int, ...]
# A cross-entry problem: where, what, how to fix, and optionally the key whose line to show
# (a missing section has no line of its own).
Check = tuple[Loc, str, str] | tuple[Loc, str, str, Loc]
M = TypeVar("M", bound=BaseModel)

# Segments pydantic adds to an error location for a union member or a validator; no TOML keys.
_TAG = re.compile(r"^(str|int|float|bool|none|[a-z\-]+\[.*\]|[a-z]+-[a-z\-]+.*)$")


# --- line numbers of keys ----------------------------------------------------------------------

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"""^\s*((?:"[^"]*"|'[^']*'|[A-Za-z0-9_\-]+)(?:\s*\.\s*(?:"[^"]*"|'[^']*'|[A-Za-z0-9_\-]+))*)\s*=""")


def _split_key(text: str) -> list[str]:
    parts = re.findall(r""""([^"]*)"|'([^']*)'|([A-Za-z0-9_\-]+)""", text)
    return [a or b or c for a, b, c in parts]


class KeyLines:
    """Maps a key path such as ("interest", "rules", 3, "regex") to its 1-based line. The
    lines are found when first asked for: only a problem to report needs them, and a stage
    loads its mapping files every run."""

    def __init__(self, text: str) -> None:
        self.text = text

    @functools.cached_property
    def lines(self) -> dict[Loc, int]:
        """Every key path and table header of the text, by its first line."""
        lines: dict[Loc, int] = {}
        counters: dict[tuple[str, ...], int] = {}
        current: Loc = ()
        depth = 0  # open brackets of a multi-line value: lines inside are no keys
        in_multiline_string = False
        for number, line in enumerate(self.text.splitlines(), start=1):
            stripped = line.strip()
            if in_multiline_string:
                if '"""' in stripped or "'''" in stripped:
                    in_multiline_string = False
                continue
            if depth > 0:
                depth += _bracket_balance(stripped)
                continue
            if not stripped or stripped.startswith("#"):
                continue
            header = _HEADER.match(line)
            if header and not _KEY.match(line):
                names = tuple(_split_key(header.group(2)))
                if header.group(1) == "[[":
                    index = counters.get(names, -1) + 1
                    counters[names] = index
                    current = (*self._resolve(names[:-1], counters), names[-1], index)
                else:
                    current = self._resolve(names, counters)
                lines.setdefault(current, number)
                continue
            key = _KEY.match(line)
            if key:
                path = (*current, *_split_key(key.group(1)))
                lines.setdefault(path, number)
                value = line[key.end():]
                if value.count('"""') == 1 or value.count("'''") == 1:
                    in_multiline_string = True
                depth = max(0, _bracket_balance(value))
        return lines

    @staticmethod
    def _resolve(names: Sequence[str], counters: dict[tuple[str, ...], int]) -> Loc:
        """A table path inside arrays of tables refers to their latest element."""
        out: list[str | int] = []
        for i in range(len(names)):
            out.append(names[i])
            prefix = tuple(names[: i + 1])
            if prefix in counters:
                out.append(counters[prefix])
        return tuple(out)

    def line_of(self, path: Sequence[str | int]) -> int | None:
        """The line of `path`, or of its nearest enclosing key or table that has one."""
        parts = tuple(path)
        while parts:
            if parts in self.lines:
                return self.lines[parts]
            parts = parts[:-1]
        return None


def _bracket_balance(text: str) -> int:
    """Open minus closed brackets outside strings and comments."""
    balance = 0
    quote = ""
    for ch in text:
        if quote:
            if ch == quote:
                quote = ""
            continue
        if ch in "\"'":
            quote = ch
        elif ch == "#":
            break
        elif ch in "[{":
            balance += 1
        elif ch in "]}":
            balance -= 1
    return balance


# --- reading and validating ---------------------------------------------------------------------


class Strict(BaseModel):
    """Base of every mapping-file model: unknown keys are errors, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def display(loc: Sequence[str | int]) -> str:
    """A key path as an admin reads it: `fields[3].map`."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            text = part if re.fullmatch(r"[A-Za-z0-9_\-]+", part) else f'"{part}"'
            out += ("." if out else "") + text
    return out


def suggest(word: str, known: Iterable[str]) -> str:
    """`did you mean 'x'? ` when a known word is close, else nothing."""
    close = difflib.get_close_matches(word, list(known), n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}? " if close else ""


def _has(node: Any, part: str | int) -> bool:
    if isinstance(node, dict):
        return isinstance(part, str) and part in node
    return isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)


def _clean(raw: Any, loc: Sequence[str | int]) -> Loc:
    """Keep the parts of an error location that are keys of the file (or the missing last one)."""
    out: list[str | int] = []
    node: Any = raw
    for i, part in enumerate(loc):
        if _has(node, part):
            node = node[part]
        elif isinstance(part, str) and _TAG.match(part):
            continue
        else:
            node = None
            if i < len(loc) - 1 and isinstance(part, str) and part[:1].isupper() and \
                    isinstance(loc[i + 1], str):
                continue  # a union member's class name ("Member") before its field
        out.append(part)
    return tuple(out)


def read_text(path: Path, what: str, config_key: str) -> str:
    """The file's text; a missing file is one clear problem."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([ConfigProblem(
            str(path), "(file)", f"{what} file not found",
            f"point [mappings] {config_key} in the config at a {Path(path).name} "
            f"(copy the shipped mappings/{config_key}.toml)",
        )]) from None


def load_toml(text: str, file: str) -> tuple[dict[str, Any], KeyLines]:
    """The file's table and the line of each key; a syntax error is one problem with its line."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = getattr(exc, "lineno", None)  # Python 3.14 gives it; older ones only say it
        match = re.search(r"line (\d+)", str(exc))
        if line is None and match:
            line = int(match.group(1))
        raise ConfigError([ConfigProblem(file, "(syntax)", f"not valid TOML: {exc}",
                                         "fix the TOML syntax", line)]) from None
    return raw, KeyLines(text)


def parse(
    text: str,
    file: str,
    model: type[M],
    fix: Callable[[str, str, Loc], str],
    semantic: Callable[[dict[str, Any]], Sequence[Check]],
    unknown: Callable[[Loc], str] = lambda loc: "unknown key",
) -> tuple[M, KeyLines]:
    """Validate `text` against `model`, then run `semantic` (checks across entries) on the raw
    table; raise `ConfigError` with every problem, sorted by line."""
    raw, lines = load_toml(text, file)
    problems: list[ConfigProblem] = []
    parsed: M | None = None
    try:
        parsed = model.model_validate(raw)
    except ValidationError as exc:
        by_key: dict[Loc, list[dict[str, Any]]] = {}
        for err in exc.errors(include_url=False, include_input=False):
            by_key.setdefault(_clean(raw, err["loc"]), []).append(dict(err))
        for loc, errs in by_key.items():
            kinds = [str(e["type"]) for e in errs]
            if len(errs) > 1 and all(k.endswith(("_type", "_parsing")) for k in kinds):
                msg, kind = "wrong type of value", "type"
            else:
                kind = kinds[0]
                msg = str(errs[0]["msg"]).removeprefix("Value error, ")
                if kind == "extra_forbidden":
                    msg = unknown(loc)
                elif kind == "missing":
                    msg = "required key is missing"
            problems.append(ConfigProblem(file, display(loc), msg, fix(kind, msg, loc),
                                          lines.line_of(loc)))
    try:
        checks = list(semantic(raw))
    except (AttributeError, TypeError, KeyError):
        checks = []  # the shape is already wrong and reported above
    for check in checks:
        loc, msg, how = check[0], check[1], check[2]
        line_loc = check[3] if len(check) > 3 else loc
        problems.append(ConfigProblem(file, display(loc), msg, how, lines.line_of(line_loc)))
    if problems or parsed is None:
        unique: dict[str, ConfigProblem] = {}
        for p in problems:
            unique.setdefault(f"{p.key}|{p.problem}", p)
        raise ConfigError(sorted(unique.values(), key=lambda p: (p.line or 0, p.key)))
    return parsed, lines
