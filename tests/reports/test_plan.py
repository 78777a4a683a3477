"""`handshake plan`: the revenue goal worked backwards by hand-checkable arithmetic, from a
funnel measured in the store; refused, saying what is missing, when it cannot be worked back."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from connector.cli import app
from connector.defaults import default_mapping
from connector.errors import ExitCode
from connector.mapping import load_sla
from connector.reports import Funnel, PlanRefused, measure_funnel, work_back
from connector.store import ContactRecord, Store
from tests.cli.test_config_check import GOOD_ENV
from tests.cli.test_failures import assert_message, run
from tests.runtime.helpers import database_url

ENV = {**GOOD_ENV, "COLUMNS": "200"}
T0 = datetime(2026, 11, 2, 9, tzinfo=UTC)
SLA = load_sla(default_mapping("sla")).spec  # type: ignore[arg-type]

# 1,000 leads, 100 MQLs, 100 handed off, 40 accepted, 20 opportunities, 8 closed, 2 won
FUNNEL = Funnel(leads=1000, mqls=100, handoffs=100, accepted=40, opportunities=20, closed=8,
                won=2, won_amounts=(8_000.0, 12_000.0))


def test_the_goal_worked_back_by_hand() -> None:
    # 300,000 a quarter = 100,000 a month; deal 10,000 -> 10 won; win 2/8 = 25% -> 40
    # opportunities; SQL -> opp 20/40 = 50% -> 80 SQLs; MQL -> SQL 40/100 = 40% -> 200 MQLs;
    # lead -> MQL 100/1000 = 10% -> 2,000 leads a month
    plan = work_back(300_000, "quarter", FUNNEL)
    assert plan.per_month == {"won": 10, "opportunities": 40, "sqls": 80, "mqls": 200,
                              "leads": 2000}
    assert plan.per_period == {"won": 30, "opportunities": 120, "sqls": 240, "mqls": 600,
                               "leads": 6000}
    a = plan.assumptions
    assert (a["deal_size"].value, a["deal_size"].source, a["deal_size"].records) == (
        10_000, "measured", 2)
    assert (a["win_rate"].value, a["win_rate"].records) == (0.25, 8)
    assert a["win_rate"].basis == "won of the closed opportunities: 2 of 8"
    assert (a["sql_to_opportunity"].value, a["mql_to_sql"].value, a["lead_to_mql"].value) == (
        0.5, 0.4, 0.1)
    assert (a["mql_to_sql"].records, a["lead_to_mql"].records) == (100, 1000)


def test_fractions_are_kept_and_each_stage_rounded_up() -> None:
    # 50,000 a year: 4,166.67 a month / 10,000 = 0.4167 won -> 1 won a month but 5 a year;
    # opportunities 1.667 -> 2 a month, 20 a year (not 1 x 4 x 12 = 48)
    plan = work_back(50_000, "year", FUNNEL)
    assert plan.per_month["won"] == 1 and plan.per_period["won"] == 5
    assert plan.per_month["opportunities"] == 2 and plan.per_period["opportunities"] == 20
    assert plan.per_period["leads"] == 1000 and plan.per_month["leads"] == 84  # 83.3 a month


def test_given_values_take_the_place_of_measured_ones() -> None:
    plan = work_back(100_000, "month", FUNNEL, given={"deal_size": 5_000, "win_rate": 0.5,
                                                      "mql_to_sql": None})
    assert plan.per_month["won"] == 20 and plan.per_month["opportunities"] == 40
    assert plan.assumptions["deal_size"].source == "given"
    assert plan.assumptions["deal_size"].basis == "--deal-size"
    assert plan.assumptions["mql_to_sql"].source == "measured"  # None: not given


def test_no_won_deal_is_refused_saying_what_is_missing() -> None:
    early = Funnel(leads=500, mqls=50, handoffs=30, accepted=12, opportunities=3, closed=1,
                   won=0, won_amounts=())
    with pytest.raises(PlanRefused) as caught:
        work_back(100_000, "month", early)
    message = str(caught.value)
    assert "average deal size" in message and "--deal-size" in message
    assert "win rate" in message and "0 of 1" in message and "--win-rate" in message
    assert "lead to mql" not in message  # measured: 50 of 500
    # given both, it works back
    plan = work_back(100_000, "month", early, given={"deal_size": 10_000, "win_rate": 0.2})
    assert plan.per_month["opportunities"] == 50


# --- from the store, through the command ----------------------------------------------------


def _store(db: Path | str, *, won: bool) -> None:
    """20 leads; contacts 0-9 handed off; 0-5 accepted (0-3 converted with an opportunity,
    4-5 Working - Contacted), 6 only ever Open, 7 closed not converted; opportunities of 0-1
    won (20,000 and 30,000 when `won`), 2 lost, 3 open."""
    store = Store(db if isinstance(db, str) else f"sqlite:///{db}")
    store.migrate()
    store.upsert_contacts([ContactRecord(f"{i}", f"c{i}@example.com", {}, T0, T0)
                           for i in range(20)])
    store.add_scores([{"contact_id": f"{i}", "scored_at": T0, "interest": 80.0,
                       "fit_grade": "A", "fit_points": 60.0, "is_mql": True,
                       "model_version": "t", "explanation": {}} for i in range(10)])
    for i in range(10):
        store.link(f"{i}", "Lead", f"00Q{i:015d}")
    outcomes, states = [], []
    for i in range(10):
        status = ("Closed - Converted" if i < 4 else "Working - Contacted" if i < 6
                  else "Open - Not Contacted" if i < 7 else "Closed - Not Converted")
        outcomes.append({"hubspot_id": f"{i}", "sf_object": "Lead", "sf_id": f"00Q{i:015d}",
                         "source_id": f"00Q{i:015d}:status:1", "kind": "status",
                         "status": status, "occurred_at": T0})
        state = {"hubspot_id": f"{i}", "lead_id": f"00Q{i:015d}", "status": status,
                 "is_converted": i < 4}
        if i < 4:
            closed, is_won = i < 3, i < 2 and won
            state.update(opportunity_id=f"006{i:015d}", is_closed=closed, is_won=is_won,
                         amount=(20_000.0, 30_000.0, 5_000.0, 9_000.0)[i])
        states.append(state)
    # the Lead that was worked, then closed not converted: accepted all the same? no, 9 was
    # only ever closed; 8 was Working - Contacted before it closed, so it counts as accepted
    outcomes.append({"hubspot_id": "8", "sf_object": "Lead", "sf_id": f"00Q{8:015d}",
                     "source_id": f"00Q{8:015d}:status:0", "kind": "status",
                     "status": "Working - Contacted", "occurred_at": T0})
    store.record_pullback(outcomes=outcomes, states=states)
    store.close()


def _config(tmp_path: Path, db: Path) -> Path:
    path = tmp_path / "handshake.toml"
    path.write_text(f"""
