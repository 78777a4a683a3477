"""One benchmark printing every figure of issue #13 next to its target, from one run.

    .venv/bin/python bench/run.py [--contacts 10000 [100000 ...]] [--quick] [--seed 42] [--json]

For each size, `handshake sandbox serve --unthrottled` runs in a process of its own (its rate
limits lifted, its data reproducible from the seed and a fixed start), and a worker process runs
Handshake's stages on it as `handshake demo` does: a first pull (the client's pacing lifted, as
the demo's), an incremental pull with nothing changed, the score stage, the push stage. Each
stage's CPU is measured in both processes, so Handshake's own CPU and peak RSS are apart from the
sandbox's. Then this process regenerates the same dataset and checks the store and Salesforce
against its ground truth with the demo's checks (`connector.demo.verify`).

Figures (target and verdict beside each): HubSpot calls per 1,000 contacts in the first pull and
their ratio to the cheapest documented way (the demo's "minimum calls"), Handshake CPU per
contact in that pull, CPU of the incremental pull, score stage contacts/s, push MQLs/s (both per
second of Handshake CPU: the sandbox's work is not Handshake's), the demo's pull+score+push wall
time, peak RSS of Handshake and of the whole (Handshake + sandbox), and the RSS ratio between the
two largest sizes. Exits 1 when a correctness check fails (a missed target only says so).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.pull import peak_rss_mb  # this process's VmHWM, exec-safe

# The dataset's "now", fixed so this process can regenerate the very same data to check against.
START = "2026-11-01T00:00:00+00:00"
ADVANCE_HOURS = 1
QUICK = 1_000
DEFAULT = 10_000
# HubSpot Professional: 190 calls / 10 s, of which Handshake takes its 90% share.
PRO_CALLS_PER_SECOND = 190 / 10 * 0.9
# The push's outcomes, one per MQL settled (created, updated, linked, unchanged or parked).
SETTLED = ("leads.created", "leads.updated", "leads.unchanged", "leads.link_contact",
           "leads.link_converted", "leads.linked_duplicate", "leads.dead_letters")

# Every figure: key -> (what, unit, target as text, test of the value, or None for information).
FIGURES: dict[str, tuple[str, str, str]] = {
    "hubspot_calls_per_1000_contacts": ("HubSpot calls per 1,000 contacts, first pull", "",
                                        "<= 150"),
    "hubspot_calls_ratio_to_minimum": ("... against the cheapest documented way", "x",
                                       "<= 1.05"),
    "pull_cpu_ms_per_contact": ("Handshake CPU per contact, first pull", "ms", "<= 1"),
    "incremental_pull_cpu_ms": ("Handshake CPU, incremental pull, nothing changed", "ms",
                                "<= 50"),
    "score_contacts_per_second": ("score stage through the store (per Handshake CPU s)",
                                  "/s", ">= 10000"),
    "push_mqls_per_second": ("push planning, ledger, matching (per Handshake CPU s)", "/s",
                             ">= 2000"),
    "demo_wall_seconds": ("demo equivalent, pull+score+push wall", "s", "<= 3 ms x contacts"),
    "whole_peak_rss_mb": ("peak RSS, Handshake + sandbox", "MB", "<= 2048"),
    "handshake_peak_rss_mb": ("Handshake's own peak RSS", "MB", "<= 300"),
    "first_pull_equals_ground_truth": ("first pull equals the ground truth", "", "yes"),
    "mqls_equal_sales_ready": ("MQLs are the ground truth's sales-ready", "", "yes"),
    "handoff_checks_pass": ("hand-off checks pass", "", "yes"),
}
# Beside the figures, for reading them: not judged.
INFO = ("contacts", "activities", "hubspot_calls", "minimum_calls", "pull_wall_seconds",
        "pull_cpu_seconds", "sandbox_pull_cpu_seconds", "hubspot_professional_pace_minutes",
        "incremental_pull_calls", "score_wall_seconds", "score_cpu_seconds", "scored",
        "push_wall_seconds", "push_cpu_seconds", "sandbox_push_cpu_seconds", "mqls_settled",
        "sandbox_peak_rss_mb", "sandbox_start_seconds", "demo_cpu_seconds",
        "sandbox_demo_cpu_seconds", "peaks", "load_average", "problems")
RATIO_KEY = "handshake_peak_rss_ratio"  # between the two largest sizes: <= 1.3


def verdict(key: str, value: Any, contacts: int) -> bool:
    """Whether `value` of figure `key` meets its target at this size."""
    limits: dict[str, Any] = {
        "hubspot_calls_per_1000_contacts": lambda v: v <= 150,
        "hubspot_calls_ratio_to_minimum": lambda v: v <= 1.05,
        "pull_cpu_ms_per_contact": lambda v: v <= 1.0,
        "incremental_pull_cpu_ms": lambda v: v <= 50,
        "score_contacts_per_second": lambda v: v >= 10_000,
        "push_mqls_per_second": lambda v: v >= 2_000,
        # 30 s at 10,000 and 300 s at 100,000: 3 ms a contact at both
        "demo_wall_seconds": lambda v: v <= 0.003 * contacts,
        "whole_peak_rss_mb": lambda v: v <= 2048,
        "handshake_peak_rss_mb": lambda v: v <= 300,
        RATIO_KEY: lambda v: v <= 1.3,
    }
    if key in limits:
        return bool(limits[key](value))
    return value == "yes"


# ----------------------------------------------------------------------------- processes


def cpu_seconds(pid: int) -> float:
    """User + system CPU of another process so far (Linux /proc), 0 when unreadable."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_of(pid: int) -> float:
    """Another process's peak RSS (VmHWM) in MB, 0 when unreadable."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def own_cpu() -> float:
    """This process's user + system CPU so far, all threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def serve(contacts: int, seed: int) -> tuple[subprocess.Popen[str], dict[str, Any], float]:
    """Start `handshake sandbox serve` in its own process; returns it, its info and the
    seconds it took to answer."""
    began = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", "from connector.cli import main; main()", "sandbox", "serve",
         "--contacts", str(contacts), "--seed", str(seed), "--start", START,
         "--advance-hours", str(ADVANCE_HOURS), "--unthrottled", "--json"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.wait()
        raise SystemExit(f"the sandbox did not start (exit {proc.returncode})")
    return proc, json.loads(line), time.perf_counter() - began


