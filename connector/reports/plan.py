"""The shared revenue goal worked backwards (the seeds: revenue goal / deal size / close rates =
leads needed): from a goal for a period to the won deals, opportunities, sales-accepted leads,
MQLs and leads needed per month and over the period.

Each assumption is either measured (the funnel in the store, with how many records it rests on)
or given (a command-line value). The arithmetic keeps fractions all the way down and rounds each
stage up only when shown: 10.2 deals needed means 11 must be won."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from connector.errors import FatalError
from connector.reports.funnel import Funnel

__all__ = ["PERIODS", "STAGES", "Assumption", "Plan", "PlanRefused", "work_back"]

PERIODS = {"month": 1, "quarter": 3, "year": 12}
# From the goal down: each stage's count is the one below it divided by the rate between them.
STAGES = ("won", "opportunities", "sqls", "mqls", "leads")


class PlanRefused(FatalError):
    """The goal cannot be worked back: an assumption is neither measured nor given."""

    fix = "give the missing value as its flag (see `handshake plan --help`)"


@dataclass(frozen=True)
class Assumption:
    """One number the plan rests on, and where it came from."""

    name: str  # deal_size | win_rate | sql_to_opportunity | mql_to_sql | lead_to_mql
    value: float
    source: str  # measured | given
    basis: str  # what it was measured from, or the flag that gave it
    records: int | None  # how many records a measured value rests on

    def as_dict(self) -> dict[str, Any]:
        return {"value": self.value, "source": self.source, "basis": self.basis,
                "records": self.records}


@dataclass(frozen=True)
class Plan:
    """What the goal needs, per month and over the period."""

    goal: float
    period: str
    assumptions: dict[str, Assumption]
    per_month_exact: dict[str, float] = field(default_factory=dict)

    @property
    def months(self) -> int:
        return PERIODS[self.period]

    @property
    def per_month(self) -> dict[str, int]:
        return {k: _up(v) for k, v in self.per_month_exact.items()}

    @property
    def per_period(self) -> dict[str, int]:
        return {k: _up(v * self.months) for k, v in self.per_month_exact.items()}

    def as_dict(self) -> dict[str, Any]:
        return {
            "revenue_goal": self.goal, "period": self.period, "months": self.months,
            "revenue_per_month": self.goal / self.months,
            "assumptions": {k: a.as_dict() for k, a in self.assumptions.items()},
            "per_month": self.per_month, "per_period": self.per_period,
            "per_month_exact": self.per_month_exact,
        }


def _up(value: float) -> int:
    """Round a need up, forgiving float noise (3.0000000000000004 is 3)."""
    return math.ceil(round(value, 9))


# name -> (flag, what a measured value is: numerator label, denominator label)
_RATES = {
    "win_rate": ("--win-rate", "won of the closed opportunities"),
    "sql_to_opportunity": ("--sql-to-opportunity", "opportunities of the sales-accepted leads"),
    "mql_to_sql": ("--mql-to-sql", "sales-accepted of the MQLs"),
    "lead_to_mql": ("--lead-to-mql", "MQLs of the leads"),
}


def _measured_rates(f: Funnel) -> dict[str, tuple[int, int]]:
    return {"win_rate": (f.won, f.closed), "sql_to_opportunity": (f.opportunities, f.accepted),
            "mql_to_sql": (f.accepted, f.mqls), "lead_to_mql": (f.mqls, f.leads)}


def work_back(goal: float, period: str, funnel: Funnel, *,
              given: dict[str, float | None] | None = None) -> Plan:
    """The plan for `goal` over `period` from the measured `funnel`, a value in `given`
    (deal_size, or a rate in 0..1) taking the place of the measured one. Raises `PlanRefused`
    naming every assumption that is missing (no won deal to average, a rate with nothing
    behind it or of zero)."""
    if period not in PERIODS:
        raise ValueError(f"period must be one of {', '.join(PERIODS)}")
    if not goal > 0:
        raise ValueError("the revenue goal must be above zero")
    given_: dict[str, float] = {k: v for k, v in (given or {}).items() if v is not None}
    assumptions: dict[str, Assumption] = {}
    missing: list[str] = []
    if "deal_size" in given_:
        assumptions["deal_size"] = Assumption("deal_size", given_["deal_size"], "given",
                                              "--deal-size", None)
    elif funnel.deal_size:
        assumptions["deal_size"] = Assumption(
            "deal_size", funnel.deal_size, "measured",
            "mean Amount of the won opportunities", len(funnel.won_amounts))
    else:
        missing.append("the average deal size: no won opportunity with an Amount has been "
                       "pulled back yet (give --deal-size)")
    measured = _measured_rates(funnel)
    for name, (flag, what) in _RATES.items():
        if name in given_:
            assumptions[name] = Assumption(name, given_[name], "given", flag, None)
            continue
        hits, base = measured[name]
        if base and hits:
            assumptions[name] = Assumption(name, hits / base, "measured",
                                           f"{what}: {hits} of {base}", base)
        else:
            why = "none measured yet" if not base else f"0 of {base}, a rate of zero"
            missing.append(f"{name.replace('_', ' ')} ({what}): {why} (give {flag})")
    if missing:
        raise PlanRefused("cannot work the revenue goal back: " + "; ".join(missing))
    per_month: dict[str, float] = {}
    need = goal / PERIODS[period] / assumptions["deal_size"].value
    per_month["won"] = need
    for stage, rate in zip(STAGES[1:], ("win_rate", "sql_to_opportunity", "mql_to_sql",
                                        "lead_to_mql"), strict=True):
        need = need / assumptions[rate].value
        per_month[stage] = need
    return Plan(goal=goal, period=period, assumptions=assumptions, per_month_exact=per_month)
