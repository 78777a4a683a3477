"""When HubSpot merges a contact into one already handed off, the merged contact's engagement
reaches the survivor's Lead too (each activity once), whatever its place in the history."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from connector.demo import MAPPINGS_DIR
from connector.demo.verify import handoff_differences
from connector.mapping import load_routing
from connector.runtime import run_push_stage
from connector.store import Store
from tests.push.helpers import pull_and_score, sandbox_org


def test_a_merged_contacts_activities_reach_the_survivors_lead(tmp_path: Path) -> None:
    with sandbox_org(tmp_path, 500) as (sb, config):
        pull_and_score(config)
        leads_before = {r["Id"] for r in sb.salesforce.state.records("Lead")}
        run_push_stage(config)
        store = Store(config.state.database_url)
        acts = store.activities_for_many([c.hubspot_id for c in store.iter_contacts()])
        linked = {c.hubspot_id for c in store.iter_contacts() if store.linked(c.hubspot_id)}
        survivor = next(h for h in sorted(linked) if len(acts.get(h, [])) > 5)
        span = (min(a.id for a in acts[survivor]), max(a.id for a in acts[survivor]))
        # a contact never handed off, some of whose activities sit inside the survivor's span
        merged = next(h for h, a in sorted(acts.items()) if h not in linked
                      and sum(span[0] < x.id < span[1] for x in a) >= 3)
        moving = len(acts[merged])

        sb.clock.advance(timedelta(minutes=30))
        sb.hubspot.state.merge_contacts(survivor, merged)
        sb.clock.advance(timedelta(minutes=5))
        pull_and_score(config)
        run_push_stage(config)

        now = store.activities_for_many([survivor])[survivor]
        assert len(now) == len(acts[survivor]) + moving
        problems = handoff_differences(store, sb.dataset, sb.salesforce.state,
                                       load_routing(MAPPINGS_DIR / "routing.toml"),
                                       leads_before=leads_before)
        assert [p for p in problems if "activity Tasks" in p] == []
