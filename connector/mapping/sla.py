"""`mappings/sla.toml`: the follow-up SLA on handed-off leads, what a breach does, the
Salesforce status -> HubSpot `hs_lead_status` map, and when a dead lead goes back to marketing.

    sla = load_sla(Path("mappings/sla.toml"))
    sla.spec.windows.first_touch_hours, sla.spec.business_hours.zone()
    sla.live_problems(lead_statuses)   # status names the org lacks, for `mappings check --live`

The engine that applies it is `connector.sla` (pure: no store, no HTTP).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, time
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, ValidationInfo, field_validator, model_validator

from connector.errors import ConfigError, ConfigProblem
from connector.mapping._toml import Check, KeyLines, Loc, Strict, display, parse, read_text, suggest

__all__ = [
    "DAYS",
    "DEFAULT_HUBSPOT_LEAD_STATUS",
    "Breach",
    "BusinessHours",
    "FirstTouch",
    "Recycling",
    "Sla",
    "SlaFile",
    "Windows",
    "Worked",
    "load_sla",
    "parse_sla",
    "problems_of",
]

DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_HOURS = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")
# Salesforce's default Lead statuses -> HubSpot's default hs_lead_status options.
DEFAULT_HUBSPOT_LEAD_STATUS = {"Open - Not Contacted": "OPEN", "Working - Contacted": "IN_PROGRESS",
                               "Closed - Converted": "OPEN_DEAL",
                               "Closed - Not Converted": "UNQUALIFIED"}
_HUBSPOT_VALUE = re.compile(r"^[A-Za-z0-9_\- ]+$")


def _day(name: str) -> int:
    """Monday = 0, as `date.weekday()` counts; any case, 3 letters or the full name."""
    key = name.strip()[:3].title()
    if key not in DAYS:
        raise ValueError(f"{name!r} is not a day of the week")
    return DAYS.index(key)


class Windows(Strict):
    """The SLA windows, counted from the assignment."""

    first_touch_hours: float = Field(24, gt=0, le=24 * 90)
    worked_hours: float = Field(48, gt=0, le=24 * 90)
    business_hours_only: bool = False

    @field_validator("worked_hours")
    @classmethod
    def _order(cls, value: float, info: ValidationInfo) -> float:
        first = info.data.get("first_touch_hours")
        if isinstance(first, int | float) and value < first:
            raise ValueError(f"worked_hours {value:g} is shorter than first_touch_hours "
                             f"{first:g}")
        return value


class BusinessHours(Strict):
    """When hours count, if `business_hours_only`: a time zone, daily hours, days, holidays."""

    time_zone: str = "UTC"
    hours: str = "09:00-17:00"
    days: list[str] = Field(default_factory=lambda: list(DAYS[:5]))
    holidays: list[date] = Field(default_factory=list)

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not an IANA time zone name") from None
        return value

    @field_validator("hours")
    @classmethod
    def _hours(cls, value: str) -> str:
        match = _HOURS.match(value)
        if not match:
            raise ValueError(f"{value!r} is not a span of hours like \"09:00-17:00\"")
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        if h1 > 23 or h2 > 24 or m1 > 59 or m2 > 59 or (h2 == 24 and m2 != 0):
            raise ValueError(f"{value!r} has a time that does not exist")
        if (h2, m2) <= (h1, m1):
            raise ValueError(f"{value!r} ends before it starts (overnight shifts are not "
                             f"supported)")
        return value

    @field_validator("days", mode="before")
    @classmethod
    def _days(cls, value: Any) -> Any:
        if isinstance(value, str):
            if "-" in value:
                first, _, last = value.partition("-")
                start, end = _day(first), _day(last)
                if end < start:
                    raise ValueError(f"{value!r} runs backwards (write \"Mon-Fri\")")
                return list(DAYS[start:end + 1])
            return [d for d in re.split(r"[,\s]+", value) if d]
        return value

    @field_validator("days")
    @classmethod
    def _known_days(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("no business day given")
        return [DAYS[_day(d)] for d in value]

    def zone(self) -> ZoneInfo:
        """The time zone the hours and holidays are in."""
        return ZoneInfo(self.time_zone)

    def span(self) -> tuple[time, time | None]:
        """Opening and closing time of a business day; None closes at midnight."""
        match = _HOURS.match(self.hours)
        assert match is not None  # validated
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        return time(h1, m1), (None if h2 == 24 else time(h2, m2))

    def weekdays(self) -> frozenset[int]:
        """The business days as `date.weekday()` numbers."""
        return frozenset(DAYS.index(d) for d in self.days)


class FirstTouch(Strict):
    """What counts as the first follow-up attempt."""

    task_types: list[str] = Field(default_factory=lambda: ["Call", "Email", "Task"])
    events: bool = True
    status_change: bool = True

    @model_validator(mode="after")
    def _something(self) -> FirstTouch:
        if not self.task_types and not self.events and not self.status_change:
            raise ValueError("nothing counts as a first touch")
        return self


class Worked(Strict):
    """The Lead statuses that mean it was worked."""

    statuses: list[str] = Field(default_factory=lambda: ["Working - Contacted",
                                                         "Closed - Converted",
                                                         "Closed - Not Converted"])
    converted: bool = True

    @model_validator(mode="after")
    def _something(self) -> Worked:
        if not self.statuses and not self.converted:
            raise ValueError("no status counts as worked")
        return self


class Breach(Strict):
    """What a breach does."""

    alert_owner: bool = True
    first_touch_subject: str = Field("SLA: first follow-up overdue", min_length=1,
                                     max_length=255)
    worked_subject: str = Field("SLA: lead not worked in its window", min_length=1,
                                max_length=255)
    priority: str = Field("High", min_length=1)
    alert_manager: bool = False
    alert_webhook: bool = False
    reassign: bool = True
    reassign_note: str = Field("Reassigned by Handshake: not worked within the SLA window.",
                               max_length=1000)
    max_reassignments: int = Field(2, ge=0, le=50)


class Recycling(Strict):
    """When a dead lead goes back to marketing, and how."""

    enabled: bool = True
    closed_statuses: list[str] = Field(default_factory=lambda: ["Closed - Not Converted"])
    opportunity_lost: bool = True
    untouched_days: int = Field(90, ge=0, le=3650)
    never_accepted: bool = True
    max_recycles: int = Field(3, ge=1, le=100)
    disqualified_hubspot_status: str = Field("UNQUALIFIED", pattern=_HUBSPOT_VALUE.pattern)
    lead_status: str = Field("Open - Not Contacted", min_length=1)
    owner_queue: str = Field("Marketing Nurture", min_length=1)
    reengagement_list: str = Field("Handshake re-engagement", min_length=1)
    interest: Literal["reset", "decay"] = "decay"
    decay_to_percent: float = Field(50, ge=0, le=100)


class SlaFile(Strict):
    """The whole sla.toml."""

    windows: Windows = Windows()
    business_hours: BusinessHours = BusinessHours()
    first_touch: FirstTouch = FirstTouch()
    worked: Worked = Worked()
    breach: Breach = Breach()
    hubspot_lead_status: dict[str, str] = Field(default_factory=lambda: dict(
        DEFAULT_HUBSPOT_LEAD_STATUS))
    recycling: Recycling = Recycling()

    @field_validator("hubspot_lead_status")
    @classmethod
    def _values(cls, value: dict[str, str]) -> dict[str, str]:
        bad = [v for v in value.values() if not _HUBSPOT_VALUE.match(v)]
        if bad:
            raise ValueError(f"{', '.join(map(repr, bad))} is not an hs_lead_status internal "
                             f"value")
        return value

    @property
    def accepted_statuses(self) -> frozenset[str]:
        """The Lead statuses that mean sales accepted the lead: a `[worked]` status that is not
        one recycling closes a lead with."""
        return frozenset(self.worked.statuses) - frozenset(self.recycling.closed_statuses)

    def status_names(self) -> list[tuple[Loc, str]]:
        """Every Lead status the file names, with its key."""
        found: list[tuple[Loc, str]] = []
        found += [(("worked", "statuses", i), s) for i, s in enumerate(self.worked.statuses)]
        found += [(("recycling", "closed_statuses", i), s)
                  for i, s in enumerate(self.recycling.closed_statuses)]
        found.append((("recycling", "lead_status"), self.recycling.lead_status))
        found += [(("hubspot_lead_status", s), s) for s in self.hubspot_lead_status]
        return found

    def hubspot_status(self, salesforce_status: str | None) -> str | None:
        """The `hs_lead_status` value for a Lead status (any case), or None when unmapped."""
        if salesforce_status is None:
            return None
        wanted = salesforce_status.strip().casefold()
        for name, value in self.hubspot_lead_status.items():
            if name.strip().casefold() == wanted:
                return value
        return None



@dataclass(frozen=True)
class Sla:
    """A loaded sla.toml: its settings (`spec`, what `connector.sla` reads) and where each key
    is, for problems found later (`--live`)."""

    spec: SlaFile
    lines: KeyLines
    file: str

    def live_problems(self, statuses: Sequence[tuple[str, str]]) -> list[ConfigProblem]:
        """Status names that are no Lead Status of the org; `statuses` are (label, api name)."""
        known = {n.strip().casefold() for pair in statuses for n in pair}
        labels = [label for label, _ in statuses]
        out = []
        for loc, name in self.spec.status_names():
            if name.strip().casefold() not in known:
                out.append(ConfigProblem(
                    self.file, display(loc), f"Salesforce has no Lead Status {name!r}",
                    f"{suggest(name, labels)}use one of: {', '.join(labels) or '(none)'}",
                    self.lines.line_of(loc)))
        return out


_FIXES = {
    "missing": "add it (the shipped mappings/sla.toml shows an example)",
    "literal_error": "use one of the allowed values",
    "greater_than": "use a positive number",
    "greater_than_equal": "use zero or a positive number",
    "less_than_equal": "use a smaller number",
    "string_pattern_mismatch": "use the internal value (letters, digits, underscores)",
    "string_too_short": "give a value",
    "string_too_long": "shorten it",
    "date_from_datetime_parsing": "write a date as \"2026-12-25\"",
    "date_parsing": "write a date as \"2026-12-25\"",
}
_KNOWN = ("windows", "business_hours", "first_touch", "worked", "breach", "hubspot_lead_status",
          "recycling", *Windows.model_fields, *BusinessHours.model_fields,
          *FirstTouch.model_fields, *Worked.model_fields, *Breach.model_fields,
          *Recycling.model_fields)


def _fix(kind: str, msg: str, loc: Loc) -> str:
    if kind == "extra_forbidden":
        word = str(loc[-1]) if loc else ""
        return (f"{suggest(word, _KNOWN)}remove the key or check its spelling against the "
                f"shipped sla.toml")
    if "time zone" in msg:
        return "use an IANA name such as \"America/New_York\" or \"Europe/Berlin\""
    if "span of hours" in msg or "does not exist" in msg or "ends before" in msg:
        return "write the hours as \"09:00-17:00\" (24-hour clock, same day)"
    if "day of the week" in msg or "runs backwards" in msg or "no business day" in msg:
        return "use day names Mon..Sun, as \"Mon-Fri\" or [\"Mon\", \"Wed\"]"
    if "shorter than" in msg:
        return "make worked_hours at least first_touch_hours"
    if "nothing counts" in msg or "no status counts" in msg:
        return "name at least one (see the shipped sla.toml)"
    if "hs_lead_status" in msg:
        return "use the internal value of the hs_lead_status option (e.g. IN_PROGRESS)"
    if kind in _FIXES:
        return _FIXES[kind]
    if kind.endswith(("_type", "_parsing")) or kind == "type":
        return "use a value of the expected type (see the shipped sla.toml)"
    return "see the comments in the shipped mappings/sla.toml"


def _table(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _semantic(raw: dict[str, Any]) -> list[Check]:
    """Checks across sections: the recycled status must not count as worked or as closed (a
    recycled lead would look worked, or be recycled again at once)."""
    found: list[Check] = []
    recycling = _table(raw.get("recycling"))
    worked = _table(raw.get("worked"))
    status = recycling.get("lead_status", "Open - Not Contacted")
    if not isinstance(status, str):
        return found
    key = status.strip().casefold()
    closed = recycling.get("closed_statuses", ["Closed - Not Converted"])
    if isinstance(closed, list) and key in {str(s).strip().casefold() for s in closed}:
        found.append((("recycling", "lead_status"), (f"the recycled status {status!r} is also "
                      f"one of closed_statuses: a recycled lead would be recycled again"),
                      "give recycled Leads an open status, such as \"Open - Not Contacted\""))
    statuses = worked.get("statuses", [])
    if isinstance(statuses, list) and key in {str(s).strip().casefold() for s in statuses}:
        found.append((("recycling", "lead_status"), (f"the recycled status {status!r} counts "
                      f"as worked ([worked] statuses)"),
                      "give recycled Leads a status that is not a worked one"))
    return found


def parse_sla(text: str, file: str = "sla.toml") -> Sla:
    """Validate sla.toml text; raise `ConfigError` listing every problem with its line."""
    spec, lines = parse(text, file, SlaFile, _fix, _semantic)
    return Sla(spec, lines, file)


def load_sla(path: Path) -> Sla:
    """Read and validate sla.toml; `ConfigError` lists every problem (file, line, key)."""
    return parse_sla(read_text(Path(path), "SLA", "sla"), str(path))


def problems_of(path: Path) -> list[ConfigProblem]:
    """Every problem of the file, or an empty list (for `mappings check`)."""
    try:
        load_sla(path)
    except ConfigError as exc:
        return list(exc.problems)
    return []
