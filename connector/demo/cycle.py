"""`handshake demo`: a whole sync cycle (pull, score, push) against the sandbox, in-process.

The sandbox's rate limits and the client's pacing are lifted so the demo takes seconds, not the
twenty minutes HubSpot's Professional tier would need; every API call is still counted and set
against the minimum the APIs allow for the same data. The summary says where every generated
contact went, what the hand-off wrote and why, and what was checked against the ground truth.
"""

from __future__ import annotations

import tempfile
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from connector.config import (
    Config,
    HubSpotSettings,
    MappingPaths,
    PullbackSettings,
    SalesforceSettings,
    Secrets,
    StateSettings,
)
from connector.defaults import DEFAULTS_DIR
from connector.progress import NullProgress, ProgressSink

if TYPE_CHECKING:
    from connector.sandbox import Sandbox, SandboxDataset
    from connector.store import Store

__all__ = ["DAYS", "MAPPINGS_DIR", "NEXT_STEPS", "PULLBACK_EVERY_HOURS", "SandboxTime",
           "run_demo", "sandbox_config"]

# Simulated days the sandbox's sales team works the hand-offs after the push.
DAYS = 14
# The pull-back runs this often (simulated hours), as a scheduled daemon would: each run sees
# only the current statuses. Every figure the demo reports (current statuses, logged Tasks,
# conversions, closed opportunities) is whole at any cadence; this one keeps 14 days of runs
# within half the demo's time.
PULLBACK_EVERY_HOURS = 4
# The org's custom picklist the simulator writes when a rep closes a Lead unconverted.
LEAD_REASON_FIELD = "Reason_Not_Converted__c"

# The mapping files Handshake ships (package data): the demo runs with the defaults, whatever an
# admin changed in a checkout's mappings/.
MAPPINGS_DIR = DEFAULTS_DIR

# What to try after the demo: a command and what it shows. No record data (an email) here: the
# demo's store is gone when it ends, and a summary is no place for a person's address.
NEXT_STEPS = [
    {"command": "handshake sandbox serve --contacts 2000",
     "what": "the emulated HubSpot and Salesforce, serving: their URLs and credentials"},
    {"command": "handshake init handshake-trial",
     "what": "a commented handshake.toml and the mapping files in a new folder: point "
             "them at the sandbox (or your portal and org) and run from there"},
    {"command": "handshake sync pull; handshake sync score; handshake sync push --dry-run",
     "what": "one cycle on your own config, the push showing what it would write"},
    {"command": "handshake score explain <contact email>",
     "what": "how a contact's fit grade and interest score are made, rule by rule"},
    {"command": "handshake dlq list",
     "what": "the records parked for someone to fix: who must act, and why"},
]


def sandbox_config(info: dict[str, Any], db: Path) -> Config:
    """A config on the sandbox (`Sandbox.info()`), the shipped mapping files and a SQLite
    state at `db`: the demo's, and the benchmarks'."""
    hub, sf = info["hubspot"], info["salesforce"]
    config = Config(
        hubspot=HubSpotSettings(base_url=hub["base_url"]),
        salesforce=SalesforceSettings(
            instance_url=sf["instance_url"], login_url=sf["login_url"], ca_bundle=sf["ca_bundle"],
            daily_allocation_share=1.0,
        ),
        state=StateSettings(database_url=f"sqlite:///{db}"),
        mappings=MappingPaths(**{name: str(MAPPINGS_DIR / f"{name}.toml")
                                 for name in ("fields", "scoring", "lifecycle", "routing", "sla")}),
        pullback=PullbackSettings(lead_reason_field=LEAD_REASON_FIELD),
    )
    secrets = Secrets(
        hubspot_token=hub["access_token"], hubspot_app_secret=hub.get("app_secret"),
        sf_username=sf["username"],
        sf_password=sf["password"], sf_security_token=sf["security_token"],
    )
    return config.model_copy(update={"secrets": secrets})


class _StageProgress:
    """One stage's progress on the demo's display: its tasks named after the stage, with the
    totals the demo knows (the engines count, the demo knows how far they have to go)."""

    def __init__(self, sink: ProgressSink, stage: str,
                 totals: Mapping[str, int] | None = None) -> None:
        self.sink, self.stage, self.totals = sink, stage, dict(totals or {})

    def task(self, name: str, total: int | None = None) -> int:
        return self.sink.task(f"{self.stage}: {name}",
                              total if total is not None else self.totals.get(name))

    def advance(self, task: int, n: int = 1, *, total: int | None = None) -> None:
        self.sink.advance(task, n, total=total)

    def done(self, task: int) -> None:
        self.sink.done(task)


