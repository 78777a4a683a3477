"""`handshake report` on a small store: tables, one JSON object, the HTML page written where
asked; bad windows and paths refused naming the option (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from connector.cli import app
from connector.errors import ExitCode
from tests.reports.test_plan import ENV, _config, _store


def test_json_tables_and_html(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    _store(db, won=True)
    config = str(_config(tmp_path, db))
    got = CliRunner().invoke(app, ["report", "-c", config, "--json"], env=ENV)
    assert got.exit_code == 0, got.output
    data = json.loads(got.stdout)
    assert data["funnel"]["overall"]["counts"] == {"leads": 20, "mqls": 10, "sqls": 7,
                                                   "opportunities": 4, "won": 2}
    assert data["funnel"]["overall"]["rates"]["lead_to_mql"] == 0.5
    page = tmp_path / "out" / "report.html"
    tables = CliRunner().invoke(app, ["report", "-c", config, "--html", str(page)], env=ENV)
    assert tables.exit_code == 0, tables.output
    for text in ("Funnel", "SLA by rep", "Nurture tracks", "List decay", str(page)):
        assert text in tables.stdout
    assert 'data-figure="funnel.overall.counts.leads">20<' in page.read_text()
    # a window with no lead created in it
    empty = CliRunner().invoke(app, ["report", "-c", config, "--json", "--since",
                                     "2030-01-01", "--until", "2030-02-01"], env=ENV)
    assert json.loads(empty.stdout)["funnel"]["overall"]["counts"]["leads"] == 0


def test_bad_values_are_refused_naming_the_option(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    _store(db, won=True)
    config = str(_config(tmp_path, db))
    for args, option in ((["--since", "yesterday"], "--since"),
                         (["--since", "2026-02-01", "--until", "2026-01-01"], "--until"),
                         (["--html", str(tmp_path / "state.db" / "x.html")], "--html")):
        result = CliRunner().invoke(app, ["report", "-c", config, *args], env=ENV)
        assert result.exit_code == ExitCode.CONFIG, (args, result.output)
        assert option in result.stderr
