"""Pull-back benchmark: Salesforce read calls of the pull-back against the fewest the API allows,
and the outcomes checked against the sandbox's ground truth.

    .venv/bin/python bench/pullback.py [--contacts 5000] [--days 14] [--every-hours 4]
                                       [--seed 42] [--quick]

Seeds the sandbox (in this process), runs pull, score and push, then lets the sandbox's sales
team work the hand-offs for --days simulated days, the pull-back running every --every-hours
simulated hours as a daemon would (0: once, at the end). Prints, for the pull-back runs that
read changes: the Salesforce calls of their reads (the pull-back's own; the SLA alerts and
recycling write afterwards, counted apart), the fewest calls the API allows for the same data,
and the ratio (target <= 1.05). The fewest: each object's changed rows (the lookback
included) need ceil(rows / 2,000) query operations, one after another (a query's next page
needs the page before), at least one per object to learn nothing changed; the org's vocabulary
three when it is read; deleted records looked up one more after their check; a composite call
carries 5 query operations and 25 subrequests and counts once. So a run needs at least
max(its longest chain of pages, ceil(query operations / 5), ceil(subrequests / 25)) calls
(`connector.demo.verify.minimum_pullback_run_calls`, the demo's figure too).
Then a pull-back with nothing changed: its calls, and calls per object pulled (target <= 1).
Last, the ground truth's checks, as `handshake demo` makes them: every status change, logged
call and email, conversion and opportunity outcome of a handed-off Lead in the store, the
outcomes in HubSpot, the SLA breaches (first touch and worked, late or missing) against the
simulator's log, and each reassignment within the routing team. Figures only, no assertions.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

OBJECTS = ("Lead", "Opportunity", "Task", "Event")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=5000)
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--every-hours", type=float, default=4.0,
                        help="simulated hours between pull-backs (0: one, after the days)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--quick", action="store_true", help="500 contacts")
    args = parser.parse_args()
    contacts = 500 if args.quick else args.contacts

    from connector import runtime
    from connector.demo import SandboxTime, sandbox_config
    from connector.demo.verify import (
        minimum_pullback_run_calls,
        outcome_differences,
        outcome_truth,
        stored_outcomes,
    )

    fewest_calls = minimum_pullback_run_calls
    from connector.pull import pull
    from connector.sandbox import Sandbox
    from connector.sandbox.hubspot.settings import RateLimits

    with tempfile.TemporaryDirectory(prefix="bench-pullback-") as tmp, \
            Sandbox(contacts=contacts, seed=args.seed, workdir=Path(tmp) / "sb") as sb:
        assert sb.hubspot is not None and sb.salesforce is not None and sb.dataset is not None
        sb.hubspot.limiter.configure(RateLimits(window_max=10**9, daily=10**9,
                                                search_per_second=10**6))
        sb.clock.advance(timedelta(hours=1))
        config = sandbox_config(sb.info(), Path(tmp) / "state.db")
        clock = SandboxTime(sb)

        started = time.monotonic()
        store = runtime.open_store(config)
        ctx = runtime.lift_pacing(runtime.pull_context(config, store))
        pull(ctx)
        ctx.client.close()
        runtime.run_score_stage(config)
        pushed = runtime.run_push_stage(config)
        store.close()
        print(f"contacts {contacts}, seed {args.seed}: pull, score, push in "
              f"{time.monotonic() - started:.0f} s; Leads created "
              f"{pushed.counts.get('leads.created', 0)}, updated "
              f"{pushed.counts.get('leads.updated', 0)}")

        def pull_back() -> Counter[str]:
            result = runtime.run_pullback_stage(config, clock=clock, trigger="bench")
            if result.status != "ok":
                print(f"  pull-back ended {result.status}: {result.error}")
            return Counter(result.counts)

        statuses = {r["Id"]: r.get("Status") for r in sb.salesforce.state.records("Lead")}
        first = pull_back()  # the hand-offs as Handshake left them
        simulator = sb.simulator()
        runs: list[Counter[str]] = []
        truth_log: list[dict[str, Any]] = []
        started = time.monotonic()
        every = args.every_hours if args.every_hours > 0 else 24.0 * args.days
        left = 24.0 * args.days
        while left > 1e-9:
            chunk = min(every, left)
            truth_log.extend(simulator.run(chunk, step_hours=min(1.0, chunk)))
            left -= chunk
            runs.append(pull_back())
        print(f"{args.days} simulated days, {len(runs)} pull-backs in "
              f"{time.monotonic() - started:.0f} s (first pull-back after the push: "
              f"{first.get('salesforce.pull.calls', 0)} calls)")

        changed = [r for r in runs if sum(r.get(f"{o}.read", 0) for o in OBJECTS)]
        ours = sum(r.get("salesforce.pull.calls", 0) for r in changed)
        fewest = sum(fewest_calls(r) for r in changed)
        rows = {o: sum(r.get(f"{o}.read", 0) for r in changed) for o in OBJECTS}
        writes = sum(r.get("salesforce.calls", 0) - r.get("salesforce.pull.calls", 0)
                     for r in changed)
        print("\npull-backs with changes")
        print(f"  runs                           {len(changed)}")
        print("  rows read                      "
              + ", ".join(f"{o} {n}" for o, n in rows.items()))
        print(f"  vocabulary reads               {sum(r.get('vocabulary.read', 0) for r in runs)}")
        print(f"  Salesforce calls (reads)       {ours}")
        print(f"  fewest the API allows          {fewest}")
        print(f"  ratio                          {ours / max(fewest, 1):.3f}   (target <= 1.05)")
        worst = max(changed, key=lambda r: r.get("salesforce.pull.calls", 0) / fewest_calls(r),
                    default=None)
        if worst is not None:
            print(f"  worst run                      {worst.get('salesforce.pull.calls', 0)} "
                  f"calls for {fewest_calls(worst)} fewest")
        print(f"  other calls (SLA alerts, reassignment, recycling writes) {writes}")

        sb.clock.advance(timedelta(minutes=5))
        pull_back()  # the lookback's rows of the last run, once more
        sb.clock.advance(timedelta(minutes=5))
        calm = pull_back()
        calls = calm.get("salesforce.pull.calls", 0)
        print("\npull-back with nothing changed")
        print(f"  Salesforce calls               {calls}   (objects pulled: {len(OBJECTS)})")
        print(f"  calls per object pulled        {calls / len(OBJECTS):.2f}   (target <= 1)")
        print(f"  outcomes stored                "
              f"{sum(v for k, v in calm.items() if k.endswith('.outcomes'))}")

        store = runtime.open_store(config)
        try:
            checks = ground_truth(config, store, sb, statuses, outcome_truth,
                                  stored_outcomes, outcome_differences)
            checks["SLA: first-touch and worked breaches equal the simulator's"] = \
                sla_differences(config, store, sb, truth_log)
            kinds = Counter(o.kind for o in store.outcomes())
            breaches = Counter(b.kind for b in store.sla_breaches())
            sizes = (f"hand-offs {len(store.handoffs())}; outcomes: "
                     + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items()))
                     + "; SLA breaches: "
                     + ", ".join(f"{k} {n}" for k, n in sorted(breaches.items())))
        finally:
            store.close()
        print("\nchecked against the ground truth")
        print(f"  ({sizes})")
        for name, problems in checks.items():
            print(f"  {name:<52} {'ok' if not problems else f'{len(problems)} differ'}")
            for problem in problems[:5]:
                print(f"      {problem}")


def ground_truth(config: Any, store: Any, sb: Any, statuses: Mapping[str, str | None],
                 outcome_truth: Any, stored_outcomes: Any,
                 outcome_differences: Any) -> dict[str, list[str]]:
    """The demo's outcome checks, and the HubSpot, SLA and reassignment ones."""
    handed_off = {link.sf_id for link in store.handoffs() if link.sf_object == "Lead"}
    handed_back = {o.sf_id: str(o.status) for o in store.outcomes()
                   if o.kind in ("recycled", "disqualified") and o.status}
    truth = outcome_truth(sb.dataset, {lead: statuses.get(lead) for lead in handed_off},
                          handed_back)
    checks: dict[str, list[str]] = {
        "store: statuses, calls, emails, conversions, opportunities":
            outcome_differences(stored_outcomes(store), truth),
    }
    checks["HubSpot: each hand-off's outcome and lead status"] = hubspot_differences(
        config, store, sb)
    checks["reassignments to a member of the same routing team"] = team_differences(
        config, store, sb)
    return checks


