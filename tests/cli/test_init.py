"""`handshake init [DIR]`: the commented config and the four mapping files written for an admin,
never over an existing file without --force, and a result `config check` accepts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from connector.cli.main import app
from connector.config import load_config
from connector.defaults import CONFIG_EXAMPLE, DEFAULT_MAPPINGS

ROOT = Path(__file__).resolve().parents[2]
GOOD_ENV = {
    "HANDSHAKE_HUBSPOT_TOKEN": "pat-na1-11111111-2222-3333-4444-555555555555",
    "HANDSHAKE_SF_USERNAME": "integration@example.com",
    "HANDSHAKE_SF_PASSWORD": "Sup3r-Secret-Pass",
    "HANDSHAKE_SF_SECURITY_TOKEN": "TOKENabcdef123456",
}
WRITTEN = ["handshake.toml", "mappings/fields.toml", "mappings/scoring.toml",
           "mappings/routing.toml", "mappings/sla.toml"]


def run_cli(*args: str, cwd: Path, env: dict[str, str] | None = None,
            ) -> subprocess.CompletedProcess[str]:
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(cwd), "COLUMNS": "200",
            "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "connector.cli", *args], capture_output=True,
                          check=False, text=True, env={**base, **(env or {})}, cwd=cwd, timeout=120)


def test_init_writes_the_commented_config_and_the_three_mapping_files(tmp_path: Path) -> None:
    target = tmp_path / "trial"
    result = CliRunner().invoke(app, ["init", str(target)])
    assert result.exit_code == 0, result.output
    written = sorted(str(p.relative_to(target)) for p in target.rglob("*") if p.is_file())
    assert written == sorted(WRITTEN)
    assert (target / "handshake.toml").read_bytes() == CONFIG_EXAMPLE.read_bytes()
    assert (target / "handshake.toml").read_text().startswith("# Handshake configuration")
    for name, shipped in DEFAULT_MAPPINGS.items():
        assert (target / "mappings" / f"{name}.toml").read_bytes() == shipped.read_bytes()
    for path in WRITTEN:
        assert str(target / path) in result.output
    assert "config check" in result.output  # says what to do next
    assert "HANDSHAKE_HUBSPOT_TOKEN" in result.output


def test_init_writes_into_the_current_folder_by_default(tmp_path: Path) -> None:
    result = run_cli("init", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert all((tmp_path / path).is_file() for path in WRITTEN)


def test_init_refuses_to_overwrite_naming_each_existing_file(tmp_path: Path) -> None:
    (tmp_path / "mappings").mkdir()
    mine = tmp_path / "mappings" / "routing.toml"
    mine.write_text("# my routing\n")
    (tmp_path / "handshake.toml").write_text("# my config\n")
    result = run_cli("init", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 2
    assert f"{tmp_path / 'handshake.toml'} already exists" in result.stderr
    assert f"{mine} already exists" in result.stderr
    assert "--force" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    # nothing written, not even the files that did not exist
    assert mine.read_text() == "# my routing\n"
    assert (tmp_path / "handshake.toml").read_text() == "# my config\n"
    assert not (tmp_path / "mappings" / "fields.toml").exists()


def test_init_force_overwrites(tmp_path: Path) -> None:
    (tmp_path / "handshake.toml").write_text("# my config\n")
    result = CliRunner().invoke(app, ["init", str(tmp_path), "--force"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "handshake.toml").read_bytes() == CONFIG_EXAMPLE.read_bytes()


def test_init_into_a_path_that_is_a_file_says_so_without_a_traceback(tmp_path: Path) -> None:
    blocker = tmp_path / "taken"
    blocker.write_text("a file, not a folder\n")
    result = run_cli("init", str(blocker), cwd=tmp_path)
    assert result.returncode == 1
    assert f"could not write {blocker / 'handshake.toml'}" in result.stderr
    assert "Fix:" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_written_config_passes_config_check_and_uses_the_written_mappings(
    tmp_path: Path,
) -> None:
    assert run_cli("init", cwd=tmp_path).returncode == 0
    checked = run_cli("config", "check", cwd=tmp_path, env=GOOD_ENV)
    assert checked.returncode == 0, checked.stderr
    assert "configuration is valid" in checked.stdout
    mappings = run_cli("mappings", "check", cwd=tmp_path, env=GOOD_ENV)
    assert mappings.returncode == 0, mappings.stdout + mappings.stderr
    config = load_config(tmp_path / "handshake.toml", GOOD_ENV)
    for name in DEFAULT_MAPPINGS:
        assert config.mapping_path(name) == tmp_path / "mappings" / f"{name}.toml"
