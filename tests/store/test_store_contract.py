"""The state store's contract, run on SQLite and on PostgreSQL alike."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import inspect, text

from connector.clock import FrozenClock
from connector.errors import Actor
from connector.store import ActivityRecord, ContactRecord, Store, WriteClaim

T0 = datetime(2026, 10, 1, 12, 0, tzinfo=UTC)


def contact(i: int, **props: str) -> ContactRecord:
    base = {"email": f"User{i}@Example.com", "firstname": f"U{i}", "lifecyclestage": "lead"}
    base.update(props)
    return ContactRecord(
        hubspot_id=str(i), email=base["email"], properties=base,
        hubspot_created_at=T0, hubspot_updated_at=T0 + timedelta(minutes=i),
    )


def activity(cid: str, sid: str, kind: str = "email_open", minutes: int = 0) -> ActivityRecord:
    return ActivityRecord(
        contact_id=cid, type=kind, occurred_at=T0 + timedelta(minutes=minutes),
        source="email_events", source_id=sid, title="Newsletter", details={"campaign": 7},
    )


def test_schema_is_at_head(store: Store) -> None:
    assert store.schema_revision() == store.head_revision()
    tables = set(inspect(store.engine).get_table_names())
    assert {
        "sync_runs", "bookmarks", "contacts", "activities", "scores", "lifecycle_transitions",
        "id_map", "write_ledger", "dead_letters", "sales_outcomes", "sla_timers",
        "routing_pointers", "leases",
    } <= tables


def test_migrate_twice_is_harmless(store: Store) -> None:
    store.migrate()
    assert store.schema_revision() == store.head_revision()


def test_contacts_upsert_and_read_back(store: Store) -> None:
    store.upsert_contacts([contact(1), contact(2)])
    store.upsert_contacts([contact(1, firstname="Renamed", lifecyclestage="marketingqualifiedlead")])
    c1 = store.get_contact("1")
    assert c1 is not None
    assert c1.email == "user1@example.com"  # emails are matched case-insensitively
    assert c1.properties["firstname"] == "Renamed"
    assert c1.lifecycle_stage == "marketingqualifiedlead"
    assert c1.hubspot_updated_at == T0 + timedelta(minutes=1)
    assert c1.hubspot_updated_at.tzinfo is not None
    assert store.count_contacts() == 2
    assert store.find_contact_by_email("USER2@example.com").hubspot_id == "2"  # type: ignore[union-attr]


def test_archived_and_merged_contacts_are_not_live(store: Store) -> None:
    store.upsert_contacts([contact(1), contact(2), contact(3)])
    store.upsert_contacts([
        ContactRecord("2", None, {}, None, None, archived=True),
        ContactRecord("3", None, {}, None, None, merged_into="1"),
    ])
    assert store.count_contacts() == 1
    assert store.count_contacts(include_archived=True) == 3
    assert [c.hubspot_id for c in store.iter_contacts(batch=1)] == ["1"]


def test_iter_contacts_streams_in_batches(store: Store) -> None:
    store.upsert_contacts([contact(i) for i in range(10, 35)])
    ids = [c.hubspot_id for c in store.iter_contacts(batch=7)]
    assert ids == sorted(str(i) for i in range(10, 35))


def test_activities_deduplicate_by_source_id(store: Store, clock: FrozenClock) -> None:
    store.upsert_contacts([contact(1)])
    before = store.get_contact("1").inputs_changed_at  # type: ignore[union-attr]
    clock.advance(60)
    assert store.add_activities([activity("1", "a"), activity("1", "b", "email_click")]) == 2
    assert store.add_activities([activity("1", "a"), activity("1", "c", minutes=5)]) == 1
    assert store.count_activities_by_type() == {"email_open": 2, "email_click": 1}
    acts = store.activities_for("1")
    assert [a.source_id for a in acts] == ["a", "b", "c"]
    assert acts[0].details == {"campaign": 7}
    after = store.get_contact("1").inputs_changed_at  # type: ignore[union-attr]
    assert after is not None and before is not None and after > before


def test_deferred_marks_are_collected_then_made_or_recovered_from_the_activities(
        store: Store, clock: FrozenClock) -> None:
    store.upsert_contacts([contact(1), contact(2), contact(3)])

    def marked(cid: str) -> datetime:
        when = store.get_contact(cid).inputs_changed_at  # type: ignore[union-attr]
        assert when is not None
        return when if when.tzinfo else when.replace(tzinfo=UTC)

    before = {c: marked(c) for c in "123"}
    clock.advance(60)
    deferred: set[str] = set()
    assert store.add_activities([activity("1", "a"), activity("2", "b")],
                                defer_marks=deferred) == 2
    assert store.add_activities([activity("1", "a")], defer_marks=deferred) == 0
    assert deferred == {"1", "2"}
    assert {c: marked(c) for c in "123"} == before  # not marked yet
    clock.advance(60)
    store.mark_contacts_changed(deferred)
    assert marked("1") > before["1"] and marked("2") > before["2"]
    assert marked("3") == before["3"]

    since = clock.now()
    clock.advance(60)
    store.add_activities([activity("3", "c")], defer_marks=set())
    clock.advance(60)
    marks = {c: marked(c) for c in "123"}
    assert store.mark_contacts_with_activities_since(since) == 1
    assert marked("3") > marks["3"]
    assert (marked("1"), marked("2")) == (marks["1"], marks["2"])


def test_bookmark_commits_with_its_records_or_not_at_all(store: Store) -> None:
    store.set_bookmark("contacts", "2026-10-01T00:00:00Z")
    with pytest.raises(RuntimeError), store.transaction() as s:
        store.upsert_contacts([contact(5)], session=s)
        store.set_bookmark("contacts", "2026-10-02T00:00:00Z", session=s)
        raise RuntimeError("crash before commit")
    assert store.get_bookmark("contacts") == "2026-10-01T00:00:00Z"
    assert store.get_contact("5") is None
    with store.transaction() as s:
        store.upsert_contacts([contact(5)], session=s)
        store.set_bookmark("contacts", "2026-10-02T00:00:00Z", session=s)
    assert store.get_bookmark("contacts") == "2026-10-02T00:00:00Z"
    assert store.bookmarks() == {"contacts": "2026-10-02T00:00:00Z"}


def test_runs_record_status_and_counts(store: Store, clock: FrozenClock) -> None:
    run = store.start_run("pull", trigger="schedule")
    clock.advance(5)
    store.finish_run(run, status="ok", counts={"contacts": 3})
    row = store.get_run(run)
    assert row is not None and row.status == "ok" and row.counts == {"contacts": 3}
    assert row.finished_at is not None and row.finished_at - row.started_at == timedelta(seconds=5)


def test_scores_history_and_latest(store: Store, clock: FrozenClock) -> None:
    store.add_scores([{"contact_id": "1", "scored_at": clock.now(), "interest": 40.0, "fit_grade": "B",
                           "fit_points": 30.0, "is_mql": False, "explanation": {"rules": []}}])
    clock.advance(3600)
    store.add_scores([{"contact_id": "1", "scored_at": clock.now(), "interest": 65.5, "fit_grade": "A",
                           "fit_points": 45.0, "is_mql": True, "explanation": {"rules": ["webinar"]}}])
    latest = store.latest_score("1")
    assert latest is not None and latest.interest == 65.5 and latest.is_mql


def test_mqls_are_live_contacts_with_an_email_whose_newest_score_is_an_mql(
        store: Store, clock: FrozenClock) -> None:
    store.upsert_contacts([contact(i) for i in range(1, 6)] + [
        ContactRecord("6", None, {}, None, None),
        ContactRecord("7", "a@b.test", {}, None, None, archived=True)])

    def score(cid: str, mql: bool) -> dict:
        return {"contact_id": cid, "scored_at": clock.now(), "interest": 50.0, "fit_grade": "A",
                "fit_points": 40.0, "is_mql": mql, "explanation": {}}

    store.add_scores([score("1", True), score("2", False), score("6", True), score("7", True)])
    clock.advance(3600)
    store.add_scores([score("1", False), score("2", True)])  # 1 fell out, 2 came in
    store.add_scores([score("3", False)])
    store.add_scores([score("3", True)])  # same instant: the later row is the newest
    store.add_scores([score("4", True)])
    assert [c.hubspot_id for c in store.iter_mqls(batch=2)] == ["2", "3", "4"]
    want = [cid for cid in ("1", "2", "3", "4", "5", "6", "7")
            if (s := store.latest_scores([cid]).get(cid)) is not None and s.is_mql]
    assert want == ["2", "3", "4", "6", "7"]  # 6 has no email, 7 is archived
    assert store.count_unlinked_mqls() == 3
    store.link("3", "Lead", "00Q000000000003AAA")
    assert store.count_unlinked_mqls() == 2
    assert store.count_unlinked_mqls(ids={"1", "3", "4", "7"}) == 1  # 4


def test_mql_pages_are_the_mqls_as_rows(store: Store, clock: FrozenClock) -> None:
    """The push's read of the MQLs (Core rows, each contact's newest score by index) gives
    the very contacts `iter_mqls` gives, in order, page by page, with their stored values."""
    store.upsert_contacts([contact(i) for i in range(1, 8)] + [
        ContactRecord("8", "m@b.test", {}, None, None, merged_into="7"),
        ContactRecord("9", None, {}, None, None), ContactRecord("10", "", {}, None, None),
        ContactRecord("11", "a@b.test", {}, None, None, archived=True)])

    def score(cid: str, mql: bool) -> dict:
        return {"contact_id": cid, "scored_at": clock.now(), "interest": 50.0, "fit_grade": "A",
                "fit_points": 40.0, "is_mql": mql, "explanation": {}}

    store.add_scores([score(str(i), True) for i in range(1, 12)])
    clock.advance(3600)
    store.add_scores([score("1", False), score("2", True)])  # 1 fell out
    store.add_scores([score("3", False)])
    store.add_scores([score("3", True)])  # same instant: the later row is the newest
    store.add_scores([score("4", True)])
    store.add_scores([score("4", False)])  # same instant, later row: not an MQL
    want = [c.hubspot_id for c in store.iter_mqls()]
    assert "1" not in want and "4" not in want and "3" in want
    pages = list(store.mql_pages(batch=2))
    assert [len(p) for p in pages] == [2] * (len(want) // 2) + [1] * (len(want) % 2)
    rows = [c for page in pages for c in page]
    assert [c.hubspot_id for c in rows] == want
    stored = {c.hubspot_id: c for c in store.iter_mqls()}
    for row in rows:
        orm = stored[row.hubspot_id]
        assert (row.email, row.properties, row.lifecycle_stage, row.hubspot_created_at,
                row.hubspot_updated_at) == (orm.email, orm.properties, orm.lifecycle_stage,
                                            orm.hubspot_created_at, orm.hubspot_updated_at)
        assert row.hubspot_updated_at is not None and row.hubspot_updated_at.tzinfo is not None
    only = {"2", "3", "4", "9", "11"}
    assert [c.hubspot_id for p in store.mql_pages(ids=only) for c in p] == [
        c.hubspot_id for c in store.iter_mqls(ids=only)] == ["2", "3"]
    by_id = store.contacts_by_id(["3", "11", "404"])
    assert set(by_id) == {"3", "11"}  # an archived contact is read too; an unknown one not
    assert by_id["3"] == next(c for c in rows if c.hubspot_id == "3")


def test_earliest_done_is_the_first_written_under_a_prefix(store: Store,
                                                          clock: FrozenClock) -> None:
    prefix = "sf:task:handoff:"
    assert store.earliest_done(prefix) is None
    store.claim_writes([WriteClaim(f"{prefix}1", "create", "Task"),
                        WriteClaim("sf:task:handoffx", "create", "Task"),
                        WriteClaim("sf:lead:1", "create", "Lead")], system="salesforce")
    store.complete_writes([("sf:lead:1", "00Q"), ("sf:task:handoffx", "00T")])
    assert store.earliest_done(prefix) is None  # pending, or not under the prefix
    clock.advance(60)
    first = clock.now()
    store.complete_writes([(f"{prefix}1", "00T1")])
    clock.advance(60)
    store.claim_writes([WriteClaim(f"{prefix}2", "create", "Task")], system="salesforce")
    store.complete_writes([(f"{prefix}2", "00T2")])
    assert store.earliest_done(prefix) == first
    assert store.earliest_done("sf:task:handoff:2") == clock.now()


def test_lifecycle_transitions_update_the_contact(store: Store) -> None:
    store.upsert_contacts([contact(1)])
    store.record_transition("1", "lead", "marketingqualifiedlead", reason="A at 72")
    assert store.get_contact("1").lifecycle_stage == "marketingqualifiedlead"  # type: ignore[union-attr]
    [t] = store.transitions_for("1")
    assert (t.from_stage, t.to_stage, t.reason) == ("lead", "marketingqualifiedlead", "A at 72")


def test_id_map_links_both_ways_and_follows_conversion(store: Store) -> None:
    store.link("1", "Lead", "00Q000000000001AAA")
    assert store.hubspot_id_for("00Q000000000001AAA") == "1"
    store.link("1", "Contact", "003000000000001AAA", how="converted")
    link = store.linked("1")
    assert link is not None and (link.sf_object, link.sf_id, link.how) == (
        "Contact", "003000000000001AAA", "converted")
    assert store.hubspot_id_for("00Q000000000001AAA") is None


def test_write_ledger_makes_writes_happen_once(store: Store) -> None:
    entry = store.claim_write("sf:task:handoff:1", system="salesforce", operation="create",
                              target="Task", payload={"Subject": "Hand-off"})
    assert entry is not None and entry.status == "pending"
    # A crash before completion leaves it pending: the next run sees it and reconciles.
    assert [e.key for e in store.pending_writes("salesforce")] == ["sf:task:handoff:1"]
    store.complete_write("sf:task:handoff:1", remote_id="00T000000000001AAA")
    assert store.claim_write("sf:task:handoff:1", system="salesforce", operation="create",
                             target="Task", payload={"Subject": "Hand-off"}) is None
    assert store.ledger_entry("sf:task:handoff:1").remote_id == "00T000000000001AAA"  # type: ignore[union-attr]
    # A changed payload makes the write due again.
    again = store.claim_write("sf:task:handoff:1", system="salesforce", operation="update",
                              target="Task", payload={"Subject": "Hand-off v2"})
    assert again is not None and again.status == "pending"
    assert store.pending_writes() != []


def test_ledger_prefixes_are_exact_and_writes_settle_together(store: Store) -> None:
    # Keys that a LIKE wildcard or a neighbouring range would also match, and the next
    # character after the prefix's last one: only keys that start with the prefix come back.
    keys = ["t:1", "t:1:0001", "t:10", "t:1_x", "t;", "t:2", "tx1", "t%1", "t:1%"]
    for key in keys:
        store.claim_write(key, system="salesforce", operation="create", target="Task",
                          payload={"k": key})
    # (sorted here: PostgreSQL orders keys by its collation)
    assert sorted(e.key for e in store.ledger_entries("t:1")) == ["t:1", "t:1%", "t:10",
                                                                  "t:1:0001", "t:1_x"]
    assert [e.key for e in store.ledger_entries("t:1_")] == ["t:1_x"]
    assert [e.key for e in store.ledger_entries("t%")] == ["t%1"]
    store.complete_writes([("t:1", "00T1"), ("t:1:0001", None)])
    store.complete_writes([("t:10", None)], ok=False)
    found = store.ledger_entries_many(["t:1:", "t:1", "t:3"], status="done")
    assert {p: sorted((e.key, e.remote_id) for e in v) for p, v in found.items()} == {
        "t:1:": [("t:1:0001", None)], "t:1": [("t:1", "00T1"), ("t:1:0001", None)], "t:3": []}
    assert store.ledger_entry("t:10").status == "failed"  # type: ignore[union-attr]
    # Settled with the same payload: nothing to write; the pending one is claimed again.
    assert store.claim_write("t:1", system="salesforce", operation="create", target="Task",
                             payload={"k": "t:1"}) is None
    again = store.claim_write("t:2", system="salesforce", operation="create", target="Task",
                              payload={"k": "t:2"}, run_id="r2")
    assert again is not None and (again.status, again.run_id, again.target) == (
        "pending", "r2", "Task")


def test_page_sized_ledger_writes_match_one_at_a_time(store: Store) -> None:
    store.claim_write("a", system="salesforce", operation="create", target="Lead",
                      payload={"v": 1})
    store.complete_write("a", remote_id="00Q1")
    store.claim_write("b", system="salesforce", operation="create", target="Lead",
                      payload={"v": 1})  # left pending
    claims = [WriteClaim("a", "create", "Lead", {"v": 1}),  # done, same payload: not sent
              WriteClaim("b", "create", "Lead", {"v": 1}),  # pending: sent again
              WriteClaim("c", "create", "Task", {"v": 1}),  # new
              WriteClaim("a", "update", "Lead", {"v": 2}),  # changed: due again
              WriteClaim("c", "create", "Task", {"v": 1})]  # claimed twice: pending, sent
    assert store.claim_writes(claims, system="salesforce", run_id="r1") == [
        False, True, True, True, True]
    entries = store.ledger_entries_by_key(["a", "b", "c", "d"])
    assert sorted(entries) == ["a", "b", "c"]
    assert {k: (e.status, e.run_id) for k, e in entries.items()} == {
        "a": ("pending", "r1"), "b": ("pending", "r1"), "c": ("pending", "r1")}
    assert entries["c"].target == "Task" and entries["c"].system == "salesforce"
    store.complete_writes([("a", "00Q1"), ("b", "00Q2"), ("c", "00T1")])
    assert store.claim_writes([WriteClaim("a", "update", "Lead", {"v": 2}),
                               WriteClaim("c", "create", "Task", {"v": 1})],
                              system="salesforce") == [False, False]
    assert store.claim_writes([], system="salesforce") == []


def test_page_sized_links_routes_and_timers(store: Store) -> None:
    store.link("1", "Lead", "00Q000000000001AAA")
    store.link_many([("2", "Contact", "003000000000002AAA", "matched"),
                     ("1", "Lead", "00Q000000000009AAA", "updated"),
                     ("3", "Lead", "00Q000000000003AAA", "created"),
                     ("3", "Lead", "00Q000000000004AAA", "duplicate_rule")])  # the last wins
    links = store.linked_many(["1", "2", "3"])
    assert {h: (link.sf_object, link.sf_id, link.how) for h, link in links.items()} == {
        "1": ("Lead", "00Q000000000009AAA", "updated"),
        "2": ("Contact", "003000000000002AAA", "matched"),
        "3": ("Lead", "00Q000000000004AAA", "duplicate_rule")}
    targets = store.link_targets(["3", "1", "9", "1"])
    assert {h: (t.hubspot_id, t.sf_object, t.sf_id) for h, t in targets.items()} == {
        "1": ("1", "Lead", "00Q000000000009AAA"), "3": ("3", "Lead", "00Q000000000004AAA")}
    assert store.link_targets([]) == {}
    assert store.hubspot_ids_for(["00Q000000000009AAA", "003000000000002AAA",
                                  "00Q000000000001AAA"]) == {
        "00Q000000000009AAA": "1", "003000000000002AAA": "2"}
    store.record_lead_route("1", owner_id="005A", reason="first", use_assignment_rules=False)
    store.record_routing(
        [{"hubspot_id": "1", "owner_id": "005B", "reason": "again", "use_assignment_rules": False},
         {"hubspot_id": "2", "owner_id": None, "reason": "rules", "use_assignment_rules": True}],
        {"emea": 3})
    routes = store.lead_routes(["1", "2", "9"])
    assert {h: (r.owner_id, r.reason, r.use_assignment_rules) for h, r in routes.items()} == {
        "1": ("005B", "again", False), "2": (None, "rules", True)}
    assert store.round_robin_pointers() == {"emea": 3}
    assert store.next_round_robin("emea", 2) == 1  # 3 % 2, as the pointer it continues
    store.record_routing([], {"emea": 5, "na": 1})
    assert store.round_robin_pointers() == {"emea": 5, "na": 1}
    store.open_sla_timers([{"hubspot_id": h, "sf_id": "00Q000000000001AAA", "owner_id": "005A",
                            "assigned_at": T0, "first_touch_due": T0 + timedelta(hours=24),
                            "worked_due": T0 + timedelta(hours=48)} for h in ("1", "2")])
    timers = store.sla_timers(state="open")
    assert [(t.hubspot_id, t.first_touch_due, t.recycled_from) for t in timers] == [
        ("1", T0 + timedelta(hours=24), None), ("2", T0 + timedelta(hours=24), None)]


def test_sla_timers_opened_together_equal_those_opened_one_at_a_time(store: Store) -> None:
    """`open_sla_timers` stores each timer as `open_sla_timer` does (times in any zone,
    the timer a recycle opened again)."""
    from datetime import timezone
    paris = timezone(timedelta(hours=1))
    first = store.open_sla_timer(hubspot_id="1", sf_id="00Q1", owner_id="005A", assigned_at=T0,
                                 first_touch_due=T0 + timedelta(hours=24),
                                 worked_due=T0 + timedelta(hours=48))
    timers = [{"hubspot_id": "2", "sf_id": "00Q2", "owner_id": None,
               "assigned_at": T0.astimezone(paris), "first_touch_due": T0 + timedelta(hours=1),
               "worked_due": T0 + timedelta(hours=2, microseconds=7)},
              {"hubspot_id": "3", "sf_id": "00Q3", "owner_id": "005B", "assigned_at": T0,
               "first_touch_due": T0, "worked_due": T0, "recycled_from": first}]
    store.open_sla_timers(timers)
    for t in timers:
        store.open_sla_timer(**t)

    def seen(row: object) -> tuple:
        return tuple(getattr(row, c) for c in (
            "hubspot_id", "sf_id", "owner_id", "assigned_at", "first_touch_due", "worked_due",
            "first_touch_at", "worked_at", "breached_at", "state", "recycled_from"))

    rows = [seen(t) for t in store.sla_timers()]
    assert rows[1:3] == rows[3:5]
    assert rows[1][3] == T0 and rows[1][3].tzinfo is not None and rows[2][-1] == first


def test_claiming_many_writes_is_claiming_each_in_turn(store: Store) -> None:
    store.claim_write("w:1", system="hubspot", operation="update", target="contact",
                      payload={"a": "1"})
    store.complete_write("w:1")
    store.claim_write("w:2", system="hubspot", operation="update", target="contact",
                      payload={"a": "2"})
    store.complete_write("w:2")
    store.claim_write("w:3", system="hubspot", operation="update", target="contact",
                      payload={"a": "3"})  # left pending (a crash)
    claims = [WriteClaim(k, "update", "contact", p) for k, p in (
        ("w:1", {"a": "1"}), ("w:2", {"a": "changed"}), ("w:3", {"a": "3"}),
        ("w:4", {"a": "4"}), ("w:4", {"a": "4"}), ("w:5", None))]
    assert store.claim_writes(claims, system="hubspot", run_id="r9") == [
        False, True, True, True, True, True]
    assert store.claim_writes([], system="hubspot") == []
    entries = {e.key: e for e in store.ledger_entries("w:")}
    assert entries["w:1"].status == "done"
    assert {k: (e.status, e.run_id) for k, e in entries.items() if k != "w:1"} == {
        "w:2": ("pending", "r9"), "w:3": ("pending", "r9"), "w:4": ("pending", "r9"),
        "w:5": ("pending", "r9")}
    assert (entries["w:5"].payload_hash, entries["w:4"].target) == ("", "contact")
    store.complete_writes([("w:2", "2"), ("w:4", "4")])
    # the same payloads again: as claim_write says of each
    assert store.claim_writes(claims[1:2] + claims[3:4], system="hubspot") == [False, False]
    assert store.claim_write("w:2", system="hubspot", operation="update", target="contact",
                             payload={"a": "changed"}) is None


def test_activities_for_many_read_as_stored(store: Store) -> None:
    store.upsert_contacts([contact(1), contact(2)])
    store.add_activities([
        activity("1", "b", minutes=5), activity("1", "a", kind="page_view"),
        ActivityRecord(contact_id="2", type="form_submission",
                       occurred_at=T0 + timedelta(microseconds=7), source="forms", source_id="f",
                       url="https://x.com/p", details={"form_name": "Demo", "values": {"k": 1}}),
        ActivityRecord(contact_id="2", type="email_open", occurred_at=T0 + timedelta(days=1),
                       source="email_events", source_id="e"),
    ])
    got = store.activities_for_many(["1", "2", "3"])
    assert {k: [(a.type, a.occurred_at, a.source_id) for a in v] for k, v in got.items()} == {
        "1": [("page_view", T0, "a"), ("email_open", T0 + timedelta(minutes=5), "b")],
        "2": [("form_submission", T0 + timedelta(microseconds=7), "f"),
              ("email_open", T0 + timedelta(days=1), "e")],
        "3": []}
    assert all(a.occurred_at.tzinfo == UTC for v in got.values() for a in v)
    form, opened = got["2"]
    assert (form.contact_id, form.title, form.url, form.source) == (
        "2", None, "https://x.com/p", "forms")
    assert form.details == {"form_name": "Demo", "values": {"k": 1}}
    assert opened.details == {} and got["1"][1].details == {"campaign": 7}
    assert isinstance(form.id, int) and form.id != opened.id
    assert store.activities_for_many([]) == {}
    only = store.activities_for_many(["1", "2"], types={"page_view", "form_submission"})
    assert {k: [a.source_id for a in v] for k, v in only.items()} == {"1": ["a"], "2": ["f"]}
    # the score's read: the same activities and attributes, without their sources
    fields = ("id", "contact_id", "type", "occurred_at", "title", "url", "details")
    for types in (None, {"page_view", "form_submission"}):
        full = store.activities_for_many(["1", "2", "3"], types=types)
        narrow = store.activities_for_many(["1", "2", "3"], types=types, sources=False)
        assert {k: [tuple(getattr(a, f) for f in fields) for a in v]
                for k, v in narrow.items()} == {
            k: [tuple(getattr(a, f) for f in fields) for a in v] for k, v in full.items()}
        assert not any(hasattr(a, "source") for v in narrow.values() for a in v)
        assert all(a.occurred_at.tzinfo == UTC for v in narrow.values() for a in v)


def test_engagement_times_and_emails_of_many_contacts(store: Store) -> None:
    store.upsert_contacts([contact(1), contact(2)])
    store.add_activities([
        activity("1", "b", minutes=5), activity("1", "a", kind="page_view"),
        activity("1", "s", kind="email_sent", minutes=9),
        activity("2", "d", kind="email_delivered", minutes=1),
    ])
    got = store.engagement_times_for_many(["1", "2", "3"],
                                          excluding={"email_sent", "email_delivered"})
    assert got == {"1": [T0, T0 + timedelta(minutes=5)], "2": [], "3": []}
    assert all(at.tzinfo == UTC for at in got["1"])
    assert store.engagement_times_for_many([], excluding={"email_sent"}) == {}
    emails = store.contact_emails(["2", "1", "9", "1"])
    assert emails == {"1": store.get_contact("1").email,  # type: ignore[union-attr]
                      "2": store.get_contact("2").email}  # type: ignore[union-attr]
    assert emails["1"] and store.contact_emails([]) == {}


def test_dead_letters_count_attempts_and_resolve(store: Store) -> None:
    first = store.dead_letter(stage="push", system="salesforce", record_key="42",
                              reason="Email: invalid email address", actor=Actor.DATA,
                              payload={"Email": "x@"}, error_code="INVALID_EMAIL_ADDRESS")
    again = store.dead_letter(stage="push", system="salesforce", record_key="42",
                              reason="Email: invalid email address", actor=Actor.DATA)
    assert first == again
    [dl] = store.dead_letters()
    assert dl.attempts == 2 and dl.actor == "data" and dl.payload == {"Email": "x@"}
    assert dl.error_code == "INVALID_EMAIL_ADDRESS"
    assert store.resolve_dead_letters(stage="push", record_keys=["42"]) == 1
    assert store.dead_letters() == []
    assert len(store.dead_letters(status="resolved")) == 1


def test_open_letter_keys_are_those_asked_about_with_an_open_letter_of_the_stage(
        store: Store) -> None:
    for key in ("contacts:1", "contacts:2", "contacts:3"):
        store.dead_letter(stage="pull", system="hubspot", record_key=key, reason="bad",
                          actor=Actor.DATA)
    store.dead_letter(stage="push", system="salesforce", record_key="contacts:4",
                      reason="bad", actor=Actor.DATA)
    store.resolve_dead_letters(stage="pull", record_keys=["contacts:3"])
    asked = [f"contacts:{n}" for n in range(1, 6)]
    assert store.open_letter_keys(stage="pull", record_keys=asked) == {"contacts:1",
                                                                        "contacts:2"}
    assert store.open_letter_keys(stage="pull", record_keys=[]) == set()
    many = [f"contacts:{n}" for n in range(5000)]  # more keys than one statement takes
    assert store.open_letter_keys(stage="pull", record_keys=many) == {"contacts:1",
                                                                       "contacts:2"}


def test_sales_outcomes_are_stored_once(store: Store) -> None:
    row = {"hubspot_id": "1", "sf_object": "Lead", "sf_id": "00Q000000000001AAA",
               "source_id": "00T000000000009AAA", "kind": "attempt", "status": "Completed",
               "occurred_at": T0, "details": {"subtype": "Call"}}
    assert store.add_outcomes([row]) == 1
    assert store.add_outcomes([row]) == 0
    [o] = store.outcomes_for("1")
    assert o.kind == "attempt" and o.details == {"subtype": "Call"}


def test_sla_timers(store: Store) -> None:
    tid = store.open_sla_timer(hubspot_id="1", sf_id="00Q000000000001AAA", owner_id="005A",
                               assigned_at=T0, first_touch_due=T0 + timedelta(hours=24),
                               worked_due=T0 + timedelta(hours=48))
    store.update_sla_timer(tid, first_touch_at=T0 + timedelta(hours=3), state="met")
    [timer] = store.sla_timers(state="met")
    assert timer.first_touch_at == T0 + timedelta(hours=3)
    recycled = store.open_sla_timer(hubspot_id="1", sf_id="00Q000000000001AAA", owner_id="005B",
                                    assigned_at=T0, first_touch_due=T0, worked_due=T0,
                                    recycled_from=tid)
    assert store.sla_timers(state="open")[0].id == recycled


def test_round_robin_pointer_persists(store: Store) -> None:
    picks = [store.next_round_robin("SDR-NA", 3) for _ in range(5)]
    assert picks == [0, 1, 2, 0, 1]
    assert store.next_round_robin("SDR-EMEA", 2) == 0
    assert store.next_round_robin("SDR-NA", 3) == 2


def test_leases_exclude_other_holders_until_expiry(store: Store, clock: FrozenClock) -> None:
    assert store.acquire_lease("scheduler", "a", ttl_seconds=30)
    assert not store.acquire_lease("scheduler", "b", ttl_seconds=30)
    assert store.acquire_lease("scheduler", "a", ttl_seconds=30)  # renewal
    clock.advance(31)
    assert store.acquire_lease("scheduler", "b", ttl_seconds=30)
    store.release_lease("scheduler", "b")
    assert store.acquire_lease("scheduler", "a", ttl_seconds=30)


def test_naive_datetimes_are_refused(store: Store) -> None:
    with pytest.raises(Exception, match="naive datetime"):
        store.open_sla_timer(hubspot_id="1", sf_id="x", owner_id=None,
                             assigned_at=datetime(2026, 1, 1), first_touch_due=T0, worked_due=T0)


def test_concurrent_writers_do_not_lose_activities(store: Store) -> None:
    store.upsert_contacts([contact(1)])

    def writer(n: int) -> None:
        store.add_activities([activity("1", f"w{n}-{i}") for i in range(20)])

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.count_activities_by_type() == {"email_open": 80}


def test_sqlite_uses_wal(backend_store: Store) -> None:
    if backend_store.engine.dialect.name != "sqlite":
        pytest.skip("WAL is a SQLite setting")
    with backend_store.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"


def test_bookmark_streams_are_read_in_batches(store: Store) -> None:
    for i in range(7):
        store.set_bookmark(f"page_views_due/{i}", "1")
    store.set_bookmark("page_views/3", "x")
    store.set_bookmark("page_views_due_x", "not a marker of the prefix")
    names = list(store.iter_bookmark_streams("page_views_due/", batch=3))
    assert names == [f"page_views_due/{i}" for i in range(7)]


def test_bookmarks_by_prefix_are_exactly_those_that_start_with_it(store: Store) -> None:
    """Prefix reads are bounded as an index range on SQLite (a LIKE there scans the table):
    the range and the LIKE must agree at its edges and with LIKE's own wildcards."""
    names = ["forms/", "forms/a", "forms/zé", "forms/~", "forms/%", "forms0", "forms.",
             "form_/1", "formsx/1", "forms", "a_b/1", "axb/1", "a%b/1"]
    store.set_bookmarks([(n, "1") for n in names])
    assert sorted(store.bookmarks("forms/")) == sorted(
        ["forms/", "forms/a", "forms/zé", "forms/~", "forms/%"])
    assert list(store.iter_bookmark_streams("a_b/", batch=1)) == ["a_b/1"]
    assert sorted(store.bookmarks("form_/")) == ["form_/1"]
    assert list(store.bookmarks("a%b/")) == ["a%b/1"]


