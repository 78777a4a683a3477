"""The funnel as measured from the store: how many leads became MQLs, how many hand-offs sales
accepted, how many became opportunities, how many of the closed ones were won, and the average
won deal.

Definitions (the seeds' funnel, read from what the pull and the pull-back stored):
- lead: a live contact pulled from HubSpot;
- MQL: a live contact that was ever scored an MQL or handed off;
- sales-accepted (SQL): a hand-off whose Lead held a status `[worked] statuses` of `sla.toml`
  lists other than the recycling's `closed_statuses` (the rep accepted it after a connect), or
  that was converted;
- opportunity: a hand-off converted with an Opportunity;
- won / closed: the Opportunity is closed and won / closed at all (win rate = won / closed,
  so open deals neither help nor hurt it);
- deal size: the mean Amount of the won Opportunities that carry one."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

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


def measure_funnel(store: Store, accepting_statuses: Collection[str]) -> Funnel:
    """The funnel as the store holds it now (`accepting_statuses`: the Lead statuses that mean
    sales accepted the lead)."""
    rows = store.funnel_rows()
    accepting = set(accepting_statuses)
    accepted = opportunities = closed = won = 0
    amounts: list[float] = []
    for h in rows.handoffs:
        if h.is_converted or h.statuses & accepting:
            accepted += 1
        if h.opportunity_id:
            opportunities += 1
            if h.is_closed:
                closed += 1
                if h.is_won:
                    won += 1
                    if h.amount is not None:
                        amounts.append(float(h.amount))
    return Funnel(leads=rows.contacts, mqls=rows.mqls, handoffs=len(rows.handoffs),
                  accepted=accepted, opportunities=opportunities, closed=closed, won=won,
                  won_amounts=tuple(amounts))