def _reset_peak_rss() -> None:
    """Start this process's peak RSS (VmHWM) afresh from what it holds now (Linux)."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as refs:
            refs.write("5")
    except OSError:
        pass


def _stage(figures: dict[str, Any], name: str, sandbox_pid: int, run: Any) -> Any:
    """Run one stage, recording its wall time, both processes' CPU and Handshake's peak RSS
    during it under `name` (the peak before it is kept in `peaks`, then counted afresh)."""
    figures.setdefault("peaks", {}).setdefault("start", peak_rss_mb())
    _reset_peak_rss()
    cpu, sb_cpu, began = own_cpu(), cpu_seconds(sandbox_pid), time.perf_counter()
    result = run()
    figures[f"{name}_wall_seconds"] = time.perf_counter() - began
    figures[f"{name}_cpu_seconds"] = own_cpu() - cpu
    figures[f"sandbox_{name}_cpu_seconds"] = cpu_seconds(sandbox_pid) - sb_cpu
    figures["peaks"][name] = peak_rss_mb()
    return result


def worker(info_json: str, db: str, sandbox_pid: str) -> None:
    """Handshake's side, in a process of its own: first pull, incremental pull, score, push,
    as `handshake demo` runs them; prints the figures as JSON."""
    import importlib

    from connector.clock import FrozenClock
    from connector.demo import sandbox_config
    from connector.runtime import open_store, run_pull_stage, run_push_stage, run_score_stage

    # The stages import their modules when first run; a daemon pays that once in its life, so
    # it is paid here before any stage is timed (the SDKs alone take a fifth of a second).
    for module in ("connector.hubspot.write", "connector.scoring.runner", "connector.push.engine",
                   "connector.salesforce", "connector.salesforce.governor"):
        importlib.import_module(module)
    pid = int(sandbox_pid)
    config = sandbox_config(json.loads(info_json), Path(db))
    open_store(config).close()  # the schema, as `handshake init` leaves it before any sync
    f: dict[str, Any] = {}

    class SandboxTime(FrozenClock):
        """The sandbox's time, moving on a microsecond each time it is read: a deployment's
        clock moves, and at one frozen instant a write that finds its value already in place
        (a contact marked changed "now" again) would be skipped, which no real run sees."""

        def now(self) -> datetime:
            self.advance(timedelta(microseconds=1))
            return super().now()

    # Every stage runs at the sandbox's time (its data is generated as of START and served an
    # hour on), as a deployment's stages share one clock: on the wall clock, weeks after the
    # data, the ground truth's sales-ready contacts would have decayed, and activities stored
    # "now" would all look newer than hand-offs made at the sandbox's time (each an alert).
    clock = SandboxTime(datetime.fromisoformat(START) + timedelta(hours=ADVANCE_HOURS))

    def first_pull() -> Any:
        counts = run_pull_stage(config, paced=False, clock=clock).counts
        return counts["hubspot.calls"], counts

    calls, counts = _stage(f, "pull", pid, first_pull)
    f["hubspot_calls"] = calls
    f["activities"] = sum(v for k, v in counts.items()
                          if k.endswith(".new") and not k.startswith("contacts"))
    # nothing changed since: the next cycle's pull (before the score writes back to HubSpot)
    f["incremental_pull_calls"], _ = _stage(f, "incremental", pid, first_pull)
    scored = _stage(f, "score", pid, lambda: run_score_stage(config, clock=clock))
    pushed = _stage(f, "push", pid, lambda: run_push_stage(config, clock=clock))
    f["scored"] = scored.counts.get("scored", 0)
    f["mqls_settled"] = sum(pushed.counts.get(k, 0) for k in SETTLED)
    f["stages"] = {"score": scored.status, "push": pushed.status}
    # the whole run's peak: the largest of the stages' (and of the start-up's)
    f["handshake_peak_rss_mb"] = max(f["peaks"].values())
    print(json.dumps(f))


# ----------------------------------------------------------------------------- checks


class SalesforceRecords:
    """The org's records read over the Salesforce sandbox's inspection route, in the shape
    `handoff_differences` reads an in-process sandbox's state."""

    def __init__(self, info: Mapping[str, Any]) -> None:
        self.sf = info["salesforce"]

    def records(self, sobject: str) -> list[dict[str, Any]]:
        url = f"{self.sf['instance_url']}/__sandbox__/records/{sobject}"
        resp = httpx.get(url, verify=self.sf["ca_bundle"], timeout=120)
        resp.raise_for_status()
        return list(resp.json())


