"""The state store's tables: the hub between HubSpot and Salesforce.

Every flow reads and writes here, never directly system to system:
pull (HubSpot -> contacts, activities), score (-> scores, lifecycle_transitions),
push (-> id_map, write_ledger, sla_timers), pull-back (-> sales_outcomes, handoff_states), and
every stage
(-> dead_letters, bookmarks, sync_runs). Times are stored as timezone-aware UTC.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any, ClassVar

import orjson
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "Activity",
    "Base",
    "Bookmark",
    "Contact",
    "DeadLetter",
    "HandoffState",
    "IdLink",
    "Lease",
    "LifecycleTransition",
    "RoutingPointer",
    "SalesOutcome",
    "Score",
    "SlaBreachRecord",
    "SlaTimer",
    "SyncRun",
    "UTCDateTime",
    "WebhookQueueEntry",
    "WriteLedgerEntry",
    "sqlite_json_text",
    "sqlite_utc_text",
]


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite keeps no zone; we put it back)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use an aware UTC datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    def bind_processor(self, dialect: Dialect) -> Any:
        """On SQLite, `process_bind_param` and DATETIME's own text formatting in one step (a
        pull binds two times per activity): the same text, checked once against the two-step
        path; other databases take the two steps."""
        two_steps = super().bind_processor(dialect)
        if dialect.name != "sqlite" or two_steps is None:
            return two_steps

        def process(value: datetime | None) -> str | None:
            return None if value is None else sqlite_utc_text(value)

        probe = datetime(2026, 1, 2, 3, 4, 5, 60, tzinfo=UTC)
        if process(probe) != two_steps(probe) or process(probe.replace(microsecond=0)) != \
                two_steps(probe.replace(microsecond=0)):
            return two_steps
        return process


def sqlite_utc_text(value: datetime) -> str:
    """An aware time as `UTCDateTime` stores it on SQLite (UTC, SQLite DATETIME's text)."""
    if value.tzinfo is not UTC:
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use an aware UTC datetime")
        value = value.astimezone(UTC)
    return value.isoformat(" ", "microseconds")[:26]  # without the "+00:00"


def utc_from_row(value: str | datetime) -> datetime:
    """A time read straight from the driver (no `UTCDateTime` processing), aware in UTC:
    SQLite gives the text `sqlite_utc_text` wrote, PostgreSQL a datetime."""
    if isinstance(value, str):
        return datetime.fromisoformat(value + "+00:00")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime(), dict[str, Any]: JSON()}


class SyncRun(Base):
    """One execution of a stage (pull, score, push, pullback, backfill...)."""

    __tablename__ = "sync_runs"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    stage: Mapped[str] = mapped_column(String(32))
    trigger: Mapped[str] = mapped_column(String(32), default="manual")  # schedule|manual|backfill
    instance: Mapped[str] = mapped_column(String(128), default="")
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    # running | ok | degraded | stopped | failed | interrupted | abandoned
    status: Mapped[str] = mapped_column(String(16), default="running")
    counts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    __table_args__ = (Index(None, "stage", "started_at"),)


class Bookmark(Base):
    """Where a stream resumes; advanced only after the records it covers are stored."""

    __tablename__ = "bookmarks"
    stream: Mapped[str] = mapped_column(String(128), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime]
    run_id: Mapped[str | None] = mapped_column(String(36))


class Contact(Base):
    """The store's copy of a HubSpot contact, plus Handshake's derived state."""

    __tablename__ = "contacts"
    hubspot_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    email: Mapped[str | None] = mapped_column(String(320), index=True)
    properties: Mapped[dict[str, Any]] = mapped_column(default=dict)
    hubspot_created_at: Mapped[datetime | None]
    hubspot_updated_at: Mapped[datetime | None] = mapped_column(index=True)
    archived: Mapped[bool] = mapped_column(Boolean, default=False)
    merged_into: Mapped[str | None] = mapped_column(String(32))
    lifecycle_stage: Mapped[str | None] = mapped_column(String(64))
    # Changes whenever the contact or its activities change; scoring compares it to its last run.
    inputs_changed_at: Mapped[datetime | None] = mapped_column(index=True)
    first_seen_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Activity(Base):
    """One engagement event, normalised; unique by its source and the source's id."""

    __tablename__ = "activities"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    contact_id: Mapped[str] = mapped_column(String(32))  # (contact_id, occurred_at) indexes it
    type: Mapped[str] = mapped_column(String(48))
    occurred_at: Mapped[datetime]
    source: Mapped[str] = mapped_column(String(48))
    source_id: Mapped[str] = mapped_column(String(255))
    title: Mapped[str | None] = mapped_column(Text)
    url: Mapped[str | None] = mapped_column(Text)
    content: Mapped[str | None] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    ingested_at: Mapped[datetime]
    __table_args__ = (
        UniqueConstraint("source", "source_id"),
        Index(None, "contact_id", "occurred_at"),
    )


