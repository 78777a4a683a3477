"""`handshake mappings check` through the real command line."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.cli.test_config_check import EXAMPLE, ROOT, run_cli


def test_shipped_mappings_pass() -> None:
    result = run_cli("mappings", "check", "--config", str(EXAMPLE))
    assert result.returncode == 0, result.stderr
    assert "scoring model is valid" in result.stdout


def test_a_broken_scoring_file_stops_with_file_line_and_key(tmp_path: Path) -> None:
    (tmp_path / "mappings").mkdir()
    shutil.copy(ROOT / "tests/scoring/broken/bad_property_name.toml",
                tmp_path / "mappings" / "scoring.toml")
    config = tmp_path / "h.toml"
    config.write_text(EXAMPLE.read_text())
    result = run_cli("mappings", "check", "--config", str(config))
    assert result.returncode == 2
    assert f"{tmp_path / 'mappings' / 'scoring.toml'}:" in result.stderr
    assert "fit.rules[0].property" in result.stderr
    assert "fix:" in result.stderr


def test_shipped_mappings_pass_includes_the_sla() -> None:
    result = run_cli("mappings", "check", "--config", str(EXAMPLE))
    assert result.returncode == 0, result.stderr
    assert "SLA is valid (first touch 24 h, worked 48 h)" in result.stdout


def test_a_broken_sla_file_stops_with_file_line_and_key(tmp_path: Path) -> None:
    (tmp_path / "mappings").mkdir()
    for name in ("fields", "scoring", "routing"):
        shutil.copy(ROOT / "mappings" / f"{name}.toml", tmp_path / "mappings" / f"{name}.toml")
    sla = (ROOT / "mappings" / "sla.toml").read_text(encoding="utf-8")
    broken = sla.replace('time_zone = "America/New_York"', 'time_zone = "Eastern Time"')
    (tmp_path / "mappings" / "sla.toml").write_text(broken, encoding="utf-8")
    line = broken.splitlines().index('time_zone = "Eastern Time"') + 1
    config = tmp_path / "h.toml"
    config.write_text(EXAMPLE.read_text())
    result = run_cli("mappings", "check", "--config", str(config))
    assert result.returncode == 2
    assert f"{tmp_path / 'mappings' / 'sla.toml'}:{line}" in result.stderr
    assert "business_hours.time_zone" in result.stderr
    assert "IANA" in result.stderr
    assert "fix:" in result.stderr.lower()


def test_live_check_names_sla_statuses_the_org_lacks(tmp_path: Path) -> None:
    """Against the sandbox org (Salesforce's default Lead statuses): the shipped SLA passes; a
    status the org lacks is reported with the sla.toml line and the org's values."""
    import os
    import subprocess
    import sys

    from connector.sandbox import Sandbox
    from tests.pull.helpers import sandbox_env, sandbox_toml

    with Sandbox(contacts=20, seed=7, workdir=tmp_path / "sb") as sb:
        (tmp_path / "mappings").mkdir()
        for name in ("fields", "scoring", "routing", "sla"):
            shutil.copy(ROOT / "mappings" / f"{name}.toml", tmp_path / "mappings")
        config = tmp_path / "h.toml"
        config.write_text(sandbox_toml(sb, tmp_path / "state.db"))
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "COLUMNS": "200",
               "PYTHONPATH": str(ROOT), **sandbox_env(sb)}

        def check() -> subprocess.CompletedProcess[str]:
            return subprocess.run([sys.executable, "-m", "connector.cli", "mappings", "check",
                                   "--live", "-c", str(config)], capture_output=True, text=True,
                                  env=env, cwd=ROOT, timeout=120, check=False)

        result = check()
        assert result.returncode == 0, result.stderr
        assert "SLA is valid" in result.stdout
        sla = tmp_path / "mappings" / "sla.toml"
        text = sla.read_text(encoding="utf-8").replace(
            'lead_status = "Open - Not Contacted"', 'lead_status = "Back to Marketing"')
        sla.write_text(text)
        line = text.splitlines().index('lead_status = "Back to Marketing"') + 1
        result = check()
        assert result.returncode == 2
        assert f"{sla}:{line}" in result.stderr
        assert "recycling.lead_status" in result.stderr
        assert "Back to Marketing" in result.stderr
        assert "Open - Not Contacted" in result.stderr  # the org's values, as the fix
