"""fields.toml and routing.toml validation: the shipped files are valid; each broken file in
`broken/` is rejected with its file, line and key; every problem of a file is listed at once."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from connector.errors import ConfigError
from connector.mapping import load_fields, load_routing, parse_fields, parse_routing
from tests.mapping.helpers import SHIPPED_FIELDS, SHIPPED_ROUTING

BROKEN = sorted((Path(__file__).parent / "broken").glob("*.toml"))
MARKER = "# <- here"


def expectations(path: Path) -> tuple[str, str, int]:
    text = path.read_text(encoding="utf-8")
    key = re.search(r"^# .*expect-key: (.+)$", text, re.MULTILINE)
    problem = re.search(r"^# expect-problem: (.+)$", text, re.MULTILINE)
    assert key and problem, f"{path.name} lacks its expectation header"
    lines = [i for i, line in enumerate(text.splitlines(), start=1) if MARKER in line]
    assert len(lines) == 1, f"{path.name} needs exactly one {MARKER!r} marker"
    return key.group(1).strip(), problem.group(1).strip(), lines[0]


def test_the_shipped_files_are_valid() -> None:
    fields = load_fields(SHIPPED_FIELDS)
    routing = load_routing(SHIPPED_ROUTING)
    assert fields.sobject == "Lead"
    assert {"LastName", "Company", "LeadSource", "Industry", "NumberOfEmployees", "Country",
            "State", "Phone", "Title", "Website", "Email"} <= set(fields.salesforce_fields())
    assert set(routing.spec.teams) == {"SDR-NA", "SDR-EMEA", "SDR-APAC", "Enterprise"}
    assert routing.fallback_queue == "Unassigned Leads"


def test_the_corpus_has_broken_files_of_both_kinds() -> None:
    assert len([p for p in BROKEN if p.name.startswith("fields_")]) >= 8
    assert len([p for p in BROKEN if p.name.startswith("routing_")]) >= 8


@pytest.mark.parametrize("path", BROKEN, ids=[p.stem for p in BROKEN])
def test_broken_file_is_rejected_with_file_line_and_key(path: Path) -> None:
    key, problem, line = expectations(path)
    load = load_fields if path.name.startswith("fields_") else load_routing
    with pytest.raises(ConfigError) as caught:
        load(path)
    found = caught.value.problems
    matching = [p for p in found if p.key == key and problem in p.problem]
    assert matching, [str(p) for p in found]
    assert all(p.file == str(path) for p in found)
    assert matching[0].line == line, str(matching[0])
    assert matching[0].fix
    assert str(matching[0]).startswith(f"{path}:{line}: [{key}]")


def test_every_fields_problem_is_listed_at_once() -> None:
    text = SHIPPED_FIELDS.read_text(encoding="utf-8")
    text = text.replace('\nsalesforce = "Title"\n', '\nsalesforce = "Title"\ncasing = "upper"\n')
    text = text.replace('salesforce = "Phone"\nhubspot = "phone"\n# Reps may correct a number '
                        'after a call: keep theirs, fill it when empty.\nsync = '
                        '"salesforce_unless_blank"',
                        'salesforce = "Phone"\nhubspot = "phone"\nsync = "marketing"')
    text = text.replace('\nsalesforce = "City"\n', '\nsalesforce = "State"\n')
    with pytest.raises(ConfigError) as caught:
        parse_fields(text, "fields.toml")
    problems = {p.key: p for p in caught.value.problems}
    assert set(problems) == {"fields[3].casing", "fields[4].sync", "fields[11].salesforce"}
    lines = text.splitlines()
    assert lines[problems["fields[3].casing"].line - 1] == 'casing = "upper"'  # type: ignore[operator]
    assert lines[problems["fields[4].sync"].line - 1] == 'sync = "marketing"'  # type: ignore[operator]
    assert "duplicate" in problems["fields[11].salesforce"].problem


def test_every_routing_problem_is_listed_at_once() -> None:
    text = SHIPPED_ROUTING.read_text(encoding="utf-8")
    text = text.replace('team = "SDR-APAC"', 'team = "SDR-JAPAN"')
    text = text.replace('region = "EMEA"', 'region = "EUROPE"')
    text = text.replace('[fallback]\nqueue = "Unassigned Leads"\n', "")
    with pytest.raises(ConfigError) as caught:
        parse_routing(text, "routing.toml")
    keys = sorted(p.key for p in caught.value.problems)
    assert keys == ["fallback", "rules[2].region", "rules[3].team"], keys
    assert all(p.line for p in caught.value.problems)


def test_missing_files_are_one_clear_problem(tmp_path: Path) -> None:
    for load in (load_fields, load_routing):
        with pytest.raises(ConfigError) as caught:
            load(tmp_path / "nope.toml")
        assert [p.key for p in caught.value.problems] == ["(file)"]


def test_assignment_rules_mode_needs_no_teams_nor_fallback() -> None:
    routing = parse_routing('mode = "assignment_rules"\nprefer_hubspot_owner = false\n')
    decided = routing.assign({"country": "Germany"}, users=[], store=None)
    assert decided.use_assignment_rules and decided.owner_id is None
    assert "assignment rules" in decided.reason
