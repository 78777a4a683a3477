"""Shared pieces of the backfill tests: sandboxes of one seed and start (so two orgs hold the
same data), their config files, the `handshake` command run as a subprocess, and what the two
systems and the store hold, in terms that do not depend on ids or on the instant of a run."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from connector.config import Config, load_config
from connector.runtime import open_store
from connector.sandbox import Sandbox
from tests.pull.helpers import sandbox_env, sandbox_toml, unthrottle
from tests.push.helpers import tasks

ROOT = Path(__file__).resolve().parents[2]
MAPPINGS = ROOT / "mappings"
CONTACTS = 300
SEED = 31
# every org of a test session starts at the same instant: the same generated data
START = (datetime.now(UTC) - timedelta(minutes=10)).replace(second=0, microsecond=0)
SINCE = (START - timedelta(days=400)).date().isoformat()
VOLATILE_SF = {"attributes", "Id", "CreatedDate", "LastModifiedDate", "SystemModstamp",
               "CompletedDateTime"}
# set or not: they move with each write, or tell the instant (or decayed points) of a run
VOLATILE_HS = ("lastmodifieddate", "hs_lastmodifieddate", "handshake_handed_off_at",
               "handshake_score_reasons", "handshake_mql_date")
STAMPED_HS = ("hs_lifecyclestage_", "hs_date_entered_", "hs_date_exited_", "hs_time_in_")


def write_config(sb: Sandbox, folder: Path, name: str, *, fields: Path | None = None) -> Config:
    """The config file of an org (its store `folder`/`name`.db), loaded as the CLI loads it."""
    mappings = {"fields": fields or MAPPINGS / "fields.toml",
                "scoring": MAPPINGS / "scoring.toml", "routing": MAPPINGS / "routing.toml",
                "sla": MAPPINGS / "sla.toml"}
    path = folder / f"{name}.toml"
    path.write_text(sandbox_toml(sb, folder / f"{name}.db") + "[mappings]\n" + "".join(
        f'{k} = "{v}"\n' for k, v in mappings.items()))
    return load_config(path, sandbox_env(sb))


@contextmanager
def org(folder: Path, name: str, *, fields: Path | None = None,
        **sandbox: Any) -> Iterator[tuple[Sandbox, Config]]:
    """A sandbox of the session's seed and start (its rate limits lifted) and its config."""
    folder.mkdir(parents=True, exist_ok=True)
    with Sandbox(contacts=CONTACTS, seed=SEED, start=START, workdir=folder / f"{name}-sb",
                 **sandbox) as sb:
        unthrottle(sb)
        yield sb, write_config(sb, folder, name, fields=fields)


def command(sb: Sandbox, config: Config, *args: str) -> list[str]:
    return [sys.executable, "-m", "connector.cli", *args, "-c", str(config.source)]


def environment(sb: Sandbox) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **sandbox_env(sb)}


def start(sb: Sandbox, config: Config, *args: str) -> subprocess.Popen[bytes]:
    """`handshake <args> -c <config>` started as a subprocess."""
    return subprocess.Popen(command(sb, config, *args), cwd=ROOT, env=environment(sb),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def run(sb: Sandbox, config: Config, *args: str) -> subprocess.CompletedProcess[str]:
    """`handshake <args> -c <config>` run to its end."""
    return subprocess.run(command(sb, config, *args), check=False, cwd=ROOT, env=environment(sb),
                          capture_output=True, text=True, timeout=300)


# --- what the two systems and the store hold -------------------------------------------------


def handshake_leads(sb: Sandbox) -> dict[str, dict[str, Any]]:
    """Handshake's Leads by HubSpot id, without ids and write times."""
    state = sb.salesforce.state  # type: ignore[union-attr]
    out: dict[str, dict[str, Any]] = {}
    for record in state.records("Lead"):
        hid = record.get("Handshake_Id__c")
        if hid:
            assert hid not in out, f"two Leads for HubSpot contact {hid}"
            out[hid] = {k: v for k, v in record.items() if k not in VOLATILE_SF}
    return out


def hubspot_contacts(sb: Sandbox) -> dict[str, dict[str, Any]]:
    """HubSpot's contacts; times that move with each write compared as set or not, and the
    score as a whole number (interest decays between two runs minutes apart)."""
    state = sb.hubspot.state  # type: ignore[union-attr]
    out: dict[str, dict[str, Any]] = {}
    for cid, contact in state.contacts.items():
        props: dict[str, Any] = {}
        for k, v in contact.props.items():
            if k.startswith(STAMPED_HS) or k in VOLATILE_HS:
                props[k] = bool(v)
            elif k == "handshake_score" and v not in (None, ""):
                props[k] = round(float(v))
            else:
                props[k] = v
        out[cid] = props
    return out


def store_state(config: Config) -> dict[str, Any]:
    """The store: each contact's newest score (MQL or not, grade), lifecycle steps, links,
    ledger, hand-off states, dead letters and anything left pending."""
    store = open_store(config)
    try:
        ids = [c.hubspot_id for c in store.iter_contacts()]
        latest = store.latest_scores(ids)
        scores = {h: (s.is_mql, s.fit_grade) for h, s in latest.items()}
        steps = Counter((t.contact_id, t.from_stage, t.to_stage)
                        for t in _transitions(store, ids))
        links = {link.hubspot_id: (link.sf_object, link.how) for link in store.handoffs()}
        ledger = Counter((e.key, e.status) for e in store.ledger_entries(""))
        states = {h: (s.status, s.is_converted) for h, s in store.handoff_states().items()}
        dead = Counter((d.stage, d.record_key, d.error_code) for d in store.dead_letters())
        pending = [e.key for e in store.pending_writes()]
        contacts = store.count_contacts()
        activities = store.count_activities_by_type()
    finally:
        store.close()
    return {"scores": scores, "steps": steps, "links": links, "ledger": ledger,
            "states": states, "dead_letters": dead, "pending": pending, "contacts": contacts,
            "activities": activities}


def _transitions(store: Any, ids: list[str]) -> list[Any]:
    found = store.transitions_for_many(ids)
    return [t for rows in found.values() for t in rows]


def everything(sb: Sandbox, config: Config) -> dict[str, Any]:
    return {"leads": handshake_leads(sb), "tasks": tasks(sb, with_handoff_text=False),
            "hubspot": hubspot_contacts(sb), "store": store_state(config)}
