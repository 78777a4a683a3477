"""Write-back to HubSpot: score, grade, reasons, MQL date, nurture track and lifecycle stage,
into custom contact properties Handshake creates when missing.

Only values that differ from what HubSpot holds are sent, in batches of at most 100; the
lifecycle stage only ever moves forward (HubSpot refuses to move it back without clearing it
first, and sales owns the later stages). Each contact's write goes through the write ledger,
so a run repeated after a crash sends nothing twice.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from connector.errors import Actor, HandshakeError, RecordRejected, RequestFailed
from connector.hubspot import settings as hs
from connector.hubspot.properties import RequestSender, create_missing_properties
from connector.ledger import LedgerWrite, LedgerWrites, Refusal, WriteClaim
from connector.scoring.engine import ScoreResult
from connector.scoring.lifecycle import Decision
from connector.scoring.model import LifecycleSection, WritebackSection
from connector.store import Store

__all__ = ["ContactUpdate", "HubSpotWriter", "RequestSender", "handoff_property_definitions",
           "plan_updates", "property_definitions"]

LIFECYCLE_PROPERTY = "lifecyclestage"
GRADE_OPTIONS = ("A", "B", "C", "D", "F")
REASONS_MAX_CHARS = 1000  # a readable single line in the HubSpot sidebar
CLAIM_PAGE = 1000  # ledger claims per transaction


class _ContactProps(Protocol):
    @property
    def hubspot_id(self) -> str: ...
    @property
    def properties(self) -> Mapping[str, Any]: ...


@dataclass(frozen=True, slots=True)
class ContactUpdate:
    contact_id: str
    properties: dict[str, str]


def property_definitions(wb: WritebackSection) -> list[dict[str, Any]]:
    """The custom contact properties Handshake writes, as the properties API creates them."""
    base = {"groupName": wb.group, "formField": False}
    return [
        {**base, "name": wb.score.hubspot_property, "label": wb.score.label, "type": "number",
         "fieldType": "number", "description": "Interest score 0-100 computed by Handshake"},
        {**base, "name": wb.grade.hubspot_property, "label": wb.grade.label,
         "type": "enumeration", "fieldType": "select",
         "description": "Fit grade A-F computed by Handshake",
         "options": [{"label": g, "value": g, "displayOrder": i, "hidden": False}
                     for i, g in enumerate(GRADE_OPTIONS)]},
        {**base, "name": wb.reasons.hubspot_property, "label": wb.reasons.label,
         "type": "string", "fieldType": "textarea",
         "description": "Why the contact has this score (Handshake)"},
        {**base, "name": wb.mql_at.hubspot_property, "label": wb.mql_at.label,
         "type": "datetime", "fieldType": "date",
         "description": "When Handshake made the contact a marketing-qualified lead"},
        {**base, "name": wb.nurture_track.hubspot_property, "label": wb.nurture_track.label,
         "type": "string", "fieldType": "text",
         "description": "Nurture track chosen by Handshake (enrol workflows on it)"},
    ]


def handoff_property_definitions(wb: WritebackSection) -> list[dict[str, Any]]:
    """The contact properties the push fills once a contact is handed off to Salesforce."""
    base = {"groupName": wb.group, "formField": False}
    return [
        {**base, "name": wb.salesforce_id.hubspot_property, "label": wb.salesforce_id.label,
         "type": "string", "fieldType": "text",
         "description": "Id of the Salesforce Lead or Contact Handshake handed this contact to"},
        {**base, "name": wb.handed_off_at.hubspot_property, "label": wb.handed_off_at.label,
         "type": "datetime", "fieldType": "date",
         "description": "When Handshake handed the contact off to sales"},
        {**base, "name": wb.salesforce_owner.hubspot_property,
         "label": wb.salesforce_owner.label, "type": "string", "fieldType": "text",
         "description": "The Salesforce user who owns the lead (email, else name)"},
    ]


def _datetime(value: datetime) -> str:
    return value.astimezone(UTC).strftime(hs.DATETIME_FORMAT)


def _same(current: Any, wanted: str) -> bool:
    if current is None:
        return wanted == ""
    text = str(current)
    if text == wanted:
        return True
    try:
        return float(text) == float(wanted)
    except ValueError:
        return False


def plan_updates(
    contacts: Iterable[_ContactProps],
    results: Mapping[str, ScoreResult],
    mql_at: Mapping[str, datetime],
    decisions: Sequence[Decision],
    wb: WritebackSection,
    lifecycle: LifecycleSection,
) -> list[ContactUpdate]:
    """Per contact, the properties whose value differs from what HubSpot holds."""
    targets = {d.contact_id: d.to_stage for d in decisions if d.kind in ("lead", "mql")}
    order = {stage: i for i, stage in enumerate(lifecycle.order)}
    out: list[ContactUpdate] = []
    for contact in contacts:
        result = results.get(contact.hubspot_id)
        if result is None:
            continue
        wanted = {
            wb.score.hubspot_property: f"{result.interest:g}",
            wb.grade.hubspot_property: result.fit.grade,
            wb.reasons.hubspot_property: result.reasons_text()[:REASONS_MAX_CHARS],
            wb.nurture_track.hubspot_property: result.nurture_track,
        }
        when = mql_at.get(contact.hubspot_id)
        if when is not None:
            wanted[wb.mql_at.hubspot_property] = _datetime(when)
        target = targets.get(contact.hubspot_id)
        if wb.write_lifecycle_stage and target:
            current = contact.properties.get(LIFECYCLE_PROPERTY) or ""
            if order.get(target, -1) > order.get(current, -1):
                wanted[LIFECYCLE_PROPERTY] = target
        changed = {k: v for k, v in wanted.items() if not _same(contact.properties.get(k), v)}
        if changed:
            out.append(ContactUpdate(contact.hubspot_id, changed))
    return out


class HubSpotWriter:
    """Creates the custom properties once, then sends contact updates in batches."""

    def __init__(self, client: RequestSender, store: Store, wb: WritebackSection, *,
                 contacts_path: str = hs.CONTACTS_V3, run_id: str | None = None) -> None:
        self.client = client
        self.store = store
        self.wb = wb
        self.contacts_path = contacts_path
        self.run_id = run_id
        self.counts: Counter[str] = Counter()

    def ensure_properties(self, definitions: Sequence[dict[str, Any]] | None = None) -> list[str]:
        """Create the write-back properties (default: the score's) HubSpot lacks; returns the
        names created."""
        created = create_missing_properties(
            self.client, property_definitions(self.wb) if definitions is None else definitions)
        self.counts["properties.created"] += len(created)
        return created

    def push(self, updates: Sequence[ContactUpdate], *, key_prefix: str = "hubspot:score:",
             stage: str = "score", what: str = "score",
             ensure: Sequence[dict[str, Any]] | None = None) -> Counter[str]:
        """Send the updates ≤ 100 a request; a contact whose same values were already written
        (the ledger, under `key_prefix`, says so) is skipped. `ensure` names properties to
        create first when anything is to be sent; a refused batch is dead-lettered under
        `stage`."""
        ledger = LedgerWrites(self.store, stage=stage, system="hubspot", run_id=self.run_id)
        due: list[LedgerWrite[ContactUpdate]] = []
        for start in range(0, len(updates), CLAIM_PAGE):  # a transaction per page of claims
            page = updates[start : start + CLAIM_PAGE]
            keys = [f"{key_prefix}{update.contact_id}" for update in page]
            claimed = ledger.claim_many([WriteClaim(key, "update", "contact", u.properties)
                                         for key, u in zip(keys, page, strict=True)])
            for key, update, sending in zip(keys, page, claimed, strict=True):
                if not sending:
                    self.counts["contacts.unchanged"] += 1
                    continue
                due.append(LedgerWrite((key,), f"contacts:{update.contact_id}", update,
                                       remote_id=update.contact_id))
        if due and ensure is not None:
            self.ensure_properties(ensure)
        path = self.contacts_path + hs.CONTACTS_BATCH_UPDATE

        def send(chunk: list[ContactUpdate]) -> None:
            payload = {"inputs": [{"id": u.contact_id, "properties": u.properties}
                                  for u in chunk]}
            self.client.request("POST", path, json=payload,
                                describe=f"update {len(chunk)} contacts' {what} properties")

        def refused(exc: HandshakeError, write: LedgerWrite[ContactUpdate]) -> Refusal:
            return Refusal(reason=f"{what} write-back refused: {exc}", actor=Actor.ADMIN,
                           payload=write.item.properties)

        # a request per chunk; the chunks sent settled in the ledger together
        chunks = [due[start : start + hs.WRITE_BATCH_LIMIT]
                  for start in range(0, len(due), hs.WRITE_BATCH_LIMIT)]
        outcomes = ledger.send_each_together(chunks, send, refused,
                                             (RequestFailed, RecordRejected))
        for chunk, failed in zip(chunks, outcomes, strict=True):
            if failed is not None:
                self.counts["contacts.failed"] += len(chunk)
                continue
            self.counts["contacts.updated"] += len(chunk)
            self.counts["requests"] += 1
        return self.counts
