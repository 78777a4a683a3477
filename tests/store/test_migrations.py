"""Schema migrations upgrade an existing database in place, keeping its data."""

from __future__ import annotations

from datetime import UTC, datetime

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from connector.store import Store
from connector.store.models import Base


def test_upgrade_from_first_schema_keeps_data(backend_store: Store) -> None:
    store = backend_store
    store.migrate("0001")
    assert store.schema_revision() == "0001"
    assert "leases" not in inspect(store.engine).get_table_names()
    with store.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO contacts (hubspot_id, email, properties, archived, first_seen_at,"
                " updated_at) VALUES ('7', 'old@example.com', '{}', false, :t, :t)"
            ),
            {"t": datetime(2026, 1, 1, tzinfo=UTC).replace(tzinfo=None)},
        )
        conn.execute(
            text("INSERT INTO bookmarks (stream, value, updated_at) VALUES ('contacts', 'x', :t)"),
            {"t": datetime(2026, 1, 1)},
        )

    store.migrate()

    assert store.schema_revision() == store.head_revision()
    old = store.get_contact("7")
    assert old is not None and old.email == "old@example.com"
    # Contacts from before the re-scoring marker existed are all due for scoring.
    assert old.inputs_changed_at is not None
    assert store.get_bookmark("contacts") == "x"
    assert store.next_round_robin("team", 2) == 0
    with store.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []


def test_models_and_migrations_agree(store: Store) -> None:
    with store.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
