"""State-database URLs for runtime tests on each backend, and a config file for them."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import POSTGRES_URL, postgres_unavailable

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@contextmanager
def database_url(backend: str, folder: Path, name: str = "state") -> Iterator[str]:
    """A fresh state database: a SQLite file in `folder`, or a throw-away PostgreSQL schema."""
    if backend == "sqlite":
        yield f"sqlite:///{folder / (name + '.db')}"
        return
    reason = postgres_unavailable()
    if reason:
        pytest.skip(reason)
    import psycopg

    schema = f"hs_rt_{uuid.uuid4().hex[:10]}"
    plain = POSTGRES_URL.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in POSTGRES_URL else "?"
    try:
        yield f"{POSTGRES_URL}{sep}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(plain, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def with_database(toml: str, url: str, **runtime: float) -> str:
    """`toml` (a sandbox config) with its state database replaced by `url` and `[runtime]`
    settings added."""
    lines = [f'database_url = "{url}"' if line.startswith("database_url") else line
             for line in toml.splitlines()]
    extra = "".join(f"{k} = {v}\n" for k, v in runtime.items())
    return "\n".join(lines) + ("\n[runtime]\n" + extra if extra else "\n")