class SandboxTime:
    """The connector's clock on the sandbox's time, which the sales team moves days ahead;
    waits are real, and short (the sandbox's limits are lifted)."""

    def __init__(self, sb: Sandbox) -> None:
        self.sb = sb

    def now(self) -> datetime:
        return self.sb.clock.now()

    def sleep(self, seconds: float) -> None:
        time.sleep(min(max(seconds, 0.0), 0.05))

    def monotonic(self) -> float:
        return time.monotonic()


@dataclass
class _Worked:
    """What the simulated days left: each pull-back run's counts, and each Lead's status
    when the sales team started."""

    runs: list[Counter[str]] = field(default_factory=list)
    statuses: dict[str, str | None] = field(default_factory=dict)
    status: str = "ok"


def _work_the_handoffs(sb: Sandbox, config: Config, days: int, sink: ProgressSink, *,
                       every_hours: float, profile: dict[str, Any] | None) -> _Worked:
    """Let the sandbox's sales team work for `days` simulated days, the pull-back running
    every `every_hours` as a daemon would (the last run at the end of the last day)."""
    from connector import runtime

    assert sb.salesforce is not None
    worked = _Worked(statuses={r["Id"]: r.get("Status")
                               for r in sb.salesforce.state.records("Lead")})
    clock = SandboxTime(sb)
    simulator = sb.simulator(profile=profile)
    day = sink.task("sales team: simulated days", days)

    def pull_back() -> None:
        result = runtime.run_pullback_stage(config, clock=clock, trigger="demo")
        if result.status != "ok":
            worked.status = result.status
        worked.runs.append(Counter(result.counts))

    pull_back()  # the hand-offs as Handshake left them
    for _ in range(days):
        left = 24.0
        while left > 1e-9:
            chunk = min(every_hours, left)
            simulator.run(chunk, step_hours=min(1.0, chunk))
            left -= chunk
            pull_back()
        sink.advance(day)
    sink.done(day)
    return worked


def _write_report(store: Any, config: Config, path: Path, sb: Any) -> Path:
    """The HTML report of the demo's store, as of its newest pull-back (else the sandbox's
    now), written to `path`."""
    from connector.reports.html import render_html
    from connector.reports.report import config_report

    data = config_report(config, store, now=sb.clock.now())
    path = path.resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(data, title="Handshake demo report"), encoding="utf-8")
    return path


