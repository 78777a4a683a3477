"""What every pull-back stream shares: its context, the hand-offs it reads for, and the
shapes of what it stores. The streams import this module, never the engine."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from connector.clock import Clock
from connector.pullback.ports import SalesforcePort, SalesVocabulary
from connector.store import HandoffState, IdLink, Store

__all__ = ["STAGE", "Handoffs", "PullbackContext", "bookmark_name", "parse_date", "parse_time"]

STAGE = "pullback"


def bookmark_name(sobject: str) -> str:
    """The bookmark of one object's stream: the newest SystemModstamp stored."""
    return f"{STAGE}.{sobject}"


def parse_time(value: Any) -> datetime | None:
    """A Salesforce datetime (`2026-11-02T09:00:00.000+0000`) as an aware UTC datetime."""
    if not value:
        return None
    parsed = datetime.fromisoformat(str(value))
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_date(value: Any) -> date | None:
    """A Salesforce date (`2026-11-02`)."""
    return date.fromisoformat(str(value)[:10]) if value else None


@dataclass
class PullbackContext:
    """What the pull-back needs; the adapter and the settings come in, nothing is built here.

    `lead_reason_field` / `loss_reason_field` name the org's custom picklists for why a Lead
    was not converted and why an Opportunity was lost (Salesforce has no standard ones)."""

    store: Store
    sf: SalesforcePort
    clock: Clock
    lookback: timedelta = timedelta(minutes=10)
    run_id: str | None = None
    dry_run: bool = False
    lead_reason_field: str | None = None
    loss_reason_field: str | None = None
    counts: Counter[str] = field(default_factory=Counter)
    # a dry run: the outcomes and hand-off states it read but did not store (the SLA step
    # judges them as the real run would), and what it would write (`planned`)
    unstored: list[dict[str, Any]] = field(default_factory=list)
    unstored_states: dict[str, dict[str, Any]] = field(default_factory=dict)
    planned: list[dict[str, Any]] = field(default_factory=list)
    _vocabulary: SalesVocabulary | None = None
    _handshake_tasks: set[str] | None = None

    @property
    def vocabulary(self) -> SalesVocabulary:
        """The org's vocabulary, read when a changed record first needs it (a run that finds
        nothing changed reads none of it)."""
        if self._vocabulary is None:
            self._vocabulary = self.sf.sales_vocabulary()
        return self._vocabulary

    @property
    def handshake_tasks(self) -> set[str]:
        """The Tasks the write ledger says Handshake created (hand-offs, alerts)."""
        if self._handshake_tasks is None:
            self._handshake_tasks = self.store.written_ids(system="salesforce", target="Task")
        return self._handshake_tasks

    def by_handshake(self, row: dict[str, Any]) -> bool:
        """The row's last change was made by Handshake's integration user: its own write."""
        return bool(self.sf.user_id) and row.get("LastModifiedById") == self.sf.user_id


@dataclass
class Handoffs:
    """The records Handshake handed off and those they became, each mapped to its HubSpot
    contact, with the state of each as last pulled back. `fresh` holds the ids first seen this
    run (read from their hand-off, not from the bookmark)."""

    links: dict[str, IdLink]
    states: dict[str, dict[str, Any]]
    owner: dict[str, str] = field(default_factory=dict)  # Salesforce id -> HubSpot id
    leads: set[str] = field(default_factory=set)
    contacts: set[str] = field(default_factory=set)
    opportunities: set[str] = field(default_factory=set)
    fresh: set[str] = field(default_factory=set)
    stored: set[str] = field(default_factory=set)  # hand-offs with a state pulled back before

    @classmethod
    def load(cls, store: Store) -> Handoffs:
        """Every hand-off in the store, with the ids its last pulled-back state names."""
        states = {h: _state_dict(s) for h, s in store.handoff_states().items()}
        found = cls({link.hubspot_id: link for link in store.handoffs()}, states,
                    stored=set(states))
        for hubspot_id, link in found.links.items():
            state = states.get(hubspot_id)
            found.add(hubspot_id, link.sf_object, link.sf_id, fresh=state is None)
            if state is not None:
                found.add(hubspot_id, "Lead", state.get("lead_id"))
                found.add(hubspot_id, "Contact", state.get("contact_id"))
                found.add(hubspot_id, "Opportunity", state.get("opportunity_id"))
        return found

    def add(self, hubspot_id: str, sobject: str, sf_id: str | None, *,
            fresh: bool = False) -> None:
        """Follow one more record of a hand-off (the Contact or Opportunity a Lead became)."""
        if not sf_id:
            return
        bucket = {"Lead": self.leads, "Contact": self.contacts,
                  "Opportunity": self.opportunities}.get(sobject)
        if bucket is None:
            return
        if sf_id not in self.owner:
            bucket.add(sf_id)
            self.owner[sf_id] = hubspot_id
            if fresh:
                self.fresh.add(sf_id)

    def state(self, hubspot_id: str) -> dict[str, Any]:
        """The hand-off's state (a new one: what Handshake handed off, nothing pulled yet)."""
        state = self.states.get(hubspot_id)
        if state is None:
            link = self.links.get(hubspot_id)
            state = self.states[hubspot_id] = {
                "hubspot_id": hubspot_id,
                "lead_id": link.sf_id if link is not None and link.sf_object == "Lead" else None,
                "contact_id": (link.sf_id if link is not None and link.sf_object == "Contact"
                               else None),
                "is_converted": False, "is_closed": False, "is_won": False,
            }
        return state

    def handed_off_at(self, ids: Iterable[str]) -> datetime | None:
        """The earliest hand-off of the contacts these records stand for."""
        times = [self.links[h].linked_at for i in ids
                 if (h := self.owner.get(i)) is not None and h in self.links]
        return min(times, default=None)


def _state_dict(state: HandoffState) -> dict[str, Any]:
    names = [column.name for column in HandoffState.__table__.columns]
    return {name: getattr(state, name) for name in names if name != "updated_at"}
