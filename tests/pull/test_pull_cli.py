"""`handshake sync pull` and `handshake backfill` as an admin runs them."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from connector.sandbox import Sandbox
from connector.store import Store
from tests.pull.helpers import sandbox_toml, unthrottle

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def sandbox() -> Sandbox:
    with Sandbox(contacts=80, seed=21) as sb:
        unthrottle(sb)
        sb.clock.advance(timedelta(hours=1))
        yield sb


def cli(sb: Sandbox, config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
           "HANDSHAKE_HUBSPOT_TOKEN": sb.info()["hubspot"]["access_token"],
           "HANDSHAKE_SF_USERNAME": "u", "HANDSHAKE_SF_PASSWORD": "p",
           "HANDSHAKE_SF_SECURITY_TOKEN": "t", "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "connector.cli", *args, "-c", str(config)],
                          check=False, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=180)


def test_dry_run_stores_nothing_then_pull_stores_with_progress_lines(sandbox: Sandbox, tmp_path: Path) -> None:
    config = tmp_path / "h.toml"
    config.write_text(sandbox_toml(sandbox, tmp_path / "s.db"))
    dry = cli(sandbox, config, "sync", "pull", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "dry run: nothing stored" in dry.stdout
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    assert store.count_contacts() == 0
    assert store.bookmarks() == {}

    real = cli(sandbox, config, "sync", "pull")
    assert real.returncode == 0, real.stderr
    # Not a terminal: plain progress lines with counts and rates, one per stream at least.
    for stream in ("contacts", "email_events", "page_views"):
        assert any(line.split("connector.progress: ")[-1].startswith(f"{stream}: ")
                   and "/s" in line and "done in" in line for line in real.stderr.splitlines()), real.stderr
    assert "contacts.new" in real.stdout
    assert store.count_contacts() > 0
    run_rows = store.bookmarks()
    assert "contacts.modified" in run_rows


def test_bad_records_are_parked_and_the_rest_goes_on(sandbox: Sandbox, tmp_path: Path) -> None:
    hub = sandbox.hubspot
    assert hub is not None
    bad = hub.state.create_contact({"email": "odd@acme-corp.com", "lastname": "Odd",
                                    "hs_analytics_num_page_views": "many"})
    config = tmp_path / "h.toml"
    config.write_text(sandbox_toml(sandbox, tmp_path / "s.db"))
    result = cli(sandbox, config, "sync", "pull", "--stream", "contacts")
    assert result.returncode == 0, result.stderr
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    parked = {d.record_key: d for d in store.dead_letters()}
    assert f"contacts:{bad.id}" in parked
    letter = parked[f"contacts:{bad.id}"]
    assert "hs_analytics_num_page_views should be a number" in letter.reason
    assert letter.actor == "data"
    assert store.count_contacts() >= 70


def test_backfill_rereads_a_range_without_duplicates_or_moving_bookmarks(sandbox: Sandbox, tmp_path: Path) -> None:
    config = tmp_path / "h.toml"
    config.write_text(sandbox_toml(sandbox, tmp_path / "s.db"))
    assert cli(sandbox, config, "sync", "pull").returncode == 0
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    before_marks = store.bookmarks()
    before_acts = store.count_activities_by_type()
    since = (sandbox.clock.now() - timedelta(days=400)).date().isoformat()
    result = cli(sandbox, config, "backfill", "--since", since, "--stage", "pull")
    assert result.returncode == 0, result.stderr
    fetched = {line.split(":")[0].strip(): int(line.split(":")[1].replace(",", ""))
               for line in result.stdout.splitlines() if line.startswith("  ")}
    for stream in ("contacts", "email_events", "form_submissions", "page_views", "webinars"):
        assert fetched.get(f"{stream}.fetched", 0) > 0, (stream, result.stdout)
        assert fetched.get(f"{stream}.new", 0) == 0
    assert store.count_activities_by_type() == before_acts
    # the scheduled pulls' bookmarks stay; the backfill keeps its own checkpoint
    marks = store.bookmarks()
    assert {k: v for k, v in marks.items() if not k.startswith("backfill.")} == before_marks
    checkpoint = f"backfill.pull.{since.replace('-', '')}T000000Z..now"
    assert sorted(k for k in marks if k.startswith("backfill.")) == [
        checkpoint, f"{checkpoint}.contacts"]
    bad = cli(sandbox, config, "backfill", "--since", "last tuesday", "--stage", "pull")
    assert bad.returncode == 2 and "not a date" in bad.stderr


def test_dlq_list_shows_who_must_act(sandbox: Sandbox, tmp_path: Path) -> None:
    config = tmp_path / "h.toml"
    config.write_text(sandbox_toml(sandbox, tmp_path / "s.db"))
    assert cli(sandbox, config, "sync", "pull", "--stream", "contacts").returncode == 0
    listing = cli(sandbox, config, "dlq", "list")
    assert listing.returncode == 0, listing.stderr
    assert "data must act" in listing.stdout and "no email address" in listing.stdout
    as_json = cli(sandbox, config, "dlq", "list", "--json")
    import json

    rows = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert rows and all(r["actor"] == "data" and r["stage"] == "pull" for r in rows)


def test_many_parked_records_print_one_warning_not_one_line_each(tmp_path: Path) -> None:
    """A backfill that parks hundreds of records must not print a line per record: the first
    of a stream is a warning, the others go to INFO; every one is in the dead-letter store."""
    with Sandbox(contacts=20, seed=5) as sb:
        unthrottle(sb)
        hub = sb.hubspot
        assert hub is not None
        bad = [hub.state.create_contact({"email": f"odd{i}@acme-corp.com", "lastname": "Odd",
                                         "hs_analytics_num_page_views": "many"})
               for i in range(4)]
        sb.clock.advance(timedelta(hours=1))
        config = tmp_path / "h.toml"
        config.write_text(sandbox_toml(sb, tmp_path / "s.db"))
        result = cli(sb, config, "sync", "pull", "--stream", "contacts")
        assert result.returncode == 0, result.stderr
        parked_lines = [line for line in result.stderr.splitlines()
                        if "parked a contacts record" in line]
        assert len(parked_lines) >= len(bad)
        assert sum(" WARNING " in line for line in parked_lines) == 1, result.stderr
        assert "odd" not in result.stderr  # no contact data
        store = Store(f"sqlite:///{tmp_path / 's.db'}")
        parked = {d.record_key for d in store.dead_letters()}
        assert {f"contacts:{c.id}" for c in bad} <= parked
