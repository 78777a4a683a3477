"""Pull benchmark: throughput, API frugality and memory of a first pull against the sandbox.

    .venv/bin/python bench/pull.py [--contacts 25000] [--compare 100000] [--seed 42]

Prints, per size: contacts/s, activities/s, HubSpot calls per 1,000 contacts, that figure
divided by the minimum the API allows for the same data (target <= 1.05), the time HubSpot's
Professional tier (190 calls / 10 s) would need for those calls, and the pull process's peak
RSS. Then it checks the store against the ground truth, runs an immediate second pull (calls
per stream, records stored), changes 500 contacts in the sandbox and pulls again (contacts
fetched). With --compare, the memory of two sizes is compared (pages are streamed: it should stay
flat). The sandbox runs in its own process with its rate limits lifted, so the figures measure
Handshake, not the sandbox or HubSpot's pace; the calls are counted, the pace is computed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# The dataset's "now", fixed so this process can regenerate the very same data to check against.
START = "2026-11-01T00:00:00+00:00"
SERVE = """
import json, sys, time
from datetime import UTC, datetime, timedelta
START = datetime.fromisoformat("START_AT")
from connector.sandbox import Sandbox
from connector.sandbox.hubspot.settings import RateLimits
sb = Sandbox(contacts=int(sys.argv[1]), seed=int(sys.argv[2]), start=START).start()
sb.hubspot.limiter.configure(RateLimits(window_max=10**9, daily=10**9, search_per_second=10**6))
sb.clock.advance(timedelta(hours=1))
print(json.dumps(sb.info()), flush=True)
for line in sys.stdin:
    if line.startswith("touch"):
        n = int(line.split()[1])
        gt = sb.dataset.ground_truth
        ids = sorted(set(gt.contact_ids) - set(gt.bad_records))[:n]
        sb.clock.advance(timedelta(hours=1))
        sb.hubspot.state.touch_contacts(ids, {"jobtitle": "Head of Revenue Operations"})
        print("ok", flush=True)
"""


def minimum_calls(contacts: int, seed: int) -> tuple[int, int]:
    """(fewest HubSpot calls a first pull of this dataset can make, live contacts)."""
    from connector.demo.verify import minimum_pull_calls
    from connector.sandbox.generator import generate

    ds = generate(seed, contacts, now=datetime.fromisoformat(START))
    return minimum_pull_calls(ds), len(ds.ground_truth.contact_ids)


def peak_rss_mb() -> float:
    """This process's own peak RSS in MB. On Linux it is VmHWM: `ru_maxrss` would not do, since
    exec keeps the parent's high-water mark in it, and this bench's parent holds a generated
    dataset (the ground truth of the previous size) when it starts the next worker."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker(info_json: str, db: str, stage: str = "first") -> None:
    """Runs one first pull in this process and prints its figures as JSON."""
    from connector.config import (
        Config,
        HubSpotSettings,
        SalesforceSettings,
        Secrets,
        StateSettings,
    )
    from connector.pull import pull
    from connector.runtime import lift_pacing, open_store, pull_context

    info = json.loads(info_json)
    config = Config(
        hubspot=HubSpotSettings(base_url=info["hubspot"]["base_url"]),
        salesforce=SalesforceSettings(instance_url=info["salesforce"]["instance_url"]),
        state=StateSettings(database_url=f"sqlite:///{db}"),
    ).model_copy(update={"secrets": Secrets(hubspot_token=info["hubspot"]["access_token"])})
    store = open_store(config)
    # Lift the client pacing as the sandbox's: the calls are counted, HubSpot's pace computed.
    ctx = lift_pacing(pull_context(config, store))
    start = time.perf_counter()
    counts = pull(ctx)
    seconds = time.perf_counter() - start
    activities = sum(v for k, v in counts.items() if k.endswith(".new") and not k.startswith("contacts"))
    print(json.dumps({
        "seconds": seconds,
        "contacts": store.count_contacts(),
        "activities": activities,
        "calls": ctx.client.calls,
        "peak_rss_mb": peak_rss_mb(),
        "counts": dict(counts),
        "stage": stage,
    }))


