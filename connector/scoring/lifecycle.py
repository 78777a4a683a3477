"""Lifecycle decisions from a score: subscriber -> lead -> MQL, forward only, with a time and a
reason. Opportunities and customers are never touched; an MQL handed to sales stays with sales
until an outcome comes back (the pull-back stage moves it); expiry is recorded once per lapse.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from connector.activities import ActivityType
from connector.scoring.engine import ActivityLike, ScoreResult
from connector.scoring.model import LifecycleSection

__all__ = ["EXPIRED_PREFIX", "Decision", "TransitionLike", "decide", "mql_time"]

# Expiry keeps the stage (HubSpot stages only move forward); its reason starts with this.
EXPIRED_PREFIX = "expired:"


class TransitionLike(Protocol):
    @property
    def from_stage(self) -> str | None: ...
    @property
    def to_stage(self) -> str: ...
    @property
    def at(self) -> datetime: ...
    @property
    def reason(self) -> str: ...


@dataclass(frozen=True, slots=True)
class Decision:
    contact_id: str
    kind: str  # lead | mql | expired
    from_stage: str | None
    to_stage: str
    at: datetime
    reason: str

    def as_row(self, run_id: str | None = None) -> dict[str, object]:
        """A row for `Store.add_transitions`."""
        return {"contact_id": self.contact_id, "from_stage": self.from_stage,
                "to_stage": self.to_stage, "at": self.at, "reason": self.reason,
                "run_id": run_id}


def _rank(section: LifecycleSection, stage: str | None) -> int:
    if not stage:
        return -1
    try:
        return section.order.index(stage)
    except ValueError:
        return -1  # a custom stage outside the order is treated as "not yet a lead"


def mql_time(transitions: Sequence[TransitionLike], section: LifecycleSection) -> datetime | None:
    """When the contact last became an MQL, if it did."""
    times = [t.at for t in transitions if t.to_stage == section.mql and t.from_stage != t.to_stage]
    return times[-1] if times else None


def decide(
    result: ScoreResult,
    activities: Sequence[ActivityLike],
    transitions: Sequence[TransitionLike],
    section: LifecycleSection,
) -> Decision | None:
    """The one lifecycle step this score calls for, or None."""
    stage = result.stage or None
    at = result.scored_at
    if stage in section.not_scored:
        return None
    rank = _rank(section, stage)
    if rank >= _rank(section, section.mql):
        return None  # with sales: only a sales outcome moves it on
    if result.is_mql:
        return Decision(result.contact_id, "mql", stage, section.mql, at,
                        f"MQL: {result.mql_reason}")
    if result.expired:
        last = transitions[-1] if transitions else None
        lapsed_since = result.last_engagement_at
        already = (
            last is not None and last.reason.startswith(EXPIRED_PREFIX)
            and (lapsed_since is None or last.at >= lapsed_since)
        )
        if already:
            return None
        since = lapsed_since.date().isoformat() if lapsed_since else "ever"
        return Decision(result.contact_id, "expired", stage, stage or section.subscriber, at,
                        f"{EXPIRED_PREFIX} no scored engagement since {since}")
    if rank < _rank(section, section.lead):
        forms = [a for a in activities
                 if a.type == ActivityType.FORM_SUBMISSION and a.occurred_at <= at]
        if forms:
            first = min(forms, key=lambda a: a.occurred_at)
            name = (first.details or {}).get("form_name") or first.title or "a form"
            return Decision(result.contact_id, "lead", stage, section.lead, at,
                            f"gave an email on {name} ({first.occurred_at.date().isoformat()})")
    return None
