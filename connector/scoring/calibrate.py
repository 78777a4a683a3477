"""Scoring calibration from the outcomes the pull-back brought back: which rules the leads sales
accepted had, how the scores of won, lost and recycled leads spread, and the MQL threshold that
meets a target sales-acceptance rate.

Pure functions over the plain rows `Store.calibration_rows` reads (one per hand-off, with its
score at the hand-off). The words used:

- a lead's *verdict*: `accepted` when sales converted it (an opportunity), `rejected` when sales
  closed it without converting (one of sla.toml's `closed_statuses`, or disqualified by the
  pull-back), none while it is still open (not counted anywhere a rate is);
- *acceptance* (precision) at a threshold: the share of accepted among the verdicts of leads
  scoring at least it; *recall*: the share of all accepted leads that score at least it;
- a rule's *lift*: the conversion rate of the leads it gave points to over that of the leads it
  did not (among leads with a verdict); on won, the same with won opportunities. A rule is
  ranked only when at least MIN_RULE_SUPPORT verdicts fall on each side.

The recommended threshold of a grade is the lowest whole threshold whose leads' acceptance
reaches the target (as many leads as the target allows); when none does, the one with the
highest acceptance. Leads under the current threshold were never handed off, so nothing is known
below it: a recommendation under the current threshold keeps the current one.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import tomlkit

__all__ = [
    "DEFAULT_TARGET_ACCEPTANCE",
    "GROUPS",
    "MIN_RULE_SUPPORT",
    "MIN_VERDICTS_TO_WRITE",
    "Calibration",
    "Lead",
    "Recommendation",
    "RuleLift",
    "ThresholdRow",
    "best_threshold",
    "calibrate",
    "edit_thresholds",
    "lead_of",
    "rate_ratio",
    "rule_lifts",
    "score_distribution",
    "threshold_table",
]

# Verdicts (converted or closed) a grade needs before `--write` changes its threshold.
MIN_VERDICTS_TO_WRITE = 100
# Verdicts needed on each side of a rule (leads it scored and leads it did not) to rank it.
MIN_RULE_SUPPORT = 20
DEFAULT_TARGET_ACCEPTANCE = 0.5
TABLE_STEP = 5  # the precision/recall table's rows: every TABLE_STEP points, and the chosen ones
# Where a hand-off stands, for the score distribution (in this order).
GROUPS = ("won", "lost", "opportunity", "recycled", "rejected", "open")
GRADES = ("A", "B", "C", "D", "F")


@dataclass(frozen=True)
class Lead:
    """One hand-off, as calibration sees it."""

    score: float  # interest at the hand-off
    grade: str
    rules: frozenset[str]
    verdict: str | None  # "accepted" | "rejected" | None (still open)
    won: bool
    group: str  # one of GROUPS


@dataclass(frozen=True)
class RuleLift:
    rule: str
    leads_with: int  # verdicts of leads the rule gave points to
    leads_without: int
    conversion_with: float | None
    conversion_without: float | None
    lift: float | None  # conversion_with / conversion_without
    won_with: float | None
    won_without: float | None
    won_lift: float | None
    ranked: bool  # enough verdicts on both sides and a lift


@dataclass(frozen=True)
class ThresholdRow:
    threshold: int
    leads: int  # verdicts at or above it
    accepted: int
    acceptance: float | None  # precision
    recall: float | None


@dataclass(frozen=True)
class Recommendation:
    grade: str
    verdicts: int
    current: float | None
    threshold: int  # recommended
    acceptance: float | None  # at the recommended threshold
    meets_target: bool
    enough: bool  # verdicts >= MIN_VERDICTS_TO_WRITE
    table: tuple[ThresholdRow, ...]


@dataclass(frozen=True)
class Calibration:
    target_acceptance: float
    hand_offs: int
    verdicts: int
    accepted: int
    rules: tuple[RuleLift, ...]
    distribution: dict[str, dict[str, float | int]]
    recommendations: tuple[Recommendation, ...]

    def to_json(self) -> dict[str, Any]:
        """One JSON-able object (rates rounded to 4 places)."""
        out: dict[str, Any] = _rounded({
            "target_acceptance": self.target_acceptance,
            "hand_offs": self.hand_offs,
            "verdicts": self.verdicts,
            "accepted": self.accepted,
            "min_verdicts_to_write": MIN_VERDICTS_TO_WRITE,
            "min_rule_support": MIN_RULE_SUPPORT,
            "rules": [asdict(r) for r in self.rules],
            "distribution": self.distribution,
            "thresholds": {r.grade: {k: v for k, v in asdict(r).items() if k != "grade"}
                           for r in self.recommendations},
        })
        return out


def lead_of(row: Mapping[str, Any], closed_statuses: Collection[str]) -> Lead:
    """A store row (`Store.calibration_rows`) as a `Lead`; `closed_statuses`: the Lead statuses
    that close it without converting (sla.toml's `[recycling] closed_statuses`)."""
    converted = bool(row.get("converted"))
    rejected = bool(row.get("disqualified")) or bool(set(row.get("statuses") or ())
                                                     & set(closed_statuses))
    verdict = "accepted" if converted else "rejected" if rejected else None
    won = bool(row.get("won"))
    if won:
        group = "won"
    elif row.get("lost"):
        group = "lost"
    elif converted:
        group = "opportunity"
    elif row.get("recycled") or row.get("disqualified"):
        group = "recycled"
    elif rejected:
        group = "rejected"
    else:
        group = "open"
    return Lead(score=float(row["interest"]), grade=str(row.get("grade") or ""),
                rules=frozenset(row.get("rules") or ()), verdict=verdict, won=won, group=group)


def rate_ratio(hits_a: int, n_a: int, hits_b: int, n_b: int) -> float | None:
    """(hits_a / n_a) / (hits_b / n_b); None when a side has no leads or the second rate is 0."""
    if n_a <= 0 or n_b <= 0 or hits_b <= 0:
        return None
    return (hits_a / n_a) / (hits_b / n_b)


def rule_lifts(leads: Sequence[Lead], *, min_support: int = MIN_RULE_SUPPORT,
               rules: Iterable[str] = ()) -> list[RuleLift]:
    """Every rule's lift on conversion and on won among the leads with a verdict: ranked rules
    by lift (highest first), then the others by name. `rules` adds rules that scored no lead."""
    judged = [lead for lead in leads if lead.verdict is not None]
    names = set(rules).union(*(lead.rules for lead in judged)) if judged else set(rules)
    out: list[RuleLift] = []
    for name in names:
        with_ = [lead for lead in judged if name in lead.rules]
        without = [lead for lead in judged if name not in lead.rules]
        conv_w = sum(lead.verdict == "accepted" for lead in with_)
        conv_wo = sum(lead.verdict == "accepted" for lead in without)
        won_w = sum(lead.won for lead in with_)
        won_wo = sum(lead.won for lead in without)
        lift = rate_ratio(conv_w, len(with_), conv_wo, len(without))
        out.append(RuleLift(
            rule=name, leads_with=len(with_), leads_without=len(without),
            conversion_with=_rate(conv_w, len(with_)),
            conversion_without=_rate(conv_wo, len(without)),
            lift=lift,
            won_with=_rate(won_w, len(with_)), won_without=_rate(won_wo, len(without)),
            won_lift=rate_ratio(won_w, len(with_), won_wo, len(without)),
            ranked=(lift is not None and len(with_) >= min_support
                    and len(without) >= min_support),
        ))
    out.sort(key=lambda r: (not r.ranked, -(r.lift or 0.0) if r.ranked else 0.0, r.rule))
    return out


def score_distribution(leads: Sequence[Lead]) -> dict[str, dict[str, float | int]]:
    """Per group (GROUPS, those present): count, min, quartiles, max and mean of the scores."""
    out: dict[str, dict[str, float | int]] = {}
    for group in GROUPS:
        scores = sorted(lead.score for lead in leads if lead.group == group)
        if not scores:
            continue
        q1, median, q3 = (statistics.quantiles(scores, n=4, method="inclusive")
                          if len(scores) > 1 else (scores[0],) * 3)
        out[group] = {"count": len(scores), "min": scores[0], "p25": q1, "median": median,
                      "p75": q3, "max": scores[-1], "mean": statistics.fmean(scores)}
    return out


def threshold_table(leads: Sequence[Lead], thresholds: Iterable[int]) -> list[ThresholdRow]:
    """Acceptance (precision) and recall of the leads with a verdict at each threshold."""
    judged = [(lead.score, lead.verdict == "accepted") for lead in leads
              if lead.verdict is not None]
    total = sum(accepted for _, accepted in judged)
    rows: list[ThresholdRow] = []
    for t in sorted(set(thresholds)):
        kept = [accepted for score, accepted in judged if score >= t]
        hits = sum(kept)
        rows.append(ThresholdRow(t, len(kept), hits, _rate(hits, len(kept)),
                                 _rate(hits, total)))
    return rows


def best_threshold(scored: Sequence[tuple[float, float]], target: float) -> tuple[int, bool]:
    """The lowest whole threshold (0..100) at which the leads scoring at least it have a mean
    acceptance of `target` or more, and True; when none has, the threshold with the highest
    mean (the lowest of equals), and False. `scored`: (score, 1.0 accepted / 0.0 rejected)."""
    best, best_mean = 0, -1.0
    for t in range(101):
        kept = [a for s, a in scored if s >= t]
        if not kept:
            break
        mean = sum(kept) / len(kept)
        if mean >= target:
            return t, True
        if mean > best_mean + 1e-12:
            best, best_mean = t, mean
    return best, False


def calibrate(rows: Sequence[Mapping[str, Any]], *, target: float,
              current: Mapping[str, float], closed_statuses: Collection[str],
              rules: Iterable[str] = ()) -> Calibration:
    """The whole calibration of `rows` (`Store.calibration_rows`) for a target acceptance:
    rule lifts, score distribution, and per grade with verdicts the recommended threshold
    (`current`: the scoring file's [mql] thresholds) with its precision/recall table."""
    if not 0 < target < 1:
        raise ValueError(f"target acceptance must be between 0 and 1 (exclusive), got {target}")
    leads = [lead_of(row, closed_statuses) for row in rows]
    judged = [lead for lead in leads if lead.verdict is not None]
    recommendations: list[Recommendation] = []
    for grade in GRADES:
        mine = [lead for lead in judged if lead.grade == grade]
        if not mine:
            continue
        now = current.get(grade)
        t, meets = best_threshold(
            [(lead.score, 1.0 if lead.verdict == "accepted" else 0.0) for lead in mine], target)
        if now is not None and t <= now:  # nothing is known under the current threshold
            t = math.ceil(now)
            at = _acceptance(mine, t)
            meets = at is not None and at >= target
        low = int(min(lead.score for lead in mine)) // TABLE_STEP * TABLE_STEP
        marks = {*range(low, 101, TABLE_STEP), t}
        if now is not None:
            marks.add(math.ceil(now))
        table = threshold_table(mine, marks)
        recommendations.append(Recommendation(
            grade=grade, verdicts=len(mine), current=now, threshold=t,
            acceptance=_acceptance(mine, t), meets_target=meets,
            enough=len(mine) >= MIN_VERDICTS_TO_WRITE, table=tuple(table)))
    return Calibration(
        target_acceptance=target,
        hand_offs=len(leads),
        verdicts=len(judged),
        accepted=sum(lead.verdict == "accepted" for lead in judged),
        rules=tuple(rule_lifts(leads, rules=rules)),
        distribution=score_distribution(leads),
        recommendations=tuple(recommendations),
    )


def edit_thresholds(text: str, thresholds: Mapping[str, int]) -> tuple[str, dict[str, int]]:
    """scoring.toml's text with these `[mql] thresholds` set, its comments and layout kept
    (tomlkit). A worse grade whose threshold would then be under a better one's is raised to it
    (a better grade never needs more interest than a worse one). Returns the new text and each
    threshold it changed, by grade. `KeyError` when the text has no `[mql] thresholds`."""
    doc = tomlkit.parse(text)
    table: Any = doc["mql"]["thresholds"]
    changed: dict[str, int] = {}
    for grade, value in thresholds.items():
        if grade in table and table[grade] != value:
            table[grade] = value
            changed[grade] = value
    floor: float | None = None
    for grade in GRADES:
        if grade not in table:
            continue
        if floor is not None and table[grade] < floor:
            table[grade] = math.ceil(floor)
            changed[grade] = math.ceil(floor)
        floor = float(table[grade]) if floor is None else max(floor, float(table[grade]))
    return tomlkit.dumps(doc), changed


def _acceptance(leads: Sequence[Lead], threshold: float) -> float | None:
    kept = [lead.verdict == "accepted" for lead in leads
            if lead.verdict is not None and lead.score >= threshold]
    return _rate(sum(kept), len(kept))


def _rate(hits: int, n: int) -> float | None:
    return hits / n if n else None


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_rounded(v) for v in value]
    return value
