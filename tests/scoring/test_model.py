"""scoring.toml validation: the shipped file is valid; each broken file in `broken/` is rejected
with the right key, line and message; every problem of a file is listed at once."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from connector.errors import ConfigError
from connector.mapping._toml import KeyLines
from connector.scoring.model import load_model, parse_model, property_problems
from tests.scoring.helpers import DEFAULT_MODEL

BROKEN = sorted((Path(__file__).parent / "broken").glob("*.toml"))
MARKER = "# <- here"


def expectations(path: Path) -> tuple[str, str, int | None]:
    text = path.read_text(encoding="utf-8")
    key = re.search(r"^# .*expect-key: (.+)$", text, re.MULTILINE)
    problem = re.search(r"^# expect-problem: (.+)$", text, re.MULTILINE)
    assert key and problem, f"{path.name} lacks its expectation header"
    lines = [i for i, line in enumerate(text.splitlines(), start=1) if MARKER in line]
    return key.group(1).strip(), problem.group(1).strip(), lines[0] if lines else None


def test_the_shipped_model_is_valid() -> None:
    model = load_model(DEFAULT_MODEL)
    assert model.mql.thresholds == {"A": 50, "B": 50, "C": 80}
    assert model.interest.half_life_days == 45
    assert len(model.version) == 12


def test_the_corpus_has_at_least_15_broken_files() -> None:
    assert len(BROKEN) >= 15


@pytest.mark.parametrize("path", BROKEN, ids=[p.stem for p in BROKEN])
def test_broken_file_is_rejected_with_file_line_and_key(path: Path) -> None:
    key, problem, line = expectations(path)
    with pytest.raises(ConfigError) as caught:
        load_model(path)
    found = caught.value.problems
    matching = [p for p in found if p.key == key and problem in p.problem]
    assert matching, [str(p) for p in found]
    assert all(p.file == str(path) for p in found)
    assert matching[0].line == line, str(matching[0])
    assert matching[0].fix


def test_every_problem_is_listed_at_once() -> None:
    text = DEFAULT_MODEL.read_text(encoding="utf-8")
    text = text.replace("regex = '(?i)^whitepaper'", "regex = '(?i)^whitepaper['")
    text = text.replace('activity = "email_click"', 'activity = "email_clicked"')
    text = text.replace("never = [\"D\", \"F\"]", "never = [\"F\"]")
    with pytest.raises(ConfigError) as caught:
        parse_model(text, "scoring.toml")
    keys = sorted(p.key for p in caught.value.problems)
    assert len(keys) == 3, keys
    assert keys[0] == "interest.rules[14].activity"
    assert keys[1] == "interest.rules[4].regex"
    assert keys[2] == "mql"
    lines = text.splitlines()
    for p in caught.value.problems:
        assert p.line is not None
        if p.key.endswith("activity"):
            assert "email_clicked" in lines[p.line - 1]


def test_missing_file_is_one_clear_problem(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_model(tmp_path / "nope.toml")
    assert [p.key for p in caught.value.problems] == ["(file)"]


def test_key_lines_follow_arrays_of_tables_and_multiline_values() -> None:
    text = (
        "[a]\nx = 1\n\n[[a.rules]]\nname = 'one'\nlist = [\n  'p',\n  'q',\n]\n"
        "[[a.rules]]\nname = 'two'\n[a.rules.sub]\nk = 2\n"
    )
    lines = KeyLines(text)
    assert lines.line_of(("a", "x")) == 2
    assert lines.line_of(("a", "rules", 0, "name")) == 5
    assert lines.line_of(("a", "rules", 0, "list")) == 6
    assert lines.line_of(("a", "rules", 1, "name")) == 11
    assert lines.line_of(("a", "rules", 1, "sub", "k")) == 13
    assert lines.line_of(("a", "rules", 1, "missing")) == 10


def test_properties_unknown_to_hubspot_are_reported_with_their_line() -> None:
    text = DEFAULT_MODEL.read_text(encoding="utf-8")
    model = parse_model(text)
    known = {"seniority", "jobtitle", "numemployees", "industry"}
    problems = property_problems(model, text, known, "scoring.toml")
    assert {p.problem for p in problems} == {"HubSpot has no contact property 'department'"}
    lines = text.splitlines()
    for p in problems:
        assert p.line is not None and "department" in lines[p.line - 1]


def test_a_value_of_the_wrong_shape_is_a_problem_not_a_crash() -> None:
    # a list where a rule's name belongs once crashed the cross-entry checks (unhashable)
    text = DEFAULT_MODEL.read_text(encoding="utf-8")
    text = text.replace('name = "Consultation request"', 'name = ["Consultation", "request"]', 1)
    with pytest.raises(ConfigError) as caught:
        parse_model(text, "scoring.toml")
    [problem] = caught.value.problems
    assert problem.key == "interest.rules[0].name"
    assert problem.fix == "use a value of the expected type"
    assert problem.line is not None
    assert "Consultation" in text.splitlines()[problem.line - 1]
