"""What scoring calibration reads: each hand-off's score when it was handed off, next to what
sales did with it since (`connector.scoring.calibrate` does the arithmetic)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from connector.store._base import StoreBase
from connector.store.models import HandoffState, IdLink, SalesOutcome, Score

__all__ = ["CalibrationStore"]


class CalibrationStore(StoreBase):
    """Hand-offs with their score at the hand-off and their outcomes, as plain rows."""

    def calibration_rows(self) -> list[dict[str, Any]]:
        """One plain row per hand-off (`id_map`) that had a score by the time it was linked:

        `hubspot_id`, `sf_object`, `linked_at`; from its newest score at or before the link,
        `grade`, `interest`, `fit_points` and `rules` (the names of the fit and interest rules
        that contributed, sorted); from the pull-back, `converted`, `won`, `lost` (the
        opportunity closed and not won), `status` (the Lead's status now), `statuses` (every
        status it was seen in), `recycled` and `disqualified` (handed back to marketing).

        Reads every score up to each link (a contact's history is short); an admin command's
        read, not a hot path."""
        with self.transaction() as s:
            links = {row.hubspot_id: row for row in s.scalars(select(IdLink))}
            scores: dict[str, Score] = {}
            for score in s.scalars(
                select(Score)
                .join(IdLink, IdLink.hubspot_id == Score.contact_id)
                .where(Score.scored_at <= IdLink.linked_at)
                .order_by(Score.contact_id, Score.scored_at, Score.id)
            ):
                if _scored(score.explanation):  # not a recycle's adjustment
                    scores[score.contact_id] = score
            states = {row.hubspot_id: row for row in s.scalars(select(HandoffState))}
            seen: dict[str, set[str]] = {}
            handed_back: dict[str, set[str]] = {}
            for hubspot_id, kind, status in s.execute(
                select(SalesOutcome.hubspot_id, SalesOutcome.kind, SalesOutcome.status)
                .where(SalesOutcome.kind.in_(("status", "recycled", "disqualified")))
            ):
                if hubspot_id is None:
                    continue
                if kind == "status":
                    if status:
                        seen.setdefault(hubspot_id, set()).add(status)
                else:
                    handed_back.setdefault(hubspot_id, set()).add(kind)
        rows: list[dict[str, Any]] = []
        for hubspot_id in sorted(scores):
            link, score = links[hubspot_id], scores[hubspot_id]
            state = states.get(hubspot_id)
            statuses = set(seen.get(hubspot_id, ()))
            if state is not None and state.status:
                statuses.add(state.status)
            back = handed_back.get(hubspot_id, set())
            rows.append({
                "hubspot_id": hubspot_id,
                "sf_object": link.sf_object,
                "linked_at": link.linked_at,
                "grade": score.fit_grade,
                "interest": float(score.interest),
                "fit_points": float(score.fit_points),
                "rules": _rules(score.explanation),
                "converted": bool(state and (state.is_converted or state.opportunity_id)),
                "won": bool(state and state.is_won),
                "lost": bool(state and state.is_closed and not state.is_won),
                "status": state.status if state is not None else None,
                "statuses": sorted(statuses),
                "recycled": "recycled" in back,
                "disqualified": "disqualified" in back,
            })
        return rows


def _scored(explanation: dict[str, Any] | None) -> bool:
    return bool(explanation and "fit" in explanation and "interest" in explanation)


def _rules(explanation: dict[str, Any]) -> list[str]:
    """The rules that gave a score points: fit rules, then interest rules, each once."""
    names = {str(r[0]) for r in explanation.get("fit", {}).get("rules", []) if r}
    interest = explanation.get("interest", {})
    # the score stage stores its interest rules compact, as `hits` (`ScoreStore.
    # expand_explanations`); each names its rule first either way
    names |= {str(r[0]) for r in interest.get("rules", []) if r}
    names |= {str(r[0]) for r in interest.get("hits", []) if r}
    return sorted(names)
