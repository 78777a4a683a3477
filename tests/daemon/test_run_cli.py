"""`handshake run`'s inputs and its one-shot mode: a bad `[daemon]` value or `--listen` exits 2
naming the file and key (or the option) before either system is touched; a broken mapping file
too; the `[schedule]` and `[daemon]` defaults; `--once` runs one cycle of every stage and
exits with the README's code, leaving the leadership free."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from connector.config import Config, DaemonSettings, ScheduleSettings, load_config
from connector.errors import ConfigError
from connector.runtime.lease import LEADER
from connector.store import Store
from tests.cli.test_config_check import GOOD_ENV, run_cli
from tests.daemon.helpers import ROOT, handshake_leads, wall_sandbox, write_config
from tests.pull.helpers import sandbox_env

BASE = """
[hubspot]
base_url = "http://127.0.0.1:9"
[salesforce]
instance_url = "https://127.0.0.1:9"
login_url = "https://127.0.0.1:9"
"""


def test_the_shipped_intervals_and_daemon_settings() -> None:
    schedule, daemon = ScheduleSettings(), DaemonSettings()
    assert (schedule.pull_interval_minutes, schedule.score_interval_minutes,
            schedule.push_interval_minutes, schedule.pullback_interval_minutes,
            schedule.sla_interval_minutes, schedule.dlq_interval_minutes) == (2, 2, 2, 5, 15, 60)
    assert (daemon.listen, daemon.leader_ttl_seconds, daemon.health_max_age_minutes,
            daemon.webhook_max_body_bytes) == ("127.0.0.1:8787", 15, 30, 1_000_000)
    example = load_config(ROOT / "config.example.toml", GOOD_ENV)
    assert example.daemon == daemon
    assert example.schedule.sla_interval_minutes == 15
    assert isinstance(example, Config)


@pytest.mark.parametrize(("section", "key", "words"), [
    ('[daemon]\nlisten = "localhost"\n', "daemon.listen", "host:port"),
    ('[daemon]\nlisten = "127.0.0.1:99999"\n', "daemon.listen", "host:port"),
    ("[daemon]\nleader_ttl_seconds = 1\n", "daemon.leader_ttl_seconds", "greater than"),
    ("[daemon]\nhealth_max_age_minutes = 0\n", "daemon.health_max_age_minutes", "greater than"),
    ("[daemon]\nports = 3\n", "daemon.ports", "unknown key"),
    ("[schedule]\nsla_interval_minutes = 0\n", "schedule.sla_interval_minutes", "greater than"),
])
def test_a_bad_value_exits_2_naming_file_and_key(tmp_path: Path, section: str, key: str,
                                                 words: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(BASE + section)
    with pytest.raises(ConfigError):
        load_config(path, GOOD_ENV)
    result = run_cli("run", "-c", str(path), env=GOOD_ENV)
    assert result.returncode == 2, result.stderr
    line = next((ln for ln in result.stderr.splitlines() if f" {key}:" in ln), None)
    assert line is not None and str(path) in line, result.stderr
    assert words in result.stderr
    assert "Traceback" not in result.stderr


def test_a_bad_listen_option_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "ok.toml"
    path.write_text(BASE)
    result = run_cli("run", "-c", str(path), "--listen", "nowhere", env=GOOD_ENV)
    assert result.returncode == 2
    assert "--listen" in result.stderr and "host:port" in result.stderr


def test_a_broken_mapping_file_exits_2_before_anything_runs(tmp_path: Path) -> None:
    (tmp_path / "fields.toml").write_text("[[fields]\n")
    path = tmp_path / "ok.toml"
    path.write_text(BASE + f'[state]\ndatabase_url = "sqlite:///{tmp_path / "s.db"}"\n'
                    f'[mappings]\nfields = "{tmp_path / "fields.toml"}"\n')
    result = run_cli("run", "-c", str(path), env=GOOD_ENV)
    assert result.returncode == 2, result.stderr
    assert "fields.toml" in result.stderr
    assert not (tmp_path / "s.db").exists(), "the state store was touched"


@pytest.mark.slow
def test_once_runs_one_cycle_and_exits(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    url = f"sqlite:///{db}"
    with wall_sandbox(tmp_path, 60) as sb:
        config = write_config(sb, tmp_path, database_url=url)
        env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), **sandbox_env(sb)}
        result = subprocess.run([sys.executable, "-m",
                                 "connector.cli", "run", "-c", str(config), "--once"],
                                check=False, cwd=ROOT, env=env, capture_output=True,
                                text=True, timeout=120)
        # a contact the sandbox makes without an email is parked: ok or degraded
        assert result.returncode in (0, 3), result.stderr[-3000:]
        assert handshake_leads(sb), "the cycle handed no MQL off"
        store = Store(url)
        try:
            stages = [r.stage for r in reversed(store.runs(limit=50))]
            assert stages[:4] == ["pull", "score", "push", "pullback"]
            assert {r.status for r in store.runs(limit=50)} <= {"ok", "degraded"}
            lease = store.lease(LEADER)
            assert lease is not None and lease.holder == ""
            [record] = store.bookmarks("daemon.instance.").values()
            assert json.loads(record)["role"] == "stopped"
        finally:
            store.close()
