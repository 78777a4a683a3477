"""The scoring engine: pure functions from a contact and its activities to a fit grade, an
interest score and an explanation (every contributing rule, its points, and the activity behind
it). No I/O and no clock: `now` is an argument, so tests pin decay and expiry exactly.

    engine = Engine(load_model("mappings/scoring.toml"))
    result = engine.score(contact, activities, now)
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple, Protocol

from connector.activities import activity_label, url_path
from connector.scoring.model import Condition, InterestRule, ScoringModel, TrackCondition

__all__ = [
    "ActivityLike",
    "ContactLike",
    "Engine",
    "FitContribution",
    "FitResult",
    "InterestContribution",
    "ScoreResult",
    "email_domain",
    "rule_matcher",
    "url_path",
]

DAY_SECONDS = 86400.0
REASONS_SHOWN = 5  # contributions named in the one-line reasons text
MATCH_CACHE = 4096  # attribute values whose matching rules an activity type remembers


class ContactLike(Protocol):
    """What the engine reads of a contact (the store's `Contact` fits)."""

    @property
    def hubspot_id(self) -> str: ...
    @property
    def email(self) -> str | None: ...
    @property
    def properties(self) -> Mapping[str, Any]: ...
    @property
    def lifecycle_stage(self) -> str | None: ...
    @property
    def hubspot_created_at(self) -> datetime | None: ...


class ActivityLike(Protocol):
    """What the engine reads of an activity (the store's `Activity` and its rows fit)."""

    @property
    def id(self) -> int: ...
    @property
    def type(self) -> str: ...
    @property
    def occurred_at(self) -> datetime: ...
    @property
    def title(self) -> str | None: ...
    @property
    def url(self) -> str | None: ...
    @property
    def details(self) -> Mapping[str, Any]: ...


class FitContribution(NamedTuple):
    rule: str
    field: str
    value: str
    points: float


@dataclass(frozen=True, slots=True)
class FitResult:
    points: float
    grade: str
    contributions: tuple[FitContribution, ...]
    disqualified_by: str | None = None  # the disqualifier's name and reason


class InterestContribution(NamedTuple):
    rule: str
    activity_id: int
    activity_type: str
    occurred_at: datetime
    label: str  # the form, page or email behind it
    points: float  # as the rule gives them
    decayed: float  # what they are worth now
    high_intent: bool = False


@dataclass(slots=True)
class ScoreResult:
    contact_id: str
    fit: FitResult
    interest: float  # 0..cap, rounded to 0.01
    raw_interest: float  # the decayed sum before the cap
    capped: tuple[str, ...]  # rules whose caps cut points
    expired: bool
    last_engagement_at: datetime | None
    is_mql: bool
    mql_reason: str
    nurture_track: str
    scored_at: datetime
    model_version: str
    stage: str | None = None
    # (rule, activity, points, decayed) per counted activity; contributions are built from
    # them only when asked, so scoring stays fast.
    hits: list[tuple[InterestRule, Any, float, float]] = field(default_factory=list, repr=False)
    _contributions: tuple[InterestContribution, ...] | None = field(default=None, repr=False)
    _ordered: list[tuple[InterestRule, Any, float, float]] | None = field(default=None,
                                                                          repr=False)

    @property
    def contributions(self) -> tuple[InterestContribution, ...]:
        """Every counted activity with its rule and points, biggest first."""
        if self._contributions is None:
            self._contributions = tuple(
                InterestContribution(rule.name, activity.id, activity.type, activity.occurred_at,
                                     _label(activity), points, worth, rule.high_intent)
                for rule, activity, points, worth in self._ordered_hits())
        return self._contributions

    def _ordered_hits(self) -> list[tuple[InterestRule, Any, float, float]]:
        """The hits in the contributions' order: biggest (decayed) first, then newest."""
        if self._ordered is None:
            # biggest (decayed, in size) first, then newest, ties as the hits came: two stable
            # sorts, each on one cheap key
            ordered = sorted(self.hits, key=_hit_time, reverse=True)
            ordered.sort(key=_hit_size, reverse=True)
            self._ordered = ordered
        return self._ordered

    def reasons_text(self, limit: int = REASONS_SHOWN) -> str:
        """One line for a HubSpot property: grade, score and the biggest contributions."""
        parts = [f"Grade {self.fit.grade} ({self.fit.points:g} fit pts)",
                 f"interest {self.interest:g}"]
        if self.fit.disqualified_by:
            parts.append(f"disqualified: {self.fit.disqualified_by}")
        if self.expired:
            parts.append("expired: no recent engagement")
        by_rule: dict[str, float] = {}
        for rule, _activity, _points, worth in self._ordered_hits():
            by_rule[rule.name] = by_rule.get(rule.name, 0.0) + worth
        top = sorted(by_rule.items(), key=lambda kv: -abs(kv[1]))[:limit]
        parts += [f"{rule} {value:+.1f}" for rule, value in top]
        return "; ".join(parts)

    def explanation(self, *, text_times: bool = True, compact: bool = False) -> dict[str, Any]:
        """JSON-able explanation stored with the score (its interest rules are the
        contributions', built straight from the hits). `text_times=False` leaves its times as
        datetimes, for an encoder that writes them as `isoformat` does (orjson, the store's):
        no string is made for each first.

        `compact=True` is the form the score stage stores: the interest rules as `hits`,
        `[rule, activity id, points, decayed]` each, without what the activity itself says
        (its type, time and label: `[rule, activity id, type, time, label, points, decayed]`
        in `rules`); the store reads them back whole (`ScoreStore.expand_explanations`)."""
        last: Any = self.last_engagement_at
        if compact:
            rules = [[rule.name, activity.id, points, round(worth, 4)]
                     for rule, activity, points, worth in self._ordered_hits()]
        else:
            rules = [[rule.name, activity.id, activity.type, activity.occurred_at,
                      _label(activity), points, round(worth, 4)]
                     for rule, activity, points, worth in self._ordered_hits()]
        if text_times:
            last = last.isoformat() if last else None
            if not compact:
                for entry in rules:
                    entry[3] = entry[3].isoformat()
        return {
            "fit": {
                "points": self.fit.points,
                "grade": self.fit.grade,
                "disqualified_by": self.fit.disqualified_by,
                "rules": [[c.rule, c.field, c.value, c.points] for c in self.fit.contributions],
            },
            "interest": {
                "score": self.interest,
                "raw": round(self.raw_interest, 4),
                "expired": self.expired,
                "last_engagement_at": last,
                "capped": list(self.capped),
                "hits" if compact else "rules": rules,
            },
            "mql": {"is_mql": self.is_mql, "reason": self.mql_reason},
            "nurture_track": self.nurture_track,
        }


def _hit_time(hit: tuple[InterestRule, Any, float, float]) -> datetime:
    return hit[1].occurred_at  # type: ignore[no-any-return]


def _hit_size(hit: tuple[InterestRule, Any, float, float]) -> float:
    return abs(hit[3])


def email_domain(email: str | None) -> str | None:
    """The lower-case domain of an address, or None."""
    if not email or "@" not in email:
        return None
    return email.rsplit("@", 1)[1].strip().lower() or None


Predicate = Callable[[Any], bool]


def _absent(value: Any) -> bool:
    return value is None or value == ""


def compile_condition(cond: Condition) -> Predicate:
    """A fast predicate for one condition; absent values match only `present = false`."""
    if cond.always:
        return lambda value: True
    if cond.present is not None:
        want = cond.present
        return lambda value: (not _absent(value)) == want
    if cond.equals is not None:
        target = cond.equals
        if isinstance(target, bool):
            return lambda value: (value is True or str(value).lower() == "true") == target
        if isinstance(target, float | int):
            number = float(target)
            return lambda value: _number(value) == number
        text = str(target)
        return lambda value: value is not None and str(value) == text
    if cond.in_ is not None:
        members = frozenset(cond.in_)
        return lambda value: value is not None and value != "" and str(value) in members
    if cond.not_in is not None:
        excluded = frozenset(cond.not_in)
        return lambda value: value is not None and value != "" and str(value) not in excluded
    if cond.regex is not None:
        search = re.compile(cond.regex).search
        return lambda value: (value is not None and value != ""
                              and search(str(value)) is not None)
    low = -math.inf if cond.min is None else cond.min
    high = math.inf if cond.max is None else cond.max

    def in_range(value: Any) -> bool:
        number = _number(value)
        return number is not None and low <= number <= high

    return in_range


def _number(value: Any) -> float | None:
    if _absent(value) or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _contact_value(contact: ContactLike, prop: str | None, derived: str | None) -> Any:
    if derived == "email_domain":
        return email_domain(contact.email or contact.properties.get("email"))
    return contact.properties.get(prop or "")


def _attribute_getter(attribute: str | None) -> Callable[[ActivityLike], Any]:
    if attribute is None:
        return lambda a: None
    if attribute == "form_name":
        return lambda a: (a.details or {}).get("form_name") or a.title
    if attribute == "form_id":
        return lambda a: (a.details or {}).get("form_id")
    if attribute == "url":
        return lambda a: a.url
    if attribute == "path":
        return lambda a: url_path(a.url)
    if attribute == "title":
        return lambda a: a.title
    head, key = attribute.split(".", 1)
    if head == "values":
        def form_value(a: ActivityLike) -> Any:
            # a form's field values, as the pull stores them; anything else reads as absent
            values = (a.details or {}).get("values")
            return values.get(key) if isinstance(values, dict) else None

        return form_value
    return lambda a: (a.details or {}).get(key)


def rule_matcher(rule: InterestRule) -> Callable[[ActivityLike], bool]:
    """Whether an activity is of the rule's kind and passes its matcher (the rule alone: its
    group, caps and points play no part). Alerts reuse the interest rules through it."""
    kinds = frozenset(rule.activity)
    getter, test = _attribute_getter(rule.attribute), compile_condition(rule)
    if rule.always:
        return lambda a: a.type in kinds
    return lambda a: a.type in kinds and test(getter(a))


# the form, page or email behind an activity (its explanation's label)
_label = activity_label


class _KindRules:
    """The interest rules of one activity type, in model order, compiled. Which of them an
    activity fires depends only on the values of the attributes they read, so the answer is
    remembered for text values (pages, forms, titles repeat; numbers are not remembered: 1,
    1.0 and True are one key), for at most MATCH_CACHE of them. Threads scoring at once may
    both work out an answer: it is the same one, so `Engine.score` stays thread-safe."""

    def __init__(self, rules: Sequence[tuple[int, InterestRule]]) -> None:
        attributes = list(dict.fromkeys(r.attribute for _, r in rules if not r.always))
        self.getters = [_attribute_getter(a) for a in attributes]
        self.single = self.getters[0] if len(self.getters) == 1 else None
        self.rules = [(i, r.group, attributes.index(r.attribute) if not r.always else -1,
                       compile_condition(r), bool(r.always),
                       # "simple" rules (no caps) are counted as activities stream by
                       r.max_count is None and r.period_days is None and r.max_points is None,
                       r.points)
                      for i, r in rules]
        self.memo: dict[tuple[Any, ...], tuple[tuple[int, bool, float], ...]] = {}

    def fired(self, activity: ActivityLike) -> tuple[tuple[int, bool, float], ...]:
        """(rule index, simple, points) of each rule with points the activity fires, in model
        order (of a group, only its first matching rule fires)."""
        single = self.single
        if single is not None:
            value = single(activity)
            values: tuple[Any, ...] = (value,)
            text = value is None or value.__class__ is str
        else:
            values = tuple([get(activity) for get in self.getters])
            text = all(v is None or v.__class__ is str for v in values)
        if not text:
            return self._match(values)
        found = self.memo.get(values)
        if found is None:
            found = self._match(values)
            if len(self.memo) < MATCH_CACHE:
                self.memo[values] = found
        return found

    def _match(self, values: tuple[Any, ...]) -> tuple[tuple[int, bool, float], ...]:
        used: set[str] = set()
        out = []
        for index, group, position, test, always, simple, points in self.rules:
            if group is not None and group in used:
                continue
            if always or test(values[position]):
                if group is not None:
                    used.add(group)
                if points != 0:
                    out.append((index, simple, points))
        return tuple(out)


class Engine:
    """A scoring model compiled for speed; `score` is pure and thread-safe."""

    def __init__(self, model: ScoringModel) -> None:
        self.model = model
        # (group, test, property, derived, always, points, name, field) per rule: read once
        self.fit_rules = [
            (r.group, compile_condition(r), r.property or "", bool(r.derived), bool(r.always),
             r.points, r.name, r.field_name or "(any)")
            for r in model.fit.rules
        ]
        self.disqualifiers = [
            (d, compile_condition(d), d.property, d.derived) for d in model.fit.disqualifiers
        ]
        self.grades = sorted(model.fit.grades.items(), key=lambda kv: -kv[1])
        self.interest_rules: list[InterestRule] = list(model.interest.rules)
        # exp(-age * rate) == 0.5 ** (age / half_life); 0 when a rule does not decay.
        self.decay_rates = [
            (math.log(2) / ((r.half_life_days or model.interest.half_life_days) * DAY_SECONDS)
             if r.decay else 0.0)
            for r in self.interest_rules
        ]
        entries: dict[str, list[tuple[int, InterestRule]]] = {}
        for i, rule in enumerate(self.interest_rules):
            if rule.points == 0 and rule.group is None:
                continue  # counts nothing and shadows nothing
            for kind in rule.activity:
                entries.setdefault(kind, []).append((i, rule))
        self.kinds = {kind: _KindRules(rules) for kind, rules in entries.items()}
        self.tracks = [
            (t.name, [(c, compile_condition(c)) for c in t.when]) for t in model.nurture.tracks
        ]
        # The activity types an interest rule can count: the others change no score.
        self.counted_types = frozenset(self.kinds)
        self.not_scored = frozenset(model.lifecycle.not_scored)

    # --- fit ------------------------------------------------------------------------------

    def fit(self, contact: ContactLike) -> FitResult:
        """Fit points, grade and the rules behind them."""
        props = contact.properties
        domain = email_domain(contact.email or props.get("email"))
        points = 0.0
        used_groups: set[str] | None = None
        contributions: list[FitContribution] = []
        for group, test, prop, derived, always, worth, name, field_name in self.fit_rules:
            if used_groups is not None and group in used_groups:
                continue
            value = None if always else domain if derived else props.get(prop)
            if test(value):
                if group is not None:
                    if used_groups is None:
                        used_groups = {group}
                    else:
                        used_groups.add(group)
                points += worth
                contributions.append(FitContribution(
                    name, field_name, "" if value is None else str(value), worth))
        for disq, check, on, derives in self.disqualifiers:
            if check(domain if derives else props.get(on or "")):
                return FitResult(points, "F", tuple(contributions), f"{disq.name}: {disq.reason}")
        for grade, minimum in self.grades:
            if points >= minimum:
                return FitResult(points, grade, tuple(contributions))
        return FitResult(points, "F", tuple(contributions))

    # --- interest -------------------------------------------------------------------------

    def interest(
        self, activities: Iterable[ActivityLike], now: datetime
    ) -> tuple[float, float, list[tuple[InterestRule, Any, float, float]], list[str],
               datetime | None]:
        """(score, raw decayed sum, hits (rule, activity, points, decayed), capped rules,
        last engagement time). Activities that occurred after `now` count for nothing."""
        deferred: dict[int, list[ActivityLike]] = {}  # rules with caps: counted at the end
        kinds = self.kinds
        rules_of = self.interest_rules
        rates = self.decay_rates
        now_ts = now.timestamp()
        exp = math.exp
        total = 0.0
        out: list[tuple[InterestRule, Any, float, float]] = []
        last: datetime | None = None
        for activity in activities:
            kind = kinds.get(activity.type)
            if kind is None:
                continue
            if activity.occurred_at > now:
                continue  # not yet happened at `now` (a score as of a past time)
            for index, simple, points in kind.fired(activity):
                if not simple:
                    deferred.setdefault(index, []).append(activity)
                    continue
                occurred = activity.occurred_at
                rate = rates[index]
                age = now_ts - occurred.timestamp() if rate else 0.0
                worth = points * exp(-age * rate) if age > 0 else points
                total += worth
                out.append((rules_of[index], activity, points, worth))
                if points > 0 and (last is None or occurred > last):
                    last = occurred
        capped: list[str] = []
        for index, matched in deferred.items():
            rule, rate = rules_of[index], rates[index]
            if rule.max_count is not None and len(matched) > rule.max_count:
                matched.sort(key=_occurred, reverse=True)
                matched = matched[: rule.max_count]
                capped.append(rule.name)
            if rule.period_days is not None:
                accepted = self._period_budget(rule, matched, capped)
            else:
                accepted = [(a, rule.points) for a in matched]
            rule_total = 0.0
            start = len(out)
            for activity, points in accepted:
                occurred = activity.occurred_at
                age = now_ts - occurred.timestamp() if rate else 0.0
                worth = points * exp(-age * rate) if age > 0 else points
                rule_total += worth
                out.append((rule, activity, points, worth))
                if points > 0 and (last is None or occurred > last):
                    last = occurred
            if rule.max_points is not None and rule_total > rule.max_points:
                scale = rule.max_points / rule_total
                out[start:] = [(r, a, p, w * scale) for r, a, p, w in out[start:]]
                rule_total = rule.max_points
                capped.append(rule.name)
            total += rule_total
        score = round(min(self.model.interest.cap, max(0.0, total)), 2)
        return score, total, out, capped, last

    @staticmethod
    def _period_budget(
        rule: InterestRule, matched: Sequence[ActivityLike], capped: list[str]
    ) -> list[tuple[ActivityLike, float]]:
        """Points each activity keeps under the rule's per-period budget (oldest first)."""
        if rule.period_days is None or rule.max_points_per_period is None:
            return [(a, rule.points) for a in matched]
        window = rule.period_days * DAY_SECONDS
        budget = rule.max_points_per_period
        out: list[tuple[ActivityLike, float]] = []
        kept: list[tuple[float, float]] = []  # (time, points) inside the rolling window
        cut = False
        for activity in sorted(matched, key=lambda a: a.occurred_at):
            ts = activity.occurred_at.timestamp()
            kept = [(t, p) for t, p in kept if ts - t < window]
            room = budget - sum(p for _, p in kept)
            points = max(0.0, min(rule.points, room)) if rule.points > 0 else rule.points
            if points != rule.points:
                cut = True
            if points:
                kept.append((ts, points))
                out.append((activity, points))
        if cut:
            capped.append(rule.name)
        return out

    # --- the whole result -----------------------------------------------------------------

    def score(
        self, contact: ContactLike, activities: Iterable[ActivityLike], now: datetime,
        recycled: tuple[datetime, float] | None = None,
    ) -> ScoreResult:
        """Fit, interest, expiry, MQL decision and nurture track of one contact as of `now`:
        only activities that occurred at or before it count, decayed from it. A recycled
        contact (`recycled`: when, share kept) keeps that share of the interest of the
        activities up to its recycle; those after it count whole."""
        fit = self.fit(contact)
        if recycled is None:
            score, raw, hits, capped, last = self.interest(activities, now)
        else:
            score, raw, hits, capped, last = self._recycled_interest(activities, now, *recycled)
        section = self.model.interest
        expired = False
        if section.expire_after_days > 0:
            since = last or contact.hubspot_created_at
            if since is not None and (now - since).total_seconds() > (
                section.expire_after_days * DAY_SECONDS
            ):
                expired = True
                score = 0.0
        stage = contact.lifecycle_stage or contact.properties.get("lifecyclestage") or None
        is_mql, reason = self._mql(fit, score, stage, contact)
        track = "" if is_mql else self._track(contact, fit, score, expired)
        return ScoreResult(
            contact_id=contact.hubspot_id, fit=fit, interest=score, raw_interest=raw,
            capped=tuple(dict.fromkeys(capped)), hits=hits,
            expired=expired, last_engagement_at=last, is_mql=is_mql, mql_reason=reason,
            nurture_track=track, scored_at=now, model_version=self.model.version, stage=stage,
        )

    def _recycled_interest(
        self, activities: Iterable[ActivityLike], now: datetime, when: datetime, keep: float,
    ) -> tuple[float, float, list[tuple[InterestRule, Any, float, float]], list[str],
               datetime | None]:
        """`interest` of a recycled contact: the share kept of what it had at the recycle,
        plus what it earned since."""
        acts = list(activities)
        before = self.interest([a for a in acts if a.occurred_at <= when], now)
        after = self.interest([a for a in acts if a.occurred_at > when], now)
        score = round(min(self.model.interest.cap, before[0] * keep + after[0]), 2)
        hits = [(r, a, p, w * keep) for r, a, p, w in before[2]] + after[2]
        lasts = [t for t in (before[4], after[4]) if t is not None]
        return (score, before[1] * keep + after[1], hits,
                list(dict.fromkeys(before[3] + after[3])), max(lasts, default=None))

    def _mql(
        self, fit: FitResult, score: float, stage: str | None, contact: ContactLike
    ) -> tuple[bool, str]:
        if not (contact.email or contact.properties.get("email")):
            return False, "no email address"
        if stage in self.not_scored:
            return False, f"lifecycle stage {stage} is owned by sales"
        threshold = self.model.mql.thresholds.get(fit.grade)
        if threshold is None:
            why = f" ({fit.disqualified_by})" if fit.disqualified_by else ""
            return False, f"grade {fit.grade} never qualifies{why}"
        if score >= threshold:
            return True, f"grade {fit.grade} with interest {score:g} >= {threshold:g}"
        return False, f"grade {fit.grade} needs interest {threshold:g}, has {score:g}"

    def segment_track(self, contact: ContactLike, grade: str, interest: float,
                      expired: bool = False, fit_points: float = 0.0) -> str:
        """The nurture track the contact's segment gives it, as if it were not an MQL (an MQL
        is in no track: the reports ask which track's people became MQLs)."""
        return self._track(contact, FitResult(fit_points, grade, ()), interest, expired)

    def _track(self, contact: ContactLike, fit: FitResult, score: float, expired: bool) -> str:
        results = {"grade": fit.grade, "interest": score, "expired": expired,
                   "fit_points": fit.points}
        for name, conditions in self.tracks:
            if all(test(_track_value(c, contact, results)) for c, test in conditions):
                return name
        return self.model.nurture.default


def _track_value(cond: TrackCondition, contact: ContactLike, results: Mapping[str, Any]) -> Any:
    if cond.always:
        return None
    if cond.result is not None:
        return results[cond.result]
    return _contact_value(contact, cond.property, cond.derived)


def _occurred(activity: ActivityLike) -> datetime:
    return activity.occurred_at
