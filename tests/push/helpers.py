"""Shared pieces of the push tests that compare two orgs: one scored store copied into fresh
sandboxes of the same seed and start, and what a Salesforce org holds, in terms that do not
depend on record ids or write times."""

from __future__ import annotations

import re
import sqlite3
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from connector.clock import FrozenClock
from connector.config import Config, load_config
from connector.demo import sandbox_config
from connector.pull import pull
from connector.sandbox import FaultPlan, Sandbox
from connector.runtime import run_score_stage
from connector.store import Store
from connector.runtime import open_store
from tests.pull.helpers import context, sandbox_env, unthrottle
from tests.push.test_push_sandbox import push_toml

# Fields every write changes (ids, times); the rest must be equal between two orgs.
VOLATILE = {"attributes", "Id", "CreatedDate", "LastModifiedDate", "SystemModstamp"}
REF = re.compile(r"\s*\[(hs-[0-9A-Za-z-]+)\]$")
# Fault scripts for the writes. A pattern also hits a composite call (more than 200 records)
# carrying such a collection subrequest (`FaultPlan.decide`), so it finds the write either way.
TASK_CREATE = r"^POST /services/data/v[\d.]+/composite/sobjects$"
LEAD_UPSERT = r"^PATCH /services/data/v[\d.]+/composite/sobjects/Lead/"


class InstantClock(FrozenClock):
    """A frozen clock whose waits take no time at all: `sleep` moves only the monotonic clock.
    Two runs compared at one instant need it: `FrozenClock.sleep` moves `now` too, so a run
    that retried (and waited) would plan its later writes minutes after the calm run's, and a
    score near a rounding edge (interest 98.975...) would read differently in the two orgs."""

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        if seconds > 0:
            with self._lock:
                self._mono += seconds


@dataclass(frozen=True)
class Scored:
    """A store pulled and scored from a sandbox of `contacts` and `seed` started at `start`."""

    contacts: int
    seed: int
    start: datetime
    database: Path
    now: datetime


@contextmanager
def sandbox_org(folder: Path, contacts: int, *, seed: int = 42,
                **sandbox: Any) -> Iterator[tuple[Sandbox, Config]]:
    """A sandbox with its rate limits lifted, an hour past its data, and the demo's config for
    it (state in `folder`/state.db)."""
    with Sandbox(contacts=contacts, seed=seed, workdir=folder / "sb", **sandbox) as sb:
        unthrottle(sb)
        sb.clock.advance(timedelta(hours=1))
        yield sb, sandbox_config(sb.info(), folder / "state.db")


def pull_and_score(config: Config) -> None:
    """Pull the sandbox into the config's store and score it: where a push starts."""
    pull(context(config, open_store(config)))
    run_score_stage(config)


def score_once(folder: Path, *, contacts: int, seed: int) -> Scored:
    """Pull and score one sandbox; its store is the starting point of every org compared."""
    start = datetime.now(UTC).replace(second=0, microsecond=0)
    with Sandbox(contacts=contacts, seed=seed, start=start, workdir=folder / "sb") as sb:
        unthrottle(sb)
        sb.clock.advance(timedelta(hours=1))
        config = config_for(sb, folder, folder / "scored.db")
        pull(context(config, open_store(config)))
        now = sb.clock.now()
        run_score_stage(config, clock=FrozenClock(now))
    return Scored(contacts, seed, start, folder / "scored.db", now)


def config_for(sb: Sandbox, folder: Path, db: Path, *, activity_tasks: str = "digest") -> Config:
    """The config file a push on `sb` reads (written to `folder`), loaded as the CLI does."""
    path = folder / f"{db.stem}.toml"
    path.write_text(push_toml(sb, db) + f'[push]\nactivity_tasks = "{activity_tasks}"\n')
    return load_config(path, sandbox_env(sb))


def copy_store(source: Path, target: Path) -> None:
    """A consistent copy of a SQLite state store, the writes still in its -wal file included
    (a file copy of a WAL database another connection still holds open can miss committed
    transactions: a copied scored store once showed 228 score write-backs still pending)."""
    src, dst = sqlite3.connect(source), sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()


@contextmanager
def org(scored: Scored, folder: Path, name: str, *, activity_tasks: str = "digest",
        faults: FaultPlan | None = None) -> Iterator[tuple[Sandbox, Config, Path]]:
    """A fresh sandbox of the scored seed with its own copy of the scored store."""
    folder.mkdir(parents=True, exist_ok=True)
    db = folder / f"{name}.db"
    copy_store(scored.database, db)
    with Sandbox(contacts=scored.contacts, seed=scored.seed, start=scored.start,
                 workdir=folder / f"{name}-sb", salesforce_faults=faults) as sb:
        unthrottle(sb)
        sb.clock.advance(timedelta(hours=1))
        yield sb, config_for(sb, folder, db, activity_tasks=activity_tasks), db


def _who_emails(sb: Sandbox) -> dict[str, str]:
    state = sb.salesforce.state  # type: ignore[union-attr]
    return {r["Id"]: (r.get("Email") or "").lower()
            for sobject in ("Lead", "Contact") for r in state.records(sobject)}


def leads(sb: Sandbox) -> dict[str, dict[str, Any]]:
    """Handshake's Leads by email, without ids and write times (owner included)."""
    out: dict[str, dict[str, Any]] = {}
    for record in sb.salesforce.state.records("Lead"):  # type: ignore[union-attr]
        if record.get("Handshake_Id__c"):
            email = (record.get("Email") or "").lower()
            assert email not in out, f"two Leads for {email}"
            out[email] = {k: v for k, v in record.items() if k not in VOLATILE}
    return out


def tasks(sb: Sandbox, *, with_handoff_text: bool = True) -> Counter[tuple[Any, ...]]:
    """Every Task as (email of its record, kind, reference, Subject, Description, date, status,
    owner); hand-off texts and dates depend on the clock of the run unless `with_handoff_text`."""
    who = _who_emails(sb)
    out: Counter[tuple[Any, ...]] = Counter()
    for t in sb.salesforce.state.records("Task"):  # type: ignore[union-attr]
        subject = str(t.get("Subject") or "")
        match = REF.search(subject)
        ref = match.group(1) if match else None
        kind = "handoff" if subject.startswith("Handshake hand-off") else "activity"
        text: tuple[Any, ...] = (subject, t.get("Description"), t.get("ActivityDate"))
        if kind == "handoff" and not with_handoff_text:
            text = (None, None, None)
        out[(who.get(t["WhoId"]), kind, ref, *text, t.get("Status"), t.get("OwnerId"))] += 1
    return out


def parked(db: Path) -> set[tuple[str, str, str]]:
    """The open dead letters of the push in the store at `db`: (record, code, reason)."""
    store = Store(f"sqlite:///{db}")
    try:
        return {(d.record_key, d.error_code, d.reason) for d in store.dead_letters(stage="push")}
    finally:
        store.close()


def sla_timers(db: Path) -> Counter[str]:
    """Hand-off SLA timers in the store at `db`, by HubSpot contact."""
    store = Store(f"sqlite:///{db}")
    try:
        return Counter(t.hubspot_id for t in store.sla_timers())
    finally:
        store.close()


def writes(counts: Counter[str]) -> dict[str, int]:
    """The counts of a push run that mean something was written (a refused record writes
    nothing: it is tried again each run until its dead letter is resolved)."""
    return {k: v for k, v in counts.items()
            if k.startswith(("leads.created", "leads.updated", "tasks.")) and v
            and k not in ("tasks.reconciled", "tasks.dead_letters")}
