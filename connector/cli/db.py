"""`handshake db upgrade|status`: the state database's schema."""

from __future__ import annotations

import typer

from connector.cli._app import ConfigOption, app, load_checked_config, out
from connector.logs import bind_run, get_logger

__all__ = ["db_app"]

db_app = typer.Typer(help="The state database: schema upgrades and status.", no_args_is_help=True)
app.add_typer(db_app, name="db")
log = get_logger("cli")


@db_app.command("upgrade")
def db_upgrade(config: ConfigOption = None) -> None:
    """Create the state database or upgrade its schema in place to the newest version."""
    from connector.store import Store

    with bind_run():
        loaded = load_checked_config(config, require_secrets=False)
        store = Store(loaded.state.database_url)
        try:
            before = store.schema_revision()
            store.migrate()
            after = store.schema_revision()
        finally:
            store.close()
        log.info("schema upgraded", extra={"from_revision": before, "to_revision": after})
        out.print(f"schema: {before or 'empty'} → {after}", markup=False)


@db_app.command("status")
def db_status(config: ConfigOption = None) -> None:
    """Show the schema revision of the state database and the newest one available."""
    from connector.store import Store

    loaded = load_checked_config(config, require_secrets=False)
    store = Store(loaded.state.database_url)
    try:
        current, head = store.schema_revision(), store.head_revision()
    finally:
        store.close()
    out.print(f"schema revision: {current or 'none'} (newest: {head})", markup=False)
    if current != head:
        out.print("run `handshake db upgrade` to upgrade in place")
