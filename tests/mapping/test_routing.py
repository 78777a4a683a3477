"""routing.toml at work: rules by country, region, size, industry and segment; round robin that
persists in the store; capacity caps; the HubSpot owner; the fallback; live checks."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from connector.clock import FrozenClock
from connector.mapping import Routing, load_routing, parse_routing
from connector.mapping.routing import employee_range
from connector.store import Store
from tests.mapping.helpers import SHIPPED_ROUTING


def user(uid: str, email: str, *, active: bool = True) -> dict[str, Any]:
    first, last = email.split("@")[0].split(".")
    return {"Id": uid, "Email": email, "Username": email, "IsActive": active,
            "FirstName": first.title(), "LastName": last.title()}


DOMAIN = "handshake-demo.com"
USERS = [
    user("005Hs0000000001IAA", f"avery.collins@{DOMAIN}"),
    user("005Hs0000000002IAA", f"jordan.reyes@{DOMAIN}"),
    user("005Hs0000000003IAA", f"taylor.brooks@{DOMAIN}"),
    user("005Hs0000000004IAA", f"morgan.hayes@{DOMAIN}", active=False),
    user("005Hs0000000005IAA", f"sophie.laurent@{DOMAIN}"),
    user("005Hs0000000006IAA", f"jonas.becker@{DOMAIN}"),
    user("005Hs0000000007IAA", f"emma.clarke@{DOMAIN}"),
    user("005Hs0000000008IAA", f"hiro.nakamura@{DOMAIN}"),
    user("005Hs0000000009IAA", f"aarav.mehta@{DOMAIN}"),
    user("005Hs000000000AIAQ", f"rachel.stein@{DOMAIN}"),
    user("005Hs000000000BIAQ", f"marcus.weber@{DOMAIN}"),
    user("005Hs000000000CIAQ", f"lina.tan@{DOMAIN}"),
]
ID = {u["Email"].split("@")[0]: u["Id"] for u in USERS}
QUEUES = {"Unassigned Leads": "00GHs0000000001AAA"}

SMALL = """\
prefer_hubspot_owner = true

[regions]
NA = ["United States", "Canada"]
EMEA = ["Germany", "France"]

[segments]
property = "department"
[segments.groups]
economic_buyer = ["finance", "executive"]

[teams.NA]
members = ["avery.collins@handshake-demo.com", "morgan.hayes@handshake-demo.com",
           "005Hs0000000002IAA", { user = "taylor.brooks@handshake-demo.com", capacity = 1 }]
capacity = 3

[teams.Banks]
members = ["sophie.laurent@handshake-demo.com"]

[teams.Buyers]
members = ["jonas.becker@handshake-demo.com"]

[teams.Gone]
members = ["morgan.hayes@handshake-demo.com"]

[[rules]]
name = "Small German banks"
country = "germany"
industry = ["Banking", "Financial Services"]
employees_max = 500
team = "Banks"

[[rules]]
name = "Economic buyers in Europe"
region = "EMEA"
segment = "economic_buyer"
team = "Buyers"

[[rules]]
name = "Lead status"
match = { hs_lead_status = "UNQUALIFIED" }
team = "Gone"

[[rules]]
name = "North America"
region = "NA"
team = "NA"

