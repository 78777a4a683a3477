"""A pull whose lease is lost writes nothing more: pages are written together (a transaction per
many pages), and those read before the loss are dropped, not written on the way out; another
run holds the lease and reads them again from the bookmark written before them."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from connector.control import guarded
from connector.errors import LeaseLost
from connector.pull import pull
from connector.pull.engagement import EMAIL_EVENTS
from connector.sandbox import Sandbox
from connector.store import Activity, Store
from tests.pull.helpers import context, sandbox_config, unthrottle


@pytest.fixture
def sandbox() -> Sandbox:
    with Sandbox(contacts=600, seed=11) as sb:
        unthrottle(sb)
        sb.clock.advance(timedelta(hours=1))
        yield sb


def _email_activities(store: Store) -> int:
    with store.transaction() as s:
        return int(s.scalar(select(func.count()).select_from(Activity)
                            .where(Activity.source == "email_event")) or 0)


def test_pages_read_before_the_lease_is_lost_are_not_written(sandbox: Sandbox,
                                                             tmp_path: Path) -> None:
    config = sandbox_config(sandbox, tmp_path / "s.db")
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    store.migrate()
    pull(context(config, store), streams=["contacts"])
    checks = 0

    def lease(after: int) -> None:
        nonlocal checks
        checks += 1
        if checks > after:
            raise LeaseLost("the pull lease was taken by another run")

    # the lease holds for two email-event pages, then another run takes it
    with guarded(lambda: lease(2)), pytest.raises(LeaseLost):
        pull(context(config, store), streams=["email_events"])
    assert checks > 2
    assert _email_activities(store) == 0
    assert store.get_bookmark(EMAIL_EVENTS) is None

    # the run holding the lease now reads them all
    counts = pull(context(config, store), streams=["email_events"])
    assert counts["email_events.new"] == _email_activities(store) > 0
