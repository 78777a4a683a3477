"""Shared fixtures: a migrated state store on SQLite and on PostgreSQL."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from connector.clock import FrozenClock
from connector.store import Store

pytest.register_assert_rewrite("tests.pull.helpers")

POSTGRES_URL = os.environ.get(
    "HANDSHAKE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def postgres_unavailable() -> str | None:
    """Why the PostgreSQL tests cannot run here, or None when a server answers."""
    try:
        import psycopg

        plain = POSTGRES_URL.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(plain, connect_timeout=3):
            return None
    except Exception as exc:  # any failure means: no usable server
        return f"no PostgreSQL server answers at {POSTGRES_URL} ({type(exc).__name__})"


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime(2026, 11, 1, 9, 0, tzinfo=UTC))


def _postgres_store(clock: FrozenClock) -> Iterator[Store]:
    """A store in a throw-away schema of the test database, dropped afterwards."""
    reason = postgres_unavailable()
    if reason:
        pytest.skip(reason)
    import psycopg

    schema = f"hs_test_{uuid.uuid4().hex[:10]}"
    plain = POSTGRES_URL.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in POSTGRES_URL else "?"
    store = Store(f"{POSTGRES_URL}{sep}options=-csearch_path%3D{schema}", clock=clock)
    try:
        yield store
    finally:
        store.close()
        with psycopg.connect(plain, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend_store(request: pytest.FixtureRequest, tmp_path: Path, clock: FrozenClock) -> Iterator[Store]:
    """An empty, unmigrated store on each backend."""
    if request.param == "sqlite":
        store = Store(f"sqlite:///{tmp_path / 'state.db'}", clock=clock)
        yield store
        store.close()
    else:
        yield from _postgres_store(clock)


@pytest.fixture
def store(backend_store: Store) -> Store:
    """A migrated store on each backend."""
    backend_store.migrate()
    return backend_store
