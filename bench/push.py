"""Push benchmark: hand-off throughput and Salesforce write frugality against the sandbox.

    .venv/bin/python bench/push.py [--contacts 5000] [--seed 42]

Pulls and scores a seeded sandbox (not timed), then times the first push and prints leads/s,
records written per object, Salesforce write calls (sObject Collections and composite calls,
from the sandbox's own request counts) and their ratio to ceil(records / 200), the fewest
calls 200-record collections allow (the acceptance line, target <= 1.05). A composite call
carries 5 collections, 1,000 records, as one API call, so the ratio drops under 1; the floor
composite calls allow (ceil(records / 1,000) per kind of write, which Handshake sends in calls
of their own) and the ratio to it are printed beside it. Then it pushes again with nothing
changed (write calls: 0 expected) and after 50 handed-off contacts change in HubSpot (1 call
expected). The sandbox runs in its own process so its work is not timed as Handshake's.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SERVE = """
import json, sys
from datetime import timedelta
from connector.sandbox import Sandbox
from connector.sandbox.hubspot.settings import RateLimits
sb = Sandbox(contacts=int(sys.argv[1]), seed=int(sys.argv[2])).start()
sb.hubspot.limiter.configure(RateLimits(window_max=10**9, daily=10**9, search_per_second=10**6))
sb.clock.advance(timedelta(hours=1))
print(json.dumps(sb.info()), flush=True)
for line in sys.stdin:
    if line.startswith("touch "):
        ids = line.split()[1].split(",")
        sb.clock.advance(timedelta(minutes=30))
        sb.hubspot.state.touch_contacts(ids, {"jobtitle": "Head of Revenue Operations"})
        print("ok", flush=True)
"""

# Write routes: sObject Collections (".../composite/sobjects...") and composite calls
# (".../composite"), through which Handshake sends only collections.
WRITE_ROUTE = "/composite"
COLLECTION_RECORDS = 200
COMPOSITE_RECORDS = 1000  # 5 collections of 200 in one composite call


def _writes(info: dict[str, Any]) -> dict[str, int]:
    """Write calls by route so far, from the Salesforce sandbox's counters."""
    sf = info["salesforce"]
    stats = httpx.get(f"{sf['instance_url']}/__sandbox__/stats", verify=sf["ca_bundle"]).json()
    return {route: n for route, n in stats["requests"]["by_route"].items()
            if WRITE_ROUTE in route}


def _delta(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}


def run(contacts: int, seed: int) -> dict[str, Any]:
    from connector.demo import sandbox_config
    from connector.pull import pull
    from connector.runtime import (
        lift_pacing,
        open_store,
        pull_context,
        run_push_stage,
        run_score_stage,
    )
    from connector.store import Store

    serve = subprocess.Popen([sys.executable, "-c", SERVE, str(contacts), str(seed)], cwd=ROOT,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert serve.stdout is not None and serve.stdin is not None
    try:
        info = json.loads(serve.stdout.readline())
        with tempfile.TemporaryDirectory() as tmp:
            config = sandbox_config(info, Path(tmp) / "state.db")
            store = open_store(config)
            ctx = lift_pacing(pull_context(config, store))
            pull(ctx)
            ctx.client.close()
            run_score_stage(config)

            before = _writes(info)
            start = time.perf_counter()
            first = run_push_stage(config)
            seconds = time.perf_counter() - start
            first_writes = _delta(_writes(info), before)

            before = _writes(info)
            again = run_push_stage(config)
            again_writes = _delta(_writes(info), before)

            store = Store(config.state.database_url)
            handed = [c.hubspot_id for c in store.iter_contacts()
                      if (link := store.linked(c.hubspot_id)) is not None
                      and link.sf_object == "Lead"][:50]
            store.close()
            serve.stdin.write(f"touch {','.join(handed)}\n")
            serve.stdin.flush()
            assert serve.stdout.readline().strip() == "ok"
            pull(pull_context(config, open_store(config)))
            run_score_stage(config)
            before = _writes(info)
            changed = run_push_stage(config)
            changed_writes = _delta(_writes(info), before)
    finally:
        serve.kill()
        serve.wait()
    c = first.counts
    leads = c.get("leads.created", 0) + c.get("leads.updated", 0)
    tasks = sum(v for k, v in c.items() if k.startswith("tasks.") and "dead" not in k)
    records = leads + tasks + sum(v for k, v in c.items()
                                  if k.endswith("dead_letters"))  # refused records were sent too
    calls = sum(first_writes.values())
    minimum = math.ceil(records / COLLECTION_RECORDS)
    # Lead creates (upsert), Lead updates and Task creates go in calls of their own
    kinds = (c.get("leads.created", 0), c.get("leads.updated", 0), tasks)
    per_kind = sum(math.ceil(n / COMPOSITE_RECORDS) for n in kinds)
    return {
        "contacts": contacts,
        "status": first.status,
        "seconds": seconds,
        "leads_written": leads,
        "handed_off": leads + c.get("leads.link_contact", 0) + c.get("leads.link_converted", 0)
        + c.get("leads.linked_duplicate", 0),
        "tasks_written": tasks,
        "records_sent": records,
        "write_calls": calls,
        "write_calls_by_route": first_writes,
        "minimum_write_calls": minimum,
        "ratio": calls / minimum if minimum else 0.0,
        "composite_floor_per_kind": per_kind,
        "ratio_to_composite_floor": calls / per_kind if per_kind else 0.0,
        "salesforce_calls": c.get("salesforce.calls", 0),
        "again_write_calls": sum(again_writes.values()),
        "again_counts": {k: v for k, v in again.counts.items() if v and "unchanged" not in k},
        "after_50_changes_updated": changed.counts.get("leads.updated", 0),
        "after_50_changes_write_calls": changed_writes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = parser.parse_args()
    f = run(args.contacts, args.seed)
    if args.json:
        print(json.dumps(f))
        return
    print(f"contacts: {f['contacts']:,}  push status: {f['status']}")
    print(f"leads/s: {f['handed_off'] / f['seconds']:.1f}  ({f['handed_off']:,} handed off, "
          f"{f['leads_written']:,} Leads written, {f['tasks_written']:,} Tasks, "
          f"{f['seconds']:.1f} s)")
    print(f"write calls: {f['write_calls']}  against ceil({f['records_sent']:,} / 200) = "
          f"{f['minimum_write_calls']}: ratio {f['ratio']:.3f} (target <= 1.05; composite "
          f"calls carry 1,000 records)")
    print(f"  against the composite floor, ceil(records / 1,000) per kind of write (Lead "
          f"creates, Lead updates, Tasks) = {f['composite_floor_per_kind']}: ratio "
          f"{f['ratio_to_composite_floor']:.3f}")
    print(f"write calls by route: {f['write_calls_by_route']}")
    print(f"all Salesforce calls in the push: {f['salesforce_calls']}")
    print(f"second push, nothing changed: write calls {f['again_write_calls']}")
    print(f"after 50 contacts change: Leads updated {f['after_50_changes_updated']}, "
          f"write calls {f['after_50_changes_write_calls']}")


if __name__ == "__main__":
    main()