def check(info: Mapping[str, Any], db: str, contacts: int, seed: int,
          leads_before: set[str]) -> dict[str, Any]:
    """The demo's checks of the store and the org against the regenerated ground truth, and
    the cheapest documented way's calls for the first pull."""
    from connector.demo import sandbox_config
    from connector.demo.cycle import _count_mqls
    from connector.demo.verify import handoff_differences, minimum_pull_calls, pull_differences
    from connector.mapping import load_routing
    from connector.sandbox.generator import generate
    from connector.store import Store

    dataset = generate(seed, contacts, now=datetime.fromisoformat(START))
    config = sandbox_config(dict(info), Path(db))
    store = Store(config.state.database_url)
    try:
        pulled = pull_differences(store, dataset)
        mqls = _count_mqls(store)
        handoff = handoff_differences(
            store, dataset, SalesforceRecords(info), load_routing(config.mapping_path("routing")),
            external_id_field=config.salesforce.external_id_field, leads_before=leads_before)
        live = store.count_contacts()
    finally:
        store.close()
    sales_ready = len(dataset.ground_truth.sales_ready)
    problems = [*pulled, *handoff]
    if mqls != sales_ready:
        problems.append(f"MQLs: {mqls}, sales-ready in the ground truth: {sales_ready}")
    return {
        "contacts": live,
        "minimum_calls": minimum_pull_calls(dataset),
        "first_pull_equals_ground_truth": "no" if pulled else "yes",
        "mqls_equal_sales_ready": "yes" if mqls == sales_ready else "no",
        "handoff_checks_pass": "no" if handoff else "yes",
        "problems": problems,
    }


