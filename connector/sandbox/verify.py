"""Compare what Handshake stored with the sandbox's ground truth (tests, benchmarks, demo)."""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import Any

from sqlalchemy import select

from connector.sandbox.dataset import SandboxDataset
from connector.store import Activity, Contact, Store

# The Subject of a Task carrying one activity ends with its reference, "[hs-<contact>-a<id>]".
_ONE_ACTIVITY = re.compile(r"\[hs-[0-9A-Za-z]+-a\d+\]$")

__all__ = ["handoff_differences", "minimum_pull_calls", "pull_differences"]


def _diff(name: str, got: object, want: object) -> list[str]:
    return [] if got == want else [f"{name}: stored {got!r}, ground truth {want!r}"]


def pull_differences(store: Store, dataset: SandboxDataset) -> list[str]:
    """Every way the store's contacts and activities differ from a correct pull ([] = none)."""
    gt = dataset.ground_truth
    problems: list[str] = []
    live = {c.hubspot_id for c in store.iter_contacts()}
    want_live = set(gt.contact_ids) - set(gt.bad_records)
    if live != want_live:
        problems.append(f"live contacts: {len(live - want_live)} extra, "
                        f"{len(want_live - live)} missing (e.g. {sorted(want_live ^ live)[:5]})")
    with store.transaction() as s:
        archived = {c for c in s.scalars(select(Contact.hubspot_id).where(Contact.archived))}
        merged = dict(s.execute(select(Contact.hubspot_id, Contact.merged_into)
                                .where(Contact.merged_into.is_not(None))).all())
        by_contact = Counter(s.scalars(select(Activity.contact_id)))
    problems += _diff("archived contacts", len(archived ^ set(gt.archived_ids)), 0)
    problems += _diff("merged contacts", merged, gt.merged)
    problems += _diff("activities by type", store.count_activities_by_type(live_only=True),
                      {k: v for k, v in gt.activities_by_type.items() if v})
    want_by_contact = {k: v for k, v in gt.activities_by_contact.items() if k in live and v}
    got_by_contact = {k: v for k, v in by_contact.items() if k in live}
    if got_by_contact != want_by_contact:
        wrong = [k for k in want_by_contact.keys() | got_by_contact.keys()
                 if got_by_contact.get(k) != want_by_contact.get(k)]
        problems.append(f"activities per contact differ for {len(wrong)} contacts "
                        f"(e.g. {sorted(wrong)[:5]})")
    return problems


def minimum_pull_calls(dataset: SandboxDataset) -> int:
    """The fewest HubSpot calls a first pull of this dataset can make, page sizes being the
    documented maxima (list 100, email events 1,000, submissions 50, web events 100...)."""
    from connector.hubspot import settings as hs

    gt = dataset.ground_truth
    subs = Counter(s.form_guid for s in dataset.form_submissions)
    parts = Counter(p.event_id for p in dataset.participations)
    # Page views are read for the contacts a correct sync keeps (live ones with an email).
    wanted = set(gt.contact_ids) - set(gt.bad_records)
    views = Counter(v.contact_id for v in dataset.page_views if v.contact_id in wanted)
    return (
        math.ceil(len(gt.contact_ids) / hs.CONTACTS_LIST_LIMIT)
        + max(1, math.ceil(len(gt.archived_ids) / hs.CONTACTS_LIST_LIMIT))
        + max(1, math.ceil(len(dataset.email_events) / hs.EMAIL_EVENTS_LIMIT))
        + max(1, math.ceil(len(dataset.forms) / hs.FORMS_LIMIT))
        + sum(max(1, math.ceil(subs[f.guid] / hs.FORM_SUBMISSIONS_LIMIT)) for f in dataset.forms)
        + sum(math.ceil(n / hs.WEB_EVENTS_LIMIT) for n in views.values())
        + max(1, math.ceil(len(dataset.marketing_events) / hs.MARKETING_EVENTS_LIMIT))
        + sum(max(1, math.ceil(parts[e.id] / hs.PARTICIPATIONS_LIMIT))
              for e in dataset.marketing_events)
    )