def run_demo(contacts: int = 2000, seed: int = 42, *, workdir: Path | None = None,
             progress: ProgressSink | None = None, days: int = DAYS,
             pullback_every_hours: float = PULLBACK_EVERY_HOURS,
             sales_profile: dict[str, Any] | None = None,
             report: Path | None = None) -> dict[str, Any]:
    """Run pull, score and push against a fresh sandbox, then let its sales team work the
    hand-offs for `days` simulated days with the pull-back running every
    `pullback_every_hours` (`sales_profile` changes the simulator's habits); returns the
    summary. `progress` shows each stage as it runs (nothing by default). With `report`, the
    HTML report of the run is written there (`summary["report"]`: its path)."""
    from connector import runtime
    from connector.demo.verify import (
        CHECKS,
        contact_breakdown,
        handoff_differences,
        minimum_hubspot_calls,
        minimum_pullback_calls,
        minimum_salesforce_calls,
        outcome_differences,
        outcome_truth,
        pull_differences,
        stored_outcomes,
    )
    from connector.mapping import load_routing
    from connector.sandbox import Sandbox
    from connector.sandbox.hubspot.settings import RateLimits
    from connector.store import Store

    sink = progress or NullProgress()
    tmp = tempfile.TemporaryDirectory(prefix="handshake-demo-") if workdir is None else None
    folder = Path(tmp.name) if tmp else Path(workdir)  # type: ignore[arg-type]
    try:
        starting = sink.task("sandbox: contacts generated", contacts)
        with Sandbox(contacts=contacts, seed=seed, workdir=folder / "sandbox") as sb:
            assert sb.hubspot is not None and sb.salesforce is not None and sb.dataset is not None
            sink.advance(starting, contacts)
            sink.done(starting)
            sb.hubspot.limiter.configure(RateLimits(window_max=10**9, daily=10**9,
                                                    search_per_second=10**6))
            sb.clock.advance(timedelta(hours=1))  # the data is history when the sync starts
            config = sandbox_config(sb.info(), folder / "state.db")
            gt = sb.dataset.ground_truth

            store = runtime.open_store(config)
            pulled = runtime.run_pull_stage(config, paced=False, progress=_StageProgress(
                sink, "pull", _pull_totals(sb.dataset))).counts
            scored = runtime.run_score_stage(config, progress=_StageProgress(
                sink, "score", {"contacts scored": store.count_contacts()}))
            leads_before = {r["Id"] for r in sb.salesforce.state.records("Lead")}
            routing = load_routing(config.mapping_path("routing"))
            users = sb.salesforce.state.records("User")
            routing_reads = (routing.mode == "handshake") * (
                bool(routing.capped_users(users)) + bool(routing.fallback_queue))
            pushed = runtime.run_push_stage(config, progress=_StageProgress(
                sink, "push", {"MQLs handed off": scored.counts.get("mql", 0)}))

            checking = sink.task("check: against the ground truth", 3)
            store = Store(config.state.database_url)
            hub_calls = sb.hubspot.stats.snapshot()["total"]
            sf_calls = int(pushed.counts.get("salesforce.calls", 0))
            leads = sb.salesforce.state.records("Lead")
            tasks = sb.salesforce.state.records("Task")
            mqls = _count_mqls(store)
            mql_emails = [c.email or "" for c in store.iter_mqls()]  # what the push matched
            task_count = (pushed.counts.get("tasks.handoff", 0)
                          + pushed.counts.get("tasks.activity", 0))
            breakdown = contact_breakdown(store, sb.dataset)
            pull_checks = pull_differences(store, sb.dataset)
            sink.advance(checking)
            handoff_checks = handoff_differences(
                store, sb.dataset, sb.salesforce.state, routing,
                external_id_field=config.salesforce.external_id_field,
                leads_before=leads_before)
            sink.advance(checking)
            summary: dict[str, Any] = {
                "contacts": store.count_contacts(),
                "activities": sum(store.count_activities_by_type(live_only=True).values()),
                "mqls": mqls,
                "sales_ready_in_ground_truth": len(gt.sales_ready),
                "leads_created": pushed.counts.get("leads.created", 0),
                "leads_updated": pushed.counts.get("leads.updated", 0),
                "linked_to_existing": (pushed.counts.get("leads.link_contact", 0)
                                       + pushed.counts.get("leads.link_converted", 0)
                                       + pushed.counts.get("leads.linked_duplicate", 0)),
                "tasks_created": task_count,
                "dead_letters": len(store.dead_letters()),
                "api_calls": {"hubspot": hub_calls, "salesforce": sf_calls},
                "minimum_calls": {
                    "hubspot": minimum_hubspot_calls(sb.dataset, scored.counts, pushed.counts),
                    "salesforce": minimum_salesforce_calls(
                        pushed.counts, mql_emails=mql_emails,
                        active_users=sum(1 for u in users if u.get("IsActive")),
                        routing_reads=routing_reads,
                        external_id_field=config.salesforce.external_id_field,
                        api_version=config.salesforce.api_version),
                },
                "salesforce_records": {"leads": len(leads), "tasks": len(tasks)},
                # the hand-off checked against the ground truth and routing.toml ([] = correct)
                "checks": handoff_checks,
                "stages": {"pull": "ok", "score": scored.status, "push": pushed.status},
                "counts": {"pull": _plain(pulled), "score": _plain(scored.counts),
                           "push": _plain(pushed.counts)},
                # added for a person reading the summary (the keys above keep their values)
                "seed": seed,
                "contacts_breakdown": breakdown,
                "handoff": _handoff(pushed.counts, mqls, gt, leads_before=len(leads_before)),
                "pull_checks": pull_checks,
                "checked": [{"stage": stage, "what": CHECKS[stage], "problems": problems}
                            for stage, problems in (
                                ("pull", len(pull_checks)),
                                ("score", int(mqls != len(gt.sales_ready))),
                                ("push", len(handoff_checks)))],
                "next_steps": NEXT_STEPS,
            }
            sink.advance(checking)
            sink.done(checking)
            if days > 0:
                # after the hand-off's checks: the sales team converts Leads into Contacts
                worked = _work_the_handoffs(sb, config, days, sink,
                                            every_hours=pullback_every_hours,
                                            profile=sales_profile)
                checking = sink.task("check: the pull-back against the ground truth", 1)
                # The pull-back's sections, each checked against the simulator's ground truth
                # and listed in "checked". Issue 11's SLA and recycling steps add theirs here:
                # summary["sla"] and summary["recycled"], with a "checked" entry each.
                handed_off = {link.sf_id for link in store.handoffs() if link.sf_object == "Lead"}
                # the Leads the pull-back handed back to marketing carry the status it set
                handed_back = {o.sf_id: str(o.status) for o in store.outcomes()
                               if o.kind in ("recycled", "disqualified") and o.status}
                truth = outcome_truth(sb.dataset, {lead: worked.statuses.get(lead)
                                                   for lead in handed_off}, handed_back)
                stored = stored_outcomes(store)
                outcome_checks = outcome_differences(stored, truth)
                summary["checks"] = [*handoff_checks, *outcome_checks]
                summary["checked"].append({"stage": "pullback", "what": CHECKS["pullback"],
                                           "problems": len(outcome_checks)})
                summary["outcomes"] = {
                    "days": days,
                    "pullback_every_hours": pullback_every_hours,
                    "pullback_runs": len(worked.runs),
                    "pullback_status": worked.status,
                    "handed_off_leads": len(handed_off),
                    **stored,
                    # the pull-back's reads, against the fewest the API allows for them; the
                    # SLA alerts, reassignments and recycling write in calls of their own
                    "api_calls": sum(r.get("salesforce.pull.calls", 0) for r in worked.runs),
                    "write_calls": sum(r.get("salesforce.calls", 0)
                                       - r.get("salesforce.pull.calls", 0)
                                       for r in worked.runs),
                    "minimum_calls": minimum_pullback_calls(worked.runs),
                    "ground_truth": truth,
                }
                sink.advance(checking)
                sink.done(checking)
            if report is not None:
                summary["report"] = str(_write_report(store, config, report, sb))
            store.close()
            return summary
    finally:
        if tmp is not None:
            tmp.cleanup()


