"""Bookmarks: where each stream resumes, committed with the records they cover."""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from connector.store._base import StoreBase
from connector.store.models import Bookmark

__all__ = ["BookmarkStore"]


class BookmarkStore(StoreBase):
    """Bookmarks, one per stream (`contacts`, `engagement:<type>`, one per contact...)."""

    def get_bookmark(self, stream: str) -> str | None:
        with self.transaction() as s:
            row = s.get(Bookmark, stream)
            return row.value if row else None

    def set_bookmark(
        self, stream: str, value: str, *, run_id: str | None = None, session: Session | None = None
    ) -> None:
        """Save where `stream` resumes; pass `session` to commit it with the records it covers."""
        stmt = self._insert(Bookmark).values(
            stream=stream, value=value, updated_at=self._now(), run_id=run_id
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["stream"],
            set_={"value": stmt.excluded.value, "updated_at": stmt.excluded.updated_at,
                  "run_id": stmt.excluded.run_id},
        )
        if session is not None:
            session.execute(stmt)
            return
        with self.transaction() as s:
            s.execute(stmt)

    def bookmarks(self, prefix: str | None = None) -> dict[str, str]:
        """All bookmarks, or those whose stream name starts with `prefix`."""
        with self.transaction() as s:
            q = select(Bookmark)
            if prefix:
                q = q.where(Bookmark.stream.startswith(prefix, autoescape=True))
            return {b.stream: b.value for b in s.scalars(q.order_by(Bookmark.stream))}

    def iter_bookmark_streams(self, prefix: str, *, batch: int = 500) -> Iterator[str]:
        """Names of the bookmarks starting with `prefix`, in order, read `batch` at a time
        (there may be one per contact)."""
        last = ""
        while True:
            with self.transaction() as s:
                names = list(s.scalars(
                    select(Bookmark.stream)
                    .where(Bookmark.stream.startswith(prefix, autoescape=True),
                           Bookmark.stream > last)
                    .order_by(Bookmark.stream).limit(batch)
                ))
            if not names:
                return
            yield from names
            last = names[-1]

    def delete_bookmark(self, stream: str, *, session: Session | None = None) -> None:
        stmt = delete(Bookmark).where(Bookmark.stream == stream)
        if session is not None:
            session.execute(stmt)
            return
        with self.transaction() as s:
            s.execute(stmt)