def hubspot_differences(config: Any, store: Any, sb: Any) -> list[str]:
    """Each hand-off in HubSpot as the store holds it: a sales outcome written, and the
    `hs_lead_status` its Lead's status maps to in sla.toml (a recycled lead's: the one its
    recycling status maps to)."""
    from connector.hubspot.outcomes import OutcomeSettings
    from connector.mapping import load_sla

    names = OutcomeSettings()
    sla = load_sla(config.mapping_path("sla")).spec
    status_map = sla.hubspot_lead_status
    # a lead handed back to marketing shows the status recycling gave it (a converted one
    # whose opportunity was lost is recycled on the contact's side: its Lead keeps its own)
    recycled = {o.hubspot_id for o in store.outcomes(kind="recycled")}
    hub = sb.hubspot.state
    problems: list[str] = []
    for hubspot_id, state in store.handoff_states().items():
        record = hub.contacts.get(hub.resolve_id(hubspot_id))
        props = record.props if record is not None else {}
        if not props.get(names.outcome.hubspot_property):
            problems.append(f"contact {hubspot_id}: no {names.outcome.hubspot_property}")
        mapped = status_map.get(state.status or "")
        if hubspot_id in recycled and props.get(names.lead_status_property) == status_map.get(
                sla.recycling.lead_status):
            continue
        if mapped and props.get(names.lead_status_property) != mapped:
            problems.append(f"contact {hubspot_id}: {names.lead_status_property} "
                            f"{props.get(names.lead_status_property)!r}, not {mapped!r}")
    return problems


