"""`handshake demo`: a whole sync cycle (pull, score, push) against the sandbox, in-process.

The sandbox's rate limits and the client's pacing are lifted so the demo takes seconds, not the
twenty minutes HubSpot's Professional tier would need; every API call is still counted and set
against the minimum the APIs allow for the same data.
"""

from __future__ import annotations

import math
import tempfile
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

from connector.config import (
    Config,
    HubSpotSettings,
    MappingPaths,
    SalesforceSettings,
    Secrets,
    StateSettings,
)

__all__ = ["MAPPINGS_DIR", "run_demo"]

# Records one Salesforce write call can carry: 5 sObject Collections of 200 in a composite call.
COMPOSITE_RECORDS = 1000

# The mapping files shipped with Handshake (the repository's mappings/ folder).
MAPPINGS_DIR = Path(__file__).resolve().parent.parent / "mappings"


def _config(info: dict[str, Any], db: Path) -> Config:
    hub, sf = info["hubspot"], info["salesforce"]
    config = Config(
        hubspot=HubSpotSettings(base_url=hub["base_url"]),
        salesforce=SalesforceSettings(
            instance_url=sf["instance_url"], login_url=sf["login_url"], ca_bundle=sf["ca_bundle"],
            daily_allocation_share=1.0,
        ),
        state=StateSettings(database_url=f"sqlite:///{db}"),
        mappings=MappingPaths(**{name: str(MAPPINGS_DIR / f"{name}.toml")
                                 for name in ("fields", "scoring", "lifecycle", "routing")}),
    )
    secrets = Secrets(
        hubspot_token=hub["access_token"], sf_username=sf["username"],
        sf_password=sf["password"], sf_security_token=sf["security_token"],
    )
    return config.model_copy(update={"secrets": secrets})


def run_demo(contacts: int = 2000, seed: int = 42, *, workdir: Path | None = None) -> dict[str, Any]:
    """Run pull, score and push against a fresh sandbox; returns the summary."""
    from connector.mapping import load_routing
    from connector.pull import pull
    from connector.runtime import (
        lift_pacing,
        open_store,
        pull_context,
        run_push_stage,
        run_score_stage,
    )
    from connector.sandbox import Sandbox
    from connector.sandbox.hubspot.settings import RateLimits
    from connector.sandbox.verify import handoff_differences, minimum_pull_calls
    from connector.store import Store

    tmp = tempfile.TemporaryDirectory(prefix="handshake-demo-") if workdir is None else None
    folder = Path(tmp.name) if tmp else Path(workdir)  # type: ignore[arg-type]
    try:
        with Sandbox(contacts=contacts, seed=seed, workdir=folder / "sandbox") as sb:
            assert sb.hubspot is not None and sb.salesforce is not None and sb.dataset is not None
            sb.hubspot.limiter.configure(RateLimits(window_max=10**9, daily=10**9,
                                                    search_per_second=10**6))
            sb.clock.advance(timedelta(hours=1))  # the data is history when the sync starts
            config = _config(sb.info(), folder / "state.db")

            store = open_store(config)
            ctx = lift_pacing(pull_context(config, store))
            pulled = pull(ctx)
            ctx.client.close()
            scored = run_score_stage(config)
            leads_before = {r["Id"] for r in sb.salesforce.state.records("Lead")}
            routing = load_routing(config.mapping_path("routing"))
            routing_reads = (routing.mode == "handshake") * (
                bool(routing.capped_users(sb.salesforce.state.records("User")))
                + bool(routing.fallback_queue))
            pushed = run_push_stage(config)

            store = Store(config.state.database_url)
            gt = sb.dataset.ground_truth
            hub_calls = sb.hubspot.stats.snapshot()["total"]
            sf_calls = int(pushed.counts.get("salesforce.calls", 0))
            leads = sb.salesforce.state.records("Lead")
            tasks = sb.salesforce.state.records("Task")
            mqls = sum(1 for c in store.iter_contacts()
                       if (s := store.latest_score(c.hubspot_id)) is not None and s.is_mql)
            task_count = (pushed.counts.get("tasks.handoff", 0)
                          + pushed.counts.get("tasks.activity", 0))
            summary = {
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
                    # the pull's minimum, plus the score write-back's: reading the property
                    # list, one call per property created, one per 100 contacts updated
                    # (+1 for the owners read the push routes HubSpot owners with)
                    "hubspot": minimum_pull_calls(sb.dataset) + 1 + 1
                    + scored.counts.get("hubspot.properties.created", 0)
                    + math.ceil(scored.counts.get("hubspot.contacts.updated", 0) / 100)
                    # and the hand-off write-back's, the same way
                    + _writeback_minimum(pushed.counts),
                    # describe + users (+ reps' open Leads and the fallback queue when routing
                    # caps capacity or names a queue), two matching queries per 200 MQLs, then
                    # the open Leads' current values (200 ids a query, for the sync rules),
                    # the writes: a composite call carries 5 collections of 200, 1,000
                    # records, per kind of write (Lead creates, Lead updates, Tasks)
                    "salesforce": 2 + routing_reads + 2 * math.ceil(mqls / 200)
                    + math.ceil(pushed.counts.get("leads.current_values_read", 0) / 200)
                    + math.ceil(pushed.counts.get("leads.created", 0) / COMPOSITE_RECORDS)
                    + math.ceil(pushed.counts.get("leads.updated", 0) / COMPOSITE_RECORDS)
                    + math.ceil(task_count / COMPOSITE_RECORDS),
                },
                "salesforce_records": {"leads": len(leads), "tasks": len(tasks)},
                # the hand-off checked against the ground truth and routing.toml ([] = correct)
                "checks": handoff_differences(store, sb.dataset, sb.salesforce.state,
                                              routing,
                                              external_id_field=config.salesforce.external_id_field,
                                              leads_before=leads_before),
                "stages": {"pull": "ok", "score": scored.status, "push": pushed.status},
                "counts": {"pull": _plain(pulled), "score": _plain(scored.counts),
                           "push": _plain(pushed.counts)},
            }
            store.close()
            return summary
    finally:
        if tmp is not None:
            tmp.cleanup()


def _writeback_minimum(counts: Counter[str]) -> int:
    updated = counts.get("hubspot.handoff.contacts.updated", 0)
    if not updated:
        return 0
    return 1 + counts.get("hubspot.handoff.properties.created", 0) + math.ceil(updated / 100)


def _plain(counts: Counter[str]) -> dict[str, int]:
    return {k: int(v) for k, v in sorted(counts.items())}
