"""The outcomes step on a store and fake adapters: which hand-offs are recycled (the SLA's
never-accepted verdict included), customers never, a lead at its recycle limit disqualified,
each write once, a second run writing nothing, a dry run writing nothing."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from connector.clock import FrozenClock
from connector.hubspot.client import ListMembershipChange
from connector.hubspot.outcomes import OutcomeSettings
from connector.mapping.sla import SlaFile
from connector.pullback.context import Handoffs, PullbackContext
from connector.pullback.outcomes_step import hand_back
from connector.store import Store

HANDED = datetime(2026, 11, 2, 9, tzinfo=UTC)
NOW = HANDED + timedelta(days=5)
LEADS = {"101": "00Q000000000101AAA", "102": "00Q000000000102AAA",
         "103": "00Q000000000103AAA", "104": "00Q000000000104AAA"}


@dataclass
class FakeHubSpot:
    props: dict[str, dict[str, Any]]
    writes: list[tuple[str, Any]] = field(default_factory=list)
    lists: dict[str, set[str]] = field(default_factory=dict)

    def batch_read_contacts(self, ids: Sequence[str],
                            properties: Sequence[str]) -> list[dict[str, Any]]:
        return [{"id": i, "properties": dict(self.props[i])} for i in ids]

    def property_options(self, name: str) -> list[str]:
        return []

    def ensure_properties(self, definitions: Sequence[Mapping[str, Any]]) -> list[str]:
        return []

    def update_contacts(self, updates: Sequence[tuple[str, Mapping[str, str]]], *,
                        describe: str = "") -> int:
        self.writes.append(("update", [u[0] for u in updates]))
        for cid, values in updates:
            self.props[cid].update(values)
        return 1

    def move_lifecycle_back(self, updates: Sequence[tuple[str, Mapping[str, str]]],
                            stage: str) -> int:
        self.writes.append(("move_back", [u[0] for u in updates]))
        for cid, values in updates:
            self.props[cid].update({**values, "lifecyclestage": stage})
        return 2

    def manual_list(self, name: str) -> str:
        self.lists.setdefault(name, set())
        return name

    def add_to_list(self, list_id: str, record_ids: Sequence[str]) -> ListMembershipChange:
        self.writes.append(("list", list(record_ids)))
        self.lists[list_id].update(record_ids)
        return ListMembershipChange(added=list(record_ids))


@dataclass
class Result:
    index: int
    success: bool = True
    rejection: Any = None


@dataclass
class FakeSalesforce:
    updates: list[dict[str, Any]] = field(default_factory=list)

    def queue_id(self, name: str) -> str | None:
        return "00G000000000001AAA" if name == "Marketing Nurture" else None

    def update_batches(self, sobject: str, records: Sequence[Mapping[str, Any]], *,
                       auto_assign: bool = True,
                       allow_duplicates: bool = False) -> Iterable[Sequence[Any]]:
        self.updates.extend(dict(r) for r in records)
        yield [Result(i) for i in range(len(records))]


def _state(hid: str, **values: Any) -> dict[str, Any]:
    return {"hubspot_id": hid, "lead_id": LEADS[hid], "status": "Working - Contacted",
            "is_converted": False, "is_closed": False, "is_won": False,
            "last_touch_at": HANDED + timedelta(days=1), **values}


def _setup(store: Store) -> None:
    store.clock = FrozenClock(HANDED)  # type: ignore[assignment]
    for hid, lead in LEADS.items():
        store.link(hid, "Lead", lead)
    states = [_state("101", status="Open - Not Contacted", last_touch_at=None),
              _state("102", is_converted=True, stage="Closed Won", is_closed=True, is_won=True,
                     amount=5000.0),
              _state("103", status="Closed - Not Converted", reason="No Budget"),
              _state("104")]
    # 103 was recycled three times before this hand-off
    earlier = [{"hubspot_id": "103", "sf_object": "Lead", "sf_id": LEADS["103"],
                "source_id": f"recycle:{LEADS['103']}:{n}:recycle", "kind": "recycled",
                "occurred_at": HANDED - timedelta(days=30 * (4 - n)), "reason": "earlier",
                "details": {"reason": "untouched", "count": n, "keep_percent": 50.0}}
               for n in (1, 2, 3)]
    store.record_pullback(outcomes=earlier, states=states)


def _run(store: Store, hubspot: FakeHubSpot, sf: FakeSalesforce, *,
         dry_run: bool = False) -> PullbackContext:
    ctx = PullbackContext(store=store, sf=None, clock=FrozenClock(NOW),  # type: ignore[arg-type]
                          dry_run=dry_run)
    hand_back(ctx, Handoffs.load(store), hubspot=hubspot, sf=sf, sla=SlaFile(),
              settings=OutcomeSettings(), never_accepted={LEADS["101"]})
    return ctx


def _portal() -> FakeHubSpot:
    return FakeHubSpot({"101": {"lifecyclestage": "salesqualifiedlead"},
                        "102": {"lifecyclestage": "opportunity"},
                        "103": {"lifecyclestage": "salesqualifiedlead"},
                        "104": {"lifecyclestage": "salesqualifiedlead"}})


def test_recycles_disqualifies_and_spares_customers_once(store: Store) -> None:
    _setup(store)
    hubspot, sf = _portal(), FakeSalesforce()
    dry = _run(store, hubspot, sf, dry_run=True)
    assert dry.counts["recycle.would_store"] == 2
    assert hubspot.writes == [] and sf.updates == []
    assert [o.kind for o in store.outcomes()] == ["recycled"] * 3

    ctx = _run(store, hubspot, sf)
    decided = {o.hubspot_id: o for o in store.outcomes() if o.occurred_at.replace(
        tzinfo=UTC) >= HANDED}
    assert {h: o.kind for h, o in decided.items()} == {"101": "recycled",
                                                      "103": "disqualified"}
    assert decided["101"].details["reason"] == "never_accepted"
    assert ctx.counts["recycle.decided"] == 1 and ctx.counts["recycle.disqualified"] == 1
    assert sf.updates == [{"Id": LEADS["101"], "Status": "Open - Not Contacted",
                           "OwnerId": "00G000000000001AAA"}]
    assert ("move_back", ["101"]) in hubspot.writes
    assert hubspot.lists == {"Handshake re-engagement": {"101"}}
    assert hubspot.props["101"]["lifecyclestage"] == "lead"
    assert hubspot.props["101"]["handshake_recycle_count"] == "1"
    assert hubspot.props["102"]["lifecyclestage"] == "customer"
    assert "handshake_recycle_count" not in hubspot.props["102"]
    assert hubspot.props["103"]["handshake_sales_outcome"] == "disqualified"
    assert hubspot.props["103"]["hs_lead_status"] == "UNQUALIFIED"
    assert hubspot.props["103"]["lifecyclestage"] == "salesqualifiedlead"
    assert hubspot.props["104"]["handshake_sales_outcome"] == "working"

    writes, updates = len(hubspot.writes), len(sf.updates)
    again = _run(store, hubspot, sf)
    assert (len(hubspot.writes), len(sf.updates)) == (writes, updates)
    assert again.counts["recycle.decided"] == 0 and again.counts["recycle.disqualified"] == 0


def test_a_recycle_stored_by_a_run_stopped_before_its_score_is_adjusted_once(
        store: Store) -> None:
    """A run killed between storing its recycle decision and writing the kept interest: the
    next run writes the score row it owed (no MQL), once."""
    _setup(store)
    store.add_scores([{"contact_id": "101", "scored_at": HANDED, "interest": 60.0,
                       "fit_grade": "A", "fit_points": 40, "is_mql": True,
                       "model_version": "m1", "explanation": {}}])
    store.clock = FrozenClock(NOW)  # type: ignore[assignment]
    store.record_pullback(outcomes=[{
        "hubspot_id": "101", "sf_object": "Lead", "sf_id": LEADS["101"],
        "source_id": f"recycle:{LEADS['101']}:1:recycle", "kind": "recycled",
        "status": "Open - Not Contacted", "reason": "not worked", "owner_id": None,
        "occurred_at": NOW - timedelta(minutes=1), "amount": None,
        "details": {"reason": "never_accepted", "count": 1, "interest": "decay",
                    "keep_percent": 50.0}}], states=[])
    ctx = _run(store, _portal(), FakeSalesforce())
    assert ctx.counts["recycle.decided"] == 0  # taken by the stopped run
    assert ctx.counts["recycle.interest_adjusted"] == 1
    score = store.latest_score("101")
    assert score is not None and not score.is_mql and score.interest == 30.0
    assert score.explanation["recycled"] == "never_accepted"
    assert _run(store, _portal(), FakeSalesforce()).counts["recycle.interest_adjusted"] == 0
