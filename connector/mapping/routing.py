"""`mappings/routing.toml`: who owns a Lead Handshake creates.

    routing = load_routing(Path("mappings/routing.toml"))
    a = routing.assign(contact.properties, users=active_users, store=store,
                       owner_email=hubspot_owner_email, load=open_leads_by_user)
    a.owner_id, a.team, a.reason, a.use_assignment_rules

Order of decision: the contact's HubSpot owner when `prefer_hubspot_owner` and that owner is an
active Salesforce user (same email); then, in `mode = "assignment_rules"`, Salesforce's own
assignment rules; otherwise the first rule whose conditions all hold names a team, and the
team's next active member under their capacity gets the Lead (round robin, the pointer kept in
the store); nothing matching, or everybody at capacity, goes to the fallback queue or user.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import Field, field_validator, model_validator

from connector.errors import ConfigError, ConfigProblem
from connector.mapping._toml import (
    Check,
    KeyLines,
    Loc,
    Strict,
    display,
    parse,
    read_text,
    suggest,
)


class RoundRobin(Protocol):
    """Where each team's round-robin pointer is kept (`connector.store.Store` persists it)."""

    def next_round_robin(self, team: str, size: int) -> int:
        """The team member's index to assign next, advancing the pointer."""
        ...


__all__ = [
    "CONDITIONS",
    "Assignment",
    "Fallback",
    "Member",
    "RoundRobin",
    "Routing",
    "RoutingFile",
    "Rule",
    "Team",
    "employee_range",
    "load_routing",
    "parse_routing",
]

# What a rule may test (all given conditions must hold).
CONDITIONS = ("country", "region", "state", "industry", "segment", "employees_min",
              "employees_max", "match")
RULE_KEYS = ("name", "team", *CONDITIONS)
HUBSPOT_NAME = r"^[a-z0-9_]+$"
SALESFORCE_ID = re.compile(r"^[a-zA-Z0-9]{15}([a-zA-Z0-9]{3})?$")
QUEUE_PREFIX = "00G"  # Group (queue) ids
USER_PREFIX = "005"


def _listify(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


class Member(Strict):
    """A team member: a Salesforce user's email, username or id, with an optional own cap."""

    user: str = Field(min_length=1)
    capacity: int | None = Field(default=None, ge=0)


class Team(Strict):
    """Members share the team's Leads in turn; `capacity` caps each member's open Leads."""

    members: list[Member] = Field(min_length=1)
    capacity: int | None = Field(default=None, ge=0)
    description: str = ""

    @field_validator("members", mode="before")
    @classmethod
    def _members(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"user": v} if isinstance(v, str) else v for v in value]
        return value

    @field_validator("members")
    @classmethod
    def _once(cls, value: list[Member]) -> list[Member]:
        seen: set[str] = set()
        for m in value:
            if m.user.lower() in seen:
                raise ValueError(f"{m.user!r} is listed twice")
            seen.add(m.user.lower())
        return value


class Rule(Strict):
    """Conditions on contact properties -> a team. The first matching rule decides."""

    name: str = Field(min_length=1)
    team: str = Field(min_length=1)
    country: list[str] | None = None
    region: list[str] | None = None
    state: list[str] | None = None
    industry: list[str] | None = None
    segment: list[str] | None = None
    employees_min: int | None = Field(default=None, ge=0)
    employees_max: int | None = Field(default=None, ge=0)
    match: dict[str, list[str]] | None = None

    @field_validator("country", "region", "state", "industry", "segment", mode="before")
    @classmethod
    def _lists(cls, value: Any) -> Any:
        return _listify(value)

    @field_validator("match", mode="before")
    @classmethod
    def _match_lists(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: _listify(v) for k, v in value.items()}
        return value

    @field_validator("match")
    @classmethod
    def _match_names(cls, value: dict[str, list[str]] | None) -> dict[str, list[str]] | None:
        bad = [k for k in value or {} if not re.match(HUBSPOT_NAME, k)]
        if bad:
            raise ValueError(f"{', '.join(map(repr, bad))} is not a HubSpot internal property "
                             f"name")
        return value

    @model_validator(mode="after")
    def _range(self) -> Rule:
        low, high = self.employees_min, self.employees_max
        if low is not None and high is not None and low > high:
            raise ValueError(f"employees_min {low} is greater than employees_max {high}")
        return self

    def describe(self) -> str:
        """The conditions as a person reads them."""
        parts = []
        for key in ("country", "region", "state", "industry", "segment"):
            values = getattr(self, key)
            if values:
                parts.append(f"{key} in [{', '.join(values)}]")
        if self.employees_min is not None:
            parts.append(f"employees >= {self.employees_min}")
        if self.employees_max is not None:
            parts.append(f"employees <= {self.employees_max}")
        for prop, values in (self.match or {}).items():
            parts.append(f"{prop} in [{', '.join(values)}]")
        return " and ".join(parts) or "every contact"


