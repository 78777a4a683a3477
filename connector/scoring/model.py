"""The scoring model as read from `mappings/scoring.toml`: fit rules and grades, interest rules
with decay, caps and expiry, the MQL matrix, lifecycle stage names, nurture tracks and the
HubSpot properties Handshake writes back.

`load_model(path)` validates the whole file at once and raises `ConfigError` with one
`ConfigProblem` (file, line, key, problem, fix) per mistake; nothing runs on a bad file.
"""

from __future__ import annotations

import builtins
import hashlib
import itertools
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from connector.activities import ActivityType
from connector.errors import ConfigProblem
from connector.mapping._toml import Check, KeyLines, Loc, display, parse, read_text

__all__ = [
    "ATTRIBUTES",
    "DERIVED_FIELDS",
    "GRADES",
    "AlertsSection",
    "Condition",
    "Disqualifier",
    "FitRule",
    "FitSection",
    "InterestRule",
    "InterestSection",
    "LifecycleSection",
    "MqlSection",
    "NurtureSection",
    "NurtureTrack",
    "ScoringModel",
    "TrackCondition",
    "WritebackProperty",
    "WritebackSection",
    "load_model",
    "parse_model",
    "property_problems",
]

# Attributes of an activity an interest rule may test; `values.<field>` (form answers) and
# `details.<key>` (anything the pull kept) are open-ended.
ATTRIBUTES = ("form_name", "form_id", "url", "path", "title")
ATTRIBUTE_PREFIXES = ("values.", "details.")
# Fields computed from the contact rather than read from one property.
DERIVED_FIELDS = ("email_domain",)
# Fields a nurture track may test besides properties: the scoring result.
TRACK_FIELDS = ("grade", "interest", "expired", "fit_points")
GRADES = ("A", "B", "C", "D", "F")
GRADED = ("A", "B", "C", "D")  # F is what falls below D
HUBSPOT_NAME = r"^[a-z][a-z0-9_]*$"

Points = Annotated[float, Field(ge=-100, le=100)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Condition(_Strict):
    """One test on one value. Exactly one matcher: equals, in, not_in, regex, min/max, present,
    or always."""

    equals: str | float | bool | None = None
    in_: list[str] | None = Field(None, alias="in")
    not_in: list[str] | None = None
    regex: str | None = None
    min: float | None = None
    max: float | None = None
    present: bool | None = None
    always: bool | None = None

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"invalid regular expression {value!r}: {exc}") from None
        return value

    @model_validator(mode="after")
    def _one_matcher(self) -> Condition:
        given = [name for name in ("equals", "in_", "not_in", "regex", "present", "always")
                 if getattr(self, name) is not None]
        if self.min is not None or self.max is not None:
            given.append("min/max")
        if len(given) != 1:
            shown = ", ".join(g.rstrip("_") for g in given) or "none"
            raise ValueError(
                f"give exactly one matcher (equals, in, not_in, regex, min/max, present, always); "
                f"found: {shown}"
            )
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is greater than max {self.max}")
        if self.always is False:
            raise ValueError("always = false never matches; remove the rule instead")
        return self

    def matcher_text(self) -> str:
        """The test as a person reads it, e.g. `in [vp, director]`."""
        if self.equals is not None:
            return f"= {self.equals}"
        if self.in_ is not None:
            return f"in [{', '.join(self.in_)}]"
        if self.not_in is not None:
            return f"not in [{', '.join(self.not_in)}]"
        if self.regex is not None:
            return f"matches /{self.regex}/"
        if self.present is not None:
            return "is set" if self.present else "is empty"
        if self.always:
            return "(always)"
        low = "" if self.min is None else f">= {self.min:g}"
        high = "" if self.max is None else f"<= {self.max:g}"
        return " and ".join(p for p in (low, high) if p)


class _OnField(Condition):
    """A condition on a contact property or a derived field."""

    property: str | None = Field(None, pattern=r"^[a-z0-9_]+$")
    derived: Literal["email_domain"] | None = None

    @model_validator(mode="after")
    def _one_field(self) -> _OnField:
        if self.always:
            if self.property or self.derived:
                raise ValueError("always = true takes no property or derived field")
            return self
        if bool(self.property) == bool(self.derived):
            raise ValueError("name exactly one of `property` (a HubSpot property) or `derived` "
                             "(email_domain)")
        return self

    @builtins.property
    def field_name(self) -> str:
        return self.property or self.derived or ""


class FitRule(_OnField):
    """Points when a contact property matches. Within a `group`, only the first matching rule
    counts (a lookup table: seniority, company size...)."""

    name: str = Field(min_length=1)
    group: str | None = None
    points: Points


