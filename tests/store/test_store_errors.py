"""Database failures reach callers as StoreErrors: what failed, where, and the fix, in one line,
never a password or a contact's data; the driver's exception stays as the cause for DEBUG."""

from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
import stat
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import event, insert, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError

from connector.errors import FatalError, StoreError
from connector.store import Contact, ContactRecord, Store
from connector.store._errors import DatabaseLocation, store_error
from tests.conftest import POSTGRES_URL, postgres_unavailable

REPO = Path(__file__).resolve().parents[2]
SECRET_EMAIL = "secret.person@example.com"
SECRET_NAME = "Secretname"
PASSWORD = "s3cret-pw"


def raised(call: Callable[[], object]) -> StoreError:
    """The StoreError `call` raises, checked for what every one must be."""
    with pytest.raises(StoreError) as info:
        call()
    err = info.value
    assert isinstance(err, FatalError) and err.system == "state database"
    assert err.message and "\n" not in err.message  # one line, no traceback
    assert err.fix
    assert "Traceback" not in str(err)
    return err


def text_of(err: StoreError) -> str:
    return f"{err} {err.fix}"


@pytest.fixture
def sqlite_file(tmp_path: Path) -> Path:
    """A migrated SQLite state database holding one bookmark, closed."""
    path = tmp_path / "state.db"
    store = Store(f"sqlite:///{path}")
    store.migrate()
    store.set_bookmark("contacts", "2026-10-01")
    store.close()
    return path


# --- PostgreSQL that cannot be reached -------------------------------------------------------


def test_postgres_where_nothing_listens_names_host_port_and_fix_without_password() -> None:
    store = Store(f"postgresql://handshake:{PASSWORD}@127.0.0.1:1/handshake")
    for call in (store.migrate, store.check_writable, store.schema_revision,
                 lambda: store.get_bookmark("contacts")):
        err = raised(call)
        assert "127.0.0.1:1" in str(err)
        assert "connection refused" in str(err)
        assert "start the PostgreSQL server at 127.0.0.1:1" in str(err.fix)
        assert "[state] database_url" in str(err.fix)
        assert PASSWORD not in text_of(err)
        assert isinstance(err.__cause__, DBAPIError)
    store.close()


def test_postgres_that_never_answers_is_reported_after_the_connect_timeout() -> None:
    # A socket that accepts connections but never speaks: the server "answers nothing".
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        port = silent.getsockname()[1]
        store = Store(f"postgresql://handshake:{PASSWORD}@127.0.0.1:{port}/handshake"
                      "?connect_timeout=2")
        err = raised(store.check_writable)
        store.close()
    assert f"nothing answered at 127.0.0.1:{port}" in str(err)
    assert "[state] database_url" in str(err.fix)
    assert PASSWORD not in text_of(err)


def _pg_url(user: str, database: str) -> str:
    """The test server's URL with another role and database."""
    url = make_url(POSTGRES_URL).set(username=user, database=database, password=None)
    return url.render_as_string(hide_password=False)


@pytest.mark.postgres
def test_postgres_database_that_does_not_exist() -> None:
    if reason := postgres_unavailable():
        pytest.skip(reason)
    store = Store(_pg_url("postgres", "handshake_no_such_db"))
    err = raised(store.migrate)
    store.close()
    assert "the database handshake_no_such_db does not exist" in str(err)
    assert "createdb" in str(err.fix) and "[state] database_url" in str(err.fix)


@pytest.mark.postgres
def test_postgres_role_that_does_not_exist() -> None:
    if reason := postgres_unavailable():
        pytest.skip(reason)
    store = Store(_pg_url("handshake_no_such_role", "test"))
    err = raised(lambda: store.get_bookmark("contacts"))
    store.close()
    assert "the role handshake_no_such_role does not exist" in str(err)
    assert "[state] database_url" in str(err.fix)


@pytest.mark.postgres
def test_postgres_that_accepts_no_writes(store: Store) -> None:
    if store.engine.dialect.name != "postgresql":
        pytest.skip("a PostgreSQL setting")
    store.set_bookmark("contacts", "kept")
    read_only = Store(f"{store.url}%20-cdefault_transaction_read_only%3Don")
    try:
        assert read_only.get_bookmark("contacts") == "kept"  # reads still work
        err = raised(lambda: read_only.set_bookmark("contacts", "changed"))
        assert "accepts no writes" in str(err) and "INSERT on bookmarks" in str(err)
        assert "primary server" in str(err.fix)
        raised(read_only.check_writable)
    finally:
        read_only.close()
    assert store.get_bookmark("contacts") == "kept"


