"""Scoring and lead intelligence: an explainable fit grade x interest score per contact, MQL and
lifecycle decisions, nurture tracks, and the hand-off summary sales reads.

The model lives in `mappings/scoring.toml` (`load_model`); the engine is pure (`Engine.score`);
`score_contacts` runs it over the store (see `connector.runtime.run_score_stage`).
"""

from __future__ import annotations

from connector.scoring.engine import Engine, FitResult, InterestContribution, ScoreResult
from connector.scoring.model import ScoringModel, load_model, parse_model

__all__ = [
    "Engine",
    "FitResult",
    "InterestContribution",
    "ScoreResult",
    "ScoringModel",
    "load_model",
    "parse_model",
]
