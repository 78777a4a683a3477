"""What every pull-back stream shares: its context, the hand-offs it reads for, and the
shapes of what it stores. The streams import this module, never the engine."""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

from connector.clock import Clock
from connector.pullback.ports import SalesforcePort, SalesVocabulary
from connector.store import Store

__all__ = ["DELETED_BOOKMARK", "STAGE", "VOCABULARY_BOOKMARK", "Handoffs", "PullbackContext",
           "Vocabulary", "bookmark_name", "parse_date", "parse_time"]

STAGE = "pullback"
# where the last deleted-records check ended (the next one starts there)
DELETED_BOOKMARK = f"{STAGE}.deleted"
# the org's vocabulary as last read (JSON): read again only when a value outside it shows up
VOCABULARY_BOOKMARK = f"{STAGE}.vocabulary"

log = logging.getLogger("connector.pullback")


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


@dataclass(frozen=True)
class Vocabulary:
    """The org's vocabulary as the pull-back keeps it between runs (see `SalesVocabulary`)."""

    converted_statuses: frozenset[str] = frozenset()
    closed_stages: frozenset[str] = frozenset()
    won_stages: frozenset[str] = frozenset()
    closed_task_statuses: frozenset[str] = frozenset()
    lead_statuses: frozenset[str] = frozenset()
    stages: frozenset[str] = frozenset()
    task_statuses: frozenset[str] = frozenset()
    unknown: frozenset[str] = frozenset()  # values read in rows the org did not list

    @classmethod
    def of(cls, read: SalesVocabulary) -> Vocabulary:
        """The vocabulary an adapter read."""
        return cls(**{name: frozenset(getattr(read, name, frozenset()))
                      for name in cls.__dataclass_fields__})

    def to_json(self) -> str:
        return json.dumps({name: sorted(getattr(self, name))
                           for name in self.__dataclass_fields__}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Vocabulary | None:
        """The stored vocabulary (None when unreadable: it is read from the org again)."""
        try:
            found = json.loads(text)
            return cls(**{name: frozenset(str(v) for v in found.get(name) or [])
                          for name in cls.__dataclass_fields__})
        except (ValueError, AttributeError, TypeError):
            return None


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
    # A backfill: its streams' bookmarks live under its own prefix and, before there are any,
    # start at `window_start` (the incremental bookmarks are neither read nor moved)
    bookmark_prefix: str = STAGE
    window_start: datetime | None = None
    _vocabulary: Vocabulary | None = None
    _vocabulary_fresh: bool = False  # read from the org this run
    _handshake_tasks: set[str] | None = None

    def bookmark(self, sobject: str) -> str:
        """The bookmark of one object's stream in this run (a backfill's has its own)."""
        if self.bookmark_prefix == STAGE:
            return bookmark_name(sobject)
        return f"{self.bookmark_prefix}.{sobject}"

    @property
    def vocabulary(self) -> Vocabulary:
        """The org's vocabulary as the store keeps it (read from the org the first time,
        and again when a value outside it shows up: `check_value`); a run that finds nothing
        changed reads none of it."""
        if self._vocabulary is None:
            stored = self.store.get_bookmark(VOCABULARY_BOOKMARK)
            self._vocabulary = Vocabulary.from_json(stored) if stored else None
            if self._vocabulary is None:
                self._read_vocabulary()
        assert self._vocabulary is not None
        return self._vocabulary

    def _read_vocabulary(self) -> None:
        if self._vocabulary is not None:
            self.sf.forget_vocabulary()
        self._vocabulary = Vocabulary.of(self.sf.sales_vocabulary())
        self._vocabulary_fresh = True
        self.counts["vocabulary.read"] += 1
        if not self.dry_run:
            self.store.set_bookmark(VOCABULARY_BOOKMARK, self._vocabulary.to_json(),
                                    run_id=self.run_id)

    def check_value(self, kind: str, value: Any) -> None:
        """A Lead status, Opportunity stage or Task status read in a row: one the stored
        vocabulary does not know makes it read again (once a run) before it is used."""
        if value in (None, "") or self._vocabulary_fresh:
            return
        known = self.vocabulary
        if str(value) in getattr(known, kind) or str(value) in known.unknown:
            return
        log.info("Salesforce has a %s value Handshake has not seen: reading the org's "
                 "vocabulary again", kind.removesuffix("es").removesuffix("s"))
        self._read_vocabulary()
        read = self.vocabulary
        if str(value) not in getattr(read, kind):
            # a value the org no longer lists (an inactive picklist value on old records):
            # remembered, so it does not make every run read the vocabulary again
            self._vocabulary = replace(read, unknown=read.unknown | {str(value)})
            if not self.dry_run:
                self.store.set_bookmark(VOCABULARY_BOOKMARK, self._vocabulary.to_json(),
                                        run_id=self.run_id)

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

    links: dict[str, Any]  # HubSpot id -> its `IdLink` (or a row of its columns)
    states: dict[str, dict[str, Any]]
    owner: dict[str, str] = field(default_factory=dict)  # Salesforce id -> HubSpot id
    leads: set[str] = field(default_factory=set)
    contacts: set[str] = field(default_factory=set)
    opportunities: set[str] = field(default_factory=set)
    fresh: set[str] = field(default_factory=set)
    stored: set[str] = field(default_factory=set)  # hand-offs with a state pulled back before
    # records deleted or merged away (a `deleted` or `merged` outcome): no longer followed
    gone: set[str] = field(default_factory=set)
    # objects whose rows this run already applied: an id added fresh for one of them later
    # is `late`, and read by id (the run's query for the object may have passed it)
    started: set[str] = field(default_factory=set)
    late: set[str] = field(default_factory=set)

    @classmethod
    def load(cls, store: Store) -> Handoffs:
        """Every hand-off in the store, with the ids its last pulled-back state names, less
        those deleted or merged away."""
        states = store.handoff_state_rows()
        found = cls({link.hubspot_id: link for link in store.handoff_links()}, states,
                    stored=set(states), gone=store.gone_ids())
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
        if not sf_id or sf_id in self.gone:
            return
        bucket = self._bucket(sobject)
        if bucket is None:
            return
        if sf_id not in self.owner:
            bucket.add(sf_id)
            self.owner[sf_id] = hubspot_id
            if fresh:
                self.fresh.add(sf_id)
                if self.started & {sobject, "Task", "Event"}:
                    self.late.add(sf_id)

    def drop(self, sf_id: str) -> None:
        """Stop following a record (deleted, or merged into another)."""
        self.gone.add(sf_id)
        self.owner.pop(sf_id, None)
        for bucket in (self.leads, self.contacts, self.opportunities):
            bucket.discard(sf_id)

    def _bucket(self, sobject: str) -> set[str] | None:
        return {"Lead": self.leads, "Contact": self.contacts,
                "Opportunity": self.opportunities}.get(sobject)

    def followed(self, sobject: str) -> set[str]:
        """The ids of one object followed."""
        return set(self._bucket(sobject) or ())

    def earliest(self) -> datetime | None:
        """The first hand-off's time: nothing before it concerns the pull-back."""
        return min((link.linked_at for link in self.links.values()), default=None)

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