class Disqualifier(_OnField):
    """A contact matching it gets grade F whatever its points (students, competitors)."""

    name: str = Field(min_length=1)
    reason: str = Field(min_length=1)


class FitSection(_Strict):
    grades: dict[str, float]
    rules: list[FitRule] = Field(min_length=1)
    disqualifiers: list[Disqualifier] = []

    @field_validator("grades")
    @classmethod
    def _grades(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(value) - set(GRADED))
        if unknown:
            raise ValueError(f"unknown grade(s) {', '.join(unknown)}: grades are A, B, C and D "
                             f"(F is everything below D)")
        missing = [g for g in GRADED if g not in value]
        if missing:
            raise ValueError(f"missing minimum points for grade(s) {', '.join(missing)}")
        steps = [value[g] for g in GRADED]
        if any(a <= b for a, b in itertools.pairwise(steps)):
            raise ValueError("grade minimums must fall strictly from A to D")
        return value


class InterestRule(Condition):
    """Points per matching activity, decayed by age. `attribute` + one matcher narrows the
    activities (a form by name, a page by URL...); without `attribute` every activity of the
    kind counts (give no matcher then)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str = Field(min_length=1)
    activity: list[str] = Field(min_length=1)
    attribute: str | None = None
    group: str | None = None
    points: Points
    max_points: float | None = Field(None, gt=0, le=100)
    max_count: int | None = Field(None, ge=1)
    period_days: float | None = Field(None, gt=0)
    max_points_per_period: float | None = Field(None, gt=0)
    half_life_days: float | None = Field(None, gt=0)
    decay: bool = True
    high_intent: bool = False

    @field_validator("activity", mode="before")
    @classmethod
    def _listify(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("activity")
    @classmethod
    def _known_kinds(cls, value: list[str]) -> list[str]:
        known = [str(kind) for kind in ActivityType]
        unknown = [v for v in value if v not in known]
        if unknown:
            raise ValueError(f"unknown activity kind(s) {', '.join(unknown)}; known: "
                             f"{', '.join(known)}")
        return value

    @field_validator("attribute")
    @classmethod
    def _known_attribute(cls, value: str | None) -> str | None:
        if value is None or value in ATTRIBUTES:
            return value
        if value.startswith(ATTRIBUTE_PREFIXES) and len(value.split(".", 1)[1]) > 0:
            return value
        raise ValueError(f"unknown attribute {value!r}; use one of {', '.join(ATTRIBUTES)}, "
                         f"values.<form field> or details.<key>")

    @model_validator(mode="before")
    @classmethod
    def _no_matcher_means_always(cls, data: Any) -> Any:
        matchers = ("equals", "in", "in_", "not_in", "regex", "min", "max", "present", "always")
        if isinstance(data, dict) and not data.get("attribute") and not any(
            k in data for k in matchers
        ):
            return {**data, "always": True}
        return data

    @model_validator(mode="after")
    def _shape(self) -> InterestRule:
        if self.attribute is None and not self.always:
            raise ValueError("a matcher needs an `attribute` to test (form_name, path, ...)")
        if self.attribute is not None and self.always:
            raise ValueError("`attribute` needs a matcher (equals, in, regex, ...)")
        if (self.period_days is None) != (self.max_points_per_period is None):
            raise ValueError("give both period_days and max_points_per_period, or neither")
        return self


class InterestSection(_Strict):
    half_life_days: float = Field(gt=0)
    cap: float = Field(100, gt=0, le=100)
    # No engagement for this many days expires the lead (interest 0); 0 turns expiry off.
    expire_after_days: float = Field(0, ge=0)
    rules: list[InterestRule] = Field(min_length=1)


class MqlSection(_Strict):
    """The grade x interest matrix: each grade has a minimum interest or is in `never`."""

    thresholds: dict[str, float]
    never: list[str] = []

    @model_validator(mode="after")
    def _matrix(self) -> MqlSection:
        unknown = sorted((set(self.thresholds) | set(self.never)) - set(GRADES))
        if unknown:
            raise ValueError(f"unknown grade(s) {', '.join(unknown)}; grades are A-F")
        both = sorted(set(self.thresholds) & set(self.never))
        if both:
            raise ValueError(f"grade(s) {', '.join(both)} both have a threshold and are in never")
        gaps = [g for g in GRADES if g not in self.thresholds and g not in self.never]
        if gaps:
            raise ValueError(f"matrix gap: grade(s) {', '.join(gaps)} have neither a threshold "
                             f"nor a place in `never`")
        bad = [g for g, v in self.thresholds.items() if not 0 <= v <= 100]
        if bad:
            raise ValueError(f"threshold(s) for {', '.join(bad)} must be between 0 and 100")
        ordered = [self.thresholds[g] for g in GRADES if g in self.thresholds]
        if any(a > b for a, b in itertools.pairwise(ordered)):
            raise ValueError("a better grade may not need more interest than a worse one")
        return self


class LifecycleSection(_Strict):
    subscriber: str = "subscriber"
    lead: str = "lead"
    mql: str = "marketingqualifiedlead"
    # The forward order of HubSpot's stages: a stage never moves back along it.
    order: list[str] = [
        "subscriber", "lead", "marketingqualifiedlead", "salesqualifiedlead", "opportunity",
        "customer", "evangelist",
    ]
    # Contacts in these stages are never scored into MQL nor touched (sales owns them).
    not_scored: list[str] = ["opportunity", "customer", "evangelist"]

    @model_validator(mode="after")
    def _known(self) -> LifecycleSection:
        for name in (self.subscriber, self.lead, self.mql, *self.not_scored):
            if name not in self.order:
                raise ValueError(f"stage {name!r} is not in `order`")
        if len(set(self.order)) != len(self.order):
            raise ValueError("`order` lists a stage twice")
        return self


class TrackCondition(Condition):
    """A condition on a property, a derived field or a scoring result (grade, interest...)."""

    property: str | None = Field(None, pattern=r"^[a-z0-9_]+$")
    derived: Literal["email_domain"] | None = None
    result: Literal["grade", "interest", "expired", "fit_points"] | None = None

    @model_validator(mode="after")
    def _one_field(self) -> TrackCondition:
        named = [n for n in (self.property, self.derived, self.result) if n]
        if self.always:
            if named:
                raise ValueError("always = true takes no field")
            return self
        if len(named) != 1:
            raise ValueError("name exactly one of `property`, `derived` or `result`")
        return self


class NurtureTrack(_Strict):
    name: str = Field(min_length=1, pattern=r"^[a-z0-9_\-]+$")
    description: str = ""
    # Every condition must hold; the first track whose conditions hold is chosen.
    when: list[TrackCondition] = Field(min_length=1)


class NurtureSection(_Strict):
    tracks: list[NurtureTrack] = []
    default: str = Field("", pattern=r"^[a-z0-9_\-]*$")

    @model_validator(mode="after")
    def _default_is_a_track(self) -> NurtureSection:
        names = [t.name for t in self.tracks]
        if self.default and self.default not in names:
            raise ValueError(f"nurture.default {self.default!r} is not a track name")
        return self


class WritebackProperty(_Strict):
    hubspot_property: str = Field(pattern=HUBSPOT_NAME)
    label: str = Field(min_length=1)


class WritebackSection(_Strict):
    # Custom properties are created in this group when missing.
    group: str = Field("contactinformation", pattern=HUBSPOT_NAME)
    score: WritebackProperty = WritebackProperty(
        hubspot_property="handshake_score", label="Handshake interest score")
    grade: WritebackProperty = WritebackProperty(
        hubspot_property="handshake_fit_grade", label="Handshake fit grade")
    reasons: WritebackProperty = WritebackProperty(
        hubspot_property="handshake_score_reasons", label="Handshake score reasons")
    mql_at: WritebackProperty = WritebackProperty(
        hubspot_property="handshake_mql_date", label="Handshake MQL date")
    nurture_track: WritebackProperty = WritebackProperty(
        hubspot_property="handshake_nurture_track", label="Handshake nurture track")
    write_lifecycle_stage: bool = True
    # Written by the push once a contact is handed off to Salesforce.
    salesforce_id: WritebackProperty = WritebackProperty(
        hubspot_property="handshake_salesforce_id", label="Handshake Salesforce id")
    handed_off_at: WritebackProperty = WritebackProperty(
        hubspot_property="handshake_handed_off_at", label="Handshake hand-off date")
    salesforce_owner: WritebackProperty = WritebackProperty(
        hubspot_property="handshake_salesforce_owner", label="Handshake Salesforce owner")


class AlertsSection(_Strict):
    """Which new activities of a handed-off lead alert its owner (a Task, and the webhook)."""

    enabled: bool = True
    # Interest rules (by name) whose activities alert; None: every rule marked high_intent.
    rules: list[str] | None = None
    # Any form submission alerts, whatever the form.
    any_form: bool = True
    # A page view after this many days without engagement is a return visit; 0 turns it off.
    quiet_days: float = Field(14, ge=0)
    # Activities that arrive older than this (a late backfill) alert nobody.
    max_age_days: float = Field(7, gt=0)


class ScoringModel(_Strict):
    fit: FitSection
    interest: InterestSection
    mql: MqlSection
    lifecycle: LifecycleSection = LifecycleSection()
    nurture: NurtureSection = NurtureSection()
    writeback: WritebackSection = WritebackSection()
    alerts: AlertsSection = AlertsSection()
    version: str = Field("", exclude=True)
    source: str = Field("", exclude=True)


# --- loading -----------------------------------------------------------------------------------

_FIXES = {
    "extra_forbidden": "remove the key or check its spelling against the shipped scoring.toml",
    "missing": "add it (the shipped mappings/scoring.toml shows an example)",
    "greater_than_equal": "use a larger number",
    "less_than_equal": "use a smaller number (points go from -100 to 100)",
    "greater_than": "use a positive number",
    "string_pattern_mismatch": "use the property's internal name: lower-case letters, digits, "
                               "underscores (Settings > Properties > the property > internal name)",
    "literal_error": "use one of the allowed values",
    "too_short": "add at least one entry",
}


def _fix(kind: str, msg: str, _loc: Loc) -> str:
    if "regular expression" in msg:
        return "fix the pattern (Python `re` syntax; in TOML prefer 'single quotes' for regexes)"
    if "unknown activity kind" in msg:
        return "use one of the activity kinds listed"
    if "matrix gap" in msg or "threshold" in msg:
        return "give every grade A-F a minimum interest in [mql.thresholds] or list it in never"
    if "matcher" in msg:
        return "keep exactly one of equals, in, not_in, regex, min/max, present, always"
    if kind in _FIXES:
        return _FIXES[kind]
    if kind.endswith(("_type", "_parsing")) or kind == "type":
        return "use a value of the expected type"
    return "see the comments in the shipped mappings/scoring.toml"


def _semantic_problems(raw: dict[str, Any]) -> list[Check]:
    """Checks across entries: duplicate names, grouped rules after an `always` in their group."""
    found: list[Check] = []
    for section, key in (("fit", "rules"), ("fit", "disqualifiers"), ("interest", "rules"),
                         ("nurture", "tracks")):
        entries = (raw.get(section) or {}).get(key) if isinstance(raw.get(section), dict) else None
        if not isinstance(entries, list):
            continue
        seen: dict[str, int] = {}
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict):
                continue
            name = entry.get("name")
            if isinstance(name, str):
                if name in seen:
                    found.append(((section, key, i, "name"),
                                  f"duplicate name {name!r} (first used by entry {seen[name] + 1})",
                                  "give every entry its own name: explanations quote it"))
                else:
                    seen[name] = i
    found.extend(_alert_rule_problems(raw))
    return found


def _alert_rule_problems(raw: dict[str, Any]) -> list[Check]:
    """`alerts.rules` must name interest rules: the alert reuses their definitions."""
    alerts, interest = raw.get("alerts"), raw.get("interest")
    if not isinstance(alerts, dict) or not isinstance(alerts.get("rules"), list):
        return []
    rules = interest.get("rules") if isinstance(interest, dict) else None
    known = {r.get("name") for r in rules or [] if isinstance(r, dict)}
    return [(("alerts", "rules", i), f"no interest rule is named {name!r}",
             "name an [[interest.rules]] entry exactly as its `name` says")
            for i, name in enumerate(alerts["rules"]) if name not in known]


def parse_model(text: str, file: str = "scoring.toml") -> ScoringModel:
    """Validate scoring TOML text; raise `ConfigError` listing every problem with its line."""
    model, _ = parse(text, file, ScoringModel, _fix, _semantic_problems)
    version = hashlib.sha256(text.encode()).hexdigest()[:12]
    return model.model_copy(update={"version": version, "source": file})


def load_model(path: str | Path) -> ScoringModel:
    """Read and validate a scoring file; `ConfigError` lists every problem (file, line, key)."""
    return parse_model(read_text(Path(path), "scoring", "scoring"), str(path))


def property_problems(
    model: ScoringModel, text: str, known: set[str], file: str = "scoring.toml"
) -> list[ConfigProblem]:
    """Properties the model tests that HubSpot does not have (checked live by
    `handshake mappings check --live`), each with its line."""
    lines = KeyLines(text)
    problems = []
    where: list[tuple[tuple[str | int, ...], str | None]] = []
    where += [(("fit", "rules", i, "property"), r.property) for i, r in enumerate(model.fit.rules)]
    where += [(("fit", "disqualifiers", i, "property"), d.property)
              for i, d in enumerate(model.fit.disqualifiers)]
    for i, track in enumerate(model.nurture.tracks):
        where += [(("nurture", "tracks", i, "when"), c.property) for c in track.when]
    for loc, name in where:
        if name and name not in known:
            problems.append(ConfigProblem(
                file, display(loc), f"HubSpot has no contact property {name!r}",
                "use an existing property's internal name, or create the property in HubSpot",
                lines.line_of(loc)))
    return problems
