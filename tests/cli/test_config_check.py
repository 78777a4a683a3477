"""`handshake config check`: every mistake listed with its key, exit 2; the example passes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from connector.config import load_config
from connector.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config.example.toml"
GOOD_ENV = {
    "HANDSHAKE_HUBSPOT_TOKEN": "pat-na1-11111111-2222-3333-4444-555555555555",
    "HANDSHAKE_SF_USERNAME": "integration@example.com",
    "HANDSHAKE_SF_PASSWORD": "Sup3r-Secret-Pass",
    "HANDSHAKE_SF_SECURITY_TOKEN": "TOKENabcdef123456",
}
FIVE_MISTAKES = """
[hubspot]
base_url = "api.hubapi.com"          # bad URL: no scheme
tier = "professional"
colour = "blue"                      # unknown key
timeout_seconds = "thirty"           # wrong type

[schedule]
pull_interval_minutes = -5           # negative interval
# [salesforce] is missing entirely   # missing required section
"""


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    # PYTHONPATH: this checkout's package, whatever the working directory
    base = {"PATH": "/usr/bin:/bin", "HOME": str(cwd or ROOT), "COLUMNS": "200",
            "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "connector.cli", *args],
        check=False, capture_output=True, text=True, env={**base, **(env or {})}, cwd=cwd or ROOT,
        timeout=60,
    )


def test_five_mistakes_are_all_listed_with_their_keys(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(FIVE_MISTAKES)
    result = run_cli("config", "check", "--config", str(bad), env=GOOD_ENV)
    assert result.returncode == 2
    text = result.stderr
    for key, words in [
        ("hubspot.colour", "unknown key"),
        ("hubspot.timeout_seconds", "valid number"),
        ("salesforce", "required section [salesforce] is missing"),
        ("hubspot.base_url", "not an http(s) URL"),
        ("schedule.pull_interval_minutes", "greater than 0"),
    ]:
        line = next((ln for ln in text.splitlines() if f" {key}:" in ln), None)
        assert line is not None, f"{key} not reported:\n{text}"
        assert words in line
        assert str(bad) in line
    assert "5 configuration problem(s)" in text
    assert text.count("fix:") == 5


def test_example_config_passes_with_the_env_set(tmp_path: Path) -> None:
    result = run_cli("config", "check", "--config", str(EXAMPLE), env=GOOD_ENV, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "configuration is valid" in result.stdout
    assert f"SQLite file {tmp_path / 'handshake.db'} can be reached and written" in result.stdout
    assert (tmp_path / "handshake.db").exists()  # created empty, as the first run would


def test_config_from_environment_variable_path(tmp_path: Path) -> None:
    result = run_cli("config", "check", env={**GOOD_ENV, "HANDSHAKE_CONFIG": str(EXAMPLE)},
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr


def test_missing_secrets_are_reported_by_variable_name() -> None:
    result = run_cli("config", "check", "--config", str(EXAMPLE), env={})
    assert result.returncode == 2
    for name in ["HANDSHAKE_HUBSPOT_TOKEN", "HANDSHAKE_SF_USERNAME", "HANDSHAKE_SF_PASSWORD",
                 "HANDSHAKE_SF_SECURITY_TOKEN"]:
        assert name in result.stderr


def test_missing_file_and_bad_toml(tmp_path: Path) -> None:
    result = run_cli("config", "check", "--config", str(tmp_path / "nope.toml"), env=GOOD_ENV)
    assert result.returncode == 2 and "file not found" in result.stderr
    broken = tmp_path / "broken.toml"
    broken.write_text("[hubspot\nbase_url=")
    result = run_cli("config", "check", "--config", str(broken), env=GOOD_ENV)
    assert result.returncode == 2 and "not valid TOML" in result.stderr


@pytest.mark.parametrize(
    ("auth", "needed"),
    [
        ("jwt", ["HANDSHAKE_SF_CONSUMER_KEY", "HANDSHAKE_SF_PRIVATE_KEY_FILE"]),
        ("client_credentials", ["HANDSHAKE_SF_CLIENT_ID", "HANDSHAKE_SF_CLIENT_SECRET"]),
        ("session", ["HANDSHAKE_SF_SESSION_ID"]),
    ],
)
def test_each_salesforce_auth_needs_its_secrets(tmp_path: Path, auth: str, needed: list[str]) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(EXAMPLE.read_text().replace('auth = "password"', f'auth = "{auth}"'))
    with pytest.raises(ConfigError) as info:
        load_config(cfg, {"HANDSHAKE_HUBSPOT_TOKEN": "x"})
    assert sorted(p.key for p in info.value.problems) == sorted(
        needed + (["HANDSHAKE_SF_USERNAME"] if auth == "jwt" else [])
    )


def test_mapping_paths_are_relative_to_the_config_file() -> None:
    config = load_config(EXAMPLE, GOOD_ENV)
    assert config.mapping_path("scoring") == ROOT / "mappings" / "scoring.toml"


def test_help_lists_commands() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    assert "config" in result.stdout and "db" in result.stdout
