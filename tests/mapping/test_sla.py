"""sla.toml validation: the shipped file is valid and means the seeds' SLA; each mistake is
reported with its file, line, key and fix, every one at once; `--live` status names."""

from __future__ import annotations

from datetime import date, time
from pathlib import Path

import pytest

from connector.errors import ConfigError
from connector.mapping.sla import load_sla, parse_sla, problems_of
from tests.mapping.helpers import ROOT

SHIPPED_SLA = ROOT / "mappings" / "sla.toml"
ORG_STATUSES = [(s, s) for s in ("Open - Not Contacted", "Working - Contacted",
                                 "Closed - Converted", "Closed - Not Converted")]


def test_the_shipped_file_is_the_seeds_sla() -> None:
    sla = load_sla(SHIPPED_SLA).spec
    assert (sla.windows.first_touch_hours, sla.windows.worked_hours) == (24, 48)
    assert "Working - Contacted" in sla.worked.statuses
    assert sla.recycling.untouched_days == 90
    assert sla.recycling.max_recycles == 3
    assert sla.hubspot_status("working - contacted") == "IN_PROGRESS"
    assert sla.hubspot_status("Somebody's own status") is None
    assert sla.business_hours.span() == (time(9), time(17))
    assert sla.business_hours.weekdays() == frozenset(range(5))


def test_an_empty_file_takes_the_defaults() -> None:
    sla = parse_sla("").spec
    assert sla.windows.first_touch_hours == 24
    assert sla.recycling.interest == "decay"
    # The shipped file spells out the defaults (its time zone is an example: UTC by default).
    shipped = load_sla(SHIPPED_SLA).spec
    assert sla.business_hours.time_zone == "UTC"
    assert sla == shipped.model_copy(update={"business_hours": sla.business_hours})


def test_business_hours_forms() -> None:
    sla = parse_sla('[business_hours]\ntime_zone = "Europe/Berlin"\ndays = ["mon", "Wednesday"]\n'
                    'holidays = [2026-12-25, "2027-01-01"]\nhours = "08:30-24:00"\n').spec
    hours = sla.business_hours
    assert hours.days == ["Mon", "Wed"]
    assert hours.holidays == [date(2026, 12, 25), date(2027, 1, 1)]
    assert hours.span() == (time(8, 30), None)


BROKEN = [
    ("windows.worked_hours", "shorter than first_touch_hours",
     "[windows]\nfirst_touch_hours = 24\nworked_hours = 12  # <- here\n"),
    ("windows.first_touch_hours", "greater than 0",
     "[windows]\nfirst_touch_hours = 0  # <- here\n"),
    ("business_hours.time_zone", "not an IANA time zone",
     '[business_hours]\ntime_zone = "Eastern"  # <- here\n'),
    ("business_hours.hours", "span of hours",
     '[business_hours]\nhours = "9 to 5"  # <- here\n'),
    ("business_hours.hours", "ends before it starts",
     '[business_hours]\nhours = "22:00-06:00"  # <- here\n'),
    ("business_hours.days", "not a day of the week",
     '[business_hours]\ndays = "Mon-Fry"  # <- here\n'),
    ("business_hours.holidays[0]", "date",
     '[business_hours]\nholidays = ["Christmas"]  # <- here\n'),
    ("breach.alert_ownr", "unknown key",
     "[breach]\nalert_ownr = true  # <- here\n"),
    ("recycling.interest", "'reset' or 'decay'",
     '[recycling]\ninterest = "halve"  # <- here\n'),
    ("recycling.max_recycles", "greater than or equal to 1",
     "[recycling]\nmax_recycles = 0  # <- here\n"),
    ("recycling.lead_status", "also one of closed_statuses",
     '[recycling]\nlead_status = "Closed - Not Converted"  # <- here\n'),
    ("recycling.lead_status", "counts as worked",
     ('[worked]\nstatuses = ["Working - Contacted"]\n[recycling]\n'
      'lead_status = "Working - Contacted"  # <- here\n')),
    ("hubspot_lead_status", "not an hs_lead_status internal value",
     '[hubspot_lead_status]  # <- here\n"Working - Contacted" = "in progress!"\n'),
    ("first_touch", "nothing counts as a first touch",
     "[first_touch]  # <- here\ntask_types = []\nevents = false\nstatus_change = false\n"),
    ("(syntax)", "not valid TOML", "[windows]\nfirst_touch_hours = = 3  # <- here\n"),
]


@pytest.mark.parametrize(("key", "problem", "text"), BROKEN, ids=[b[0] + ":" + b[1]
                                                                   for b in BROKEN])
def test_a_mistake_is_reported_with_file_line_key_and_fix(key: str, problem: str,
                                                          text: str, tmp_path: Path) -> None:
    path = tmp_path / "sla.toml"
    path.write_text(text, encoding="utf-8")
    line = next(i for i, t in enumerate(text.splitlines(), start=1) if "# <- here" in t)
    found = problems_of(path)
    matching = [p for p in found if p.key == key and problem in p.problem]
    assert matching, [str(p) for p in found]
    assert matching[0].file == str(path)
    assert matching[0].line == line, str(matching[0])
    assert matching[0].fix


def test_every_problem_is_listed_at_once() -> None:
    text = SHIPPED_SLA.read_text(encoding="utf-8")
    text = text.replace('time_zone = "America/New_York"', 'time_zone = "Mars/Olympus"')
    text = text.replace("max_recycles = 3", "max_recycles = -1")
    text = text.replace('interest = "decay"', 'interest = "forget"')
    with pytest.raises(ConfigError) as caught:
        parse_sla(text, "sla.toml")
    keys = {p.key for p in caught.value.problems}
    assert keys == {"business_hours.time_zone", "recycling.max_recycles", "recycling.interest"}
    lines = text.splitlines()
    for p in caught.value.problems:
        assert p.line is not None
        assert p.key.rsplit(".", 1)[-1] in lines[p.line - 1]


def test_a_missing_file_is_one_problem(tmp_path: Path) -> None:
    (problem,) = problems_of(tmp_path / "nope.toml")
    assert "not found" in problem.problem
    assert "sla" in problem.fix


def test_live_status_names_the_org_lacks() -> None:
    sla = load_sla(SHIPPED_SLA)
    assert sla.live_problems(ORG_STATUSES) == []
    renamed = [(label, api) for label, api in ORG_STATUSES if label != "Working - Contacted"]
    renamed.append(("Working", "Working"))
    problems = sla.live_problems(renamed)
    assert {p.key for p in problems} == {"worked.statuses[0]",
                                         'hubspot_lead_status."Working - Contacted"'}
    text = SHIPPED_SLA.read_text(encoding="utf-8").splitlines()
    for p in problems:
        assert p.line is not None and "Working - Contacted" in text[p.line - 1]
        assert "Working" in p.fix
