"""Scoring calibration's arithmetic on hand-made rows: lift, precision/recall, the recommended
threshold, the score distribution, and `--write` editing scoring.toml with its comments kept."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from connector.cli import app
from connector.defaults import DEFAULTS_DIR
from connector.scoring import load_model, parse_model
from connector.scoring.calibrate import (
    MIN_VERDICTS_TO_WRITE,
    best_threshold,
    calibrate,
    edit_thresholds,
    lead_of,
    rate_ratio,
    rule_lifts,
    score_distribution,
    threshold_table,
)
from connector.store import Store
from tests.cli.test_config_check import GOOD_ENV

ENV = {**GOOD_ENV, "COLUMNS": "200"}

CLOSED = ["Closed - Not Converted"]


def row(interest: float, rules: tuple[str, ...] = (), *, converted: bool = False,
        won: bool = False, lost: bool = False, closed: bool = False, recycled: bool = False,
        grade: str = "A") -> dict[str, Any]:
    return {"interest": interest, "grade": grade, "rules": list(rules), "converted": converted,
            "won": won, "lost": lost, "recycled": recycled, "disqualified": False,
            "statuses": ["Closed - Not Converted"] if closed else ["Working - Contacted"]}


def test_rate_ratio() -> None:
    assert rate_ratio(6, 10, 2, 10) == pytest.approx(3.0)
    assert rate_ratio(1, 4, 1, 2) == pytest.approx(0.5)
    assert rate_ratio(3, 10, 0, 10) is None  # nothing converted without: no finite lift
    assert rate_ratio(3, 10, 1, 0) is None and rate_ratio(0, 0, 1, 10) is None


def test_verdicts_and_groups() -> None:
    assert lead_of(row(60, converted=True, won=True), CLOSED).verdict == "accepted"
    assert lead_of(row(60, converted=True, won=True), CLOSED).group == "won"
    assert lead_of(row(60, converted=True, lost=True), CLOSED).group == "lost"
    assert lead_of(row(60, converted=True), CLOSED).group == "opportunity"
    closed = lead_of(row(60, closed=True, recycled=True), CLOSED)
    assert (closed.verdict, closed.group) == ("rejected", "recycled")
    assert lead_of(row(60, closed=True), CLOSED).group == "rejected"
    still_open = lead_of(row(60), CLOSED)
    assert (still_open.verdict, still_open.group) == (None, "open")
    # a recycle for want of a touch is not sales' verdict
    assert lead_of(row(60, recycled=True), CLOSED).verdict is None


def test_lift_on_conversion_and_on_won() -> None:
    rows = [
        # "Demo": 4 leads, 3 converted (2 won); without it: 4 leads, 1 converted (0 won)
        row(90, ("Demo",), converted=True, won=True),
        row(90, ("Demo",), converted=True, won=True),
        row(90, ("Demo", "Open"), converted=True),
        row(90, ("Demo", "Open"), closed=True),
        row(70, ("Open",), converted=True),
        row(70, ("Open",), closed=True),
        row(70, ("Open",), closed=True),
        row(70, (), closed=True),
        row(70, ("Demo",)),  # no verdict yet: counted nowhere
    ]
    leads = [lead_of(r, CLOSED) for r in rows]
    lifts = {r.rule: r for r in rule_lifts(leads, min_support=2, rules=["Unused"])}
    demo = lifts["Demo"]
    assert (demo.leads_with, demo.leads_without) == (4, 4)
    assert demo.conversion_with == 0.75 and demo.conversion_without == 0.25
    assert demo.lift == pytest.approx(3.0)
    assert demo.won_with == 0.5 and demo.won_without == 0.0 and demo.won_lift is None
    opened = lifts["Open"]  # 5 leads with it, 2 converted; 3 without, 2 converted
    assert opened.lift == pytest.approx((2 / 5) / (2 / 3))
    assert lifts["Unused"].leads_with == 0 and not lifts["Unused"].ranked
    ranked = [r.rule for r in rule_lifts(leads, min_support=2)]
    assert ranked == ["Demo", "Open"]
    # under the support floor a rule is listed, not ranked
    assert not any(r.ranked for r in rule_lifts(leads, min_support=5))


def test_precision_recall_and_the_recommended_threshold() -> None:
    rows = [row(s, converted=c, closed=not c) for s, c in (
        (55, False), (60, False), (65, False), (70, True), (75, False), (80, True),
        (85, True), (90, False), (95, True), (100, True))]
    leads = [lead_of(r, CLOSED) for r in rows]
    table = {t.threshold: t for t in threshold_table(leads, [50, 70, 80, 96, 101])}
    assert (table[50].leads, table[50].accepted, table[50].acceptance, table[50].recall) == (
        10, 5, 0.5, 1.0)
    assert (table[70].leads, table[70].accepted) == (7, 5)
    assert table[70].acceptance == pytest.approx(5 / 7) and table[70].recall == 1.0
    assert table[80].acceptance == pytest.approx(4 / 5) and table[80].recall == pytest.approx(0.8)
    assert table[96].acceptance == 1.0 and table[96].recall == pytest.approx(0.2)
    assert table[101].leads == 0 and table[101].acceptance is None
    # the lowest threshold whose leads reach the target
    scored = [(lead.score, 1.0 if lead.verdict == "accepted" else 0.0) for lead in leads]
    assert best_threshold(scored, 0.5) == (0, True)
    assert best_threshold(scored, 0.7) == (66, True)  # 70 and up: 5 of 7
    assert best_threshold(scored, 0.8) == (76, True)  # 80 and up: 4 of 5
    assert best_threshold([(70, 0.0), (80, 1.0), (90, 0.0)], 0.9) == (71, False)  # best: 1/2
    result = calibrate(rows, target=0.7, current={"A": 50, "B": 50, "C": 80},
                       closed_statuses=CLOSED)
    (grade_a,) = result.recommendations
    assert (grade_a.threshold, grade_a.meets_target) == (66, True)
    assert grade_a.acceptance == pytest.approx(5 / 7)
    assert not grade_a.enough  # 10 verdicts
    assert {t.threshold for t in grade_a.table} >= {50, 55, 66, 100}
    # under the current threshold nothing is known: it stays
    lower = calibrate(rows, target=0.5, current={"A": 60}, closed_statuses=CLOSED)
    assert lower.recommendations[0].threshold == 60
    assert lower.recommendations[0].acceptance == pytest.approx(5 / 9)
    with pytest.raises(ValueError, match="between 0 and 1"):
        calibrate(rows, target=1.2, current={}, closed_statuses=CLOSED)


def test_score_distribution_by_outcome() -> None:
    rows = [row(60, converted=True, won=True), row(80, converted=True, won=True),
            row(100, converted=True, won=True), row(70, converted=True, lost=True),
            row(65, closed=True, recycled=True)]
    dist = score_distribution([lead_of(r, CLOSED) for r in rows])
    assert list(dist) == ["won", "lost", "recycled"]
    assert dist["won"] == {"count": 3, "min": 60, "p25": 70, "median": 80, "p75": 90,
                           "max": 100, "mean": 80}
    assert dist["lost"]["median"] == 70 and dist["lost"]["count"] == 1


def test_write_keeps_the_comments_and_layout() -> None:
    text = (DEFAULTS_DIR / "scoring.toml").read_text(encoding="utf-8")
    new, changed = edit_thresholds(text, {"A": 72})
    # B may not need less interest than A: raised with it; C (80) already needs more
    assert changed == {"A": 72, "B": 72}
    old_lines, new_lines = text.splitlines(), new.splitlines()
    assert len(old_lines) == len(new_lines)
    differ = [(a, b) for a, b in zip(old_lines, new_lines, strict=True) if a != b]
    assert differ == [("thresholds = { A = 50, B = 50, C = 80 }",
                       "thresholds = { A = 72, B = 72, C = 80 }")]
    assert parse_model(new).mql.thresholds == {"A": 72, "B": 72, "C": 80}
    assert edit_thresholds(new, {"A": 72}) == (new, {})


# --- the command -------------------------------------------------------------------------------


def _verdict_rows(store: Store, n: int) -> None:
    """`n` hand-offs scored 60..99 with a verdict each (the higher, the likelier converted)."""
    from datetime import UTC, datetime, timedelta

    from connector.store.models import HandoffState, IdLink, Score

    at = datetime(2026, 1, 5, tzinfo=UTC)
    with store.transaction() as s:
        for i in range(n):
            hid = str(1000 + i)
            interest = 60 + i % 40
            s.add(Score(contact_id=hid, scored_at=at, interest=interest, fit_grade="A",
                        fit_points=90, is_mql=True, explanation={
                            "fit": {"rules": [["C-level", "seniority", "c_level", 40]]},
                            "interest": {"rules": [["Demo request", 1, "form_submission",
                                                    at.isoformat(), "x", 50, 50.0]]}}))
            s.add(IdLink(hubspot_id=hid, sf_object="Lead", sf_id=f"00Q{i:015d}",
                         linked_at=at + timedelta(minutes=1), updated_at=at))
            converted = interest >= 80 and i % 3 != 0
            s.add(HandoffState(hubspot_id=hid, lead_id=f"00Q{i:015d}", is_converted=converted,
                               status="Closed - Converted" if converted
                               else "Closed - Not Converted", updated_at=at))


@pytest.fixture
def admin(tmp_path: Path) -> tuple[Path, Path]:
    """A config with its own mappings/ folder (the shipped files copied) and a state store."""
    mappings = tmp_path / "mappings"
    mappings.mkdir()
    for name in ("scoring", "fields", "routing", "sla"):
        shutil.copy(DEFAULTS_DIR / f"{name}.toml", mappings / f"{name}.toml")
    db = tmp_path / "state.db"
    config = tmp_path / "handshake.toml"
    config.write_text(f"""
