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
