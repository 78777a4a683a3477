"""Which HubSpot contact properties a pull asks for: the core set plus whatever the mapping and
scoring files name, so a property added to a mapping is pulled from the next run on."""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

from connector.config import Config
from connector.hubspot.settings import CORE_PROPERTIES

__all__ = ["needed_properties"]

# Keys under which mapping files name HubSpot properties.
_PROPERTY_KEYS = {"hubspot", "hubspot_property", "property", "properties"}


def _walk(node: Any, key: str | None = None) -> Iterator[str]:
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _walk(v, k)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item, key)
    elif isinstance(node, str) and key in _PROPERTY_KEYS and node.replace("_", "").isalnum():
        yield node


@lru_cache(maxsize=32)
def _named_in(text: str) -> tuple[str, ...]:
    """The property names a mapping file's text names (parsed once per text: every pull asks,
    and parsing the files cost an incremental pull most of its CPU); none when it is not TOML
    (`mappings check` reports it; the pull still has its core set)."""
    try:
        return tuple(_walk(tomllib.loads(text)))
    except tomllib.TOMLDecodeError:
        return ()


def needed_properties(config: Config | None) -> list[str]:
    """Core properties first, then the mapping files' ones, each once, in a stable order."""
    names = list(CORE_PROPERTIES)
    if config is not None:
        for mapping in ("fields", "scoring", "lifecycle", "routing"):
            path: Path = config.mapping_path(mapping)
            if path.is_file():
                names.extend(_named_in(path.read_text(encoding="utf-8")))
    return list(dict.fromkeys(n.lower() for n in names))
