"""A stream marks the contacts of the activities it stored changed once, when it ends (not once
per page); a run that dies before that leaves a bookmark, and the next pull marks them."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from connector.pull import pull
from connector.pull.base import MARKS_PENDING
from connector.sandbox import Sandbox
from connector.store import Activity, Contact, Store
from tests.pull.helpers import context, sandbox_config, unthrottle


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(contacts=150, seed=29) as sb:
        unthrottle(sb)
        sb.clock.advance(timedelta(hours=1))
        yield sb


def unmarked(store: Store) -> list[str]:
    """Contacts with an activity stored after the contact was last marked changed."""
    with store.transaction() as s:
        newest = (select(Activity.contact_id, func.max(Activity.ingested_at).label("at"))
                  .group_by(Activity.contact_id).subquery())
        rows = s.execute(select(Contact.hubspot_id, Contact.inputs_changed_at, newest.c.at)
                         .join(newest, newest.c.contact_id == Contact.hubspot_id)).all()
    return sorted(cid for cid, marked, at in rows if marked is None or marked < at)


class Crash(Exception):
    pass


def test_every_contact_with_new_activities_is_marked_once_the_streams_end(
        sandbox: Sandbox, tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'state.db'}", clock=sandbox.clock)
    store.migrate()
    config = sandbox_config(sandbox, tmp_path / "s.db")
    counts = pull(context(config, store))
    assert sum(v for k, v in counts.items() if k.endswith(".new")) > 1000
    assert unmarked(store) == []
    assert store.get_bookmark(MARKS_PENDING) is None


def test_marks_a_dead_run_never_made_are_made_by_the_next_pull(
        sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hub = sandbox.hubspot
    assert hub is not None
    store = Store(f"sqlite:///{tmp_path / 'state.db'}", clock=sandbox.clock)
    store.migrate()
    config = sandbox_config(sandbox, tmp_path / "s.db")
    pull(context(config, store))
    people = sorted(c.hubspot_id for c in store.iter_contacts()
                    if not c.archived and not c.merged_into)[:5]
    sandbox.clock.advance(timedelta(minutes=5))
    for n, cid in enumerate(people):
        hub.state.add_page_view(cid, f"https://example.com/new/{n}", session_id=f"n-{n}")
    sandbox.clock.advance(timedelta(minutes=10))

    def killed(self: Store, *args: Any, **kwargs: Any) -> None:
        raise Crash("the process died before the stream's end")

    real = Store.mark_contacts_changed
    monkeypatch.setattr(Store, "mark_contacts_changed", killed)
    with pytest.raises(Crash):
        pull(context(config, store))
    assert store.get_bookmark(MARKS_PENDING) is not None
    assert unmarked(store) == people  # stored, not marked yet
    monkeypatch.setattr(Store, "mark_contacts_changed", real)

    sandbox.clock.advance(timedelta(minutes=1))
    counts = pull(context(config, store))
    assert counts["contacts.marks_recovered"] >= len(people)
    assert unmarked(store) == []
    assert store.get_bookmark(MARKS_PENDING) is None
