"""`handshake mappings preview`: what the mapping files would write for sample MQLs, field by
field, next to what Salesforce holds now. The values come from the push's own planning
(`connector.push.engine.plan_leads`: fields.toml, its transforms and sync rules, the email
matching); Salesforce is only read (the Leads by external id, or by the id the email matched),
and nothing is written anywhere. Owners are left out: routing moves round-robin pointers."""

from __future__ import annotations

import json
from itertools import islice
from typing import Any

from connector.clock import Clock, SystemClock
from connector.config import Config
from connector.store import Store

__all__ = ["preview_mappings"]


def _same(a: Any, b: Any) -> bool:
    """Equal as Salesforce would show them (numbers and their text alike; None and "")."""
    if a in (None, "") and b in (None, ""):
        return True
    if isinstance(a, int | float) and isinstance(b, int | float):
        return float(a) == float(b)
    return str(a) == str(b)


def preview_mappings(config: Config, *, sample: int = 5,
                     clock: Clock | None = None) -> dict[str, Any]:
    """Up to `sample` MQLs from the store: for each, the push's action (create, update,
    link to a Contact...) and, per mapped Lead field, the value it would write and the
    Lead's current value. A bad mapping file raises `ConfigError` before any call."""
    from connector.mapping import load_fields, load_routing
    from connector.push.engine import PushContext, plan_leads
    from connector.salesforce import SalesforceClient
    from connector.salesforce.governor import GovernorSnapshot
    from connector.scoring import Engine, load_model

    clock = clock or SystemClock()
    fields = load_fields(config.mapping_path("fields"))
    routing = load_routing(config.mapping_path("routing"))
    engine = Engine(load_model(config.mapping_path("scoring")))
    store = Store(config.state.database_url, clock=clock)
    try:
        contacts = list(islice(store.iter_mqls(batch=max(sample, 1)), sample))
        if not contacts:
            return {"sample": sample, "records": []}
        saved = store.get_bookmark("salesforce.governor")
        snapshot = GovernorSnapshot.from_json(json.loads(saved)) if saved else None
        ext = config.salesforce.external_id_field
        with SalesforceClient.from_config(config, clock=clock, snapshot=snapshot) as sf:
            ctx = PushContext(store=store, sf=sf, fields=fields, routing=routing, engine=engine,
                              clock=clock, external_id_field=ext, dry_run=True,
                              existing_contact=config.push.existing_contact)
            plans = plan_leads(ctx, contacts)
            describe = sf.fields(fields.sobject)
            names = sorted({k for p in plans for k in (p.payload or p.values)
                            if k in describe and k != "Id"})
            by_ext = sf.match_external_ids([p.contact.hubspot_id for p in plans]).leads
            lead_ids = {p.contact.hubspot_id: (by_ext[p.contact.hubspot_id].id
                                               if p.contact.hubspot_id in by_ext else
                                               p.sf_id if p.action == "update" else None)
                        for p in plans}
            current = {str(r["Id"]): r for r in sf.records_by_id(
                "Lead", [i for i in lead_ids.values() if i], names, what="preview Leads")}
            calls = sf.calls
    finally:
        store.close()
    records = []
    for plan in plans:
        hid = plan.contact.hubspot_id
        lead_id = lead_ids.get(hid)
        now = current.get(lead_id or "", {})
        mapped = plan.payload or plan.values
        rows = []
        if plan.action in ("create", "update"):
            for name in sorted(k for k in mapped if k != "Id"):
                writes = name in plan.values
                value = plan.values.get(name) if writes else None
                rows.append({"field": name, "would_write": value, "writes": writes,
                             "mapped": mapped.get(name), "salesforce": now.get(name),
                             "same": (not writes) or _same(value, now.get(name))})
        records.append({"hubspot_id": hid, "action": plan.action,
                        "sf_object": "Contact" if plan.action.startswith("link_") else "Lead",
                        "sf_id": lead_id or plan.sf_id, "why": plan.why,
                        "fixed": list(plan.fixed), "fields": rows})
    return {"sample": sample, "records": records, "salesforce_calls": calls}
