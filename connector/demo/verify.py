"""Handshake's results checked against the sandbox's ground truth, and the fewest API calls
the same data allows (the demo, the tests and the benchmarks).

The sandbox knows nothing of the product; these checks read its dataset and ground truth
through its public API (`connector.sandbox`) and the product's store.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote_plus

from connector.hubspot import settings as hs
from connector.salesforce import settings as ss
from connector.store import Store

if TYPE_CHECKING:
    from connector.sandbox import SandboxDataset

# The Subject of a Task carrying one activity ends with its reference, "[hs-<contact>-a<id>]".
_ONE_ACTIVITY = re.compile(r"\[hs-[0-9A-Za-z]+-a\d+\]$")

__all__ = [
    "CHECKS",
    "contact_breakdown",
    "handoff_differences",
    "in_list_queries",
    "minimum_hubspot_calls",
    "minimum_pull_calls",
    "minimum_pullback_calls",
    "minimum_pullback_run_calls",
    "minimum_salesforce_calls",
    "outcome_differences",
    "outcome_truth",
    "pull_differences",
    "stored_outcomes",
]

# What `pull_differences` and `handoff_differences` (and the demo, for the MQLs) compare with
# the ground truth, as a person reads it.
CHECKS = {
    "pull": "live, archived and merged contacts; activities by type and per contact",
    "score": "the MQLs are the contacts the ground truth makes sales-ready",
    "push": "Leads are the sales-ready emails that are not Contacts, none twice; new Leads' "
            "owners as routing.toml gives; one hand-off Task per handed-off record; each "
            "stored activity once in the activity Tasks",
    "pullback": "handed-off Leads by current status, logged calls and emails, conversions and "
                "opportunities won or lost are what the sales team did",
}

# The pull-back's streams (connector.pullback.STREAMS) and the org vocabulary it reads once a
# changed record needs it (LeadStatus, OpportunityStage, TaskStatus).
PULLBACK_OBJECTS = ("Lead", "Opportunity", "Task", "Event")
FOLLOWED_OBJECTS = ("Lead", "Contact", "Opportunity")  # asked to the deleted-records resource
VOCABULARY_READS = 3
_ATTEMPTS = ("call", "email")
_WON, _LOST = "Closed Won", "Closed Lost"


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
    archived = store.archived_contact_ids()
    merged = store.merged_contacts()
    by_contact = store.count_activities_by_contact()
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


def contact_breakdown(store: Store, dataset: SandboxDataset) -> dict[str, Any]:
    """Where the generated contacts went: pulled (live, in the store), archived or merged in
    HubSpot, or parked as dead letters (with what is wrong with them, by kind). The ground
    truth says what a correct pull gives; the store what this one gave."""
    gt = dataset.ground_truth
    archived = len(store.archived_contact_ids())
    merged = len(store.merged_contacts())
    parked = [d for d in store.dead_letters(stage="pull")
              if d.record_key.startswith("contacts:")]
    return {
        "generated": len(dataset.contacts),
        "pulled": store.count_contacts(),
        "archived": archived,
        "merged": merged,
        "parked": len(parked),
        "parked_why": dict(sorted(Counter(gt.bad_records.values()).items())),
        "ground_truth": {
            "live": len(set(gt.contact_ids) - set(gt.bad_records)),
            "archived": len(gt.archived_ids),
            "merged": len(gt.merged),
            "bad": len(gt.bad_records),
        },
    }


def minimum_pull_calls(dataset: SandboxDataset) -> int:
    """The fewest HubSpot calls a first pull of this dataset can make, page sizes being the
    documented maxima (list 100, email events 1,000, submissions 50, web events 100...)."""
    gt = dataset.ground_truth
    subs = Counter(s.form_guid for s in dataset.form_submissions)
    parts = Counter(p.event_id for p in dataset.participations)
    # Page views are read portal-wide (the events API without `objectId`): every view of the
    # portal, a full page at a time, in one time window.
    return (
        math.ceil(len(gt.contact_ids) / hs.CONTACTS_LIST_LIMIT)
        + max(1, math.ceil(len(gt.archived_ids) / hs.CONTACTS_LIST_LIMIT))
        + max(1, math.ceil(len(dataset.email_events) / hs.EMAIL_EVENTS_LIMIT))
        + max(1, math.ceil(len(dataset.forms) / hs.FORMS_LIMIT))
        + sum(max(1, math.ceil(subs[f.guid] / hs.FORM_SUBMISSIONS_LIMIT)) for f in dataset.forms)
        + max(1, math.ceil(len(dataset.page_views) / hs.WEB_EVENTS_LIMIT))
        + max(1, math.ceil(len(dataset.marketing_events) / hs.MARKETING_EVENTS_LIMIT))
        + sum(max(1, math.ceil(parts[e.id] / hs.PARTICIPATIONS_LIMIT))
              for e in dataset.marketing_events)
    )


# HubSpot's batch update takes 100 contacts a call.
HUBSPOT_BATCH_UPDATE = 100
# Records one Salesforce write call can carry: 5 sObject Collections of 200 in a composite call.
COMPOSITE_RECORDS = ss.COLLECTION_MAX_RECORDS * ss.COMPOSITE_MAX_COLLECTIONS
# A Bulk API 2.0 job, whatever its size (up to 100 MB of CSV): create, upload, close, one status
# read, the successful results.
BULK_JOB_CALLS = 5
# A Salesforce record id in an IN list: 18 characters.
SALESFORCE_ID_CHARS = 18


def minimum_hubspot_calls(dataset: SandboxDataset, score: Mapping[str, int],
                          push: Mapping[str, int]) -> int:
    """The fewest HubSpot calls a first cycle on this dataset can make: the pull's minimum,
    the score write-back's (reading the property list, one call per property created, one per
    100 contacts updated), the owners read the push routes HubSpot owners with, and the
    hand-off write-back's, counted as the score's."""
    return (minimum_pull_calls(dataset) + 1 + 1
            + score.get("hubspot.properties.created", 0)
            + math.ceil(score.get("hubspot.contacts.updated", 0) / HUBSPOT_BATCH_UPDATE)
            + _handoff_writeback_minimum(push))


def _handoff_writeback_minimum(push: Mapping[str, int]) -> int:
    updated = push.get("hubspot.handoff.contacts.updated", 0)
    if not updated:
        return 0
    return (1 + push.get("hubspot.handoff.properties.created", 0)
            + math.ceil(updated / HUBSPOT_BATCH_UPDATE))


def minimum_salesforce_calls(
    push: Mapping[str, int], *, mql_emails: Iterable[str], active_users: int,
    routing_reads: int, external_id_field: str, api_version: str,
) -> int:
    """The fewest Salesforce calls a first push of these MQLs can make (logins are not calls).

    Reads: the Lead describe, the active users (2,000 rows a page), routing's reads (capped
    reps' open Leads, the fallback queue: `routing_reads`), the Contacts and the Leads having
    the MQLs' emails, and the open Leads' current values for the sync rules. A query carries
    its values in the URL (`... IN (...)`), so how many one query can carry is set by the URL
    limit, not by a count: the floor is the values' encoded length over the room one URL
    leaves. Writes: Lead creates 1,000 a composite call (5 collections of 200) or one Bulk API
    job, whichever is fewer; Lead updates and Tasks 1,000 a composite call.
    """
    emails = list(dict.fromkeys(e.strip().lower() for e in mql_emails
                                if e and e.strip() and len(e.strip()) <= ss.EMAIL_MAX_LENGTH))

    def match_head(sobject: str, fields: Iterable[str]) -> str:
        select = ", ".join(dict.fromkeys([*fields, external_id_field]))
        return f"SELECT {select} FROM {sobject} WHERE {ss.EMAIL}"

    current = push.get("leads.current_values_read", 0)
    created = push.get("leads.created", 0)
    tasks = push.get("tasks.handoff", 0) + push.get("tasks.activity", 0)
    return (
        1 + max(1, math.ceil(active_users / ss.QUERY_MAX_BATCH)) + routing_reads
        + in_list_queries(emails, match_head(ss.CONTACT, ss.CONTACT_MATCH_FIELDS), api_version)
        + in_list_queries(emails, match_head(ss.LEAD, ss.LEAD_MATCH_FIELDS), api_version)
        + in_list_queries(["0" * SALESFORCE_ID_CHARS] * current,
                          f"SELECT {ss.ID} FROM {ss.LEAD} WHERE {ss.ID}", api_version)
        + min(math.ceil(created / COMPOSITE_RECORDS), BULK_JOB_CALLS)
        + math.ceil(push.get("leads.updated", 0) / COMPOSITE_RECORDS)
        + math.ceil(tasks / COMPOSITE_RECORDS)
    )


def in_list_queries(values: Iterable[str], head: str, api_version: str) -> int:
    """The fewest `head IN (values)` queries that carry every value within Salesforce's URL and
    SOQL length limits (a query is a GET: its SOQL travels in the URL)."""
    values = list(values)
    if not values:
        return 0
    prefix = f"/services/data/v{api_version}/{ss.QUERY}/?q="
    url_room = ss.MAX_QUERY_URI_CHARS - len(prefix) - len(quote_plus(head + " IN ()"))
    soql_room = ss.MAX_SOQL_CHARS - len(head + " IN ()")
    # Escaping a value can only lengthen it: its bare quoted form is a floor on its cost. Each
    # value is counted with a comma, so each query's room gets the one its last value lacks.
    comma = len(quote_plus(","))
    url_cost = sum(len(quote_plus(f"'{v}'")) + comma for v in values)
    soql_cost = sum(len(v) + 3 for v in values)
    return max(math.ceil(url_cost / (url_room + comma)), math.ceil(soql_cost / (soql_room + 1)))


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

    live = [c.hubspot_id for c in store.iter_contacts()]
    linked: dict[str, Any] = {}
    for k in range(0, len(live), 1000):  # a query a thousand contacts, not one each
        linked.update(store.linked_many(live[k:k + 1000]))
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


def outcome_truth(dataset: SandboxDataset, leads: Mapping[str, str | None],
                  handed_back: Mapping[str, str] | None = None) -> dict[str, Any]:
    """What the sales-team simulator's log (the ground truth) says happened to the handed-off
    Leads: `leads` maps each one's id to its status when the simulator started; `handed_back`
    maps the Leads Handshake recycled to the status it gave them (the simulator works no Lead
    once it is back with marketing; converted Leads keep theirs). The same figures as `stored_outcomes`."""
    entries = [e for e in dataset.ground_truth.simulator
               if e.get("lead_id") in leads and "error" not in e]
    status = dict(leads)
    for entry in entries:
        if entry.get("status"):
            status[entry["lead_id"]] = entry["status"]
    # a converted Lead cannot be updated: an opportunity lost is recycled on the Contact's side
    converted = {e["lead_id"] for e in entries if e.get("action") == "convert"}
    status.update({lead: s for lead, s in (handed_back or {}).items()
                   if lead in status and lead not in converted})
    actions = Counter(e["action"] for e in entries)
    closed = Counter(e.get("stage") for e in entries if e["action"] == "close_opportunity")
    return {
        "leads_by_status": _by_status(status.values()),
        "attempts": sum(actions[a] for a in _ATTEMPTS),
        "calls": actions["call"],
        "emails": actions["email"],
        "conversions": actions["convert"],
        "opportunities_won": closed[_WON],
        "opportunities_lost": closed[_LOST],
    }


def stored_outcomes(store: Store) -> dict[str, Any]:
    """What the pull-back stored of the handed-off Leads: each one's current status, the
    calls and emails logged on them, conversions, and opportunities won or lost."""
    status = {s.lead_id: s.status for s in store.handoff_states().values() if s.lead_id}
    kinds: Counter[str] = Counter()
    channels: Counter[str] = Counter()
    for outcome in store.outcomes():
        kinds[outcome.kind] += 1
        if outcome.kind == "attempt":
            channels[str(outcome.details.get("channel"))] += 1
    return {
        "leads_by_status": _by_status(status.values()),
        "attempts": kinds["attempt"],
        "calls": channels["call"],
        "emails": channels["email"],
        "conversions": kinds["converted"],
        "opportunities_won": kinds["won"],
        "opportunities_lost": kinds["lost"],
    }


def _by_status(statuses: Iterable[str | None]) -> dict[str, int]:
    return dict(sorted(Counter(s or "(none)" for s in statuses).items()))


def outcome_differences(stored: Mapping[str, Any], truth: Mapping[str, Any]) -> list[str]:
    """Every figure of the pull-back's outcomes that differs from the ground truth's."""
    return [problem for key in truth
            for problem in _diff(f"pull-back {key.replace('_', ' ')}", stored.get(key),
                                 truth[key])]


def minimum_pullback_calls(runs: Iterable[Mapping[str, int]]) -> int:
    """The fewest Salesforce calls the same pull-back runs can make for their reads (logins
    are not calls), each run's as `minimum_pullback_run_calls` counts them."""
    return sum(minimum_pullback_run_calls(counts) for counts in runs)


