"""The write ledger's claim -> send -> settle -> park sequence (connector/ledger.py), on a real
store: what each outcome leaves in the ledger and among the dead letters."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import pytest

from connector.errors import Actor, QuotaExhausted, RequestFailed
from connector.ledger import LedgerWrite, LedgerWrites, Outcome, Refusal, Written
from connector.store import Store, WriteLedgerEntry


@dataclass(frozen=True)
class Result:
    index: int
    id: str | None


def _entry(store: Store, key: str) -> WriteLedgerEntry:
    entry = store.ledger_entry(key)
    assert entry is not None, key
    return entry


def _ledger(store: Store) -> LedgerWrites:
    return LedgerWrites(store, stage="push", system="salesforce", run_id="run-1")


def _claimed(ledger: LedgerWrites, *keys: str) -> list[LedgerWrite[str]]:
    for key in keys:
        assert ledger.claim(key, operation="create", target="Task", payload={"k": key})
    return [LedgerWrite((key,), f"rec:{key}", key) for key in keys]


def _judge(write: LedgerWrite[str], result: Result) -> Outcome:
    if result.id:
        return Written(result.id)
    return Refusal("refused: no such field", Actor.ADMIN, {"sent": write.item}, "INVALID_FIELD")


def test_a_written_payload_is_not_claimed_again_until_it_changes(store: Store) -> None:
    ledger = _ledger(store)
    assert ledger.claim("k1", operation="create", target="Task", payload={"a": 1})
    ledger.done(["k1"], remote_id="00T1")
    assert not ledger.claim("k1", operation="create", target="Task", payload={"a": 1})
    assert ledger.claim("k1", operation="create", target="Task", payload={"a": 2})
    entry = _entry(store, "k1")
    assert entry.status == "pending" and entry.run_id == "run-1"


def test_batches_are_settled_one_call_at_a_time_and_refusals_parked(store: Store) -> None:
    ledger = _ledger(store)
    writes = _claimed(ledger, "a", "b", "c")
    calls: list[list[str]] = []

    def send(items: list[str]) -> Iterator[Sequence[Result]]:
        calls.append(items)
        yield [Result(0, "00T-a"), Result(1, None)]
        # the first call's results are in the ledger before the second call is made
        assert _entry(store, "a").status == "done"
        assert _entry(store, "b").status == "failed"
        yield [Result(2, "00T-c")]

    settled = [(w.item, o) for w, _, o in ledger.send(writes, send, _judge)]
    assert calls == [["a", "b", "c"]]
    assert [item for item, _ in settled] == ["a", "b", "c"]
    assert isinstance(settled[1][1], Refusal)
    assert _entry(store, "c").remote_id == "00T-c"
    [letter] = store.dead_letters(stage="push")
    assert (letter.record_key, letter.actor, letter.error_code) == ("rec:b", "admin",
                                                                    "INVALID_FIELD")
    assert letter.payload == {"sent": "b"} and letter.system == "salesforce"

    # the next run writes the parked record: its dead letter is resolved
    again = _claimed(ledger, "b")
    list(ledger.send(again, lambda items: [[Result(0, "00T-b")]], _judge))
    assert store.dead_letters(stage="push") == []
    assert _entry(store, "b").status == "done"


def test_the_judge_runs_before_the_ledger_is_settled(store: Store) -> None:
    # what the judge stores (a link) is never missing behind a done entry after a crash
    ledger = _ledger(store)
    writes = _claimed(ledger, "lead")

    def judge(write: LedgerWrite[str], result: Result) -> Outcome:
        assert _entry(store, write.keys[0]).status == "pending"
        raise RuntimeError("crash")

    with pytest.raises(RuntimeError):
        list(ledger.send(writes, lambda items: [[Result(0, "00Q1")]], judge))
    assert _entry(store, "lead").status == "pending"


def test_one_call_for_many_parks_each_on_a_listed_error(store: Store) -> None:
    ledger = _ledger(store)
    writes = [LedgerWrite((f"hubspot:score:{i}",), f"contacts:{i}", str(i), remote_id=str(i))
              for i in (1, 2)]
    for w in writes:
        ledger.claim(w.keys[0], operation="update", target="contact", payload={"i": w.item})

    def refused(exc: Exception, write: LedgerWrite[str]) -> Refusal:
        return Refusal(f"score write-back refused: {exc}", "admin", {"id": write.item})

    def fails(items: list[str]) -> None:
        raise RequestFailed("400 bad property", system="hubspot")

    failed = ledger.send_together(writes, fails, refused, (RequestFailed,))
    assert isinstance(failed, RequestFailed)
    assert sorted(d.record_key for d in store.dead_letters(stage="push")) == ["contacts:1",
                                                                             "contacts:2"]
    assert {_entry(store, w.keys[0]).status for w in writes} == {"failed"}

    assert ledger.send_together(writes, lambda items: None, refused, (RequestFailed,)) is None
    assert store.dead_letters(stage="push") == []
    assert [_entry(store, w.keys[0]).remote_id for w in writes] == ["1", "2"]


def test_an_error_not_listed_leaves_the_writes_pending(store: Store) -> None:
    ledger = _ledger(store)
    writes = _claimed(ledger, "x")

    def spent(items: list[str]) -> None:
        raise QuotaExhausted("share spent", system="salesforce")

    with pytest.raises(QuotaExhausted):
        ledger.send_together(writes, spent, lambda exc, w: Refusal("", "admin"), (RequestFailed,))
    assert _entry(store, "x").status == "pending"
    assert store.dead_letters() == []
    ledger.release(["x"])  # never sent: the next run sends it, nobody must act
    assert _entry(store, "x").status == "failed"
    assert store.dead_letters() == []


def test_parking_without_a_ledger_entry_only_dead_letters(store: Store) -> None:
    ledger = LedgerWrites(store, stage="pull", system="hubspot")
    ledger.park((), record_key="contacts:9", refusal=Refusal("no email", Actor.DATA))
    ledger.park((), record_key="contacts:9", refusal=Refusal("no email", Actor.DATA))
    [letter] = store.dead_letters(stage="pull")
    assert (letter.attempts, letter.actor, letter.system) == (2, "data", "hubspot")


def test_chunks_sent_each_together_settle_at_once(store: Store) -> None:
    """`send_each_together`: one call a chunk; a refused chunk is parked alone, the others
    are done; an error not listed stops the calls, yet what was sent before it is settled
    (its writes done, their old dead letters resolved) and the rest stays pending."""
    ledger = LedgerWrites(store, stage="score", system="hubspot", run_id="run-1")
    store.dead_letter(stage="score", system="hubspot", record_key="rec:a",
                      reason="an earlier refusal", actor=Actor.ADMIN)
    writes = _claimed(ledger, "a", "b", "c", "d", "e")
    chunks = [writes[0:2], writes[2:3], writes[3:5]]
    calls: list[list[str]] = []

    def send(items: list[str]) -> None:
        calls.append(items)
        if items == ["c"]:
            raise RequestFailed("400 bad property", system="hubspot")

    def refused(exc: Exception, write: LedgerWrite[str]) -> Refusal:
        return Refusal(f"refused: {exc}", Actor.ADMIN)

    outcomes = ledger.send_each_together(chunks, send, refused, (RequestFailed,))
    assert calls == [["a", "b"], ["c"], ["d", "e"]]
    assert [o is None for o in outcomes] == [True, False, True]
    assert isinstance(outcomes[1], RequestFailed)
    assert {k: _entry(store, k).status for k in "abcde"} == {
        "a": "done", "b": "done", "c": "failed", "d": "done", "e": "done"}
    assert [d.record_key for d in store.dead_letters(stage="score")] == ["rec:c"]

    more = _claimed(ledger, "f", "g", "h")

    def quota(items: list[str]) -> None:
        if items == ["g"]:
            raise QuotaExhausted("share spent", system="hubspot")

    with pytest.raises(QuotaExhausted):
        ledger.send_each_together([more[0:1], more[1:2], more[2:3]], quota, refused,
                                  (RequestFailed,))
    assert {k: _entry(store, k).status for k in "fgh"} == {
        "f": "done", "g": "pending", "h": "pending"}