def sla_differences(config: Any, store: Any, sb: Any,
                    truth_log: list[dict[str, Any]]) -> list[str]:
    """The first-touch and worked breaches found against the simulator's log: a turn whose
    first call or email (as the org stamped its Task completed) came after the window, or
    never and the window is over (the simulator works a Lead at its first attempt: a rep's
    status change to a worked one, or a touch of a Lead already in one)."""
    from collections import defaultdict

    from connector.mapping import load_sla

    sla = load_sla(config.mapping_path("sla")).spec
    if sla.windows.business_hours_only:
        return ["business hours on: not compared by this bench"]
    org = sb.salesforce.state
    attempts: dict[str, list[datetime]] = defaultdict(list)
    for entry in truth_log:
        if entry.get("action") in ("call", "email") and "error" not in entry:
            task = org.get("Task", entry["task_id"])
            attempts[entry["lead_id"]].append(datetime.fromisoformat(
                str(task["CompletedDateTime"])))
    now = sb.clock.now()
    out: list[str] = []
    for kind, hours in (("first_touch", sla.windows.first_touch_hours),
                        ("worked", sla.windows.worked_hours)):
        window = timedelta(hours=hours)
        expected = set()
        for timer in store.sla_timers():
            if timer.owner_id is None:
                continue
            after = sorted(t for t in attempts.get(timer.sf_id, [])
                           if timer.assigned_at <= t <= now)
            due = timer.assigned_at + window
            if (not after and now >= due) or (after and after[0] > due):
                expected.add(timer.id)
        found = {b.timer_id for b in store.sla_breaches(kind=kind)}
        out += ([f"{kind} SLA turn {t}: breached in the ground truth, not found" for t in
                 sorted(expected - found)]
                + [f"{kind} SLA turn {t}: found, not breached in the ground truth" for t in
                   sorted(found - expected)])
    return out


def team_differences(config: Any, store: Any, sb: Any) -> list[str]:
    """Reassignments whose two reps are not both members of the team recorded."""
    from connector.mapping import load_routing

    routing = load_routing(config.mapping_path("routing"))
    by_email = {str(u.get("Email")).lower(): str(u["Id"]) for u in sb.salesforce.state.users()}
    teams = {name: {by_email.get(m.user.lower()) for m in team.members}
             for name, team in routing.spec.teams.items()}
    return [f"lead {b.lead_id}: {b.owner_id} -> {b.to_owner} outside team {b.team}"
            for b in store.sla_breaches(kind="reassign")
            if {b.owner_id, b.to_owner} - teams.get(b.team or "", set())]


if __name__ == "__main__":
    main()
