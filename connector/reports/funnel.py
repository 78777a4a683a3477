"""The funnel as measured from the store: how many leads became MQLs, how many hand-offs sales
accepted, how many became opportunities, how many of the closed ones were won, and the average
won deal.

Definitions: the report's (`connector.reports.report`: lead, MQL, sales-accepted (SQL) and
opportunity as the funnel counts them, over every lead, no window), and:
- won / closed: the hand-offs' Opportunities closed and won / closed at all (win rate = won /
  closed, so open deals neither help nor hurt it);
- deal size: the mean Amount of the won Opportunities that carry one."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from connector.mapping.sla import SlaFile
from connector.reports.report import build_report
from connector.store import Store

__all__ = ["Funnel", "measure_funnel"]


@dataclass(frozen=True)
class Funnel:
    """Head counts at each stage and the won amounts."""

    leads: int
    mqls: int
    handoffs: int
    accepted: int
    opportunities: int
    closed: int
    won: int
    won_amounts: tuple[float, ...]

    @property
    def deal_size(self) -> float | None:
        return sum(self.won_amounts) / len(self.won_amounts) if self.won_amounts else None


def measure_funnel(store: Store, sla: SlaFile, now: datetime) -> Funnel:
    """The funnel as the store holds it as of `now` (the report's stages; `sla`: what a worked
    lead is)."""
    counts = build_report(store, sla, now)["funnel"]["overall"]["counts"]
    closed = won = 0
    amounts: list[float] = []
    deals = store.handoff_deals()
    for h in deals:
        if h.opportunity_id and h.is_closed:
            closed += 1
            if h.is_won:
                won += 1
                if h.amount is not None:
                    amounts.append(float(h.amount))
    return Funnel(leads=counts["leads"], mqls=counts["mqls"], handoffs=len(deals),
                  accepted=counts["sqls"], opportunities=counts["opportunities"],
                  closed=closed, won=won, won_amounts=tuple(amounts))
