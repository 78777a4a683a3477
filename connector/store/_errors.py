"""Database failures as `StoreError`s: what failed, where, and the fix, never record data.

The driver's own text is quoted only for a failure to connect, where it names hosts, ports,
roles and files. Once connected, a driver message may quote a failing row (PostgreSQL's
DETAIL line, a value that did not parse), so the message is built from the error code and the
names of the table, column or constraint alone. The caller keeps the driver's exception as
`__cause__`, shown at DEBUG only.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from sqlalchemy.engine import URL

from connector.errors import StoreError

__all__ = ["DatabaseLocation", "directory_error", "store_error"]

DATABASE_URL = "`[state] database_url`"
URL_FIX = (
    f"set {DATABASE_URL} to sqlite:///path/to/state.db or "
    "postgresql://user:password@host:5432/database"
)
_DEBUG_FIX = (
    "run again with --log-level DEBUG to see the database's own message (it may quote record "
    "data: review it before sharing)"
)
_BUG_FIX = (
    "the database refused a write Handshake should never make: run again with --log-level DEBUG "
    "and report the traceback (it may quote record data: review it before sharing)"
)


@dataclass(frozen=True, slots=True)
class DatabaseLocation:
    """Where the state database is, as an admin would name it: never the password."""

    backend: str
    file: str | None = None  # SQLite: the file, absolute; None in memory
    host: str | None = None
    port: int | None = None
    database: str | None = None
    user: str | None = None
    read_only: bool = False  # a SQLite URI opened with mode=ro

    @classmethod
    def from_url(cls, url: URL) -> DatabaseLocation:
        backend = url.get_backend_name()
        if backend == "sqlite":
            query = {k: str(v) for k, v in url.query.items()}
            path = url.database or ""
            if query.get("uri", "").lower() in ("true", "1") and path.startswith("file:"):
                path = _uri_path(path)
            if query.get("mode") == "memory" or path in ("", ":memory:"):
                return cls(backend)
            return cls(backend, file=os.path.abspath(path), read_only=query.get("mode") == "ro")
        return cls(backend, host=url.host, port=url.port, database=url.database,
                   user=url.username)

    @property
    def address(self) -> str:
        """host:port of a server (the local socket when the URL names no host)."""
        return f"{self.host or 'localhost'}:{self.port or 5432}"

    def __str__(self) -> str:
        if self.backend == "sqlite":
            return f"SQLite file {self.file}" if self.file else "the in-memory SQLite database"
        if self.backend == "postgresql":
            return (f"PostgreSQL at {self.address} (database {self.database or '(default)'}, "
                    f"role {self.user or '(default)'})")
        return f"the {self.backend} database at {self.address}"


def _uri_path(uri: str) -> str:
    """The file of a SQLite `file:` URI (`file:data.db`, `file:/abs`, `file:///abs`)."""
    rest = uri[len("file:"):]
    if rest.startswith("//"):
        rest = rest[2:]
        rest = rest[rest.find("/"):] if "/" in rest else ""
    return rest


def directory_error(exc: OSError, where: DatabaseLocation) -> StoreError:
    """The SQLite file's directory could not be created."""
    directory = os.path.dirname(where.file or "")
    return StoreError(
        f"cannot create the directory {directory} for {where} ({exc.strerror or exc})",
        fix=f"create {directory} with write access for the user running Handshake, or set "
            f"{DATABASE_URL} to a file in a writable directory",
    )


def store_error(
    exc: BaseException, where: DatabaseLocation, *, password: str | None = None
) -> StoreError:
    """The `StoreError` for a database failure: a SQLAlchemy `DBAPIError` or a driver's error.
    `password` is blanked out of any driver text quoted (libpq never prints it; belt and braces).
    """
    driver_error = getattr(exc, "orig", None) or exc
    operation = _operation(getattr(exc, "statement", None))
    if where.backend == "sqlite":
        return _sqlite_error(driver_error, where, operation)
    if where.backend == "postgresql":
        error = _postgres_error(driver_error, where, operation)
        if password and password in error.message:
            error = StoreError(error.message.replace(password, "***"), fix=error.fix)
        return error
    return StoreError(f"{where} failed on {operation} ({type(driver_error).__name__})",
                      fix=_DEBUG_FIX)


