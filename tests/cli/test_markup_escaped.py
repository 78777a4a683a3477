"""Data printed through rich is shown as it is: square brackets in paths, keys and values are
not taken for console markup."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from connector.cli import app
from tests.cli.test_config_check import GOOD_ENV


def test_config_check_and_show_print_bracketed_paths_and_values_verbatim(tmp_path: Path) -> None:
    folder = tmp_path / "[bold]handshake"
    folder.mkdir()
    config = folder / "handshake.toml"
    config.write_text(f"""
[hubspot]
base_url = "http://127.0.0.1:9"
[salesforce]
instance_url = "https://127.0.0.1:9"
[state]
database_url = "sqlite:///{folder / 'state.db'}"
[mappings]
routing = "[red]routing[/].toml"
""")
    env = {**GOOD_ENV, "COLUMNS": "300"}
    checked = CliRunner().invoke(app, ["config", "check", "-c", str(config)], env=env)
    assert checked.exit_code == 0, checked.output
    assert f"{config}: configuration is valid" in checked.stdout
    shown = CliRunner().invoke(app, ["config", "show", "-c", str(config)], env=env)
    assert shown.exit_code == 0, shown.output
    lines = shown.stdout.splitlines()
    assert "[state]" in lines and "[mappings]" in lines
    assert f"  database_url = 'sqlite:///{folder / 'state.db'}'" in lines
    assert "  routing = '[red]routing[/].toml'" in lines


def test_a_bad_date_is_echoed_verbatim() -> None:
    result = CliRunner().invoke(app, ["backfill", "--since", "[bold]soon[/]", "-c", "x.toml"],
                                env={"COLUMNS": "200"})
    assert result.exit_code == 2
    assert "--since: '[bold]soon[/]' is not a date" in result.stderr