def sqlite_json_text(value: Mapping[str, Any] | None) -> str:
    """A JSON column's value as JSON text (an empty one `{}`): the JSON type's readers decode
    it to the same data as `json.dumps` would store, written several times faster."""
    if not value:
        return "{}"
    return orjson.dumps(value if isinstance(value, dict) else dict(value)).decode()


class Score(Base):
    """A scoring result; the history is kept, the newest per contact is current."""

    __tablename__ = "scores"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    contact_id: Mapped[str] = mapped_column(String(32))
    scored_at: Mapped[datetime]
    interest: Mapped[float] = mapped_column(Float)
    fit_grade: Mapped[str] = mapped_column(String(2))
    fit_points: Mapped[float] = mapped_column(Float, default=0)
    is_mql: Mapped[bool] = mapped_column(Boolean, default=False)
    model_version: Mapped[str] = mapped_column(String(64), default="")
    explanation: Mapped[dict[str, Any]] = mapped_column(default=dict)
    __table_args__ = (Index(None, "contact_id", "scored_at"),)


class LifecycleTransition(Base):
    __tablename__ = "lifecycle_transitions"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    contact_id: Mapped[str] = mapped_column(String(32), index=True)
    from_stage: Mapped[str | None] = mapped_column(String(64))
    to_stage: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime]
    reason: Mapped[str] = mapped_column(Text, default="")
    run_id: Mapped[str | None] = mapped_column(String(36))


class IdLink(Base):
    """HubSpot contact <-> the Salesforce record that stands for it (Lead, or Contact)."""

    __tablename__ = "id_map"
    hubspot_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    sf_object: Mapped[str] = mapped_column(String(32))  # Lead | Contact
    sf_id: Mapped[str] = mapped_column(String(18))
    how: Mapped[str] = mapped_column(String(32), default="created")  # created|matched|duplicate_rule|converted
    linked_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    __table_args__ = (UniqueConstraint("sf_object", "sf_id"),)


class WriteLedgerEntry(Base):
    """One intended write to either system, keyed so it happens once however often a job runs.

    A write is claimed (`pending`) before the call and completed (`done`, with the remote id)
    after; a crash in between leaves `pending`, which the next run reconciles before rewriting.
    """

    __tablename__ = "write_ledger"
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    system: Mapped[str] = mapped_column(String(16))  # hubspot | salesforce
    operation: Mapped[str] = mapped_column(String(32))  # create|update|upsert|task|alert|property
    target: Mapped[str] = mapped_column(String(64))  # object type, e.g. Lead, Task, contact
    payload_hash: Mapped[str] = mapped_column(String(64), default="")
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending|done|failed
    remote_id: Mapped[str | None] = mapped_column(String(64))
    run_id: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime]
    completed_at: Mapped[datetime | None]
    __table_args__ = (Index(None, "status", "system"),)


class DeadLetter(Base):
    """A record that could not be processed: what, why, and who must act."""

    __tablename__ = "dead_letters"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    stage: Mapped[str] = mapped_column(String(32))
    system: Mapped[str] = mapped_column(String(16))
    record_key: Mapped[str] = mapped_column(String(255))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    reason: Mapped[str] = mapped_column(Text)
    error_code: Mapped[str] = mapped_column(String(64), default="")
    actor: Mapped[str] = mapped_column(String(16))  # admin | data | wait
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    status: Mapped[str] = mapped_column(String(16), default="open")  # open|resolved|discarded
    first_seen_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    resolved_at: Mapped[datetime | None]
    __table_args__ = (Index(None, "stage", "record_key", "status"),)


class SalesOutcome(Base):
    """What sales did with a handed-off lead, as pulled back from Salesforce."""

    __tablename__ = "sales_outcomes"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    hubspot_id: Mapped[str | None] = mapped_column(String(32), index=True)
    sf_object: Mapped[str] = mapped_column(String(32))
    sf_id: Mapped[str] = mapped_column(String(18))
    # Task/Event id, or record id, change and SystemModstamp (`00Q...:status:2026...`)
    source_id: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(32))  # attempt|status|owner|converted|stage|won|lost
    status: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(Text)
    owner_id: Mapped[str | None] = mapped_column(String(18))
    occurred_at: Mapped[datetime]
    amount: Mapped[float | None] = mapped_column(Float)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)


