"""The Lead's status at a hand-off, as the SLA reads it from the outcomes after it: a Lead
already "Working - Contacted" when handed off and converted as its first change since is worked
at the rep's first touch, not at the conversion (the conversion says what it came from)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from connector.pullback.sla_step import _status_at
from connector.store import SalesOutcome

AT = datetime(2026, 11, 2, 9, tzinfo=UTC)
LEAD = "00Q000000000001AAA"


def _outcome(kind: str, hours: float, details: dict[str, object]) -> SalesOutcome:
    return SalesOutcome(hubspot_id="101", sf_object="Lead", sf_id=LEAD, source_id=f"{kind}",
                        kind=kind, status="Closed - Converted",
                        occurred_at=AT + timedelta(hours=hours), details=details)


def test_a_conversion_after_the_hand_off_says_the_status_it_came_from() -> None:
    state = SimpleNamespace(lead_id=LEAD, status="Closed - Converted")
    converted = _outcome("converted", 35, {"from": "Working - Contacted"})
    assert _status_at([converted], state, LEAD, AT) == "Working - Contacted"


def test_a_conversion_stored_before_it_said_so_leaves_the_status_unknown() -> None:
    state = SimpleNamespace(lead_id=LEAD, status="Closed - Converted")
    assert _status_at([_outcome("converted", 35, {"contact_id": "003"})], state, LEAD,
                      AT) is None
