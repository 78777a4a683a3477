"""The parts of status, metrics and the mapping watcher that need no sandbox: the watcher
refuses an invalid edit and keeps the last good copies, takes a valid one; the leader gauge;
status on an empty database and with a broken mapping file; bookmark times and call counts."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from connector.cli import app
from connector.config import Config, load_config
from connector.daemon.mappings import MappingWatcher
from connector.daemon.metrics import render_metrics
from connector.demo import MAPPINGS_DIR
from connector.logs import setup_logging
from connector.mapping import load_fields
from connector.runtime.lease import instance_name
from connector.runtime.status import api_calls, bookmark_time, collect_status
from connector.store import Store

FILES = ("fields", "scoring", "routing", "sla")


def make_config(folder: Path) -> Path:
    mappings = folder / "mappings"
    mappings.mkdir(exist_ok=True)
    for name in FILES:
        shutil.copy(MAPPINGS_DIR / f"{name}.toml", mappings / f"{name}.toml")
    path = folder / "handshake.toml"
    path.write_text(f"""
[hubspot]
base_url = "http://127.0.0.1:9"
[salesforce]
instance_url = "https://127.0.0.1:9"
[state]
database_url = "sqlite:///{folder / 'state.db'}"
[mappings]
""" + "".join(f'{n} = "{mappings / (n + ".toml")}"\n' for n in FILES))
    return path


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Config, Path, Store]:
    path = make_config(tmp_path)
    config = load_config(path, {}, require_secrets=False)
    store = Store(config.state.database_url)
    store.migrate()
    yield config, path, store
    store.close()


def status_json(path: Path) -> tuple[int, dict, str]:
    result = CliRunner().invoke(app, ["status", "--json", "-c", str(path)],
                                env={"COLUMNS": "200"})
    setup_logging()  # the command logged to the runner's stream, closed now
    return result.exit_code, json.loads(result.stdout or "null"), result.stderr


def test_watcher_refuses_an_invalid_edit_and_takes_a_valid_one(
        setup: tuple[Config, Path, Store], tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    config, path, store = setup
    watcher = MappingWatcher(config, store=store, folder=tmp_path / "running")
    try:
        assert watcher.health.ok and watcher.check() is False  # nothing changed
        good = watcher.config.mapping_path("fields")
        assert good.parent.parent == tmp_path / "running"
        fields = tmp_path / "mappings" / "fields.toml"
        text = fields.read_text()
        before = load_fields(good)

        fields.write_text(text.replace('hubspot = "jobtitle"',
                                       'hubspot = "jobtitle"\ncase = "sideways"'))
        assert watcher.check() is False
        assert watcher.config.mapping_path("fields") == good
        assert load_fields(watcher.config.mapping_path("fields")).rules == before.rules
        assert not watcher.health.ok
        problem = watcher.health.problems[0]
        assert (problem["file"], problem["key"]) == (str(fields), "fields[3].case")
        assert problem["fix"]
        assert any(r.levelname == "ERROR" and str(fields) in r.getMessage()
                   for r in caplog.records)
        saved = json.loads(store.get_bookmark("mappings.health") or "{}")
        assert saved["ok"] is False and str(fields) in saved["errors"][0]
        # status shows the refusal with no daemon running
        code, found, err = status_json(path)
        assert code == 0, err
        assert found["mappings"]["daemon"]["ok"] is False
        assert found["mappings"]["files"]["fields"]["ok"] is False  # as the file is now
        assert found["mappings"]["files"]["fields"]["errors"][0]["file"] == str(fields)

        # the same bad content saved again is not validated or logged again
        caplog.clear()
        fields.write_text(fields.read_text())
        assert watcher.check() is False and not caplog.records

        fields.write_text(text.replace('hubspot = "jobtitle"',
                                       'hubspot = "jobtitle"\ncase = "upper"'))
        assert watcher.check() is True and watcher.health.ok
        taken = watcher.config.mapping_path("fields")
        assert taken != good and taken.read_text() == fields.read_text()
        assert any(r.case == "upper" for r in load_fields(taken).rules)
        # the other settings are the original config's
        assert watcher.config.state == config.state
        assert json.loads(store.get_bookmark("mappings.health") or "{}")["ok"] is True
    finally:
        watcher.close()


def test_watcher_with_no_valid_version_keeps_the_files_as_they_are(
        setup: tuple[Config, Path, Store], tmp_path: Path) -> None:
    config, _, _ = setup
    (tmp_path / "mappings" / "routing.toml").write_text("mode = [")
    watcher = MappingWatcher(config)
    try:
        assert not watcher.health.ok and watcher.config is config
        assert any("routing.toml" in e for e in watcher.health.errors)
    finally:
        watcher.close()
    assert not watcher.folder.exists()


def test_leader_gauge_is_one_for_the_lease_holder(setup: tuple[Config, Path, Store]) -> None:
    config, _, store = setup

    def leader() -> dict[str, float]:
        body, _ = render_metrics(config, store)
        return {s.labels["instance"]: s.value
                for f in text_string_to_metric_families(body.decode())
                for s in f.samples if s.name == "handshake_leader"}

    assert leader() == {instance_name(): 0.0}
    assert store.take_lease("leader", instance_name(), ttl_seconds=60) is not None
    assert leader() == {instance_name(): 1.0}
    store.release_lease("leader", instance_name())
    assert leader() == {instance_name(): 0.0}


def test_status_of_a_database_nothing_ran_on(tmp_path: Path) -> None:
    path = make_config(tmp_path)
    result = CliRunner().invoke(app, ["status", "-c", str(path)], env={"COLUMNS": "200"})
    assert result.exit_code == 1
    assert "holds nothing yet" in result.stderr and "Fix:" in result.stderr


def test_empty_store_status(setup: tuple[Config, Path, Store]) -> None:
    config, _, store = setup
    found = collect_status(config, store)
    assert all(row["last_run"] is None for row in found["stages"].values())
    assert found["daemons"] == {"leader": None, "instances": [], "gone_after_seconds": 45.0}
    assert found["dead_letters"]["open"] == 0
    assert found["api_usage"]["salesforce"]["cap"] is None  # unknown before a first call
    assert found["mappings"]["ok"] and found["mappings"]["daemon"] is None


def test_bookmark_times() -> None:
    at = datetime(2026, 12, 7, 16, 54, tzinfo=UTC)
    assert bookmark_time("2026-12-07T16:54:00+00:00") == at
    assert bookmark_time("2026-12-07T16:54:00Z") == at
    assert bookmark_time("2:2:0:0:2026-12-07T16:54:00.000Z") == at  # webinars/<id>
    assert bookmark_time(json.dumps({"done": int(at.timestamp() * 1000)})) == at
    assert bookmark_time("4555") is None
    assert bookmark_time('{"after": "abc"}') is None


def test_api_calls_of_each_stage_record() -> None:
    assert api_calls({"hubspot.calls": 194, "contacts.calls": 3}) == {"hubspot": 194,
                                                                      "salesforce": 0}
    assert api_calls({"hubspot.requests": 2, "hubspot.contacts.updated": 194}) == {
        "hubspot": 2, "salesforce": 0}
    assert api_calls({"hubspot.outcomes.requests": 1, "salesforce.calls": 9,
                      "salesforce.pull.calls": 1}) == {"hubspot": 1, "salesforce": 9}


def test_the_lease_decides_between_two_records_saying_leader(
        setup: tuple[Config, Path, Store]) -> None:
    """A record still saying "leader" after another instance took the lease (the old one
    not yet gone) does not make two leaders; the next runs are the lease holder's."""
    config, _, store = setup
    now = datetime.now(UTC).isoformat()
    for name, pull in (("old:1:1", "2026-01-01T00:00:00+00:00"),
                       ("new:2:2", "2026-01-02T00:00:00+00:00")):
        store.set_bookmark(f"daemon.instance.{name}", json.dumps(
            {"instance": name, "role": "leader", "started_at": now, "seen_at": now,
             "listen": "127.0.0.1:8787", "next_runs": {"pull": pull}, "last_cycle": None,
             "mappings": None}))
    assert store.take_lease("leader", "new:2:2", ttl_seconds=60) is not None
    found = collect_status(config, store)
    assert [(i["instance"], i["leader"]) for i in found["daemons"]["instances"]] == [
        ("new:2:2", True), ("old:1:1", False)]
    assert found["stages"]["pull"]["next_run"] == "2026-01-02T00:00:00+00:00"


def test_preview_with_a_bad_mapping_stops_before_any_call(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    from connector.cli.main import main
    from tests.cli.test_config_check import GOOD_ENV

    for name, value in GOOD_ENV.items():
        monkeypatch.setenv(name, value)
    path = make_config(tmp_path)
    fields = tmp_path / "mappings" / "fields.toml"
    fields.write_text(fields.read_text().replace('hubspot = "jobtitle"',
                                                 'hubspot = "jobtitle"\ncase = "sideways"'))
    with pytest.raises(SystemExit) as ended:
        main(["mappings", "preview", "-c", str(path)])
    setup_logging()
    err = capsys.readouterr().err
    assert ended.value.code == 2, err  # Salesforce (unreachable here) is never tried
    assert str(fields) in err and "fields[3].case" in err