[fallback]
queue = "Unassigned Leads"
"""


@pytest.fixture
def routing() -> Routing:
    return parse_routing(SMALL, "routing.toml")


def test_routing_by_country_region_size_industry_and_segment(routing: Routing) -> None:
    def team(**props: Any) -> str | None:
        return routing.assign(props, users=USERS, store=None, queues=QUEUES).team

    assert team(country="Germany", industry="Financial Services", numemployees="100-500") == \
        "Banks"
    # The whole range must lie inside the bounds: 500-1000 is not <= 500.
    assert team(country="Germany", industry="Financial Services", numemployees="500-1000") is None
    assert team(country="France", department="Finance") == "Buyers"
    assert team(country="France", department="engineering") is None
    assert team(country="united states") == "NA"
    assert team(country="Canada", hs_lead_status="UNQUALIFIED") is None  # Gone: nobody active


def test_shipped_routing_sends_regions_and_big_companies_to_their_teams() -> None:
    shipped = load_routing(SHIPPED_ROUTING)

    def decide(**props: Any) -> tuple[str | None, str | None]:
        a = shipped.assign(props, users=USERS, store=None, queues=QUEUES)
        return a.team, a.owner_id

    assert decide(country="United States", numemployees="50-100")[0] == "SDR-NA"
    assert decide(country="Germany", numemployees="1-5")[0] == "SDR-EMEA"
    assert decide(country="Japan", numemployees="100-500")[0] == "SDR-APAC"
    assert decide(country="Singapore", numemployees="1000+")[0] == "Enterprise"
    assert decide(country="Brazil", numemployees="5-25") == (None, QUEUES["Unassigned Leads"])
    assert decide(numemployees="5-25") == (None, QUEUES["Unassigned Leads"])


def test_round_robin_cycles_over_active_members_only(routing: Routing) -> None:
    owners = [routing.assign({"country": "Canada"}, users=USERS, store=None).owner_id
              for _ in range(6)]
    # Morgan is inactive: skipped; the id member is resolved; file order is the turn order.
    cycle = [ID["avery.collins"], ID["jordan.reyes"], ID["taylor.brooks"]]
    assert owners == cycle + cycle
    reason = routing.assign({"country": "Canada"}, users=USERS, store=None).reason
    assert reason == ("rule 'North America' (region in [NA]) -> team NA; round robin: "
                      "Avery Collins (member 1 of 3)")


def test_round_robin_pointer_persists_across_store_instances(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    clock = FrozenClock(datetime(2026, 11, 1, 9, 0, tzinfo=UTC))
    first = Store(url, clock=clock)
    first.migrate()
    routing = parse_routing(SMALL)
    a = routing.assign({"country": "Canada"}, users=USERS, store=first)
    b = routing.assign({"country": "Canada"}, users=USERS, store=first)
    first.close()
    second = Store(url, clock=clock)
    fresh = parse_routing(SMALL)  # a new process: nothing kept in memory
    c = fresh.assign({"country": "Canada"}, users=USERS, store=second)
    d = fresh.assign({"country": "Canada"}, users=USERS, store=second)
    second.close()
    assert [a.owner_id, b.owner_id, c.owner_id, d.owner_id] == [
        ID["avery.collins"], ID["jordan.reyes"], ID["taylor.brooks"], ID["avery.collins"]]


def test_members_at_capacity_are_skipped_then_the_fallback_takes_over(routing: Routing) -> None:
    # Team cap 3; Taylor's own cap 1.
    load = {ID["avery.collins"]: 3, ID["taylor.brooks"]: 1}
    owners = Counter(routing.assign({"country": "Canada"}, users=USERS, store=None,
                                    load=load).owner_id for _ in range(4))
    assert owners == {ID["jordan.reyes"]: 4}
    full = {**load, f"jordan.reyes@{DOMAIN}": 3}  # load may be keyed by email too
    a = routing.assign({"country": "Canada"}, users=USERS, store=None, load=full, queues=QUEUES)
    assert (a.owner_id, a.team, a.queue) == (QUEUES["Unassigned Leads"], None, "Unassigned Leads")
    assert "every member is at capacity" in a.reason
    assert "fallback queue 'Unassigned Leads'" in a.reason


def test_an_unresolved_queue_is_named_for_the_caller(routing: Routing) -> None:
    a = routing.assign({"country": "Brazil"}, users=USERS, store=None)
    assert (a.owner_id, a.queue) == (None, "Unassigned Leads")
    assert a.reason == "no rule matched (country='Brazil'): fallback queue 'Unassigned Leads'"


def test_hubspot_owner_wins_when_an_active_user(routing: Routing) -> None:
    a = routing.assign({"country": "Germany"}, users=USERS, store=None,
                       owner_email=f"Emma.Clarke@{DOMAIN}",
                       load={ID["emma.clarke"]: 10_000})
    assert (a.owner_id, a.team) == (ID["emma.clarke"], None)
    assert "HubSpot owner" in a.reason
    gone = routing.assign({"country": "Canada"}, users=USERS, store=None,
                          owner_email=f"morgan.hayes@{DOMAIN}")
    assert gone.team == "NA" and gone.owner_id != ID["morgan.hayes"]
    assert gone.reason.startswith(f"HubSpot owner morgan.hayes@{DOMAIN} is not an active "
                                  f"Salesforce user; rule 'North America'")
    stranger = routing.assign({"country": "Canada"}, users=USERS, store=None,
                              owner_email="someone@elsewhere.com")
    assert stranger.team == "NA"
    off = parse_routing(SMALL.replace("prefer_hubspot_owner = true",
                                      "prefer_hubspot_owner = false"))
    ignored = off.assign({"country": "Canada"}, users=USERS, store=None,
                         owner_email=f"emma.clarke@{DOMAIN}")
    assert ignored.owner_id == ID["avery.collins"]


def test_assignment_rules_mode_still_honours_the_hubspot_owner() -> None:
    shipped = SHIPPED_ROUTING.read_text(encoding="utf-8")
    routing = parse_routing(shipped.replace('mode = "handshake"', 'mode = "assignment_rules"'))
    a = routing.assign({"country": "Germany"}, users=USERS, store=None)
    assert (a.owner_id, a.use_assignment_rules) == (None, True)
    b = routing.assign({"country": "Germany"}, users=USERS, store=None,
                       owner_email=f"lina.tan@{DOMAIN}")
    assert (b.owner_id, b.use_assignment_rules) == (ID["lina.tan"], False)


def test_fallback_user_and_owner_id() -> None:
    base = SMALL.split("[fallback]")[0]
    by_user = parse_routing(base + f'[fallback]\nuser = "hiro.nakamura@{DOMAIN}"\n')
    a = by_user.assign({"country": "Peru"}, users=USERS, store=None)
    assert a.owner_id == ID["hiro.nakamura"]
    assert a.reason.endswith("fallback user Hiro Nakamura")
    inactive = parse_routing(base + f'[fallback]\nuser = "morgan.hayes@{DOMAIN}"\n')
    b = inactive.assign({"country": "Peru"}, users=USERS, store=None)
    assert b.owner_id is None and "not an active Salesforce user" in b.reason
    by_id = parse_routing(base + '[fallback]\nowner_id = "00GHs0000000009AAA"\n')
    assert by_id.assign({"country": "Peru"}, users=USERS, store=None).owner_id == \
        "00GHs0000000009AAA"


def test_employee_ranges() -> None:
    assert employee_range("100-500") == (100, 500)
    assert employee_range("1000+") == (1000, float("inf"))
    assert employee_range("1,200") == (1200, 1200)
    assert employee_range(40) == (40, 40)
    assert employee_range("many") is None
    assert employee_range(None) is None


def test_live_problems_name_unknown_and_inactive_members(routing: Routing) -> None:
    users = [u for u in USERS if u["Email"] != f"jonas.becker@{DOMAIN}"]
    problems = routing.live_problems(users, "routing.toml", queues={"Other queue": "00G1"})
    by_key = {p.key: p.problem for p in problems}
    assert by_key == {
        "teams.NA.members[1]": f"'morgan.hayes@{DOMAIN}' is an inactive Salesforce user "
                               f"(skipped by round robin)",
        "teams.Buyers.members[0]": f"'jonas.becker@{DOMAIN}' is no Salesforce user",
        "teams.Gone.members[0]": f"'morgan.hayes@{DOMAIN}' is an inactive Salesforce user "
                                 f"(skipped by round robin)",
        "fallback.queue": "Salesforce has no Lead queue 'Unassigned Leads'",
    }
    lines = SMALL.splitlines()
    buyers = next(p for p in problems if p.key == "teams.Buyers.members[0]")
    assert lines[buyers.line - 1].startswith("members = [\"jonas")  # type: ignore[operator]
    shipped = load_routing(SHIPPED_ROUTING)
    assert shipped.live_problems(USERS, "routing.toml", queues=QUEUES) == []
