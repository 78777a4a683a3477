"""The files Handshake ships for an admin to start from: the four mapping files and the
commented configuration (package data, so an installed wheel has them).

The repository's top-level `mappings/` and `config.example.toml` are the copies people edit;
these are the same files, kept equal by a test (tests/test_packaging.py): after changing one,
copy it here.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["CONFIG_EXAMPLE", "DEFAULTS_DIR", "DEFAULT_MAPPINGS", "MAPPING_FILES", "default_mapping"]

DEFAULTS_DIR = Path(__file__).resolve().parent
CONFIG_EXAMPLE = DEFAULTS_DIR / "config.example.toml"
# The mapping files an admin edits, by their [mappings] key, and their shipped defaults.
MAPPING_FILES = ("fields", "scoring", "routing", "sla")
DEFAULT_MAPPINGS = {name: DEFAULTS_DIR / f"{name}.toml" for name in MAPPING_FILES}


def default_mapping(name: str) -> Path | None:
    """The shipped default of a mapping file (`fields`, `scoring`, `routing`, `sla`); None for a
    mapping Handshake ships no default of."""
    return DEFAULT_MAPPINGS.get(name)