def _pull_totals(dataset: SandboxDataset) -> dict[str, int]:
    """What the pull will read of each stream, known from the sandbox's dataset: its live
    contacts, every email event, form submission and webinar participation, and the page views
    of the contacts a pull keeps."""
    gt = dataset.ground_truth
    kept = set(gt.contact_ids) - set(gt.bad_records)
    return {
        "contacts": len(gt.contact_ids),
        "email_events": len(dataset.email_events),
        "form_submissions": len(dataset.form_submissions),
        "page_views": sum(1 for view in dataset.page_views if view.contact_id in kept),
        "webinars": len(dataset.participations),
    }


def _count_mqls(store: Store) -> int:
    """Live contacts whose newest score makes them an MQL."""
    return store.count_mqls()


def _handoff(push: Counter[str], mqls: int, gt: Any, *, leads_before: int) -> dict[str, Any]:
    """What the push did with each MQL, and why: a Lead created for a new email, an open Lead
    updated because sales already had one with that email, a Contact or converted Lead told
    instead of a Lead, or parked."""
    return {
        "mqls": mqls,
        "leads_created": push.get("leads.created", 0),
        "leads_updated": push.get("leads.updated", 0),
        "leads_unchanged": push.get("leads.unchanged", 0),
        "linked_to_contacts": push.get("leads.link_contact", 0),
        "linked_to_converted_leads": push.get("leads.link_converted", 0),
        "linked_by_duplicate_rule": push.get("leads.linked_duplicate", 0),
        "parked": push.get("leads.dead_letters", 0),
        "leads_in_salesforce_before": leads_before,
        "open_leads_in_ground_truth": len(gt.existing_sf_leads),
        "contacts_in_ground_truth": len(gt.existing_sf_contacts),
        "handoff_tasks": push.get("tasks.handoff", 0),
        "activity_tasks": push.get("tasks.activity", 0),
    }


def _plain(counts: Counter[str]) -> dict[str, int]:
    return {k: int(v) for k, v in sorted(counts.items())}
