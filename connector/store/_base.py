"""What every part of the store shares: the engine, sessions, the schema, and the boundary
where a database failure becomes a `StoreError`.

Database failures surface where the store touches the database: a connection (`migrate`,
`schema_revision`, `check_writable`) or a transaction (`transaction()`, which every other
method goes through). Each is translated there, once, so no caller sees a driver's exception.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar, cast

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Connection, Engine, Table, create_engine, event, insert, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError
from sqlalchemy.orm import Session, sessionmaker

from connector.clock import Clock, SystemClock
from connector.errors import StoreError
from connector.store._errors import (
    DATABASE_URL,
    URL_FIX,
    DatabaseLocation,
    directory_error,
    store_error,
)
from connector.store.models import Bookmark

__all__ = ["MIGRATIONS", "StoreBase"]

MIGRATIONS = Path(__file__).parent / "migrations"
CONNECT_TIMEOUT = 10  # seconds a PostgreSQL server may take to answer before we report it
_WRITE_CHECK_STREAM = "handshake:write-check"  # a bookmark written and rolled back


# Rows a multi-row INSERT ... VALUES carries ("insertmanyvalues", SQLAlchemy's executemany with
# RETURNING): 1,000 rows of the widest hot table (activities, 10 columns) is 10,000 parameters,
# well under PostgreSQL's 65,535 per statement and SQLite's 32,766.
INSERT_PAGE = 1000


T = TypeVar("T")


def padded(values: Sequence[T], cap: int = INSERT_PAGE) -> list[T]:
    """`values` with its last one repeated up to the next power of two (or `cap`), for an
    expanding IN list: its statement text then comes in a dozen lengths. Each length is a
    statement the driver prepares and keeps (128 a connection, an IN of a thousand values tens
    of kilobytes), so a page-sized list of every length made a long pull's memory grow."""
    out = list(values)
    n = len(out)
    if n:
        size = 1 << (n - 1).bit_length()
        if n <= cap < size:
            size = cap
        out.extend([out[-1]] * (size - n))
    return out


def in_pages(values: Sequence[T], size: int = INSERT_PAGE) -> Iterator[list[T]]:
    """`values` a page of `size` at a time, each `padded`: the expanding IN lists of a query
    read or written page by page (a repeated value matches its rows once)."""
    for k in range(0, len(values), size):
        yield padded(values[k:k + size], size)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # One writer (a stage holds its lease): WAL lets readers (status, /metrics) run beside it,
    # and NORMAL sync is durable across a process crash, losing at most the last commits to a
    # power cut, which a re-pull fetches again.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    # An 8 MB page cache per connection (the default is 2 MB): bounded, so memory stays flat
    # with size. Temporary sorts stay on disk (temp_store default): a GROUP BY over millions of
    # activities must not grow the process.
    cur.execute("PRAGMA cache_size=-8192")
    cur.close()


def _json_loads(value: str | bytes) -> Any:
    """Decode a JSON column (text from SQLite, bytes from psycopg): most activities'
    `details` are empty, so skip the decoder for them (a fresh dict each time: callers may
    change it)."""
    if value == "{}" or value == b"{}":
        return {}
    return json.loads(value)


@functools.cache
def _head_revision() -> str | None:
    """The newest revision of the migrations shipped with this Handshake (they cannot change
    while it runs): read once, as loading alembic's scripts costs tens of milliseconds."""
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(cfg).get_current_head()


def _rowcount(result: Any) -> int:
    """Rows an UPDATE or INSERT touched (a CursorResult's rowcount; typed Result lacks it)."""
    return int(getattr(result, "rowcount", 0) or 0)


def _table(entity: Any) -> Table:
    """A mapped class's Core table (for Core statements on hot paths)."""
    return cast(Table, entity.__table__)


