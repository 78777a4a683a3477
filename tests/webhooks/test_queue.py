"""The webhook queue in the store: one row per contact, taken in batches, done once synced;
a contact changed again while its sync runs is synced again."""

from __future__ import annotations

from datetime import timedelta

from connector.clock import FrozenClock
from connector.store import Store


def test_a_contact_queued_twice_is_one_row(store: Store) -> None:
    assert store.enqueue_webhook_contacts(["1", "2", "1"], kind="contact.propertyChange") == 2
    assert store.enqueue_webhook_contacts(["2", "3"], kind="contact.creation") == 2
    assert store.webhook_queue_depth() == 3
    assert sorted(store.take_webhook_batch("run-1")) == ["1", "2", "3"]
    assert store.take_webhook_batch("run-2") == []  # all taken
    assert store.finish_webhook_batch("run-1", ["1", "2", "3"]) == 3
    assert store.webhook_queue_depth() == 0


def test_batches_are_oldest_first_and_capped(store: Store, clock: FrozenClock) -> None:
    for cid in ("30", "10", "20"):
        store.enqueue_webhook_contacts([cid])
        clock.advance(timedelta(seconds=1))
    assert store.take_webhook_batch("run-1", limit=2) == ["30", "10"]
    assert store.take_webhook_batch("run-2", limit=2) == ["20"]


def test_a_change_during_the_sync_keeps_the_contact_queued(store: Store) -> None:
    store.enqueue_webhook_contacts(["1", "2"])
    taken = store.take_webhook_batch("run-1")
    store.enqueue_webhook_contacts(["2"])  # changed again while run-1 reads it
    assert store.finish_webhook_batch("run-1", taken) == 1
    assert store.webhook_queue_depth() == 1
    assert store.take_webhook_batch("run-2") == ["2"]


def test_a_failed_sync_releases_its_batch_and_a_dead_ones_is_reclaimed(
        store: Store, clock: FrozenClock) -> None:
    store.enqueue_webhook_contacts(["1", "2"])
    taken = store.take_webhook_batch("run-1")
    store.release_webhook_batch("run-1", taken)
    assert sorted(store.take_webhook_batch("run-2")) == ["1", "2"]
    # run-2 dies holding the batch: another run takes it once the claim is old
    assert store.take_webhook_batch("run-3") == []
    clock.advance(timedelta(minutes=11))
    assert sorted(store.take_webhook_batch("run-3")) == ["1", "2"]
    # the dead run's late finish removes nothing it no longer holds
    assert store.finish_webhook_batch("run-2", ["1", "2"]) == 0
    assert store.webhook_queue_depth() == 2


def test_the_targeted_score_and_push_select_only_their_contacts(store: Store,
                                                                 clock: FrozenClock) -> None:
    from connector.store import ContactRecord

    now = clock.now()
    store.upsert_contacts([ContactRecord(cid, f"p{cid}@example.com", {}, now, now)
                           for cid in ("1", "2", "3")])
    due = [c.hubspot_id for batch in store.contacts_to_score(ids=["2", "3"]) for c in batch]
    assert due == ["2", "3"]
    store.add_scores([{"contact_id": cid, "scored_at": now, "interest": 60.0, "fit_grade": "A",
                       "fit_points": 90.0, "is_mql": True, "explanation": {}}
                      for cid in ("1", "2", "3")])
    assert [c.hubspot_id for c in store.iter_mqls()] == ["1", "2", "3"]
    assert [c.hubspot_id for c in store.iter_mqls(ids=["2"])] == ["2"]