def test_linked_activity_times_leave_out_those_stored_before_a_time(
        store: Store, clock: FrozenClock) -> None:
    """The alert scan's read: linked contacts' activities in an id range that occurred since a
    time, and (when asked) were stored after another."""
    store.upsert_contacts([contact(1), contact(2)])
    store.link("1", "Lead", "00Q000000000001AAA")
    store.add_activities([activity("1", "a"), activity("1", "b", minutes=5),
                          activity("2", "c")])
    clock.advance(3600)
    between = clock.now()
    clock.advance(3600)
    store.add_activities([activity("1", "d", minutes=10), activity("2", "e", minutes=10)])
    top = store.last_linked_activity_id()
    every = store.linked_activity_times_after(0, until_id=top, occurred_since=T0)
    assert [r.contact_id for r in every] == ["1", "1", "1"]
    later = store.linked_activity_times_after(0, until_id=top, occurred_since=T0,
                                              ingested_after=between)
    assert [r.id for r in later] == [every[-1].id] and later[0].ingested_at > between
    recent = store.linked_activity_times_after(0, until_id=top,
                                               occurred_since=T0 + timedelta(minutes=5),
                                               ingested_after=T0 - timedelta(days=1))
    assert [r.id for r in recent] == [r.id for r in every[1:]]