# ----------------------------------------------------------------------------- one size


def run_size(contacts: int, seed: int) -> dict[str, Any]:
    """Every figure at one size."""
    proc, info, started = serve(contacts, seed)
    try:
        with tempfile.TemporaryDirectory(prefix="handshake-bench-") as tmp:
            db = os.path.join(tmp, "state.db")
            leads_before = {r["Id"] for r in SalesforceRecords(info).records("Lead")}
            out = subprocess.run(
                [sys.executable, __file__, "--worker", json.dumps(info), db, str(proc.pid)],
                check=False, cwd=ROOT, capture_output=True, text=True,
                env={**os.environ, "PYTHONPATH": str(ROOT)})
            if out.returncode:
                raise SystemExit(f"the Handshake worker failed (exit {out.returncode}):\n"
                                 f"{out.stderr[-3000:]}")
            f: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
            f["sandbox_peak_rss_mb"] = peak_rss_of(proc.pid)
            f["sandbox_start_seconds"] = started
            f.update(check(info, db, contacts, seed, leads_before))
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    live = max(f["contacts"], 1)
    f["hubspot_calls_per_1000_contacts"] = f["hubspot_calls"] / live * 1000
    f["hubspot_calls_ratio_to_minimum"] = f["hubspot_calls"] / max(f["minimum_calls"], 1)
    f["hubspot_professional_pace_minutes"] = f["hubspot_calls"] / PRO_CALLS_PER_SECOND / 60
    f["pull_cpu_ms_per_contact"] = f["pull_cpu_seconds"] / live * 1000
    f["incremental_pull_cpu_ms"] = f.pop("incremental_cpu_seconds") * 1000
    f["score_contacts_per_second"] = f["scored"] / max(f["score_cpu_seconds"], 1e-9)
    f["push_mqls_per_second"] = f["mqls_settled"] / max(f["push_cpu_seconds"], 1e-9)
    f["demo_wall_seconds"] = (f["pull_wall_seconds"] + f["score_wall_seconds"]
                              + f["push_wall_seconds"])
    f["whole_peak_rss_mb"] = f["handshake_peak_rss_mb"] + f["sandbox_peak_rss_mb"]
    # The CPU behind the demo's wall time: walls grow with the machine's load, CPU much less.
    f["demo_cpu_seconds"] = sum(f[f"{s}_cpu_seconds"] for s in ("pull", "score", "push"))
    f["sandbox_demo_cpu_seconds"] = sum(f[f"sandbox_{s}_cpu_seconds"]
                                        for s in ("pull", "score", "push"))
    f["load_average"] = os.getloadavg()[0]
    return f


def report(results: Mapping[int, Mapping[str, Any]]) -> dict[str, Any]:
    """The figures of every size with their targets and verdicts, and the RSS ratio between
    the two largest sizes (when there are two)."""
    out: dict[str, Any] = {"sizes": {}, "ok": True, "correct": True}
    for contacts, f in results.items():
        figures = {}
        for key, (what, unit, target) in FIGURES.items():
            met = verdict(key, f[key], contacts)
            figures[key] = {"what": what, "value": f[key], "unit": unit, "target": target,
                            "met": met}
            out["ok"] &= met
        out["correct"] &= all(f[k] == "yes" for k in FIGURES if k not in FIGURES_NUMERIC)
        out["sizes"][str(contacts)] = {"figures": figures,
                                       "info": {k: f[k] for k in INFO if k in f}}
    sizes = sorted(results)
    if len(sizes) >= 2:
        small, large = sizes[-2], sizes[-1]
        ratio = (results[large]["handshake_peak_rss_mb"]
                 / max(results[small]["handshake_peak_rss_mb"], 1e-9))
        met = verdict(RATIO_KEY, ratio, large)
        out[RATIO_KEY] = {"what": f"Handshake peak RSS, {large:,} against {small:,} contacts",
                          "value": ratio, "unit": "x", "target": "<= 1.3", "met": met}
        out["ok"] &= met
    return out


