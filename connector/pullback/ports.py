"""What the pull-back needs of Salesforce, as a Protocol: the engine depends on this, not on
the SDK-backed adapter (`connector.salesforce.SalesforceClient` fits it)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any, Protocol

__all__ = ["SalesVocabulary", "SalesforcePort"]


class SalesVocabulary(Protocol):
    """Which picklist values convert, close and win, as the org says."""

    @property
    def converted_statuses(self) -> frozenset[str]: ...
    @property
    def closed_stages(self) -> frozenset[str]: ...
    @property
    def won_stages(self) -> frozenset[str]: ...
    @property
    def closed_task_statuses(self) -> frozenset[str]: ...


class SalesforcePort(Protocol):
    """Reads of the org: its vocabulary, and records changed since a time, page by page."""

    user_id: str | None  # the integration user: whoever made Handshake's own writes
    calls: int

    def sales_vocabulary(self) -> SalesVocabulary: ...

    def modified_since(
        self,
        sobject: str,
        fields: Sequence[str],
        *,
        ids: Sequence[str],
        keys: Sequence[str] = ...,
        since: datetime | None,
        include_deleted: bool = ...,
    ) -> Iterator[list[dict[str, Any]]]: ...
