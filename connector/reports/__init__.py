"""Reports over what Handshake holds: the funnel's measured rates and the shared revenue goal
worked backwards into lead goals (`handshake plan`)."""

from __future__ import annotations

from connector.reports.funnel import Funnel, measure_funnel
from connector.reports.plan import (
    PERIODS,
    Assumption,
    Plan,
    PlanRefused,
    work_back,
)

__all__ = ["PERIODS", "Assumption", "Funnel", "Plan", "PlanRefused", "measure_funnel",
           "work_back"]
