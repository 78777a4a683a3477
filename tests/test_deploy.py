"""deploy/: the systemd unit and the container file run the daemon as documented: non-root,
config and state apart, stopped by SIGTERM with time for the batch in flight, health checked
on /healthz, with options `handshake run` has."""

from __future__ import annotations

import configparser
import json
import re
import shlex
from pathlib import Path

from typer.testing import CliRunner

from connector.cli import app

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"


def _run_options() -> str:
    result = CliRunner().invoke(app, ["run", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return result.output


def _used_options(command: list[str]) -> list[str]:
    return [arg for arg in command if arg.startswith("--")]


def test_systemd_unit_runs_the_daemon_as_its_own_user() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(DEPLOY / "handshake.service")
    service = unit["Service"]
    command = shlex.split(service["ExecStart"])
    assert command[0].endswith("/handshake") and command[1] == "run"
    help_text = _run_options()
    assert all(option in help_text for option in _used_options(command))
    assert service["User"] not in ("", "root")
    assert service["KillSignal"] == "SIGTERM"
    assert int(service["TimeoutStopSec"]) >= 30  # the daemon exits within 30 s
    assert service["RestartPreventExitStatus"] == "2"  # a bad config: restarting will not help
    assert "EnvironmentFile" in service  # secrets stay out of the unit
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def test_container_runs_non_root_with_config_and_state_as_volumes() -> None:
    text = (DEPLOY / "Containerfile").read_text()
    users = re.findall(r"^USER\s+(\S+)", text, re.MULTILINE)
    assert users and users[-1] not in ("root", "0")
    volumes = re.search(r"^VOLUME\s+(\[.*\])", text, re.MULTILINE)
    assert volumes is not None and '"/config"' in volumes.group(1) and '"/state"' in volumes.group(1)
    assert re.search(r"^HEALTHCHECK .*\n?.*http://127\.0\.0\.1:8787/healthz", text, re.MULTILINE)
    assert re.search(r"^STOPSIGNAL SIGTERM", text, re.MULTILINE)
    cmd = re.search(r"^CMD\s+(\[.*\])", text, re.MULTILINE)
    assert cmd is not None
    command = json.loads(cmd.group(1))
    assert command[:2] == ["handshake", "run"]
    assert all(option in _run_options() for option in _used_options(command))
    assert "0.0.0.0:8787" in command  # reachable from outside the container, on the healthcheck's port
