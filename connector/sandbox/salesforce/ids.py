"""Salesforce-style record ids: 15 case-sensitive characters plus the 3-character
case-insensitive checksum that makes the 18-character form."""

from __future__ import annotations

import itertools
import re
import threading

from . import settings

__all__ = ["IdFactory", "base62", "is_valid_id", "prefix_of", "to_18"]

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_SUFFIX = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_ID_RE = re.compile(r"^[a-zA-Z0-9]{15}([a-zA-Z0-9]{3})?$")


def to_18(id15: str) -> str:
    """Append the checksum Salesforce computes: one character per 5-character chunk, whose
    bits say which characters of the chunk are upper case."""
    suffix = ""
    for chunk in range(3):
        bits = 0
        for pos, char in enumerate(id15[chunk * 5 : chunk * 5 + 5]):
            if "A" <= char <= "Z":
                bits |= 1 << pos
        suffix += _SUFFIX[bits]
    return id15 + suffix


def is_valid_id(value: object) -> bool:
    """True for a well-formed 15- or 18-character id whose checksum (if given) matches."""
    if not isinstance(value, str) or not _ID_RE.match(value):
        return False
    return len(value) == 15 or to_18(value[:15]) == value


def prefix_of(value: str) -> str:
    return value[:3]


class IdFactory:
    """Makes new ids per key prefix: prefix + pod "5g00000" + a base-62 counter."""

    def __init__(self, pod: str = "5g0") -> None:
        self._pod = pod
        self._counters: dict[str, itertools.count[int]] = {}
        self._lock = threading.Lock()

    def new(self, sobject: str) -> str:
        return self.new_raw(settings.KEY_PREFIXES[sobject])

    def new_raw(self, prefix: str) -> str:
        with self._lock:
            n = next(self._counters.setdefault(prefix, itertools.count(1)))
        return to_18(prefix + self._pod + base62(n, 15 - len(prefix) - len(self._pod)))


def base62(n: int, width: int) -> str:
    """`n` in base 62 (Salesforce's id alphabet), left-padded with zeros to `width`."""
    digits = []
    while n:
        n, r = divmod(n, 62)
        digits.append(_ALPHABET[r])
    return "".join(reversed(digits)).rjust(width, "0")