_TABLE = re.compile(r'\b(?:INTO|UPDATE|FROM|TABLE)\s+"?(\w+)', re.IGNORECASE)


def _operation(statement: str | None) -> str:
    """What the failed statement did, as verb and table ("an INSERT on contacts"): the SQL's
    values are bound parameters, so its first word and table name carry no record data."""
    if not statement or not statement.split():
        return "opening it"  # failed while connecting, before any statement of ours
    verb = statement.split()[0].upper()
    table = _TABLE.search(statement)
    article = "an" if verb[0] in "AEIOU" else "a"
    return f"{article} {verb} on {table.group(1)}" if table else f"{article} {verb}"


# --- SQLite ---------------------------------------------------------------------------------------

# The message text of each result code, for drivers that do not set `sqlite_errorname`.
_SQLITE_TEXTS = (
    ("readonly database", "SQLITE_READONLY"),
    ("unable to open database", "SQLITE_CANTOPEN"),
    ("file is not a database", "SQLITE_NOTADB"),
    ("malformed", "SQLITE_CORRUPT"),
    ("disk is full", "SQLITE_FULL"),
    ("database is locked", "SQLITE_BUSY"),
    ("table is locked", "SQLITE_LOCKED"),
    ("disk i/o error", "SQLITE_IOERR"),
    ("constraint failed", "SQLITE_CONSTRAINT"),
)
_NO_SUCH_TABLE = re.compile(r"no such table: (\w+)")
_CONSTRAINT = re.compile(
    r"^(UNIQUE|NOT NULL|CHECK|FOREIGN KEY|PRIMARY KEY) constraint failed: ([\w.]+)"
)


def _sqlite_error(error: BaseException, where: DatabaseLocation, operation: str) -> StoreError:
    text = str(error)
    name = str(getattr(error, "sqlite_errorname", "") or "")
    if not name or name == "SQLITE_ERROR":
        name = next((code for needle, code in _SQLITE_TEXTS if needle in text.lower()), name)
    code = "_".join(name.split("_")[:2])  # SQLITE_READONLY_DBMOVED -> SQLITE_READONLY
    file = where.file or ":memory:"
    directory = os.path.dirname(file)
    if code == "SQLITE_READONLY":
        fix = (f"remove mode=ro from {DATABASE_URL}: Handshake writes to its state database"
               if where.read_only else
               f"make {file} and its directory {directory} writable by the user running "
               f"Handshake (SQLite writes -wal and -shm files beside it), or set {DATABASE_URL} "
               "to a writable file")
        return StoreError(f"{where} is read-only: {operation} failed "
                          "(attempt to write a readonly database)", fix=fix)
    if code == "SQLITE_CANTOPEN":
        return StoreError(
            f"cannot open {where} (unable to open database file)",
            fix=f"check that the directory {directory} exists and that the user running "
                f"Handshake may read and write in it, or set {DATABASE_URL} to a file in "
                "such a directory",
        )
    if code in ("SQLITE_NOTADB", "SQLITE_CORRUPT"):
        reason = "file is not a database" if code == "SQLITE_NOTADB" else "the file is corrupt"
        return StoreError(
            f"{where} is not a usable SQLite database ({reason})",
            fix=f"restore {file} from a backup, or move it aside so Handshake starts a new one "
                "(every stream is then pulled again from the beginning)",
        )
    if code == "SQLITE_FULL":
        return StoreError(
            f"the disk holding {where} is full: {operation} failed (database or disk is full)",
            fix=f"free space on that disk, or move the file to a disk with room and update "
                f"{DATABASE_URL}",
        )
    if code in ("SQLITE_BUSY", "SQLITE_LOCKED"):
        return StoreError(
            f"{where} stayed locked by another connection: {operation} gave up "
            "(database is locked)",
            fix="wait for the other writer to finish (another Handshake run, a backup, a SQLite "
                "browser holding a transaction open) or stop it, then run again",
        )
    if code == "SQLITE_IOERR":
        return StoreError(
            f"disk I/O error on {where} during {operation}",
            fix="check the disk and the filesystem holding it; SQLite in WAL mode needs a local "
                "filesystem, not a network share",
        )
    if code in ("SQLITE_PERM", "SQLITE_AUTH"):
        return StoreError(
            f"{where} refused access during {operation} (access permission denied)",
            fix=f"let the user running Handshake read and write {file} and {directory}",
        )
    missing = _NO_SUCH_TABLE.search(text)
    if missing:
        return StoreError(
            f"{where} has no table {missing.group(1)} (its schema is missing or out of date)",
            fix="run `handshake db upgrade`",
        )
    if code == "SQLITE_CONSTRAINT":
        # SQLite names the constraint's kind and column ("NOT NULL ... contacts.email"), no value.
        failed = _CONSTRAINT.search(text)
        detail = f"{failed.group(1)} constraint on {failed.group(2)}" if failed else name
        return StoreError(f"{where} refused {operation} (a constraint failed: {detail})",
                          fix=_BUG_FIX)
    return StoreError(f"{where} failed on {operation} ({name or type(error).__name__})",
                      fix=_DEBUG_FIX)


