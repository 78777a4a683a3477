"""Freshness benchmark: the time from a HubSpot change to its Salesforce write, with webhooks
and with polling alone (p50, p95 over --changes changes each).

    .venv/bin/python bench/freshness.py [--contacts 2000] [--changes 50] [--seed 42]
                                        [--poll-minutes 0.25] [--mode both|polling|webhooks]
                                        [--quick]

Seeds the sandbox in this process and runs pull, score and push once (not timed). A change: a
contact of grade A or B that is not an MQL, and that Salesforce does not know, asks for a demo
in HubSpot (50 points: it is an MQL now); its time runs until its Lead is in Salesforce.

Both halves run the daemon itself (`connector.daemon.Daemon`, what `handshake run` runs: its
scheduler, leadership, web listener, webhook route and targeted sync) in this process.
- Polling alone: every stage each --poll-minutes; the changes happen at random moments over
  ceil(changes / 10) intervals. Target: p95 <= one poll interval plus one cycle.
- With webhooks: the sandbox POSTs its signed webhooks to the daemon's listener, which runs the
  targeted sync of the queued contacts at once; its polls are ten minutes apart. The changes
  happen one after another, 0 to 1 s apart. Target: p95 <= 15 s.

Figures only, no assertions. The sandbox shares this process and its 2 cores with Handshake.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEMO_FORM = "Request a demo"


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


class Watch:
    """Notes when each awaited email gets its Lead in Salesforce (polled every 20 ms)."""

    def __init__(self, leads: Callable[[], set[str]]) -> None:
        self.leads = leads
        self.waiting: dict[str, float] = {}  # email -> when it changed in HubSpot
        self.took: dict[str, float] = {}
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def expect(self, email: str, at: float) -> None:
        with self.lock:
            self.waiting[email] = at

    def _run(self) -> None:
        while not self.stop.wait(0.02):
            with self.lock:
                if not self.waiting:
                    continue
            now, present = time.monotonic(), self.leads()
            with self.lock:
                for email in [e for e in self.waiting if e in present]:
                    self.took[email] = now - self.waiting.pop(email)

    def wait(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if not self.waiting:
                    break
            time.sleep(0.05)
        self.stop.set()
        self.thread.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=2000)
    parser.add_argument("--changes", type=int, default=50)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--poll-minutes", type=float, default=0.25,
                        help="minutes between polling cycles (the daemon's default is 2)")
    parser.add_argument("--mode", choices=("both", "polling", "webhooks"), default="both")
    parser.add_argument("--quick", action="store_true", help="500 contacts, 10 changes")
    args = parser.parse_args()
    contacts, changes = (500, 10) if args.quick else (args.contacts, args.changes)

    from connector import runtime
    from connector.demo import SandboxTime, sandbox_config
    from connector.pull import pull
    from connector.sandbox import Sandbox
    from connector.sandbox.hubspot.settings import RateLimits

    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="bench-freshness-") as tmp, \
            Sandbox(contacts=contacts, seed=args.seed, workdir=Path(tmp) / "sb") as sb:
        assert sb.hubspot is not None and sb.salesforce is not None
        sb.hubspot.limiter.configure(RateLimits(window_max=10**9, daily=10**9,
                                                search_per_second=10**6))
        config = sandbox_config(sb.info(), Path(tmp) / "state.db")
        clock = SandboxTime(sb)
        started = time.monotonic()
        store = runtime.open_store(config, clock)
        ctx = runtime.lift_pacing(runtime.pull_context(config, store, clock=clock))
        pull(ctx)
        ctx.client.close()
        store.close()
        runtime.run_score_stage(config, clock=clock)
        runtime.run_push_stage(config, clock=clock)
        print(f"contacts {contacts}, seed {args.seed}: first pull, score, push in "
              f"{time.monotonic() - started:.0f} s")
        wanted = changes * (2 if args.mode == "both" else 1)
        pool = _candidates(sb, config, wanted)
        if len(pool) < wanted:
            print(f"only {len(pool)} contacts can become new MQLs; measuring those")

        def leads() -> set[str]:
            return {str(r.get("Email") or "").lower()
                    for r in sb.salesforce.state.records("Lead")}  # type: ignore[union-attr]

        def change(cid: str) -> str:
            hs = sb.hubspot.state  # type: ignore[union-attr]
            [guid] = [g for g, f in hs.forms.items() if f["name"] == DEMO_FORM]
            email = str(hs.contacts[cid].props["email"])
            hs.add_form_submission(guid, {"email": email}, contact_id=cid,
                                   page_url="https://www.handshake-demo.com/demo")
            return email.lower()

        if args.mode in ("both", "polling"):
            batch, pool = pool[:changes], pool[changes:]
            took, bound = _polling(config, clock, batch, change, leads, args.poll_minutes * 60,
                                   rng)
            _print("polling alone", took, len(batch),
                   f"target p95 <= one poll interval ({args.poll_minutes * 60:.0f} s) plus one "
                   f"cycle = {bound:.1f} s", bound)
        if args.mode in ("both", "webhooks"):
            batch = pool[:changes]
            took = _webhooks(sb, config, clock, batch, change, leads, rng)
            _print("with webhooks", took, len(batch), "target p95 <= 15 s", 15.0)


def _candidates(sb: Any, config: Any, wanted: int) -> list[str]:
    """Live contacts of grade A or B, not MQLs, unknown to Salesforce, in a seeded order."""
    from connector import runtime

    known = {str(r.get("Email") or "").lower() for obj in ("Lead", "Contact")
             for r in sb.salesforce.state.records(obj)}
    store = runtime.open_store(config)
    try:
        contacts = {c.hubspot_id: c for c in store.iter_contacts()}
        scores = store.latest_scores(list(contacts))
    finally:
        store.close()
    found = [cid for cid, c in sorted(contacts.items(), key=lambda kv: int(kv[0]))
             if c.email and c.email.lower() not in known and not c.archived
             and not c.merged_into and (s := scores.get(cid)) is not None and not s.is_mql
             and s.fit_grade in ("A", "B")]
    return found[:wanted]


@contextmanager
def _daemon(config: Any, clock: Any, every: float) -> Iterator[Any]:
    """`handshake run` in this process (its scheduler, leadership, web listener, webhook route
    and targeted sync), every stage each `every` seconds; stopped as SIGTERM stops it."""
    from connector.daemon import Daemon

    schedule = config.schedule.model_copy(update={
        f"{stage}_interval_minutes": every / 60
        for stage in ("pull", "score", "push", "pullback", "sla", "dlq")})
    daemon = Daemon(config.model_copy(update={"schedule": schedule}), clock=clock,
                    listen="127.0.0.1:0")
    thread = threading.Thread(target=daemon.run, name="daemon", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while daemon.web is None or daemon.health.role != "leader":
        if time.monotonic() > deadline or not thread.is_alive():
            raise SystemExit("the daemon did not start leading within 60 s")
        time.sleep(0.05)
    try:
        yield daemon
    finally:
        daemon.stop()
        thread.join(60)


def _runs(config: Any) -> list[Any]:
    from connector import runtime

    store = runtime.open_store(config)
    try:
        return store.runs(limit=10_000)
    finally:
        store.close()


def _cycle(config: Any, before: set[str]) -> float:
    """One polling cycle: the median pull, score and push of the daemon's runs not among
    `before`, added up."""
    took: dict[str, list[float]] = {"pull": [], "score": [], "push": []}
    for r in _runs(config):
        if r.finished_at is not None and r.id not in before and r.stage in took:
            took[r.stage].append((r.finished_at - r.started_at).total_seconds())
    return sum(statistics.median(v) for v in took.values() if v)


def _polling(config: Any, clock: Any, batch: list[str], change: Callable[[str], str],
             leads: Callable[[], set[str]], interval: float,
             rng: random.Random) -> tuple[list[float], float]:
    """The daemon without webhooks: every stage each `interval` seconds."""
    before = {r.id for r in _runs(config)}
    with _daemon(config, clock, interval):
        time.sleep(interval)  # past the new leader's first round
        watch = Watch(leads)
        span = interval * math.ceil(len(batch) / 10)
        moments = sorted(rng.uniform(0, span) for _ in batch)
        began = time.monotonic()
        for cid, at in zip(batch, moments, strict=True):
            time.sleep(max(0.0, began + at - time.monotonic()))
            watch.expect(change(cid), time.monotonic())
        watch.wait(2 * interval + 120)
    _explain_missing(config, batch, watch)
    cycle = _cycle(config, before)
    print(f"one cycle (the daemon's median pull + score + push): {cycle:.2f} s")
    return list(watch.took.values()), interval + cycle


def _webhooks(sb: Any, config: Any, clock: Any, batch: list[str], change: Callable[[str], str],
              leads: Callable[[], set[str]], rng: random.Random) -> list[float]:
    """The daemon with webhooks: the sandbox POSTs to its route, the daemon runs the targeted
    sync at once; its polls are ten minutes apart, so they bring none of these changes."""
    from connector.daemon.webhooks import WEBHOOK_PATH

    with _daemon(config, clock, 600) as daemon:
        time.sleep(2)
        while any(r.status == "running" for r in _runs(config)):
            time.sleep(0.2)  # the new leader's first round
        sender = sb.start_webhooks(f"{daemon.web.url}{WEBHOOK_PATH}")
        watch = Watch(leads)
        for cid in batch:
            watch.expect(change(cid), time.monotonic())
            time.sleep(rng.uniform(0, 1))
        watch.wait(120)
        sb.stop_webhooks()
    _explain_missing(config, batch, watch)
    syncs = sum(1 for r in _runs(config) if r.stage == "webhook-pull")
    print(f"webhooks: {sender.stats.requests} requests, {sender.stats.delivered_events} events "
          f"delivered, {sender.stats.dropped_events} dropped; {syncs} targeted pull(s) by the "
          "daemon")
    return list(watch.took.values())


def _explain_missing(config: Any, batch: list[str], watch: Watch) -> None:
    """Why a change never reached Salesforce: its newest score, its open dead letters."""
    from connector import runtime

    if not watch.waiting:
        return
    store = runtime.open_store(config)
    try:
        emails = set(watch.waiting)
        for cid in batch:
            contact = store.get_contact(cid)
            if contact is None or (contact.email or "").lower() not in emails:
                continue
            score = store.latest_score(cid)
            letters = [d.reason for d in store.dead_letters() if d.record_key.endswith(cid)]
            why = ("the demo request did not make it an MQL (the scoring rules' caps): "
                   "no sync delay" if score is not None and not score.is_mql else "")
            print(f"  contact {cid} not in Salesforce: MQL {score.is_mql if score else None}, "
                  f"grade {score.fit_grade if score else None}, interest "
                  f"{score.interest if score else 0:.1f}; dead letters {len(letters)} {why}")
    finally:
        store.close()


def _print(name: str, took: list[float], changes: int, target: str, bound: float) -> None:
    print(f"\n{name}: {len(took)} of {changes} changes reached Salesforce")
    if took:
        p95 = _p95(took)
        print(f"  p50 {statistics.median(took):.2f} s   p95 {p95:.2f} s   "
              f"max {max(took):.2f} s   ({target})")
        print(f"  p95 / target = {p95 / bound:.2f} ({'met' if p95 <= bound else 'NOT met'})")


if __name__ == "__main__":
    main()