[hubspot]
base_url = "http://127.0.0.1:9"
[salesforce]
instance_url = "https://127.0.0.1:9"
login_url = "https://127.0.0.1:9"
[state]
database_url = "sqlite:///{db}"
""")
    return path


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_funnel_measured_from_the_store(tmp_path: Path, backend: str) -> None:
    with database_url(backend, tmp_path) as url:
        _store(url, won=True)
        store = Store(url)
        try:
            funnel = measure_funnel(store, SLA, T0 + timedelta(days=1))
        finally:
            store.close()
    assert funnel == Funnel(leads=20, mqls=10, handoffs=10, accepted=7, opportunities=4,
                            closed=3, won=2, won_amounts=(20_000.0, 30_000.0))


def test_the_command_prints_the_plan_and_its_assumptions(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    _store(db, won=True)
    config = _config(tmp_path, db)
    result = CliRunner().invoke(app, ["plan", "--revenue-goal", "250000", "--period", "month",
                                      "-c", str(config), "--json"], env=ENV)
    assert result.exit_code == 0, result.output
    got = json.loads(result.stdout)
    # 250,000 / 25,000 = 10 won; / (2/3) = 15 opportunities; / (4/7) = 26.25 -> 27 SQLs;
    # / (7/10) = 37.5 -> 38 MQLs; / (10/20) = 75 leads
    assert got["per_month"] == {"won": 10, "opportunities": 15, "sqls": 27, "mqls": 38,
                                "leads": 75}
    assert got["assumptions"]["deal_size"] == {
        "value": 25_000.0, "source": "measured",
        "basis": "mean Amount of the won opportunities", "records": 2}
    table = CliRunner().invoke(app, ["plan", "--revenue-goal", "250000", "--period", "month",
                                     "-c", str(config)], env=ENV)
    assert table.exit_code == 0
    # (a table's cells wrap on a narrow console: each piece on its own)
    for text in ("Leads", "75", "measured:", "66.7%"):
        assert text in table.stdout


def test_the_command_refuses_without_won_deals_and_says_what_is_missing(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    _store(db, won=False)
    result = run(tmp_path, "plan", "--revenue-goal", "250000", "-c", str(_config(tmp_path, db)))
    assert_message(result, ExitCode.FAILED, "average deal size", "--deal-size", "win rate",
                   "--win-rate")


@pytest.mark.parametrize("args", [["--win-rate", "1.5"], ["--period", "week"],
                                  ["--revenue-goal", "0"]])
def test_bad_values_are_refused_naming_the_option(tmp_path: Path, args: list[str]) -> None:
    db = tmp_path / "state.db"
    _store(db, won=True)
    argv = ["plan", "--revenue-goal", "1000", *args, "-c", str(_config(tmp_path, db))]
    result = CliRunner().invoke(app, argv, env=ENV)
    assert result.exit_code == ExitCode.CONFIG
    assert args[0] in result.stderr
