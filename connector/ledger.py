"""The write ledger's sequence, written once: claim -> send -> settle -> park.

Every write Handshake makes to another system (a Lead, a Task, a HubSpot contact update, an
alert webhook) goes the same way, so that a run repeated after a crash or a lost answer sends
nothing twice and loses nothing:

    claim    reserve the write under its ledger key (None from the store: the same payload is
             already written, nothing to send)
    send     the caller's call, one record or a batch
    settle   each result: done with the remote id (and its open dead letter resolved), or
    park     failed in the ledger and parked as a dead letter saying why and who must act
    release  failed in the ledger with nothing parked: never sent, sent again next run

    ledger = LedgerWrites(store, stage="push", system="salesforce", run_id=run_id)
    if ledger.claim(key, operation="create", target="Task", payload=record):
        writes.append(LedgerWrite((key,), record_key=key, item=record))
    for write, result, outcome in ledger.send(writes, send_batches, judge):
        ...  # counts, follow-ups once the ledger knows

The order is the crash-safe one: `judge` runs before the ledger is settled (a link written
there is never missing behind a done entry); what follows a settled write runs after it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from connector.errors import Actor, HandshakeError
from connector.store import WriteClaim

__all__ = ["LedgerStore", "LedgerWrite", "LedgerWrites", "Refusal", "WriteClaim", "Written"]

T = TypeVar("T")
R = TypeVar("R", bound="IndexedResult")


class LedgerStore(Protocol):
    """What the sequence needs of the state store (`connector.store.Store` has it)."""

    def claim_write(self, key: str, *, system: str, operation: str, target: str,
                    payload: Any = None, run_id: str | None = None) -> object | None: ...

    def claim_writes(self, claims: Sequence[WriteClaim], *, system: str,
                     run_id: str | None = None) -> list[bool]: ...

    def complete_write(self, key: str, *, remote_id: str | None = None,
                       ok: bool = True) -> None: ...

    def complete_writes(self, settled: Sequence[tuple[str, str | None]], *,
                        ok: bool = True) -> None: ...

    def dead_letter(self, *, stage: str, system: str, record_key: str, reason: str,
                    actor: Actor | str, payload: Mapping[str, Any] | None = None,
                    error_code: str | None = None) -> int: ...

    def resolve_dead_letters(self, *, stage: str, record_keys: Iterable[str]) -> int: ...

    def settle_writes(self, settled: Sequence[tuple[str, str | None]], *, stage: str,
                      record_keys: Sequence[str]) -> None: ...


class IndexedResult(Protocol):
    """One record's result of a batch call, at the record's input `index`."""

    @property
    def index(self) -> int: ...


@dataclass(frozen=True, slots=True)
class LedgerWrite(Generic[T]):
    """One record to send: the ledger keys its result settles (an alert Task settles one per
    activity it covers), the key its dead letter is parked under, what the caller sends, and
    its id on the other side when known before sending (an update names it)."""

    keys: tuple[str, ...]
    record_key: str
    item: T
    remote_id: str | None = None


@dataclass(frozen=True, slots=True)
class Written:
    """The record stands on the other side, under `remote_id`."""

    remote_id: str | None = None


@dataclass(frozen=True, slots=True)
class Refusal:
    """The record was refused: what its dead letter says (`error_code` None keeps the code an
    open dead letter already has)."""

    reason: str
    actor: Actor | str
    payload: Mapping[str, Any] | None = None
    error_code: str | None = None


Outcome = Written | Refusal
# What must stand before a call's judged results are settled (links to written records),
# recorded for all of them at once.
Prepare = Callable[[Sequence[tuple["LedgerWrite[T]", R, Outcome]]], None]


class LedgerWrites:
    """The claim -> send -> settle -> park sequence of one stage writing to one system."""

    def __init__(self, store: LedgerStore, *, stage: str, system: str,
                 run_id: str | None = None) -> None:
        self.store = store
        self.stage = stage
        self.system = system
        self.run_id = run_id

    def claim(self, key: str, *, operation: str, target: str, payload: Any) -> bool:
        """Reserve the write under `key`; False when the same payload is already written
        (nothing to send), True when it is to be sent (new, changed, or left pending)."""
        return self.store.claim_write(key, system=self.system, operation=operation,
                                      target=target, payload=payload,
                                      run_id=self.run_id) is not None

    def claim_many(self, claims: Sequence[WriteClaim]) -> list[bool]:
        """`claim` of many writes, in order, in one transaction: whether each is to be sent."""
        return self.store.claim_writes(claims, system=self.system, run_id=self.run_id)

    def done(self, keys: Iterable[str], *, remote_id: str | None = None,
             record_keys: Iterable[str] = ()) -> None:
        """The writes stand on the other side; the dead letters of `record_keys` (parked by
        an earlier attempt) are resolved."""
        self.store.complete_writes([(key, remote_id) for key in keys])
        resolved = list(record_keys)
        if resolved:
            self.store.resolve_dead_letters(stage=self.stage, record_keys=resolved)

    def release(self, keys: Iterable[str]) -> None:
        """The writes were not made and nobody must act: a later run sends them again."""
        self.store.complete_writes([(key, None) for key in keys], ok=False)

    def park(self, keys: Iterable[str], *, record_key: str, refusal: Refusal) -> None:
        """The writes were refused: failed in the ledger (the next run tries again) and
        parked under `record_key` for whoever `refusal.actor` names."""
        self.release(keys)
        self.store.dead_letter(stage=self.stage, system=self.system, record_key=record_key,
                               reason=refusal.reason, actor=refusal.actor,
                               payload=refusal.payload, error_code=refusal.error_code)

    def settle(self, write: LedgerWrite[Any], outcome: Outcome) -> None:
        """Record what became of one sent record."""
        if isinstance(outcome, Written):
            self.done(write.keys, remote_id=outcome.remote_id, record_keys=[write.record_key])
        else:
            self.park(write.keys, record_key=write.record_key, refusal=outcome)

    def send(
        self,
        writes: Sequence[LedgerWrite[T]],
        send: Callable[[list[T]], Iterable[Sequence[R]]],
        judge: Callable[[LedgerWrite[T], R], Outcome],
        prepare: Prepare[T, R] | None = None,
    ) -> Iterator[tuple[LedgerWrite[T], R, Outcome]]:
        """Send the records in batches and settle each result as it comes: `send` yields each
        call's results (settled before the next call is made), `judge` says what a result
        means, `prepare` (when given) records what must stand before the ledger is settled
        for a whole call's judged results at once. Yields each write with its result and
        outcome once the ledger knows it."""
        if not writes:
            return
        for results in send([w.item for w in writes]):
            yield from self.settle_results(writes, results, judge, prepare)

    def settle_results(
        self,
        writes: Sequence[LedgerWrite[T]],
        results: Iterable[R],
        judge: Callable[[LedgerWrite[T], R], Outcome],
        prepare: Prepare[T, R] | None = None,
    ) -> Iterator[tuple[LedgerWrite[T], R, Outcome]]:
        """Settle the results of one call that sent `writes` (each result names its write by
        index), as `send` does; for a caller that makes the call itself. The call's written
        records are settled together (one transaction, not one per record), each judged before
        and yielded after; whatever was judged is settled even when a later `judge` raises
        (after `prepare` of what was judged: a `prepare` that raises leaves them pending)."""
        judged: list[tuple[LedgerWrite[T], R, Outcome]] = []
        try:
            for result in results:
                write = writes[result.index]
                judged.append((write, result, judge(write, result)))
        finally:
            if prepare is not None and judged:
                prepare(judged)
            self._settle_many([(w, o) for w, _, o in judged])
        yield from judged

    def _settle_many(self, settled: Sequence[tuple[LedgerWrite[Any], Outcome]]) -> None:
        """`settle` for many records: the written ones in one transaction, refusals parked."""
        done = [(key, o.remote_id) for w, o in settled if isinstance(o, Written) for key in w.keys]
        self.store.complete_writes(done)
        resolved = [w.record_key for w, o in settled if isinstance(o, Written)]
        if resolved:
            self.store.resolve_dead_letters(stage=self.stage, record_keys=resolved)
        for write, outcome in settled:
            if isinstance(outcome, Refusal):
                self.park(write.keys, record_key=write.record_key, refusal=outcome)

    def send_each_together(
        self,
        chunks: Iterable[Sequence[LedgerWrite[T]]],
        send: Callable[[list[T]], object],
        refused: Callable[[HandshakeError, LedgerWrite[T]], Refusal],
        errors: tuple[type[HandshakeError], ...] = (HandshakeError,),
    ) -> list[HandshakeError | None]:
        """`send_together` of each chunk in turn (one call each), the chunks sent settled
        together once the calls are made (one transaction, not one per call; also when a
        later call raises: what was sent is settled before the error goes on). Returns each
        chunk's error of `errors` (its records parked), or None when it was sent."""
        outcomes: list[HandshakeError | None] = []
        sent: list[LedgerWrite[T]] = []
        try:
            for chunk in chunks:
                try:
                    send([w.item for w in chunk])
                except errors as exc:
                    for write in chunk:
                        self.park(write.keys, record_key=write.record_key,
                                  refusal=refused(exc, write))
                    outcomes.append(exc)
                    continue
                sent.extend(chunk)
                outcomes.append(None)
        finally:
            if sent:
                self.store.settle_writes([(key, w.remote_id) for w in sent for key in w.keys],
                                         stage=self.stage,
                                         record_keys=[w.record_key for w in sent])
        return outcomes

    def send_together(
        self,
        writes: Sequence[LedgerWrite[T]],
        send: Callable[[list[T]], object],
        refused: Callable[[HandshakeError, LedgerWrite[T]], Refusal],
        errors: tuple[type[HandshakeError], ...] = (HandshakeError,),
    ) -> HandshakeError | None:
        """One call for all the records (a HubSpot batch update, a webhook POST): an error of
        `errors` parks each record as `refused` says and is returned; success settles each
        under its `remote_id`. Other errors reach the caller with the writes left pending."""
        try:
            send([w.item for w in writes])
        except errors as exc:
            for write in writes:
                self.park(write.keys, record_key=write.record_key, refusal=refused(exc, write))
            return exc
        self.store.settle_writes([(key, w.remote_id) for w in writes for key in w.keys],
                                 stage=self.stage, record_keys=[w.record_key for w in writes])
        return None