class HandoffState(Base):
    """Where a handed-off lead stands in Salesforce now, as the pull-back last read it: the
    Lead's status and owner, its conversion, and the Opportunity it became. Each change read
    against it is a `SalesOutcome`; a row read again (the lookback) changes nothing."""

    __tablename__ = "handoff_states"
    hubspot_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    lead_id: Mapped[str | None] = mapped_column(String(18))
    contact_id: Mapped[str | None] = mapped_column(String(18))
    account_id: Mapped[str | None] = mapped_column(String(18))
    opportunity_id: Mapped[str | None] = mapped_column(String(18))
    status: Mapped[str | None] = mapped_column(String(64))
    owner_id: Mapped[str | None] = mapped_column(String(18))
    is_converted: Mapped[bool] = mapped_column(Boolean, default=False)
    converted_on: Mapped[date | None]
    reason: Mapped[str | None] = mapped_column(Text)
    stage: Mapped[str | None] = mapped_column(String(64))
    amount: Mapped[float | None] = mapped_column(Float)
    close_date: Mapped[date | None]
    is_closed: Mapped[bool] = mapped_column(Boolean, default=False)
    is_won: Mapped[bool] = mapped_column(Boolean, default=False)
    loss_reason: Mapped[str | None] = mapped_column(Text)
    last_touch_at: Mapped[datetime | None]
    # the SystemModstamp of the newest Lead / Opportunity row applied: older rows change nothing
    lead_changed_at: Mapped[datetime | None]
    opportunity_changed_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]


class SlaTimer(Base):
    """The hand-off SLA of one MQL assignment: first touch and worked deadlines."""

    __tablename__ = "sla_timers"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    hubspot_id: Mapped[str] = mapped_column(String(32), index=True)
    sf_id: Mapped[str] = mapped_column(String(18))
    owner_id: Mapped[str | None] = mapped_column(String(18))
    assigned_at: Mapped[datetime]
    first_touch_due: Mapped[datetime]
    worked_due: Mapped[datetime]
    first_touch_at: Mapped[datetime | None]
    worked_at: Mapped[datetime | None]
    breached_at: Mapped[datetime | None]
    state: Mapped[str] = mapped_column(String(16), default="open")  # open|met|breached|recycled
    recycled_from: Mapped[int | None] = mapped_column(ForeignKey("sla_timers.id"))
    __table_args__ = (Index(None, "state", "first_touch_due"),)


class SlaBreachRecord(Base):
    """A breach of the hand-off SLA, or the reassignment it caused, recorded once by its
    stable key (`connector.sla` `SlaBreach.key`, `Reassignment.key`): a re-run finds it here
    and neither alerts nor moves the Lead again. `met_at`: when a late window was met."""

    __tablename__ = "sla_breaches"
    key: Mapped[str] = mapped_column(String(160), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # first_touch|worked|reassign
    hubspot_id: Mapped[str] = mapped_column(String(32), index=True)
    lead_id: Mapped[str] = mapped_column(String(18))
    owner_id: Mapped[str] = mapped_column(String(18), index=True)
    timer_id: Mapped[int | None] = mapped_column(ForeignKey("sla_timers.id"))
    assigned_at: Mapped[datetime]
    due_at: Mapped[datetime]
    met_at: Mapped[datetime | None]
    to_owner: Mapped[str | None] = mapped_column(String(18))
    team: Mapped[str | None] = mapped_column(String(64))
    found_at: Mapped[datetime]


class LeadRoute(Base):
    """The owner routing chose for a Lead about to be created, kept until the create is done, so
    a run stopped (or refused) before Salesforce applied it sends the same owner again instead
    of moving the round-robin once more."""

    __tablename__ = "lead_routes"
    hubspot_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner_id: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text, default="")
    use_assignment_rules: Mapped[bool] = mapped_column(default=False)
    decided_at: Mapped[datetime]


class RoutingPointer(Base):
    """Round-robin position and load per routing team; survives restarts."""

    __tablename__ = "routing_pointers"
    team: Mapped[str] = mapped_column(String(64), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime]


class Lease(Base):
    """A named lock with an expiry, so only one run of a stage (on any instance) writes at a
    time. `fence` rises each time a different holder takes it: a holder that finds another
    fence has lost the lease. Released leases keep their row so the fence never goes back."""

    __tablename__ = "leases"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[datetime]
    fence: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    acquired_at: Mapped[datetime | None]


class WebhookQueueEntry(Base):
    """A contact a HubSpot webhook said changed, waiting for the targeted sync: one row per
    contact, however many events named it. `seq` rises with each event; a sync takes the row
    (`taken_seq`, `taken_by`, `taken_at`) and, when done, deletes it only if no event came in
    meanwhile (else the row is pending again, so the newer change is synced too)."""

    __tablename__ = "webhook_queue"
    hubspot_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), default="")  # the newest event's kind
    seq: Mapped[int] = mapped_column(Integer, default=1)
    queued_at: Mapped[datetime] = mapped_column(index=True)
    updated_at: Mapped[datetime]
    taken_seq: Mapped[int | None] = mapped_column(Integer)
    taken_by: Mapped[str | None] = mapped_column(String(36))
    taken_at: Mapped[datetime | None]