def _pull(info: str, db: str, stage: str) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, "--worker", info, db, stage],
                         cwd=ROOT, capture_output=True, text=True, check=True)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def run_size(contacts: int, seed: int, *, checks: bool) -> dict[str, Any]:
    from connector.demo.verify import pull_differences
    from connector.sandbox.generator import generate
    from connector.store import Store

    serve = subprocess.Popen([sys.executable, "-c", SERVE.replace("START_AT", START), str(contacts), str(seed)], cwd=ROOT,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert serve.stdout is not None and serve.stdin is not None
    try:
        info = serve.stdout.readline()
        with tempfile.TemporaryDirectory() as tmp:
            db = os.path.join(tmp, "s.db")
            figures = _pull(info, db, "first")
            if checks:
                store = Store(f"sqlite:///{db}")
                figures["differences"] = pull_differences(
                    store, generate(seed, contacts, now=datetime.fromisoformat(START)))
                store.close()
                figures["second"] = _pull(info, db, "second")["counts"]
                serve.stdin.write("touch 500\n")
                serve.stdin.flush()
                assert serve.stdout.readline().strip() == "ok"
                figures["third"] = _pull(info, db, "after 500 changes")["counts"]
    finally:
        serve.kill()
        serve.wait()
    minimum, listed = minimum_calls(contacts, seed)
    figures["minimum_calls"] = minimum
    figures["listed"] = listed
    return figures


def report(contacts: int, f: dict[str, float]) -> None:
    per_k = f["calls"] / f["contacts"] * 1000
    min_per_k = f["minimum_calls"] / f["contacts"] * 1000
    print(f"contacts: {contacts}")
    print(f"  contacts_per_second: {f['contacts'] / f['seconds']:.0f}")
    print(f"  activities_per_second: {f['activities'] / f['seconds']:.0f}")
    print(f"  hubspot_calls: {f['calls']:.0f} (minimum {f['minimum_calls']:.0f})")
    print(f"  calls_per_1000_contacts: {per_k:.1f} (minimum {min_per_k:.1f})")
    print(f"  calls_ratio_to_minimum: {f['calls'] / f['minimum_calls']:.3f} (target <= 1.05)")
    print(f"  hubspot_professional_pace_minutes: {f['calls'] / 17.1 / 60:.1f}")
    print(f"  pull_seconds: {f['seconds']:.1f}")
    print(f"  peak_rss_mb: {f['peak_rss_mb']:.0f}")
    if "differences" in f:
        diffs = f["differences"]
        print(f"  first_pull_equals_ground_truth: {'yes' if not diffs else 'NO: ' + '; '.join(diffs)}")
        second = f["second"]
        streams = ("contacts", "email_events", "form_submissions", "page_views", "webinars")
        calls = ", ".join(f"{s} {second.get(s + '.calls', 0)}" for s in streams)
        stored = sum(v for k, v in second.items() if k.endswith((".new", ".updated")))
        print(f"  second_pull_calls_per_stream: {calls} (target <= 3 each)")
        print(f"  second_pull_records_stored: {stored}")
        third = f["third"]
        print(f"  after_500_changes_contacts_fetched: {third.get('contacts.fetched', 0)} "
              f"(updated {third.get('contacts.updated', 0)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contacts", type=int, default=25_000)
    parser.add_argument("--compare", type=int, default=0, help="a second size, for memory")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(*args.worker)
        return
    first = run_size(args.contacts, args.seed, checks=True)
    report(args.contacts, first)
    if args.compare:
        second = run_size(args.compare, args.seed, checks=False)
        report(args.compare, second)
        print(f"peak_rss_ratio_{args.compare}_to_{args.contacts}: "
              f"{second['peak_rss_mb'] / first['peak_rss_mb']:.2f} "
              f"(contacts ratio {args.compare / args.contacts:.1f})")


if __name__ == "__main__":
    main()
