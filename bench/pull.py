"""Pull benchmark: throughput, API frugality and memory of a first pull against the sandbox.

    .venv/bin/python bench/pull.py [--contacts 25000] [--compare 100000] [--seed 42]

Prints, per size: contacts/s, activities/s, HubSpot calls per 1,000 contacts, that figure
divided by the minimum the API allows for the same data (target <= 1.05), the time HubSpot's
Professional tier (190 calls / 10 s) would need for those calls, and the pull process's peak
RSS. With --compare, the memory of two sizes is compared (pages are streamed: it should stay
flat). The sandbox runs in its own process with its rate limits lifted, so the figures measure
Handshake, not the sandbox or HubSpot's pace; the calls are counted, the pace is computed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SERVE = """
import json, sys, time
from datetime import timedelta
from connector.sandbox import Sandbox
from connector.sandbox.hubspot.settings import RateLimits
sb = Sandbox(contacts=int(sys.argv[1]), seed=int(sys.argv[2])).start()
sb.hubspot.limiter.configure(RateLimits(window_max=10**9, daily=10**9, search_per_second=10**6))
sb.clock.advance(timedelta(hours=1))
print(json.dumps(sb.info()), flush=True)
sys.stdin.read()
"""


def minimum_calls(contacts: int, seed: int) -> tuple[int, int]:
    """(fewest HubSpot calls a first pull of this dataset can make, live contacts)."""
    from connector.hubspot import settings as hs
    from connector.sandbox.generator import generate

    ds = generate(seed, contacts)
    gt = ds.ground_truth
    listed = len(gt.contact_ids)
    subs = Counter(s.form_guid for s in ds.form_submissions)
    views = Counter(v.contact_id for v in ds.page_views)
    parts = Counter(p.event_id for p in ds.participations)
    total = (
        math.ceil(listed / hs.CONTACTS_LIST_LIMIT)
        + max(1, math.ceil(len(gt.archived_ids) / hs.CONTACTS_LIST_LIMIT))
        + max(1, math.ceil(len(ds.email_events) / hs.EMAIL_EVENTS_LIMIT))
        + max(1, math.ceil(len(ds.forms) / hs.FORMS_LIMIT))
        + sum(max(1, math.ceil(subs[f.guid] / hs.FORM_SUBMISSIONS_LIMIT)) for f in ds.forms)
        + sum(math.ceil(n / hs.WEB_EVENTS_LIMIT) for n in views.values())
        + max(1, math.ceil(len(ds.marketing_events) / hs.MARKETING_EVENTS_LIMIT))
        + sum(max(1, math.ceil(parts[e.id] / hs.PARTICIPATIONS_LIMIT))
              for e in ds.marketing_events)
    )
    return total, listed


def worker(info_json: str, db: str) -> None:
    """Runs one first pull in this process and prints its figures as JSON."""
    import resource

    from connector.config import (
        Config,
        HubSpotSettings,
        SalesforceSettings,
        Secrets,
        StateSettings,
    )
    from connector.http.settings import RollingLimit
    from connector.pull import pull
    from connector.wiring import open_store, pull_context

    info = json.loads(info_json)
    config = Config(
        hubspot=HubSpotSettings(base_url=info["hubspot"]["base_url"]),
        salesforce=SalesforceSettings(instance_url=info["salesforce"]["instance_url"]),
        state=StateSettings(database_url=f"sqlite:///{db}"),
    ).model_copy(update={"secrets": Secrets(hubspot_token=info["hubspot"]["access_token"])})
    store = open_store(config)
    ctx = pull_context(config, store)
    # Lift the client pacing as the sandbox's: the calls are counted, HubSpot's pace computed.
    for name, limit in (("burst", RollingLimit(10**9, 10.0)), ("search", RollingLimit(10**9, 1.0))):
        ctx.client.policy.limiters[name] = type(ctx.client.policy.limiters[name])(  # type: ignore[call-arg]
            limit.limit, limit.window, clock=ctx.client.policy.clock, name=name)
    start = time.perf_counter()
    counts = pull(ctx)
    seconds = time.perf_counter() - start
    activities = sum(v for k, v in counts.items() if k.endswith(".new") and not k.startswith("contacts"))
    print(json.dumps({
        "seconds": seconds,
        "contacts": store.count_contacts(),
        "activities": activities,
        "calls": ctx.client.calls,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }))


def run_size(contacts: int, seed: int) -> dict[str, float]:
    serve = subprocess.Popen([sys.executable, "-c", SERVE, str(contacts), str(seed)], cwd=ROOT,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert serve.stdout is not None
        info = serve.stdout.readline()
        with tempfile.TemporaryDirectory() as tmp:
            out = subprocess.run([sys.executable, __file__, "--worker", info, os.path.join(tmp, "s.db")],
                                 cwd=ROOT, capture_output=True, text=True, check=True)
        figures = json.loads(out.stdout.strip().splitlines()[-1])
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contacts", type=int, default=25_000)
    parser.add_argument("--compare", type=int, default=0, help="a second size, for memory")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(*args.worker)
        return
    first = run_size(args.contacts, args.seed)
    report(args.contacts, first)
    if args.compare:
        second = run_size(args.compare, args.seed)
        report(args.compare, second)
        print(f"peak_rss_ratio_{args.compare}_to_{args.contacts}: "
              f"{second['peak_rss_mb'] / first['peak_rss_mb']:.2f} "
              f"(contacts ratio {args.compare / args.contacts:.1f})")


if __name__ == "__main__":
    main()