class Fallback(Strict):
    """Where a Lead goes when no rule matches or every member is at capacity: exactly one of a
    queue (by name), a user (email, username or id) or an owner id (00G... or 005...)."""

    queue: str | None = Field(default=None, min_length=1)
    user: str | None = Field(default=None, min_length=1)
    owner_id: str | None = Field(default=None, pattern=SALESFORCE_ID.pattern)

    @model_validator(mode="after")
    def _one(self) -> Fallback:
        given = [k for k in ("queue", "user", "owner_id") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of queue, user or owner_id; found: "
                             f"{', '.join(given) or 'none'}")
        return self


class Segments(Strict):
    """`segment` conditions test this property; `groups` names sets of its values."""

    property: str = Field(default="department", pattern=HUBSPOT_NAME)
    groups: dict[str, list[str]] = Field(default_factory=dict)


class Properties(Strict):
    """The HubSpot properties the conditions read."""

    country: str = Field(default="country", pattern=HUBSPOT_NAME)
    state: str = Field(default="state", pattern=HUBSPOT_NAME)
    industry: str = Field(default="industry", pattern=HUBSPOT_NAME)
    employees: str = Field(default="numemployees", pattern=HUBSPOT_NAME)


class RoutingFile(Strict):
    """The whole routing.toml."""

    mode: Literal["handshake", "assignment_rules"] = "handshake"
    prefer_hubspot_owner: bool = True
    properties: Properties = Properties()
    regions: dict[str, list[str]] = Field(default_factory=dict)
    segments: Segments = Segments()
    teams: dict[str, Team] = Field(default_factory=dict)
    rules: list[Rule] = Field(default_factory=list)
    fallback: Fallback | None = None
    # Lead Status values that no longer count against a rep's capacity (converted Leads never do).
    closed_statuses: list[str] = Field(default_factory=lambda: ["Closed - Not Converted"])


@dataclass(frozen=True, slots=True)
class Assignment:
    """Who gets the Lead, and why in words.

    `owner_id` None means Handshake sets no owner: Salesforce's assignment rules decide when
    `use_assignment_rules`, otherwise the fallback `queue` named could not be resolved to an id
    (pass `queues` to `assign`) and the Lead stays with the integration user.
    """

    owner_id: str | None
    team: str | None
    reason: str
    use_assignment_rules: bool = False
    rule: str | None = None
    queue: str | None = None


@dataclass(frozen=True, slots=True)
class _User:
    id: str
    email: str
    username: str
    name: str
    active: bool


def _users(rows: Sequence[Mapping[str, Any]]) -> tuple[dict[str, _User], dict[str, _User]]:
    """Users by lower-case email/username and by 15-character id."""
    by_key: dict[str, _User] = {}
    by_id: dict[str, _User] = {}
    for row in rows:
        get = {str(k).lower(): v for k, v in row.items()}
        uid = str(get.get("id") or "")
        if not uid:
            continue
        active = get.get("isactive", get.get("is_active", True))
        name = str(get.get("name") or " ".join(
            str(get.get(k) or "") for k in ("firstname", "lastname")).strip() or uid)
        user = _User(uid, str(get.get("email") or "").lower(),
                     str(get.get("username") or "").lower(), name, bool(active))
        by_id[uid[:15]] = user
        for key in (user.email, user.username):
            if key:
                by_key.setdefault(key, user)
    return by_key, by_id