[hubspot]
base_url = "http://127.0.0.1:9"
[salesforce]
instance_url = "https://127.0.0.1:9"
login_url = "https://127.0.0.1:9"
[state]
database_url = "sqlite:///{db}"
""", encoding="utf-8")
    return config, mappings / "scoring.toml"


def _invoke(config: Path, *args: str) -> Any:
    return CliRunner().invoke(app, ["--config", str(config), "scoring", "calibrate", *args],
                              env=ENV)


def test_the_command_refuses_bad_values_and_too_few_outcomes(admin: tuple[Path, Path]) -> None:
    config, scoring = admin
    run = _invoke(config, "--target-acceptance", "1.5")
    assert run.exit_code == 2 and "between 0 and 1" in run.stderr
    store = Store(f"sqlite:///{config.parent / 'state.db'}")
    store.migrate()
    try:
        run = _invoke(config)
        assert run.exit_code == 1 and "none with a sales verdict" in run.stderr
        _verdict_rows(store, 40)
    finally:
        store.close()
    before = scoring.read_text(encoding="utf-8")
    run = _invoke(config, "--write")
    assert run.exit_code == 1 and "refusing to write" in run.stderr
    assert f"at least {MIN_VERDICTS_TO_WRITE}" in run.stderr and "grade A has 40" in run.stderr
    assert scoring.read_text(encoding="utf-8") == before


def test_the_command_writes_the_threshold_after_the_diff(admin: tuple[Path, Path]) -> None:
    config, scoring = admin
    store = Store(f"sqlite:///{config.parent / 'state.db'}")
    store.migrate()
    try:
        _verdict_rows(store, 120)
    finally:
        store.close()
    run = _invoke(config, "--target-acceptance", "0.6", "--json")
    assert run.exit_code == 0, run.output
    doc = json.loads(run.stdout)
    assert doc["verdicts"] == 120 and doc["written"] is False
    recommended = doc["thresholds"]["A"]["threshold"]
    assert 70 <= recommended <= 85 and doc["thresholds"]["A"]["meets_target"]
    run = _invoke(config, "--target-acceptance", "0.6", "--write")
    assert run.exit_code == 0, run.output
    assert f"+thresholds = {{ A = {recommended}, B = {recommended}, C = 80 }}" in run.stdout
    assert "-thresholds = { A = 50, B = 50, C = 80 }" in run.stdout
    assert load_model(scoring).mql.thresholds["A"] == recommended
    assert "# MQL: the grade x interest matrix" in scoring.read_text(encoding="utf-8")
    run = _invoke(config, "--target-acceptance", "0.6", "--write")
    assert run.exit_code == 0 and "nothing written" in run.stdout


def test_calibration_rows_read_the_score_at_the_hand_off(store: Store) -> None:
    """On SQLite and PostgreSQL: the newest full score at or before the link (not a later one,
    nor a recycle's adjustment), the rules that gave it points, and what sales did since."""
    from datetime import UTC, datetime, timedelta

    from connector.store.models import HandoffState, IdLink, SalesOutcome, Score

    at = datetime(2026, 1, 5, tzinfo=UTC)

    def explained(interest: float, rule: str) -> dict[str, Any]:
        return {"fit": {"rules": [["C-level", "seniority", "c_level", 40]]},
                "interest": {"score": interest, "rules": [[rule, 1, "form_submission",
                                                           at.isoformat(), "x", 50, 50.0]]}}

    with store.transaction() as s:
        s.add(Score(contact_id="1", scored_at=at - timedelta(days=1), interest=40,
                    fit_grade="A", fit_points=90, explanation=explained(40, "Whitepaper")))
        s.add(Score(contact_id="1", scored_at=at, interest=75, fit_grade="A", fit_points=90,
                    is_mql=True, explanation=explained(75, "Demo request")))
        s.add(Score(contact_id="1", scored_at=at + timedelta(days=3), interest=37.5,
                    fit_grade="A", fit_points=90, explanation={"recycled": "closed"}))
        s.add(Score(contact_id="1", scored_at=at + timedelta(days=4), interest=90,
                    fit_grade="A", fit_points=90, explanation=explained(90, "Contact us")))
        s.add(IdLink(hubspot_id="1", sf_object="Lead", sf_id="00Q000000000000001",
                     linked_at=at + timedelta(minutes=1), updated_at=at))
        s.add(IdLink(hubspot_id="2", sf_object="Lead", sf_id="00Q000000000000002",
                     linked_at=at, updated_at=at))  # never scored: not a row
        s.add(HandoffState(hubspot_id="1", lead_id="00Q000000000000001",
                           status="Open - Not Contacted", updated_at=at))
        for n, (kind, status) in enumerate((("status", "Closed - Not Converted"),
                                            ("recycled", "Open - Not Contacted"),
                                            ("attempt", None))):
            s.add(SalesOutcome(hubspot_id="1", sf_object="Lead", sf_id="00Q000000000000001",
                               source_id=f"src-{n}", kind=kind, status=status,
                               occurred_at=at + timedelta(days=2)))
    (row,) = store.calibration_rows()
    assert row["hubspot_id"] == "1" and row["interest"] == 75 and row["grade"] == "A"
    assert row["rules"] == ["C-level", "Demo request"]
    assert row["statuses"] == ["Closed - Not Converted", "Open - Not Contacted"]
    assert (row["converted"], row["won"], row["lost"]) == (False, False, False)
    assert (row["recycled"], row["disqualified"]) == (True, False)
    lead = lead_of(row, CLOSED)
    assert (lead.verdict, lead.group) == ("rejected", "recycled")