FIGURES_NUMERIC = {k for k, (_, _, target) in FIGURES.items() if target != "yes"}


def _show(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def print_text(out: Mapping[str, Any]) -> None:
    """The report as a person reads it: one line per figure, its target and its verdict."""
    for contacts, size in out["sizes"].items():
        info = size["info"]
        print(f"== {int(contacts):,} contacts ({_show(info['contacts'])} live, "
              f"{_show(info['activities'])} activities)")
        for fig in size["figures"].values():
            value = _show(fig["value"]) + (f" {fig['unit']}" if fig["unit"] else "")
            mark = "ok" if fig["met"] else "MISSED"
            print(f"  {fig['what']:<55} {value:>14}   target {fig['target']:<18} {mark}")
        print(f"  (first pull: {info['hubspot_calls']:,} calls, minimum "
              f"{info['minimum_calls']:,}, {info['pull_wall_seconds']:.1f} s wall, "
              f"Handshake {info['pull_cpu_seconds']:.1f} s CPU, sandbox "
              f"{info['sandbox_pull_cpu_seconds']:.1f} s CPU; HubSpot Professional's pace "
              f"{info['hubspot_professional_pace_minutes']:.1f} min; incremental pull "
              f"{info['incremental_pull_calls']} calls)")
        print(f"  (score {info['scored']:,} contacts in {info['score_wall_seconds']:.1f} s "
              f"wall; push {info['mqls_settled']:,} MQLs in {info['push_wall_seconds']:.1f} s "
              f"wall, Handshake {info['push_cpu_seconds']:.1f} s CPU, sandbox "
              f"{info['sandbox_push_cpu_seconds']:.1f} s CPU; sandbox peak RSS "
              f"{info['sandbox_peak_rss_mb']:.0f} MB, started in "
              f"{info['sandbox_start_seconds']:.1f} s)")
        print("  (Handshake's peak RSS, stage by stage: " + ", ".join(
            f"{stage} {mb:.0f} MB" for stage, mb in info["peaks"].items()) + ")")
        print(f"  (pull+score+push CPU: Handshake {info['demo_cpu_seconds']:.1f} s, sandbox "
              f"{info['sandbox_demo_cpu_seconds']:.1f} s; load average "
              f"{info['load_average']:.1f} on {os.cpu_count()} cores: walls grow with it)")
        for problem in info["problems"]:
            print(f"  PROBLEM: {problem}")
    if RATIO_KEY in out:
        fig = out[RATIO_KEY]
        print(f"{fig['what']}: {fig['value']:.2f} x   target {fig['target']}   "
              f"{'ok' if fig['met'] else 'MISSED'}")
    print(f"correctness: {'ok' if out['correct'] else 'FAILED'}; targets: "
          f"{'all met' if out['ok'] else 'some missed'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contacts", type=int, nargs="+", metavar="N",
                        help=f"sizes to run (default {DEFAULT:,})")
    parser.add_argument("--quick", action="store_true",
                        help=f"one laptop size, {QUICK:,} contacts (instead of --contacts)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(*args.worker)
        return
    sizes = [QUICK] if args.quick else sorted(set(args.contacts or [DEFAULT]))
    results = {n: run_size(n, args.seed) for n in sizes}
    out = report(results)
    if args.json:
        print(json.dumps(out))
    else:
        print_text(out)
    sys.exit(0 if out["correct"] else 1)


if __name__ == "__main__":
    main()
