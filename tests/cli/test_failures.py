"""Every failure a user can cause or meet, through the real command line: a message of at most
five lines that names the fix, the README's exit code, no traceback (except at --log-level
DEBUG) and no contact data."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from connector.cli.failures import describe
from connector.errors import (
    AuthError,
    ConfigError,
    ExitCode,
    LeaseLost,
    QuotaExhausted,
    RateLimited,
    RecordRejected,
    RequestFailed,
    ServerError,
    StageBusy,
    StopRequested,
    StoreError,
    TransportError,
)
from connector.sandbox import Sandbox
from tests.pull.helpers import sandbox_env, sandbox_toml, unthrottle

ROOT = Path(__file__).resolve().parents[2]
EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# A contact's data as an unforeseen error might carry it.
CONTACT_EMAIL = "jane.doe@example.com"
FAST = {"max_attempts": 2, "timeout_seconds": 2}


def closed_port() -> int:
    """A local port nothing listens on (connections to it are refused at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run(folder: Path, *args: str, env: dict[str, str] | None = None,
        prelude: str = "") -> subprocess.CompletedProcess[str]:
    """`python -m connector.cli ARGS` in `folder`; `prelude` is Python run first in the same
    process (to patch a function the command calls)."""
    base = {"PATH": "/usr/bin:/bin", "HOME": str(folder), "COLUMNS": "200",
            "PYTHONPATH": str(ROOT)}
    if prelude:
        command = [sys.executable, "-c", f"{prelude}\nfrom connector.cli.main import main\nmain()"]
    else:
        command = [sys.executable, "-m", "connector.cli"]
    return subprocess.run([*command, *args], check=False, capture_output=True, text=True,
                          cwd=folder, env={**base, **(env or {})}, timeout=120)


def assert_message(result: subprocess.CompletedProcess[str], code: int, *words: str,
                   contact_data: tuple[str, ...] = ()) -> str:
    """The failure ended with `code`, in at most five stderr lines, no traceback, naming
    `words` (its fix among them), and quoting neither an email address nor `contact_data`."""
    output = result.stdout + result.stderr
    assert result.returncode == code, output
    assert "Traceback" not in output, output
    assert len(result.stderr.splitlines()) <= 5, result.stderr
    for word in words:
        assert word in result.stderr, f"{word!r} not in:\n{result.stderr}"
    assert EMAIL.search(output) is None, output
    for value in (CONTACT_EMAIL, *contact_data):
        assert value not in output, output
    return result.stderr


def config_file(folder: Path, body: str, name: str = "handshake.toml") -> Path:
    """A config file whose mapping files are the repository's."""
    mappings = "\n".join(f'{kind} = "{ROOT / "mappings" / f"{kind}.toml"}"'
                         for kind in ("fields", "scoring", "lifecycle", "routing"))
    path = folder / name
    if "[mappings]" not in body:
        body += f"\n[mappings]\n{mappings}\n"
    path.write_text(body)
    return path


def fast(toml: str) -> str:
    """Retries and timeouts lowered in both remote systems' sections, so retries end fast."""
    extra = "".join(f"{key} = {value}\n" for key, value in FAST.items())
    return toml.replace("[hubspot]\n", f"[hubspot]\n{extra}").replace(
        "[salesforce]\n", f"[salesforce]\n{extra}")


def offline_toml(db: str, *, hubspot: str | None = None, salesforce: str | None = None) -> str:
    port = closed_port()
    hubspot = hubspot or f"http://127.0.0.1:{port}"
    salesforce = salesforce or f"https://127.0.0.1:{port}"
    return fast(f"""
[hubspot]
base_url = "{hubspot}"
[salesforce]
instance_url = "{salesforce}"
login_url = "{salesforce}"
[state]
database_url = "{db}"
""")


ENV = {"HANDSHAKE_HUBSPOT_TOKEN": "pat-na1-00000000-1111-2222-3333-444444444444",
       "HANDSHAKE_SF_USERNAME": "integration@example.com",
       "HANDSHAKE_SF_PASSWORD": "not-the-password", "HANDSHAKE_SF_SECURITY_TOKEN": "tok123456"}


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with Sandbox(contacts=30, seed=7, workdir=tmp_path_factory.mktemp("sb")) as sb:
        unthrottle(sb)
        sb.clock.advance(timedelta(hours=1))
        yield sb


def contact_data(sb: Sandbox) -> tuple[str, ...]:
    """Every contact's email and names in the sandbox: none may reach the output."""
    assert sb.dataset is not None
    values: set[str] = set()
    for contact in sb.dataset.contacts:
        values.update(value for key in ("email", "firstname", "lastname")
                      if (value := contact.properties.get(key)) and len(value) > 3)
    return tuple(values)


def sandbox_config(sb: Sandbox, folder: Path, extra: str = "") -> Path:
    return config_file(folder, fast(sandbox_toml(sb, folder / "state.db")) + extra)


# --- remote systems -------------------------------------------------------------------------


def test_hubspot_unreachable(tmp_path: Path) -> None:
    toml = offline_toml(f"sqlite:///{tmp_path / 's.db'}")
    port = re.search(r"127\.0\.0\.1:(\d+)", toml).group(1)  # type: ignore[union-attr]
    result = run(tmp_path, "sync", "pull", "-c", str(config_file(tmp_path, toml)), env=ENV)
    text = assert_message(result, ExitCode.FAILED, "HubSpot could not be reached",
                          "after 2 attempt(s)", f"127.0.0.1:{port}", "[hubspot] base_url", "fix:")
    assert "run it again" in text


def test_salesforce_unreachable(sandbox: Sandbox, tmp_path: Path) -> None:
    port = closed_port()
    toml = sandbox_toml(sandbox, tmp_path / "s.db").replace(
        sandbox.info()["salesforce"]["login_url"], f"https://127.0.0.1:{port}")
    path = config_file(tmp_path, fast(toml))
    result = run(tmp_path, "sync", "push", "-c", str(path), env=sandbox_env(sandbox))
    assert_message(result, ExitCode.FAILED, "Salesforce could not be reached",
                   f"127.0.0.1:{port}", "[salesforce] login_url", "fix:",
                   contact_data=contact_data(sandbox))


def test_hubspot_token_refused(sandbox: Sandbox, tmp_path: Path) -> None:
    env = {**sandbox_env(sandbox), "HANDSHAKE_HUBSPOT_TOKEN": "pat-na1-wrong-token-0123456789"}
    result = run(tmp_path, "sync", "pull", "-c", str(sandbox_config(sandbox, tmp_path)), env=env)
    text = assert_message(result, ExitCode.FAILED, "HubSpot refused the credentials",
                          "fix: check HANDSHAKE_HUBSPOT_TOKEN")
    assert "wrong-token" not in text


def test_salesforce_login_refused(sandbox: Sandbox, tmp_path: Path) -> None:
    env = {**sandbox_env(sandbox), "HANDSHAKE_SF_PASSWORD": "wrong-password-123"}
    result = run(tmp_path, "sync", "push", "-c", str(sandbox_config(sandbox, tmp_path)), env=env)
    text = assert_message(result, ExitCode.FAILED, "Salesforce refused the credentials",
                          "[salesforce] login_url", "HANDSHAKE_SF_PASSWORD",
                          contact_data=contact_data(sandbox))
    assert "wrong-password" not in text


def test_hubspot_daily_quota_spent_exits_5_saying_when_it_resets(tmp_path: Path) -> None:
    from connector.sandbox.hubspot.settings import RateLimits

    with Sandbox(contacts=40, seed=13, workdir=tmp_path / "sb") as sb:
        assert sb.hubspot is not None
        sb.clock.advance(timedelta(hours=1))
        sb.hubspot.limiter.configure(RateLimits(window_max=10_000, daily=1, search_per_second=100))
        result = run(tmp_path, "sync", "pull", "-c", str(sandbox_config(sb, tmp_path)),
                     env=sandbox_env(sb))
        text = assert_message(result, ExitCode.QUOTA, "daily API quota", "resets at",
                              "fix: nothing to do", contact_data=contact_data(sb))
    assert re.search(r"resets at \d{4}-\d\d-\d\d \d\d:\d\d UTC", text), text


# --- the state database ---------------------------------------------------------------------


def test_postgresql_unreachable(tmp_path: Path) -> None:
    port = closed_port()
    url = f"postgresql+psycopg://handshake:db-Secret-pw@127.0.0.1:{port}/handshake"
    path = config_file(tmp_path, offline_toml(url))
    result = run(tmp_path, "db", "status", "-c", str(path))
    text = assert_message(result, ExitCode.FAILED, "state database:", f"127.0.0.1:{port}",
                          "[state] database_url", "fix: start the PostgreSQL server")
    assert "db-Secret-pw" not in text


def read_only_url(db: Path) -> str:
    """A state database the process may read but not write (root writes any file it may
    read, so as root SQLite is told to open it read-only)."""
    db.chmod(0o444)
    if os.geteuid() == 0:
        return f"sqlite:///file:{db}?mode=ro&uri=true"
    return f"sqlite:///{db}"


def test_read_only_sqlite(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    upgrade = run(tmp_path, "db", "upgrade", "-c",
                  str(config_file(tmp_path, offline_toml(f"sqlite:///{db}"), "rw.toml")), env=ENV)
    assert upgrade.returncode == 0, upgrade.stderr
    path = config_file(tmp_path, offline_toml(read_only_url(db)))
    result = run(tmp_path, "sync", "score", "-c", str(path), env=ENV)
    assert_message(result, ExitCode.FAILED, "state database:", "read-only", str(db),
                   "[state] database_url", "fix:")


def test_corrupt_sqlite(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    db.write_bytes(os.urandom(4096))
    path = config_file(tmp_path, offline_toml(f"sqlite:///{db}"))
    result = run(tmp_path, "sync", "score", "-c", str(path), env=ENV)
    assert_message(result, ExitCode.FAILED, "state database:", "not a usable SQLite database",
                   f"fix: restore {db} from a backup")


def test_insert_failure_never_shows_the_contact(tmp_path: Path) -> None:
    """A contact stored twice: the store's INSERT fails on the contact's row."""
    prelude = f"""
from datetime import UTC, datetime
import connector.scoring.runner as runner
from connector.store import Contact, ContactRecord
def insert_twice(store, *args, **kwargs):
    store.upsert_contacts([ContactRecord("7", "{CONTACT_EMAIL}", {{"firstname": "Janelle"}},
                                         None, None)])
    now = datetime(2026, 10, 1, tzinfo=UTC)
    with store.transaction() as s:
        s.add(Contact(hubspot_id="7", email="{CONTACT_EMAIL}",
                      properties={{"firstname": "Janelle"}}, archived=False, first_seen_at=now,
                      updated_at=now))
runner.score_batches = insert_twice
"""
    path = config_file(tmp_path, offline_toml(f"sqlite:///{tmp_path / 's.db'}"))
    debug = run(tmp_path, "--log-level", "DEBUG", "sync", "score", "-c", str(path), env=ENV,
                prelude=prelude)
    assert "Traceback" in debug.stderr  # even there, the statement's parameters are hidden
    assert CONTACT_EMAIL not in debug.stderr and "Janelle" not in debug.stderr
    result = run(tmp_path, "sync", "score", "-c", str(path), env=ENV, prelude=prelude)
    assert_message(result, ExitCode.FAILED, "state database:", "refused an INSERT on contacts",
                   "fix:", contact_data=("Janelle",))


def test_untranslated_database_error_never_shows_its_parameters(tmp_path: Path) -> None:
    """A driver's error that escaped the store: its text carries the statement's parameters."""
    prelude = f"""
import sqlite3
from sqlalchemy.exc import IntegrityError
import connector.scoring.runner as runner
def insert_fails(*args, **kwargs):
    raise IntegrityError("INSERT INTO contacts (email, firstname) VALUES (?, ?)",
                         ("{CONTACT_EMAIL}", "Jane"), sqlite3.IntegrityError("UNIQUE failed"))
runner.score_batches = insert_fails
"""
    path = config_file(tmp_path, offline_toml(f"sqlite:///{tmp_path / 's.db'}"))
    result = run(tmp_path, "sync", "score", "-c", str(path), env=ENV, prelude=prelude)
    assert_message(result, ExitCode.FAILED, "state database", "IntegrityError", "fix:",
                   contact_data=("Jane",))


# --- the command line and the config --------------------------------------------------------


def test_unknown_log_level(tmp_path: Path) -> None:
    path = config_file(tmp_path, offline_toml(f"sqlite:///{tmp_path / 's.db'}"))
    result = run(tmp_path, "--log-level", "LOUD", "config", "check", "-c", str(path), env=ENV)
    text = assert_message(result, ExitCode.CONFIG, "one of DEBUG, INFO, WARNING, ERROR")
    assert text.strip() == "--log-level: 'LOUD' is not a level; one of DEBUG, INFO, WARNING, ERROR"


def test_unknown_log_level_in_the_config_file(tmp_path: Path) -> None:
    path = config_file(tmp_path, offline_toml(f"sqlite:///{tmp_path / 's.db'}")
                       + '[logging]\nlevel = "LOUD"\n')
    result = run(tmp_path, "config", "check", "-c", str(path), env=ENV)
    assert_message(result, ExitCode.CONFIG, "logging.level", "fix:")


def test_config_file_missing(tmp_path: Path) -> None:
    result = run(tmp_path, "sync", "pull", "-c", str(tmp_path / "nope.toml"), env=ENV)
    assert_message(result, ExitCode.CONFIG, "file not found", "nope.toml", "fix: pass --config")


def test_config_path_is_a_directory(tmp_path: Path) -> None:
    result = run(tmp_path, "sync", "pull", "-c", str(tmp_path), env=ENV)
    assert_message(result, ExitCode.CONFIG, "cannot be read: Is a directory",
                   "fix: pass --config with a readable TOML file")


def test_config_toml_syntax_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("[hubspot\nbase_url = ")
    result = run(tmp_path, "sync", "push", "-c", str(broken), env=ENV)
    assert_message(result, ExitCode.CONFIG, "not valid TOML", "broken.toml", "fix:")


def test_secret_env_var_missing(tmp_path: Path) -> None:
    path = config_file(tmp_path, offline_toml(f"sqlite:///{tmp_path / 's.db'}"))
    env = {k: v for k, v in ENV.items() if k != "HANDSHAKE_HUBSPOT_TOKEN"}
    result = run(tmp_path, "sync", "pull", "-c", str(path), env=env)
    assert_message(result, ExitCode.CONFIG, "HANDSHAKE_HUBSPOT_TOKEN",
                   "fix: export HANDSHAKE_HUBSPOT_TOKEN")


def test_mapping_file_missing(tmp_path: Path) -> None:
    toml = offline_toml(f"sqlite:///{tmp_path / 's.db'}") + f"""
[mappings]
fields = "{tmp_path / 'no-such-fields.toml'}"
scoring = "{ROOT / 'mappings' / 'scoring.toml'}"
"""
    result = run(tmp_path, "sync", "push", "-c", str(config_file(tmp_path, toml)), env=ENV)
    assert_message(result, ExitCode.CONFIG, "no-such-fields.toml", "fix:")


def test_bad_since_date(tmp_path: Path) -> None:
    path = config_file(tmp_path, offline_toml(f"sqlite:///{tmp_path / 's.db'}"))
    result = run(tmp_path, "backfill", "--since", "last tuesday", "-c", str(path), env=ENV)
    assert_message(result, ExitCode.CONFIG, "--since: 'last tuesday' is not a date",
                   "use YYYY-MM-DD")


def test_unknown_stream(tmp_path: Path) -> None:
    path = config_file(tmp_path, offline_toml(f"sqlite:///{tmp_path / 's.db'}"))
    result = run(tmp_path, "sync", "pull", "--stream", "tweets", "-c", str(path), env=ENV)
    assert_message(result, ExitCode.CONFIG, "unknown stream(s) tweets", "known: contacts")


def test_unknown_option_is_a_usage_error(tmp_path: Path) -> None:
    result = run(tmp_path, "sync", "pull", "--everything")
    assert_message(result, ExitCode.CONFIG, "No such option: --everything",
                   "Try 'python -m connector.cli sync pull --help'")


# --- run control and the unforeseen ---------------------------------------------------------

RAISE_IN_SCORE = """
import connector.scoring.runner as runner
{imports}
def fails(*args, **kwargs):
    raise {error}
runner.score_batches = fails
"""


def score_raising(tmp_path: Path, error: str, *args: str, imports: str = "",
                  env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`handshake ARGS sync score` with the stage's scoring step raising `error`."""
    path = config_file(tmp_path, offline_toml(f"sqlite:///{tmp_path / 's.db'}"))
    return run(tmp_path, *args, "sync", "score", "-c", str(path), env=env or ENV,
               prelude=RAISE_IN_SCORE.format(imports=imports, error=error))


def test_internal_error_names_its_type_only(tmp_path: Path) -> None:
    error = f'ValueError("cannot score {CONTACT_EMAIL} (Jane Doe)")'
    result = score_raising(tmp_path, error)
    text = assert_message(result, ExitCode.FAILED, "internal error in sync score: ValueError",
                          "--log-level DEBUG", "report it", contact_data=("Jane Doe",))
    assert "cannot score" not in text


def test_internal_error_at_debug_shows_the_traceback(tmp_path: Path) -> None:
    error = f'ValueError("cannot score {CONTACT_EMAIL}")'
    result = score_raising(tmp_path, error, "--log-level", "DEBUG")
    assert result.returncode == ExitCode.FAILED
    assert "Traceback (most recent call last)" in result.stderr
    assert f"ValueError: cannot score {CONTACT_EMAIL}" in result.stderr
    assert result.stderr.rstrip().splitlines()[-1].startswith("  fix: run again with")


def test_the_failure_is_logged_once_at_error(tmp_path: Path) -> None:
    """The log file and JSON lines get the failure once, as its message; the terminal reads it
    once too (the human log line is not printed beside the message)."""
    log_file = tmp_path / "handshake.log"
    path = config_file(tmp_path, offline_toml(f"sqlite:///{tmp_path / 's.db'}")
                       + f'[logging]\nfile = "{log_file}"\n')
    error = f'ValueError("cannot score {CONTACT_EMAIL}")'
    prelude = RAISE_IN_SCORE.format(imports="", error=error)
    result = run(tmp_path, "sync", "score", "-c", str(path), env=ENV, prelude=prelude)
    assert_message(result, ExitCode.FAILED, "internal error in sync score: ValueError")
    assert result.stderr.count("internal error") == 1
    errors = [line for line in log_file.read_text().splitlines() if " ERROR " in line]
    assert len(errors) == 1 and "sync score failed: internal error in sync score: ValueError" \
        in errors[0] and "exit_code=1" in errors[0]
    assert CONTACT_EMAIL not in log_file.read_text()
    as_json = run(tmp_path, "--log-json", "sync", "score", "-c", str(path), env=ENV,
                  prelude=prelude)
    assert_message(as_json, ExitCode.FAILED, '"level": "error"', '"exit_code": 1',
                   "internal error in sync score: ValueError")


def test_stage_busy_exits_4(tmp_path: Path) -> None:
    result = score_raising(
        tmp_path, 'StageBusy("another score run holds the lease", stage="score", '
        'holder="host-b:4242")', imports="from connector.errors import StageBusy")
    assert_message(result, ExitCode.BUSY, "another score run holds the lease",
                   "the score lease, held by host-b:4242", "fix: wait")


@pytest.mark.parametrize(("signum", "code", "name"), [(15, ExitCode.SIGTERM, "SIGTERM"),
                                                      (2, ExitCode.SIGINT, "SIGINT")])
def test_stop_requested_exits_with_its_signal(tmp_path: Path, signum: int, code: int,
                                              name: str) -> None:
    result = score_raising(tmp_path, f"StopRequested(signum={signum})",
                           imports="from connector.errors import StopRequested")
    assert_message(result, code, f"sync score stopped by {name}", "fix: run it again")


def test_ctrl_c_exits_130(tmp_path: Path) -> None:
    result = score_raising(tmp_path, "KeyboardInterrupt()")
    assert_message(result, ExitCode.SIGINT, "sync score interrupted (Ctrl-C)", "fix: run it again")


REFUSED_BATCH = ('"update contacts (POST /crm/v3/objects/contacts/batch/update): HTTP 400 '
                 f'[VALIDATION_ERROR]: Jane Doe <{CONTACT_EMAIL}>: 12x is not a valid number"')


def test_remote_refusal_keeps_the_answer_for_debug(tmp_path: Path) -> None:
    """A whole request refused: its status and codes are shown, not the answer, which may quote
    the values sent."""
    result = score_raising(
        tmp_path, f'RequestFailed({REFUSED_BATCH}, system="hubspot", status=400)',
        imports="from connector.errors import RequestFailed")
    text = assert_message(
        result, ExitCode.FAILED, "HubSpot refused a request: update contacts (POST /crm/v3/"
        "objects/contacts/batch/update): HTTP 400 [VALIDATION_ERROR]", "[hubspot] base_url",
        "fix: retrying cannot help", contact_data=("Jane Doe", "12x"))
    assert "logged at DEBUG" in text
    debug = score_raising(tmp_path, f'RequestFailed({REFUSED_BATCH}, system="hubspot")',
                          "--log-level", "DEBUG",
                          imports="from connector.errors import RequestFailed")
    assert "12x is not a valid number" in debug.stderr


def test_a_refused_record_that_escapes_shows_no_reason(tmp_path: Path) -> None:
    result = score_raising(
        tmp_path, f'RecordRejected("Email: invalid email address: {CONTACT_EMAIL} (Jane Doe)", '
        'system="salesforce", record_key="4711")', imports="from connector.errors import "
        "RecordRejected")
    assert_message(result, ExitCode.FAILED, "Salesforce refused a record", "--log-level DEBUG",
                   "[salesforce] instance_url", contact_data=("Jane Doe",))


# --- config check reaches the state database ------------------------------------------------


def test_config_check_reports_an_unreachable_postgresql(tmp_path: Path) -> None:
    port = closed_port()
    url = f"postgresql+psycopg://handshake:db-Secret-pw@127.0.0.1:{port}/handshake"
    result = run(tmp_path, "config", "check", "-c", str(config_file(tmp_path, offline_toml(url))),
                 env=ENV)
    text = assert_message(result, ExitCode.FAILED, "state.database_url", f"127.0.0.1:{port}",
                          "fix: start the PostgreSQL server")
    assert "configuration is valid" not in result.stdout + text
    assert "db-Secret-pw" not in text


def test_config_check_reports_a_read_only_sqlite(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    path = config_file(tmp_path, offline_toml(f"sqlite:///{db}"), "rw.toml")
    assert run(tmp_path, "config", "check", "-c", str(path), env=ENV).returncode == 0
    path = config_file(tmp_path, offline_toml(read_only_url(db)))
    result = run(tmp_path, "config", "check", "-c", str(path), env=ENV)
    assert_message(result, ExitCode.FAILED, "state.database_url", "read-only", str(db), "fix:")


def test_config_check_reports_a_corrupt_sqlite(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    db.write_bytes(os.urandom(4096))
    path = config_file(tmp_path, offline_toml(f"sqlite:///{db}"))
    result = run(tmp_path, "config", "check", "-c", str(path), env=ENV)
    assert_message(result, ExitCode.FAILED, "state.database_url", "not a usable SQLite database",
                   f"fix: restore {db} from a backup")


def test_config_check_reports_a_database_url_it_cannot_use_as_the_files(tmp_path: Path) -> None:
    path = config_file(tmp_path, offline_toml("postgresql+nosuchdriver://handshake@db/x"))
    result = run(tmp_path, "config", "check", "-c", str(path), env=ENV)
    assert_message(result, ExitCode.CONFIG, "state.database_url", "no database driver",
                   "fix: set `[state] database_url`")


# --- the table itself -----------------------------------------------------------------------


@pytest.mark.parametrize(("error", "code"), [
    (ConfigError([]), ExitCode.CONFIG),
    (AuthError("refused", system="hubspot"), ExitCode.FAILED),
    (StoreError("gone", fix="start it"), ExitCode.FAILED),
    (LeaseLost("taken over"), ExitCode.FAILED),
    (QuotaExhausted("spent", system="salesforce", resets_at=datetime(2026, 1, 2, tzinfo=UTC)),
     ExitCode.QUOTA),
    (RequestFailed("x: HTTP 404: no such path", system="salesforce", status=404),
     ExitCode.FAILED),
    (RateLimited("x: HTTP 429", system="hubspot"), ExitCode.FAILED),
    (ServerError("x: HTTP 503", system="salesforce"), ExitCode.FAILED),
    (TransportError("x: ConnectError: [Errno 111] Connection refused", system="webhook"),
     ExitCode.FAILED),
    (RecordRejected(f"{CONTACT_EMAIL} is taken", system="salesforce"), ExitCode.FAILED),
    (StageBusy("busy", stage="push"), ExitCode.BUSY),
    (StopRequested(signum=signal.SIGTERM), ExitCode.SIGTERM),
    (StopRequested(signum=signal.SIGINT), ExitCode.SIGINT),
    (KeyboardInterrupt(), ExitCode.SIGINT),
    (PermissionError(13, "Permission denied", "/var/log/handshake.log"), ExitCode.FAILED),
    (ValueError(CONTACT_EMAIL), ExitCode.FAILED),
])
def test_every_failure_has_its_exit_code_and_a_fix(error: BaseException, code: int) -> None:
    failure = describe(error, "sync push")
    assert failure.code == code
    assert failure.fix and len(failure.lines()) <= 3
    assert "Traceback" not in "\n".join(failure.lines())
    assert CONTACT_EMAIL not in "\n".join(failure.lines())
    assert EMAIL.search("\n".join(failure.lines())) is None


def test_quota_says_when_it_resets() -> None:
    resets = datetime(2026, 12, 8, 5, 0, tzinfo=UTC)
    failure = describe(QuotaExhausted("spent", system="hubspot", resets_at=resets), "sync pull")
    assert "2026-12-08 05:00 UTC" in failure.fix
    assert "resets at 2026-12-08 05:00 UTC" in str(QuotaExhausted("x", resets_at=resets))
