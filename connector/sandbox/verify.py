"""Compare what Handshake stored with the sandbox's ground truth (tests, benchmarks, demo)."""

from __future__ import annotations

import math
from collections import Counter

from sqlalchemy import select

from connector.sandbox.dataset import SandboxDataset
from connector.store import Activity, Contact, Store

__all__ = ["minimum_pull_calls", "pull_differences"]


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
