"""What the pull-back needs of Salesforce, as Protocols: the engine depends on these, not on
the SDK-backed adapter (`connector.salesforce.SalesforceClient` fits them)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from connector.salesforce.records import ChangePage, ChangeQuery, Deleted, DeletedCheck

__all__ = ["BatchReads", "ChangePage", "ChangeQuery", "Deleted", "DeletedCheck",
           "SalesVocabulary", "SalesforcePort"]


class SalesVocabulary(Protocol):
    """Which picklist values convert, close and win, as the org says, and every value of
    each (a value outside them is one the org added since it was read)."""

    @property
    def converted_statuses(self) -> frozenset[str]: ...
    @property
    def closed_stages(self) -> frozenset[str]: ...
    @property
    def won_stages(self) -> frozenset[str]: ...
    @property
    def closed_task_statuses(self) -> frozenset[str]: ...
    @property
    def lead_statuses(self) -> frozenset[str]: ...
    @property
    def stages(self) -> frozenset[str]: ...
    @property
    def task_statuses(self) -> frozenset[str]: ...


class BatchReads(Protocol):
    """Queries and deleted checks sent together, as few calls as the API allows: each
    `call()` is one API call, answering with its pages and checks; what is added meanwhile
    (next pages, follow-up queries) goes into the next."""

    @property
    def pending(self) -> bool: ...
    def add(self, query: ChangeQuery) -> None: ...
    def check_deleted(self, check: DeletedCheck) -> None: ...
    def call(self) -> Iterator[ChangePage | Deleted]: ...


class SalesforcePort(Protocol):
    """Reads of the org: its vocabulary, and batches of reads."""

    user_id: str | None  # the integration user: whoever made Handshake's own writes
    calls: int

    def sales_vocabulary(self) -> SalesVocabulary: ...
    def forget_vocabulary(self) -> None: ...
    def reads(self) -> BatchReads: ...
