"""HubSpot told about the hand-off: the Salesforce id, when the contact was handed off, and the
Salesforce owner, in the contact properties the scoring file's `[writeback]` names.

The push notes every contact it hands off (or finds handed off) batch by batch; at the end of
the run the values that differ from what HubSpot held at the last pull go out through the
score write-back's `HubSpotWriter`, at most 100 contacts a call, through the write ledger
(`hubspot:handoff:{contact}`) so the same values are never sent twice. The owner is the one the
push knows: the routed owner of a new Lead, the current owner of a matched Lead or Contact; a
reassignment in Salesforce is sent when a later push sees it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from connector.hubspot import settings as hs
from connector.hubspot.write import ContactUpdate, HubSpotWriter, handoff_property_definitions
from connector.push.context import HandedOff, PushContext, handoff_task_key

__all__ = ["LEDGER_PREFIX", "note_handoffs", "write_back_handoffs"]

LEDGER_PREFIX = "hubspot:handoff:"


def _hubspot_datetime(value: datetime) -> str:
    return value.astimezone(UTC).strftime(hs.DATETIME_FORMAT)


def _same(held: Any, wanted: str) -> bool:
    """Whether HubSpot already holds `wanted` (datetimes compared as instants: HubSpot may
    answer in another format than we sent)."""
    if held is None or held == "":
        return wanted == ""
    if str(held) == wanted:
        return True
    try:
        return datetime.fromisoformat(str(held)) == datetime.fromisoformat(wanted)
    except ValueError:
        return False


def note_handoffs(ctx: PushContext, handed: Sequence[HandedOff],
                  users: Sequence[Mapping[str, Any]]) -> None:
    """Remember what HubSpot should show for each handed-off contact of this batch (those
    whose hand-off Task is written); `users` are the org's active users, for owner emails."""
    if ctx.dry_run or ctx.hubspot is None or not handed:
        return
    wb = ctx.engine.model.writeback
    names = {str(u.get("Id")): u.get("Email") or u.get("Name") for u in users}
    entries = ctx.store.ledger_entries_by_key(
        [handoff_task_key(p.contact.hubspot_id, p.generation) for p in handed])
    for plan in handed:
        hubspot_id = plan.contact.hubspot_id
        entry = entries.get(handoff_task_key(hubspot_id, plan.generation))
        if not plan.sf_id or entry is None or entry.status != "done":
            continue  # not handed off yet: a later run writes it
        wanted = {
            wb.salesforce_id.hubspot_property: str(plan.sf_id),
            wb.handed_off_at.hubspot_property:
                _hubspot_datetime(entry.completed_at or entry.created_at),
        }
        if plan.owner_id:
            wanted[wb.salesforce_owner.hubspot_property] = str(
                names.get(str(plan.owner_id)) or plan.owner_id)
        held = plan.contact.properties
        changed = {k: v for k, v in wanted.items() if not _same(held.get(k), v)}
        if changed:
            ctx.handoffs.append(ContactUpdate(hubspot_id, changed))


def write_back_handoffs(ctx: PushContext) -> None:
    """Send the noted changes, ≤ 100 contacts a call; counts `hubspot.handoff.*`."""
    if ctx.dry_run or ctx.hubspot is None or not ctx.handoffs:
        return
    wb = ctx.engine.model.writeback
    writer = HubSpotWriter(ctx.hubspot, ctx.store, wb, contacts_path=ctx.hubspot.contacts_path,
                           run_id=ctx.run_id)
    writer.push(ctx.handoffs, key_prefix=LEDGER_PREFIX, stage="push", what="hand-off",
                ensure=handoff_property_definitions(wb))
    ctx.counts.update({f"hubspot.handoff.{k}": v for k, v in writer.counts.items()})
    ctx.handoffs.clear()