# --- PostgreSQL -----------------------------------------------------------------------------------

_RELATION = re.compile(r'relation "(\w+)" does not exist')


def _postgres_error(error: BaseException, where: DatabaseLocation, operation: str) -> StoreError:
    sqlstate = str(getattr(error, "sqlstate", None) or "")
    if not sqlstate:
        return _postgres_connect_error(error, where)
    server, user, db = where.address, where.user or "(default)", where.database or "(default)"
    diag = getattr(error, "diag", None)
    names = [n for n in (getattr(diag, "table_name", None), getattr(diag, "column_name", None),
                         getattr(diag, "constraint_name", None)) if n]
    detail = f"SQLSTATE {sqlstate}" + (f" on {'.'.join(names)}" if names else "")
    if sqlstate.startswith("08") or sqlstate in ("57P01", "57P02", "57P03"):
        return StoreError(
            f"lost the connection to {where} during {operation} (SQLSTATE {sqlstate})",
            fix=f"check that the server at {server} is running and reachable, then run again "
                "(the run resumes where it stopped)",
        )
    if sqlstate in ("28P01", "28000"):
        return _auth_error(where)
    if sqlstate == "3D000":
        return _missing_database(where)
    if sqlstate == "42501":
        return StoreError(
            f"role {user} lacks a privilege at {where}: {operation} was refused ({detail})",
            fix=f"grant role {user} USAGE and CREATE on its schema (for `handshake db upgrade`) "
                "and SELECT, INSERT, UPDATE, DELETE on Handshake's tables",
        )
    if sqlstate == "25006":
        return StoreError(
            f"{where} accepts no writes: {operation} was refused (read-only transaction)",
            fix=f"set {DATABASE_URL} to the primary server, not a standby, or turn "
                f"default_transaction_read_only off for role {user} and database {db}",
        )
    if sqlstate == "53100":
        return StoreError(f"the disk of {where} is full: {operation} failed",
                          fix=f"free space on the disk of the server at {server}")
    if sqlstate == "53300":
        return StoreError(
            f"{where} refused a connection: too many clients",
            fix=f"raise max_connections on the server at {server}, or run fewer processes "
                "against it at once",
        )
    if sqlstate.startswith("53"):
        return StoreError(f"{where} ran out of a resource during {operation} ({detail})",
                          fix=f"check the memory and limits of the server at {server}")
    if sqlstate == "42P01":
        missing = _RELATION.search(str(error).splitlines()[0] if str(error) else "")
        table = missing.group(1) if missing else "a table"
        return StoreError(
            f"{where} has no table {table} (its schema is missing or out of date)",
            fix="run `handshake db upgrade`",
        )
    if sqlstate in ("40001", "40P01", "55P03"):
        return StoreError(
            f"{operation} on {where} conflicted with another connection ({detail})",
            fix="run again; if it repeats, look for another process writing the same rows",
        )
    if sqlstate == "57014":
        return StoreError(
            f"{where} cancelled {operation} (statement timeout or an administrator)",
            fix=f"raise statement_timeout for role {user}, or find who cancelled it",
        )
    if sqlstate.startswith("23"):
        return StoreError(f"{where} refused {operation} (a constraint failed: {detail})",
                          fix=_BUG_FIX)
    return StoreError(f"{where} failed on {operation} ({detail})", fix=_DEBUG_FIX)


