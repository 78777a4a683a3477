"""Bookmarks: where each stream resumes, committed with the records they cover."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, cast

from sqlalchemy import ColumnElement, and_, bindparam, delete, select
from sqlalchemy.orm import Session

from connector.store._base import StoreBase, _table, in_pages
from connector.store.models import Bookmark

__all__ = ["BookmarkStore"]


class BookmarkStore(StoreBase):
    """Bookmarks, one per stream (`contacts`, `engagement:<type>`, one per contact...)."""

    def get_bookmark(self, stream: str) -> str | None:
        stmt = self._statement("bookmarks.get", lambda: select(_table(Bookmark).c.value).where(
            _table(Bookmark).c.stream == bindparam("stream")))
        with self.transaction() as s:
            return self._core(s).execute(stmt, {"stream": stream}).scalar()

    def set_bookmark(
        self, stream: str, value: str, *, run_id: str | None = None, session: Session | None = None
    ) -> None:
        """Save where `stream` resumes; pass `session` to commit it with the records it covers."""
        self.set_bookmarks([(stream, value)], run_id=run_id, session=session)

    def set_bookmarks(
        self, marks: Iterable[tuple[str, str]], *, run_id: str | None = None,
        session: Session | None = None,
    ) -> None:
        """Save many (stream, value) bookmarks in one statement built once (executemany): a
        contacts page may mark hundreds of contacts whose page views are due."""
        now = self._now()
        # one row per stream, the last value given winning (as one call after another would):
        # an upsert may not touch a row twice in one statement on PostgreSQL
        latest = dict(marks)
        rows = [{"stream": stream, "value": value, "updated_at": now, "run_id": run_id}
                for stream, value in latest.items()]
        if not rows:
            return
        stmt = self._statement("bookmarks.upsert", self._bookmark_upsert)
        if session is not None:
            self._core(session).execute(stmt, rows)
            return
        with self.transaction() as s:
            self._core(s).execute(stmt, rows)

    def _bookmark_upsert(self) -> Any:
        stmt = self._insert(_table(Bookmark))
        ex = stmt.excluded
        return stmt.on_conflict_do_update(
            index_elements=["stream"],
            set_={"value": ex.value, "updated_at": ex.updated_at, "run_id": ex.run_id},
        )

    def bookmarks(self, prefix: str | None = None) -> dict[str, str]:
        """All bookmarks, or those whose stream name starts with `prefix`."""
        table = _table(Bookmark)
        q = select(table.c.stream, table.c.value)
        if prefix:
            q = q.where(self._starts_with(table.c.stream, prefix))
        with self.transaction() as s:
            rows = self._core(s).execute(q.order_by(table.c.stream))
            return {stream: value for stream, value in rows}

    def iter_bookmark_streams(self, prefix: str, *, batch: int = 500) -> Iterator[str]:
        """Names of the bookmarks starting with `prefix`, in order, read `batch` at a time
        (there may be one per contact)."""
        last = ""
        while True:
            with self.transaction() as s:
                names = list(s.scalars(
                    select(Bookmark.stream)
                    .where(self._starts_with(Bookmark.stream, prefix), Bookmark.stream > last)
                    .order_by(Bookmark.stream).limit(batch)
                ))
            if not names:
                return
            yield from names
            last = names[-1]

    def _starts_with(self, column: Any, prefix: str) -> ColumnElement[bool]:
        """`column` starts with `prefix`. SQLite scans a whole table for a LIKE on a column of
        the binary collation (there may be a bookmark per contact), so there it is also bounded
        as a range of the stream's index; PostgreSQL's collations do not order every string
        that starts with the prefix inside such a range, so there LIKE alone decides."""
        test = column.startswith(prefix, autoescape=True)
        if self.engine.dialect.name != "sqlite" or not prefix:
            return cast(ColumnElement[bool], test)
        after = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        return and_(test, column >= prefix, column < after)

    def delete_bookmark(self, stream: str, *, session: Session | None = None) -> None:
        self.delete_bookmarks([stream], session=session)

    def delete_bookmarks(self, streams: Iterable[str], *, session: Session | None = None) -> None:
        """Delete these bookmarks, a page of names per statement (built once)."""
        names = list(streams)
        if not names:
            return
        stmt = self._statement("bookmarks.delete", lambda: delete(_table(Bookmark)).where(
            _table(Bookmark).c.stream.in_(bindparam("streams", expanding=True))))

        def run(s: Session) -> None:
            conn = self._core(s)
            for page in in_pages(names):
                conn.execute(stmt, {"streams": page})

        if session is not None:
            run(session)
            return
        with self.transaction() as s:
            run(s)
