"""Line numbers for keys of a TOML file (tomllib gives none), so every problem in a mapping
file can name the line to fix.

Only what Handshake's mapping files use is understood: `[table]`, `[[array.of.tables]]`,
`key = value` (also dotted and quoted keys) and values that span lines (arrays, strings).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = ["KeyLines"]

Path = tuple[str | int, ...]

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"""^\s*((?:"[^"]*"|'[^']*'|[A-Za-z0-9_\-]+)(?:\s*\.\s*(?:"[^"]*"|'[^']*'|[A-Za-z0-9_\-]+))*)\s*=""")


def _split_key(text: str) -> list[str]:
    parts = re.findall(r""""([^"]*)"|'([^']*)'|([A-Za-z0-9_\-]+)""", text)
    return [a or b or c for a, b, c in parts]


class KeyLines:
    """Maps a key path such as ("interest", "rules", 3, "regex") to its 1-based line."""

    def __init__(self, text: str) -> None:
        self.lines: dict[Path, int] = {}
        counters: dict[tuple[str, ...], int] = {}
        current: Path = ()
        depth = 0  # open brackets of a multi-line value: lines inside are no keys
        in_multiline_string = False
        for number, line in enumerate(text.splitlines(), start=1):
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
                self.lines.setdefault(current, number)
                continue
            key = _KEY.match(line)
            if key:
                path = (*current, *_split_key(key.group(1)))
                self.lines.setdefault(path, number)
                value = line[key.end():]
                if value.count('"""') == 1 or value.count("'''") == 1:
                    in_multiline_string = True
                depth = max(0, _bracket_balance(value))

    @staticmethod
    def _resolve(names: Sequence[str], counters: dict[tuple[str, ...], int]) -> Path:
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
