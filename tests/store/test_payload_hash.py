"""The write ledger's payload hash stays the hash of `json.dumps` with sorted keys, compact and
ASCII-only, whichever encoder makes the text: a changed hash would send every write again."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from connector.store.ledger import payload_hash


def _json_hash(payload: Any) -> str:
    raw = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(raw.encode()).hexdigest()


@pytest.mark.parametrize("payload", [
    {"hs_score": "42.5", "hs_grade": "A", "hs_reasons": "Grade A (60 fit pts); interest 42.5"},
    {"z": "last", "a": "first", "M": "upper before lower"},
    {"quote": 'say "hi"', "slash": "a\\b"},
    {"newline": "a\nb", "tab": "a\tb", "nul": "a\x00b", "unit": "a\x1fb"},
    {"del": "a\x7fb"},
    {"accent": "Zoë Müller", "euro": "€5", "emoji": "\U0001f600", "separator": "a\u2028b"},
    {"é": "key past ASCII", "e": "plain"},
    {},
    {"number": 1.0, "big": 1e16, "int": 3, "none": None, "yes": True},
    {"nested": {"b": "2", "a": "1"}, "list": ["x", 1]},
    {"when": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)},
    ["a", "b"],
    "text",
])
def test_payload_hash_is_the_sorted_compact_json_hash(payload: Any) -> None:
    assert payload_hash(payload) == _json_hash(payload)