def minimum_pullback_run_calls(counts: Mapping[str, int]) -> int:
    """The fewest Salesforce calls one pull-back run's reads allow (its counts say what it read).

    Each object (Lead, Opportunity, Task, Event) needs one query operation to learn nothing
    changed, a page per 2,000 rows read (the lookback's too), one page after another; the
    org's vocabulary three when the run read it; a deleted record looked up one more, after the
    deleted check that named it. A composite call carries 5 query operations and 25
    subrequests and counts once: a run needs at least its longest chain of pages, the query
    operations over 5, and the subrequests over 25.
    """
    chains = [max(1, math.ceil(counts.get(f"{o}.read", 0) / ss.QUERY_MAX_BATCH))
              for o in PULLBACK_OBJECTS]
    checks = sum(1 for o in FOLLOWED_OBJECTS if f"{o}.deleted_listed" in counts)
    if counts.get("deleted.window_gone"):
        checks = max(checks, counts["deleted.window_gone"])
    lookups = sum(1 for o in FOLLOWED_OBJECTS
                  if counts.get(f"{o}.deleted", 0) + counts.get(f"{o}.merged", 0))
    if lookups:
        chains.append(2)  # a lookup comes after the check that named the records
    queries = sum(chains) + lookups + VOCABULARY_READS * counts.get("vocabulary.read", 0)
    return max(max(chains), math.ceil(queries / ss.COMPOSITE_MAX_QUERIES),
               math.ceil((queries + checks) / ss.COMPOSITE_MAX_SUBREQUESTS))