# --- SQLite files that cannot be used ------------------------------------------------------


def test_sqlite_in_a_missing_directory_creates_it(tmp_path: Path) -> None:
    path = tmp_path / "not" / "yet" / "state.db"
    store = Store(f"sqlite:///{path}")
    store.check_writable()
    store.migrate()
    store.set_bookmark("contacts", "x")
    store.close()
    assert path.is_file()


def test_sqlite_whose_directory_cannot_be_created(tmp_path: Path) -> None:
    # A regular file where a directory should be: refused even to root.
    (tmp_path / "taken").write_text("not a directory")
    path = tmp_path / "taken" / "sub" / "state.db"
    err = raised(lambda: Store(f"sqlite:///{path}"))
    assert f"cannot create the directory {path.parent}" in str(err)
    assert "writable directory" in str(err.fix)
    assert isinstance(err.__cause__, OSError)


def test_sqlite_opened_read_only_refuses_writes_as_a_message(sqlite_file: Path) -> None:
    # mode=ro is read-only for root too, unlike file permissions.
    store = Store(f"sqlite:///file:{sqlite_file}?mode=ro&uri=true")
    assert store.get_bookmark("contacts") == "2026-10-01"  # reads work
    assert store.schema_revision() == store.head_revision()
    store.migrate()  # at head already: nothing to write
    err = raised(lambda: store.set_bookmark("contacts", "2026-10-02"))
    assert f"SQLite file {sqlite_file} is read-only" in str(err)
    assert "attempt to write a readonly database" in str(err)
    assert "mode=ro" in str(err.fix)
    assert isinstance(err.__cause__, DBAPIError)
    err = raised(store.check_writable)
    assert "read-only" in str(err)
    store.close()
    writable = Store(f"sqlite:///{sqlite_file}")
    assert writable.get_bookmark("contacts") == "2026-10-01"  # the refused write left no trace
    writable.close()