def handoff_differences(store: Store, dataset: SandboxDataset, sf_state: Any,
                        routing: Any, *, external_id_field: str = "Handshake_Id__c",
                        leads_before: set[str] | None = None) -> list[str]:
    """Every way Salesforce differs from a correct hand-off of the stored MQLs ([] = none).

    Checks: the Leads carrying Handshake's id are exactly the sales-ready emails that are not
    already Contacts; no two Leads share an email; no Lead of ours is a Contact's email; every
    new Lead's owner is one routing.toml allows (its team's member, the HubSpot owner's user or
    the fallback); one hand-off Task per handed-off record; the activity Tasks carry each stored
    activity of each handed-off contact exactly once.
    """
    problems: list[str] = []
    gt = dataset.ground_truth
    leads = sf_state.records("Lead")
    contacts = {(r.get("Email") or "").lower() for r in sf_state.records("Contact")}
    contacts.discard("")
    ours = [r for r in leads if r.get(external_id_field)]
    our_emails = Counter((r.get("Email") or "").lower() for r in ours)
    want = {e.lower() for e in gt.sales_ready} - contacts
    # converted Leads hand over to their Contact: their emails are Contacts now
    if set(our_emails) != want:
        extra, missing = set(our_emails) - want, want - set(our_emails)
        problems.append(f"Leads with Handshake's id: {len(extra)} not sales-ready, "
                        f"{len(missing)} sales-ready missing (e.g. {sorted(extra ^ missing)[:3]})")
    shared = sorted(e for e, n in Counter((r.get("Email") or "").lower() for r in leads
                                          if not r.get("IsConverted")).items() if e and n > 1)
    problems += _diff("emails on two open Leads", shared, [])
    problems += _diff("Handshake Leads whose email is a Contact",
                      sorted(set(our_emails) & contacts), [])

    users = sf_state.records("User")
    by_key = {str(u.get(k) or "").lower(): u["Id"] for u in users for k in ("Email", "Username")}
    queues = {g["Id"] for g in sf_state.records("Group") if g.get("Type") == "Queue"}
    owners = {o.id: o.email.lower() for o in dataset.owners}
    wrong_owner = []
    for lead in ours:
        if leads_before is not None and lead["Id"] in leads_before:
            continue  # an existing Lead keeps the owner sales gave it
        contact = store.get_contact(lead[external_id_field])
        if contact is None:
            wrong_owner.append(lead["Id"])
            continue
        owner_email = owners.get(str(contact.properties.get("hubspot_owner_id") or ""))
        expected = routing.assign(contact.properties, users=users, store=None,
                                  owner_email=owner_email)
        if expected.team is not None:
            allowed = {by_key.get(m.user.lower()) for m in routing.spec.teams[expected.team].members}
        elif expected.use_assignment_rules:
            continue
        else:
            allowed = {expected.owner_id}
        # a team at capacity hands over to the fallback queue
        if lead["OwnerId"] not in allowed and lead["OwnerId"] not in queues:
            wrong_owner.append(lead["Id"])
    problems += _diff("Leads whose owner routing.toml does not give", wrong_owner[:5], [])

    linked = {c.hubspot_id: link for c in store.iter_contacts()
              if (link := store.linked(c.hubspot_id)) is not None}
    tasks = sf_state.records("Task")
    handoffs = Counter(t.get("WhoId") for t in tasks
                       if str(t.get("Subject") or "").startswith("Handshake hand-off"))
    want_who = Counter({link.sf_id: 1 for link in linked.values()})
    problems += _diff("hand-off Tasks per handed-off record",
                      sorted((k, v) for k, v in handoffs.items() if want_who.get(k) != v)[:5], [])
    problems += _diff("handed-off records without a hand-off Task",
                      sorted(set(want_who) - set(handoffs))[:5], [])
    lines: Counter[str] = Counter()
    for t in tasks:
        subject = str(t.get("Subject") or "")
        if subject.startswith("Marketing activity"):
            lines[t.get("WhoId")] += len([x for x in str(t.get("Description") or "").splitlines()
                                          if x.strip()])
        elif _ONE_ACTIVITY.search(subject):  # [push] activity_tasks = "each"
            lines[t.get("WhoId")] += 1
    activities = store.activities_for_many(list(linked))
    off = sorted(hid for hid, link in linked.items()
                 if lines.get(link.sf_id, 0) != len(activities.get(hid, [])))
    problems += _diff("handed-off contacts whose activity Tasks differ from the stored "
                      "activities", off[:5], [])
    return problems