class StoreBase:
    """The state database's engine, sessions and schema; the parts of `Store` build on it."""

    def __init__(self, url: str, *, clock: Clock | None = None, echo: bool = False) -> None:
        self.url = url
        self.clock = clock or SystemClock()
        try:
            parsed = make_url(url)
        except (ArgumentError, ValueError) as exc:
            raise StoreError(f"{DATABASE_URL} is not a database URL", fix=URL_FIX) from exc
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        self.location = DatabaseLocation.from_url(parsed)
        self._password = parsed.password
        # hide_parameters: a failed statement's text never carries a contact's values.
        # pool_use_lifo: the connection used last is used next, so one connection does a
        # stage's work and the others (opened when a lease's heartbeat overlapped a write) stay
        # idle; taken in turn, each filled a page cache and prepared statements of its own.
        kwargs: dict[str, Any] = {"echo": echo, "future": True, "hide_parameters": True,
                                  "json_deserializer": _json_loads,
                                  "insertmanyvalues_page_size": INSERT_PAGE}
        if parsed.get_backend_name() == "sqlite":
            if self.location.file and not self.location.read_only:
                try:
                    Path(self.location.file).parent.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise directory_error(exc, self.location) from exc
            kwargs["connect_args"] = {"timeout": 30}
            if self.location.file:  # a file's pool (an in-memory database has one connection)
                kwargs["pool_use_lifo"] = True
        else:
            kwargs["pool_pre_ping"] = True
            kwargs["pool_use_lifo"] = True
            if parsed.get_backend_name() == "postgresql" and "connect_timeout" not in parsed.query:
                kwargs["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT}
        try:
            self.engine: Engine = create_engine(parsed, **kwargs)
        except (ArgumentError, NoSuchModuleError, ImportError) as exc:
            raise StoreError(
                f"no database driver for {parsed.drivername!r} in {DATABASE_URL}", fix=URL_FIX
            ) from exc
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._statements: dict[str, Any] = {}
        self._driver_errors: tuple[type[BaseException], ...] = (
            DBAPIError, self.engine.dialect.loaded_dbapi.Error,
        )

    # --- failures ---------------------------------------------------------------------------------

    @contextmanager
    def _database_errors(self) -> Iterator[None]:
        """Raise a database failure inside the block as a `StoreError` (the driver's as cause)."""
        try:
            yield
        except self._driver_errors as exc:
            raise store_error(exc, self.location, password=self._password) from exc

    # --- schema -----------------------------------------------------------------------------------

    def _alembic(self) -> AlembicConfig:
        cfg = AlembicConfig()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        return cfg

    def migrate(self, revision: str = "head") -> None:
        """Create or upgrade the schema in place to `revision`."""
        cfg = self._alembic()
        with self._database_errors(), self.engine.begin() as conn:
            current = MigrationContext.configure(conn).get_current_revision()
            if revision == "head" and current is not None and current == self.head_revision():
                return  # every stage run opens the store this way: most find nothing to do
            self._check_known_revision(current)
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)

    def schema_revision(self) -> str | None:
        """The schema revision the database is at (None before the first `migrate()`)."""
        with self._database_errors(), self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def head_revision(self) -> str | None:
        """The newest schema revision this version of Handshake knows."""
        return _head_revision()

    def _check_known_revision(self, current: str | None) -> None:
        """Refuse a schema upgraded by a newer Handshake: this one cannot read or migrate it."""
        if current is None:
            return
        try:
            known = ScriptDirectory.from_config(self._alembic()).get_revision(current)
        except CommandError:
            known = None
        if known is None:
            raise StoreError(
                f"{self.location} has schema revision {current}, which this version of "
                "Handshake does not know (a newer version upgraded it)",
                fix=f"run the Handshake version that upgraded it, or a newer one, or set "
                    f"{DATABASE_URL} to another database",
            )

    def check_writable(self) -> None:
        """Prove the state database can be reached, read and written, changing nothing: read its
        schema revision, then write in a transaction that is rolled back (a bookmark when the
        schema is current; a scratch table, as `migrate()` will need, when it is absent or
        older). Raises `StoreError` with the fix otherwise. A SQLite file that does not exist yet
        is created empty, as the first run would."""
        with self._database_errors(), self.engine.connect() as conn:
            current = MigrationContext.configure(conn).get_current_revision()
            conn.rollback()
            self._check_known_revision(current)
            tx = conn.begin()
            try:
                if current is not None and current == self.head_revision():
                    conn.execute(insert(Bookmark).values(
                        stream=_WRITE_CHECK_STREAM, value="", updated_at=self.clock.now()))
                else:
                    # SQLite commits DDL at once (no rollback), so the table is dropped too.
                    conn.execute(text("CREATE TABLE IF NOT EXISTS handshake_write_check (id INT)"))
                    conn.execute(text("DROP TABLE handshake_write_check"))
            finally:
                tx.rollback()

    def close(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()

    # --- sessions ---------------------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One transaction: committed when the block ends, rolled back if it raises. A database
        failure inside it is raised as a `StoreError`; the caller's own exceptions pass as they
        are."""
        with self._database_errors(), self._sessions.begin() as session:
            yield session

    def _now(self) -> datetime:
        return self.clock.now()

    def _statement(self, name: str, build: Callable[[], Any]) -> Any:
        """The Core statement `name`, built once per store: hot paths execute it for a page of
        rows at a time (executemany), so it is neither rebuilt nor its cache key recomputed
        from scratch per call."""
        stmt = self._statements.get(name)
        if stmt is None:
            stmt = self._statements[name] = build()
        return stmt

    @staticmethod
    def _core(session: Session) -> Connection:
        """The session's connection, for Core statements that need no ORM objects."""
        return session.connection()

    def _insert(self, table: Any) -> Any:
        dialect = self.engine.dialect.name
        return (postgresql if dialect == "postgresql" else sqlite).insert(table)