def test_sqlite_read_only_and_empty_cannot_take_a_schema(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    path.touch()  # an empty file is an empty SQLite database
    store = Store(f"sqlite:///file:{path}?mode=ro&uri=true")
    # Even opening it writes (the switch to WAL), so every use says read-only.
    for call in (store.schema_revision, store.check_writable, store.migrate):
        err = raised(call)
        assert f"SQLite file {path} is read-only" in str(err)
    store.close()
    assert path.stat().st_size == 0


def test_sqlite_uri_makes_no_stray_directory(
    sqlite_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Store(f"sqlite:///file:{sqlite_file}?mode=ro&uri=true").close()
    assert not (tmp_path / "file:").exists()


_UNPRIVILEGED_CHECKS = textwrap.dedent("""
    import json, os, sys
    from connector.errors import StoreError
    from connector.store import Store

    base = sys.argv[1]
    out = {}
    path = os.path.join(base, "state.db")
    store = Store(f"sqlite:///{path}")
    store.migrate()
    store.set_bookmark("contacts", "kept")
    store.close()
    os.chmod(path, 0o444)
    store = Store(f"sqlite:///{path}")
    out["read"] = store.get_bookmark("contacts")
    for name, call in (("write", lambda: store.set_bookmark("contacts", "changed")),
                       ("check", store.check_writable)):
        try:
            call()
            out[name] = None
        except StoreError as err:
            out[name] = [err.message, err.fix]
    store.close()
    locked = os.path.join(base, "locked")
    os.mkdir(locked)
    os.chmod(locked, 0o555)
    try:
        Store(f"sqlite:///{os.path.join(locked, 'state.db')}").migrate()
        out["directory"] = None
    except StoreError as err:
        out["directory"] = [err.message, err.fix]
    finally:
        os.chmod(locked, 0o755)
    print(json.dumps(out))
""")


@pytest.fixture
def unprivileged() -> Iterator[tuple[list[str], Path]]:
    """How to run Python as a user whom file permissions bind (nobody, when we are root), and a
    directory that user owns."""
    base = Path(tempfile.mkdtemp(prefix="handshake-perm-"))
    prefix: list[str] = []
    if os.geteuid() == 0:
        if not shutil.which("setpriv"):
            pytest.skip("running as root without setpriv: file permissions do not bind root")
        hidden = [p for p in (REPO, Path(sys.prefix)) if not _open_to_others(p)]
        if hidden:
            pytest.skip(f"user nobody cannot reach {hidden[0]} (a folder on its way is closed to "
                        f"others, as `mktemp -d` makes them): the checks cannot run as nobody")
        os.chown(base, 65534, 65534)
        prefix = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    try:
        yield prefix, base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _open_to_others(path: Path) -> bool:
    """Whether a user other than the owner may enter `path` and every folder above it."""
    current = path.resolve()
    for folder in (current, *current.parents):
        if not folder.stat().st_mode & stat.S_IXOTH:
            return False
    return True


def test_sqlite_read_only_file_and_directory_by_permissions(
    unprivileged: tuple[list[str], Path],
) -> None:
    prefix, base = unprivileged
    done = subprocess.run(
        [*prefix, sys.executable, "-c", _UNPRIVILEGED_CHECKS, str(base)],
        check=False, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=base,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout)
    assert out["read"] == "kept"
    for name in ("write", "check"):
        message, fix = out[name]
        assert "is read-only" in message and "attempt to write a readonly database" in message
        assert "writable by the user running Handshake" in fix
    message, fix = out["directory"]
    assert "cannot open SQLite file" in message
    assert "may read and write in it" in fix


def test_sqlite_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    path.write_bytes(b"these are not the pages of a SQLite database\n" * 200)
    store = Store(f"sqlite:///{path}")
    for call in (store.migrate, store.check_writable, lambda: store.get_bookmark("x")):
        err = raised(call)
        assert f"SQLite file {path} is not a usable SQLite database" in str(err)
        assert "file is not a database" in str(err)
        assert "restore" in str(err.fix) and "backup" in str(err.fix)
    store.close()


def test_sqlite_disk_full(sqlite_file: Path) -> None:
    store = Store(f"sqlite:///{sqlite_file}")
    with store.engine.connect() as conn:
        pages = conn.exec_driver_sql("PRAGMA page_count").scalar()
    store.close()
    # The file may not grow: as good as a full disk, and reported the same way.
    event.listen(store.engine, "connect",
                 lambda dbapi_conn, _rec: dbapi_conn.execute(f"PRAGMA max_page_count={pages}"))
    records = [ContactRecord(str(i), f"u{i}@example.com", {"firstname": "x" * 200}, None, None)
               for i in range(2000)]
    err = raised(lambda: store.upsert_contacts(records))
    store.close()
    assert "is full" in str(err) and "INSERT on contacts" in str(err)
    assert "free space" in str(err.fix)
    assert "u1@example.com" not in text_of(err)


def test_sqlite_locked_by_another_writer(sqlite_file: Path) -> None:
    holder = sqlite3.connect(sqlite_file, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    waiter = sqlite3.connect(sqlite_file, timeout=0)
    try:
        with pytest.raises(sqlite3.OperationalError) as info:
            waiter.execute("INSERT INTO bookmarks (stream, value, updated_at) VALUES ('a', 'b', 0)")
    finally:
        waiter.close()
        holder.execute("ROLLBACK")
        holder.close()
    err = store_error(info.value, DatabaseLocation("sqlite", file=str(sqlite_file)))
    assert "locked" in err.message and str(sqlite_file) in err.message
    assert "another Handshake run" in (err.fix or "")


# --- what a failure may say -------------------------------------------------------------------


def test_a_failed_insert_never_shows_the_contacts_data(store: Store) -> None:
    store.upsert_contacts([ContactRecord("7", SECRET_EMAIL, {"firstname": SECRET_NAME}, None,
                                         None)])
    now = datetime(2026, 10, 1, tzinfo=UTC)

    def insert_again() -> None:
        with store.transaction() as s:
            s.add(Contact(hubspot_id="7", email=SECRET_EMAIL, properties={"firstname": SECRET_NAME},
                          archived=False, first_seen_at=now, updated_at=now))

    err = raised(insert_again)
    assert "refused an INSERT on contacts" in str(err)
    cause = err.__cause__
    assert isinstance(cause, IntegrityError)
    # Without hide_parameters SQLAlchemy would print the row's values in its message.
    assert "parameters hidden" in str(cause)
    for secret in (SECRET_EMAIL, SECRET_NAME):
        assert secret not in text_of(err)
        assert secret not in str(cause)


def test_a_driver_message_quoting_the_row_stays_out_of_the_store_error(store: Store) -> None:
    # PostgreSQL's DETAIL quotes the failing row (email included): the StoreError must not.
    def insert_incomplete() -> None:
        with store.transaction() as s:
            s.execute(insert(Contact).values(hubspot_id="8", email=SECRET_EMAIL, properties={},
                                             archived=False, first_seen_at=None,
                                             updated_at=datetime(2026, 10, 1, tzinfo=UTC)))

    err = raised(insert_incomplete)
    assert "INSERT on contacts" in str(err) and "first_seen_at" in str(err)
    assert SECRET_EMAIL not in text_of(err)
    assert isinstance(err.__cause__, IntegrityError)
    assert store.get_contact("8") is None


def test_the_callers_own_exceptions_pass_through_transaction(store: Store) -> None:
    with pytest.raises(KeyError), store.transaction():
        raise KeyError("not a database failure")


# --- schema and the write check ------------------------------------------------------------


def test_schema_from_a_newer_handshake_is_refused(store: Store) -> None:
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    for call in (store.migrate, store.check_writable):
        err = raised(call)
        assert "schema revision 9999" in str(err) and "newer version" in str(err)
    assert store.schema_revision() == "9999"


def test_check_writable_passes_and_changes_nothing(store: Store) -> None:
    store.check_writable()
    assert store.bookmarks() == {}
    assert store.schema_revision() == store.head_revision()


def test_check_writable_on_an_empty_database_leaves_it_empty(backend_store: Store) -> None:
    backend_store.check_writable()
    assert inspect(backend_store.engine).get_table_names() == []
    assert backend_store.schema_revision() is None


# --- PostgreSQL answers no local server can give ----------------------------------------------


class _PgError(Exception):
    """Stands in for a psycopg error: its text, SQLSTATE and diagnostic names."""

    def __init__(self, text: str, sqlstate: str | None = None, table: str | None = None) -> None:
        super().__init__(text)
        self.sqlstate = sqlstate
        self.diag = type("Diag", (), {"table_name": table, "column_name": None,
                                      "constraint_name": None})()


PG = DatabaseLocation("postgresql", host="db.internal", port=5433, database="handshake",
                      user="reader")


@pytest.mark.parametrize(("error", "said", "fix"), [
    (_PgError('connection failed: connection to server at "10.0.0.5", port 5433 failed: FATAL:  '
              'password authentication failed for user "reader"'),
     "refused the credentials of role reader", "correct the user and password"),
    (_PgError('connection failed: connection to server at "10.0.0.5", port 5433 failed: FATAL:  '
              'no pg_hba.conf entry for host "10.0.0.9", user "reader", database "handshake"'),
     "does not accept connections from this machine", "pg_hba.conf"),
    (_PgError("permission denied for table contacts", "42501", "contacts"),
     "role reader lacks a privilege", "grant role reader"),
    (_PgError("could not extend file: No space left on device", "53100"),
     "is full", "free space"),
    (_PgError("terminating connection due to administrator command", "57P01"),
     "lost the connection to PostgreSQL at db.internal:5433", "is running and reachable"),
    (_PgError('relation "contacts" does not exist', "42P01"),
     "has no table contacts", "handshake db upgrade"),
    (_PgError("deadlock detected\nDETAIL:  Process 1 waits for ShareLock", "40P01"),
     "conflicted with another connection", "run again"),
    (DataError("INSERT INTO contacts (hubspot_id, email) VALUES (%(id)s, %(email)s)",
               {"id": "secret.person@example.com", "email": SECRET_EMAIL},
               _PgError('invalid input syntax for type integer: "secret.person@example.com"',
                        "22P02", "contacts"), hide_parameters=True),
     "failed on an INSERT on contacts (SQLSTATE 22P02 on contacts)", "--log-level DEBUG"),
])
def test_postgres_failures_read_as_messages(error: Exception, said: str, fix: str) -> None:
    err = store_error(error, PG)
    assert said in err.message and "\n" not in err.message
    assert fix in str(err.fix)
    assert SECRET_EMAIL not in text_of(err)  # a driver text quoting a value is never copied


def test_a_password_in_a_driver_message_is_blanked() -> None:
    err = store_error(_PgError(f"connection failed: odd server reply {PASSWORD}"), PG,
                      password=PASSWORD)
    assert PASSWORD not in text_of(err) and "***" in err.message