def _postgres_connect_error(error: BaseException, where: DatabaseLocation) -> StoreError:
    """A failure before any statement ran: libpq's text names hosts, roles and databases only."""
    text = str(error)
    lowered = text.lower()
    server = where.address
    if "timeout expired" in lowered:
        return StoreError(
            f"nothing answered at {server} within the connect timeout (PostgreSQL, database "
            f"{where.database or '(default)'})",
            fix=f"start the PostgreSQL server at {server} or open the firewall to it, or "
                f"correct the host and port in {DATABASE_URL}",
        )
    if "connection refused" in lowered:
        return StoreError(
            f"nothing answers at {server} (connection refused): no PostgreSQL server listens "
            "there",
            fix=f"start the PostgreSQL server at {server}, or correct the host and port in "
                f"{DATABASE_URL}",
        )
    if ("translate host name" in lowered or "name or service not known" in lowered
            or "nodename nor servname" in lowered):
        return StoreError(
            f"the host {where.host} of {DATABASE_URL} is unknown (its name does not resolve)",
            fix=f"correct the host in {DATABASE_URL}",
        )
    if 'database "' in lowered and "does not exist" in lowered:
        return _missing_database(where)
    if 'role "' in lowered and "does not exist" in lowered:
        user = where.user or "(default)"
        return StoreError(
            f"{where}: the role {user} does not exist",
            fix=f"create the role (`createuser -h {where.host or 'localhost'} -p "
                f"{where.port or 5432} {user}` as a superuser) or correct the user name in "
                f"{DATABASE_URL}",
        )
    if "password" in lowered or "authentication failed" in lowered:
        return _auth_error(where)
    if "pg_hba.conf" in lowered:
        return StoreError(
            f"{where} does not accept connections from this machine for this role and database "
            "(no pg_hba.conf entry)",
            fix="allow this host, role and database in the server's pg_hba.conf (or ask its "
                "administrator)",
        )
    if "too many clients" in lowered or "connection slots" in lowered:
        return StoreError(
            f"{where} refused a connection: too many clients",
            fix=f"raise max_connections on the server at {server}, or run fewer processes "
                "against it at once",
        )
    reason = _first_line(text, where)
    return StoreError(
        f"cannot connect to {where} ({reason})",
        fix=f"check that the PostgreSQL server at {server} is running and reachable, and "
            f"correct {DATABASE_URL} if it is wrong",
    )


def _first_line(text: str, where: DatabaseLocation) -> str:
    """libpq's first line without the 'connection to server at ... failed:' preamble."""
    line = text.strip().splitlines()[0] if text.strip() else "no answer"
    line = re.sub(r"^connection failed:\s*", "", line)
    line = re.sub(r'^connection to server (?:at|on) .*? failed:\s*', "", line)
    return line.replace("FATAL:", "").strip() or "no answer"


def _missing_database(where: DatabaseLocation) -> StoreError:
    db = where.database or "(default)"
    return StoreError(
        f"{where}: the database {db} does not exist",
        fix=f"create it (`createdb -h {where.host or 'localhost'} -p {where.port or 5432} "
            f"-U {where.user or 'postgres'} {db}`) or correct the database name in "
            f"{DATABASE_URL}",
    )


def _auth_error(where: DatabaseLocation) -> StoreError:
    return StoreError(
        f"{where} refused the credentials of role {where.user or '(default)'}",
        fix=f"correct the user and password in {DATABASE_URL} (percent-encode special "
            "characters) or in ~/.pgpass",
    )