def employee_range(value: Any) -> tuple[float, float] | None:
    """A head count or HubSpot size range as (low, high): "100-500" -> (100, 500),
    "1000+" -> (1000, inf), "1,200" -> (1200, 1200); None when it is no number."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value), float(value)
    text = str(value).replace(",", "").strip()
    plus = re.fullmatch(r"(\d+(?:\.\d+)?)\s*\+", text)
    if plus:
        return float(plus.group(1)), math.inf
    span = re.fullmatch(r"(\d+(?:\.\d+)?)\s*-\s*(\d+(?:\.\d+)?)", text)
    if span:
        return float(span.group(1)), float(span.group(2))
    try:
        number = float(text)
    except ValueError:
        return None
    return number, number


class Routing:
    """The validated routing.toml and the assignment it decides."""

    def __init__(self, spec: RoutingFile, lines: KeyLines, file: str) -> None:
        self.spec = spec
        self.lines = lines
        self.file = file
        self._pointers: dict[str, int] = {}  # round robin when no store is given (dry runs)
        self._users_memo: tuple[Sequence[Mapping[str, Any]], int,
                                tuple[dict[str, _User], dict[str, _User]]] | None = None
        self._region_of = {c.strip().casefold(): region
                           for region, countries in spec.regions.items() for c in countries}

    def _users_of(self, users: Sequence[Mapping[str, Any]]
                  ) -> tuple[dict[str, _User], dict[str, _User]]:
        """`_users(users)`, made once for the same list given Lead after Lead (a push passes
        one list of the org's users to every `assign` of its run)."""
        memo = self._users_memo
        if memo is not None and memo[0] is users and memo[1] == len(users):
            return memo[2]
        made = _users(users)
        self._users_memo = (users, len(users), made)
        return made

    @property
    def mode(self) -> str:
        """`handshake` (these rules decide) or `assignment_rules` (Salesforce's decide)."""
        return self.spec.mode

    @property
    def fallback_queue(self) -> str | None:
        """The fallback queue's name, for the caller to resolve to its Group id."""
        return self.spec.fallback.queue if self.spec.fallback else None

    @property
    def closed_statuses(self) -> list[str]:
        """Lead Status values that free a rep's capacity."""
        return list(self.spec.closed_statuses)

    def capped_users(self, users: Sequence[Mapping[str, Any]]) -> list[str]:
        """Salesforce ids of the active team members who have a capacity cap: the users whose
        open Leads the caller counts for `assign(load=...)`."""
        by_key, by_id = _users(users)
        ids: list[str] = []
        for team in self.spec.teams.values():
            for member in team.members:
                cap = member.capacity if member.capacity is not None else team.capacity
                user = _resolve(member.user, by_key, by_id)
                if cap is not None and user is not None and user.active:
                    ids.append(user.id)
        return list(dict.fromkeys(ids))

    def hubspot_properties(self) -> list[str]:
        """Every HubSpot property the rules read."""
        p = self.spec.properties
        names = [p.country, p.state, p.industry, p.employees, self.spec.segments.property]
        for rule in self.spec.rules:
            names += list(rule.match or {})
        return list(dict.fromkeys(names))

    def region_of(self, country: Any) -> str | None:
        """The region a country belongs to (names as written in [regions], any case)."""
        return self._region_of.get(str(country or "").strip().casefold())

    def _segment_of(self, properties: Mapping[str, Any]) -> str | None:
        raw = str(properties.get(self.spec.segments.property) or "").strip()
        if not raw:
            return None
        groups = self.spec.segments.groups
        if not groups:
            return raw
        for name, values in groups.items():
            if raw.casefold() in {v.casefold() for v in values}:
                return name
        return None

    def matches(self, rule: Rule, properties: Mapping[str, Any]) -> bool:
        """Whether every condition of `rule` holds for the contact."""
        p = self.spec.properties

        def one_of(value: Any, allowed: list[str] | None) -> bool:
            if allowed is None:
                return True
            text = str(value or "").strip().casefold()
            return bool(text) and text in {a.strip().casefold() for a in allowed}

        if not one_of(properties.get(p.country), rule.country):
            return False
        if not one_of(properties.get(p.state), rule.state):
            return False
        if not one_of(properties.get(p.industry), rule.industry):
            return False
        if rule.region is not None and not one_of(self.region_of(properties.get(p.country)),
                                                  rule.region):
            return False
        if rule.segment is not None and not one_of(self._segment_of(properties), rule.segment):
            return False
        if rule.employees_min is not None or rule.employees_max is not None:
            size = employee_range(properties.get(p.employees))
            if size is None:
                return False
            # A range counts only when it lies wholly inside the rule's bounds.
            if rule.employees_min is not None and size[0] < rule.employees_min:
                return False
            if rule.employees_max is not None and size[1] > rule.employees_max:
                return False
        return all(one_of(properties.get(prop), values)
                   for prop, values in (rule.match or {}).items())

    def assign(
        self,
        properties: Mapping[str, Any],
        *,
        users: Sequence[Mapping[str, Any]],
        store: RoundRobin | None,
        owner_email: str | None = None,
        load: Mapping[str, int] | None = None,
        queues: Mapping[str, str] | None = None,
    ) -> Assignment:
        """Decide the owner of one Lead.

        `users` are Salesforce User rows (Id, Email, Username, IsActive, Name); `load` counts
        each user's open Leads by id (or email) for capacity caps: add the Leads you assign as
        you go. `store` keeps each team's round-robin pointer (None: kept in this object, for
        dry runs). `queues` maps queue names to their Group ids.
        """
        by_key, by_id = self._users_of(users)
        notes: list[str] = []
        if self.spec.prefer_hubspot_owner and owner_email:
            owner = by_key.get(owner_email.strip().lower())
            if owner is not None and owner.active:
                return Assignment(owner.id, None, f"HubSpot owner {owner_email} is the active "
                                  f"Salesforce user {owner.name}")
            notes.append(f"HubSpot owner {owner_email} is not an active Salesforce user")
        if self.spec.mode == "assignment_rules":
            return Assignment(None, None, _says(notes, "Salesforce assignment rules decide "
                                                       "(mode = \"assignment_rules\")"), True)
        for rule in self.spec.rules:
            if not self.matches(rule, properties):
                continue
            team = self.spec.teams[rule.team]
            why = f"rule {rule.name!r} ({rule.describe()}) -> team {rule.team}"
            active = [(m, u) for m in team.members
                      if (u := _resolve(m.user, by_key, by_id)) is not None and u.active]
            if not active:
                return self._fallback(_says(notes, f"{why}, which has no active member"),
                                      by_key, by_id, queues, rule.name)
            chosen = self._next(rule.team, active, team, load or {}, store)
            if chosen is None:
                return self._fallback(_says(notes, f"{why}, where every member is at "
                                                   f"capacity"), by_key, by_id, queues,
                                      rule.name)
            user, turn = chosen
            return Assignment(user.id, rule.team, _says(
                notes, f"{why}; round robin: {user.name} (member {turn + 1} of "
                       f"{len(active)})"), rule=rule.name)
        p = self.spec.properties
        seen = ", ".join(f"{k}={properties.get(k)!r}" for k in (p.country, p.employees)
                         if properties.get(k) is not None)
        return self._fallback(_says(notes, f"no rule matched ({seen or 'no routing data'})"),
                              by_key, by_id, queues, None)

    def _next(self, team_name: str, active: list[tuple[Member, _User]], team: Team,
              load: Mapping[str, int], store: RoundRobin | None) -> tuple[_User, int] | None:
        """The next member in turn under their cap; each skipped member advances the pointer
        too, so nobody gets two Leads in a row because a neighbour is full."""
        for _ in range(len(active)):
            if store is not None:
                turn = store.next_round_robin(team_name, len(active))
            else:
                turn = self._pointers.get(team_name, 0) % len(active)
                self._pointers[team_name] = turn + 1
            member, user = active[turn]
            cap = member.capacity if member.capacity is not None else team.capacity
            held = load.get(user.id, load.get(user.id[:15], load.get(user.email, 0)))
            if cap is None or held < cap:
                return user, turn
        return None

    def _fallback(self, why: str, by_key: dict[str, _User], by_id: dict[str, _User],
                  queues: Mapping[str, str] | None, rule: str | None) -> Assignment:
        fb = self.spec.fallback
        assert fb is not None  # validated for mode = "handshake"
        if fb.owner_id is not None:
            return Assignment(fb.owner_id, None, f"{why}: fallback owner {fb.owner_id}",
                              rule=rule)
        if fb.queue is not None:
            found = {k.casefold(): v for k, v in (queues or {}).items()}.get(fb.queue.casefold())
            return Assignment(found, None, f"{why}: fallback queue {fb.queue!r}", rule=rule,
                              queue=fb.queue)
        assert fb.user is not None
        user = _resolve(fb.user, by_key, by_id)
        if user is None or not user.active:
            return Assignment(None, None, f"{why}: fallback user {fb.user} is not an active "
                              f"Salesforce user, so no owner is set", rule=rule)
        return Assignment(user.id, None, f"{why}: fallback user {user.name}", rule=rule)

    def live_problems(
        self,
        users: Sequence[Mapping[str, Any]],
        file: str,
        queues: Mapping[str, str] | None = None,
    ) -> list[ConfigProblem]:
        """Members and fallback that are no active Salesforce user (or queue, when `queues`
        is given), each with its line."""
        by_key, by_id = _users(users)
        found: list[tuple[Loc, str, str]] = []
        for name, team in self.spec.teams.items():
            for i, member in enumerate(team.members):
                user = _resolve(member.user, by_key, by_id)
                loc: Loc = ("teams", name, "members", i)
                if user is None:
                    found.append((loc, f"{member.user!r} is no Salesforce user",
                                  "use the user's email, username or id (Setup > Users)"))
                elif not user.active:
                    found.append((loc, (f"{member.user!r} is an inactive Salesforce user "
                                  f"(skipped by round robin)"), "remove the member"))
        fb = self.spec.fallback
        if fb is not None and fb.user is not None:
            user = _resolve(fb.user, by_key, by_id)
            if user is None or not user.active:
                found.append((("fallback", "user"), (f"{fb.user!r} is no active Salesforce "
                              f"user"), "name an active user, or use a queue"))
        if fb is not None and fb.queue is not None and queues is not None and \
                fb.queue.casefold() not in {q.casefold() for q in queues}:
            found.append((("fallback", "queue"), f"Salesforce has no Lead queue {fb.queue!r}",
                          f"use one of: {', '.join(queues) or '(no queues)'}"))
        return [ConfigProblem(file, display(loc), msg, how, self.lines.line_of(loc))
                for loc, msg, how in found]


def _resolve(ref: str, by_key: dict[str, _User], by_id: dict[str, _User]) -> _User | None:
    if SALESFORCE_ID.match(ref) and ref.startswith(USER_PREFIX):
        return by_id.get(ref[:15])
    return by_key.get(ref.strip().lower())


def _says(notes: list[str], text: str) -> str:
    return "; ".join([*notes, text])


# --- loading --------------------------------------------------------------------------------

_FIXES = {
    "missing": "add it (the shipped mappings/routing.toml shows an example)",
    "literal_error": "use one of the allowed values",
    "too_short": "list at least one member (a Salesforce user's email)",
    "greater_than_equal": "use zero or a positive number",
    "string_pattern_mismatch": "use the internal name (lower-case letters, digits, "
                               "underscores) or a 15/18-character Salesforce id",
}


def _fix(kind: str, msg: str, loc: Loc) -> str:
    if kind == "extra_forbidden":
        word = str(loc[-1]) if loc else ""
        if len(loc) == 3 and loc[0] == "rules":
            return f"{suggest(word, RULE_KEYS)}a rule takes name, team and the conditions " \
                   f"{', '.join(CONDITIONS)}"
        known = ("mode", "prefer_hubspot_owner", "properties", "regions", "segments", "teams",
                 "rules", "fallback", "members", "capacity", "description", "queue", "user",
                 "owner_id", "property", "groups", "closed_statuses")
        return f"{suggest(word, known)}remove the key or check its spelling against the " \
               f"shipped routing.toml"
    if "fallback" in msg:
        return "add [fallback] with queue = \"Unassigned Leads\" (or user = \"email\")"
    if "exactly one of" in msg:
        return "keep one of queue, user, owner_id"
    if "listed twice" in msg:
        return "list each member once"
    if kind in _FIXES:
        return _FIXES[kind]
    if kind.endswith(("_type", "_parsing")) or kind == "type":
        return "use a value of the expected type (see the shipped routing.toml)"
    return "see the comments in the shipped mappings/routing.toml"


def _table(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _semantic(raw: dict[str, Any]) -> list[Check]:
    """Checks across sections: rules naming unknown teams, regions or segments; duplicate
    rule names; a country in two regions; the fallback Handshake routing needs."""
    found: list[Check] = []
    if raw.get("mode", "handshake") == "handshake" and "fallback" not in raw:
        found.append((("fallback",), ("missing [fallback]: where a Lead goes when no rule "
                      "matches or every member is at capacity"), ("add [fallback] with queue = "
                      "\"Unassigned Leads\" (or user = \"email\")"), ("mode",)))
    teams: dict[str, Any] = _table(raw.get("teams"))
    regions: dict[str, Any] = _table(raw.get("regions"))
    groups: dict[str, Any] = _table(_table(raw.get("segments")).get("groups"))
    home: dict[str, str] = {}
    for region, countries in regions.items():
        for country in countries if isinstance(countries, list) else []:
            key = str(country).strip().casefold()
            if key in home and home[key] != region:
                found.append((("regions", region), (f"{country!r} is in regions {home[key]} and "
                              f"{region}"), "put each country in one region"))
            home.setdefault(key, region)
    names: dict[str, int] = {}
    rules = raw.get("rules")
    for i, rule in enumerate(rules if isinstance(rules, list) else []):
        if not isinstance(rule, dict):
            continue
        team = rule.get("team")
        if isinstance(team, str) and team not in teams:
            found.append((("rules", i, "team"), f"rule points at unknown team {team!r}",
                          (f"{suggest(team, teams)}define [teams.{team}] or use one of: "
                          f"{', '.join(teams) or '(no teams)'}")))
        for region in _listify(rule.get("region")) or []:
            if region not in regions:
                found.append((("rules", i, "region"), f"unknown region {region!r}",
                              (f"{suggest(str(region), regions)}define it in [regions] or use "
                              f"one of: {', '.join(regions) or '(no regions)'}")))
        if groups:
            for segment in _listify(rule.get("segment")) or []:
                if segment not in groups:
                    found.append((("rules", i, "segment"), f"unknown segment {segment!r}",
                                  f"use one of: {', '.join(groups)}"))
        name = rule.get("name")
        if isinstance(name, str):
            if name in names:
                found.append((("rules", i, "name"), (f"duplicate rule name {name!r} (first "
                              f"used by rule {names[name] + 1})"),
                              "give every rule its own name: reasons quote it"))
            names.setdefault(name, i)
    fallback = raw.get("fallback")
    if isinstance(fallback, dict) and isinstance(fallback.get("owner_id"), str):
        owner = fallback["owner_id"]
        if not owner.startswith((QUEUE_PREFIX, USER_PREFIX)):
            found.append((("fallback", "owner_id"), (f"{owner!r} is neither a queue (00G...) nor "
                          f"a user (005...) id"), "use a queue or user id, or queue = \"name\""))
    return found


def parse_routing(text: str, file: str = "routing.toml") -> Routing:
    """Validate routing.toml text; raise `ConfigError` listing every problem with its line."""
    spec, lines = parse(text, file, RoutingFile, _fix, _semantic)
    return Routing(spec, lines, file)


def load_routing(path: Path) -> Routing:
    """Read and validate routing.toml; `ConfigError` lists every problem (file, line, key)."""
    return parse_routing(read_text(Path(path), "routing", "routing"), str(path))


def problems_of(path: Path) -> list[ConfigProblem]:
    """Every problem of the file, or an empty list (for `mappings check`)."""
    try:
        load_routing(path)
    except ConfigError as exc:
        return list(exc.problems)
    return []
