"""One hand-off's SLA: due times, what counts as first touch and worked, each breach kind, the
same breaches (same keys) on every re-run, and reassignment starting the clock again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from connector.clock import FrozenClock
from connector.mapping.sla import SlaFile, parse_sla
from connector.sla import (
    Activity,
    Assignment,
    evaluate,
    never_accepted,
    next_member,
    reassignment,
)

SLA = parse_sla("").spec  # the seeds' SLA: 24 h first touch, 48 h worked, every hour counts
ASSIGNED = datetime(2026, 3, 2, 10, tzinfo=UTC)  # a Monday
A, B, C = "005A00000000001AAA", "005B00000000001AAA", "005C00000000001AAA"
LEAD = "00Q000000000001AAA"
TEAM = [A, B, C]


def hand_off(owner: str = A, at: datetime = ASSIGNED, *, reassignments: int = 0) -> Assignment:
    return Assignment(LEAD, owner, at, team="SDR-NA", reassignments=reassignments)


def hours(n: float) -> datetime:
    return ASSIGNED + timedelta(hours=n)


def call(n: float, by: str = A) -> Activity:
    return Activity(hours(n), "task", by=by, task_type="Call")


def status(n: float, value: str, by: str = A, *, converted: bool = False) -> Activity:
    return Activity(hours(n), "status", by=by, status=value, converted=converted)


def with_(text: str) -> SlaFile:
    return parse_sla(text).spec


def test_a_lead_touched_and_worked_in_time_has_no_breach() -> None:
    clock = FrozenClock(hours(72))
    sla = evaluate(SLA, hand_off(), [call(2), status(30, "Working - Contacted")], clock.now())
    assert sla.first_touch_due == hours(24)
    assert sla.worked_due == hours(48)
    assert (sla.first_touch_at, sla.worked_at) == (hours(2), hours(30))
    assert (sla.first_touch_by, sla.worked_by) == (A, A)
    assert sla.breaches == ()
    assert not sla.open


def test_no_touch_in_24_hours_is_a_first_touch_breach_and_nothing_else_yet() -> None:
    sla = evaluate(SLA, hand_off(), [], hours(25))
    (breach,) = sla.breaches
    assert (breach.kind, breach.due_at, breach.met_at, breach.owner_id) == (
        "first_touch", hours(24), None, A)
    assert sla.open


def test_before_the_window_ends_nothing_is_breached() -> None:
    assert evaluate(SLA, hand_off(), [], hours(23.99)).breaches == ()
    # Exactly at the due time the window has passed.
    assert [b.kind for b in evaluate(SLA, hand_off(), [], hours(24)).breaches] == ["first_touch"]


def test_touched_but_not_worked_in_48_hours_is_a_worked_breach() -> None:
    sla = evaluate(SLA, hand_off(), [call(1)], hours(49))
    (breach,) = sla.breaches
    assert (breach.kind, breach.due_at, breach.met_at) == ("worked", hours(48), None)


def test_a_late_touch_and_late_work_are_breaches_met_late() -> None:
    sla = evaluate(SLA, hand_off(), [call(30), status(50, "Working - Contacted")], hours(60))
    assert {b.kind: b.met_at for b in sla.breaches} == {"first_touch": hours(30),
                                                        "worked": hours(50)}


def test_a_touch_at_the_due_time_is_in_time() -> None:
    assert evaluate(SLA, hand_off(), [call(24)], hours(30)).breaches == ()


def test_what_counts_as_a_touch() -> None:
    mine = Activity(hours(1), "task", by=None, task_type="Call", by_handshake=True)
    todo = Activity(hours(2), "task", by=A, task_type="Note")
    meeting = Activity(hours(3), "event", by=B)
    touched = evaluate(SLA, hand_off(), [mine, todo, meeting], hours(5))
    assert (touched.first_touch_at, touched.first_touch_by) == (hours(3), B)
    no_events = with_("[first_touch]\nevents = false\n")
    assert evaluate(no_events, hand_off(), [mine, todo, meeting], hours(5)).first_touch_at is None
    changed = status(4, "Open - Not Contacted")
    assert evaluate(SLA, hand_off(), [changed], hours(5)).first_touch_at == hours(4)
    no_status = with_("[first_touch]\nstatus_change = false\n")
    assert evaluate(no_status, hand_off(), [changed], hours(5)).first_touch_at is None
    email = Activity(hours(1), "task", by=A, task_type="email")  # any case
    assert evaluate(SLA, hand_off(), [email], hours(5)).first_touch_at == hours(1)


def test_what_counts_as_worked() -> None:
    converted = status(10, "Qualified", converted=True)
    assert evaluate(SLA, hand_off(), [converted], hours(60)).worked_at == hours(10)
    strict = with_('[worked]\nstatuses = ["Working - Contacted"]\nconverted = false\n')
    assert evaluate(strict, hand_off(), [converted], hours(60)).worked_at is None
    # Reaching a worked status is a first touch as well.
    sla = evaluate(SLA, hand_off(), [status(5, "Working - Contacted")], hours(60))
    assert (sla.first_touch_at, sla.worked_at, sla.breaches) == (hours(5), hours(5), ())


def test_activity_before_the_assignment_or_after_now_does_not_count() -> None:
    earlier = Activity(ASSIGNED - timedelta(hours=1), "task", by=A, task_type="Call")
    future = Activity(hours(30), "event", by=A)  # a meeting booked, not held yet
    sla = evaluate(SLA, hand_off(), [earlier, future], hours(25))
    assert sla.first_touch_at is None
    assert [b.kind for b in sla.breaches] == ["first_touch"]


def test_a_rerun_gives_the_same_breaches_with_the_same_keys() -> None:
    clock = FrozenClock(hours(49))
    first = evaluate(SLA, hand_off(), [], clock.now())
    again = evaluate(SLA, hand_off(), [], clock.now())
    assert first == again
    clock.advance(timedelta(days=3))
    later = evaluate(SLA, hand_off(), [call(70)], clock.now())
    assert [b.key for b in later.breaches] == [b.key for b in first.breaches]
    assert len({b.key for b in first.breaches}) == 2
    assert all(LEAD in b.key and A in b.key for b in first.breaches)


def test_business_hours_move_the_due_times_past_the_weekend_and_a_dst_change() -> None:
    office = with_('[windows]\nbusiness_hours_only = true\n[business_hours]\n'
                   'time_zone = "America/New_York"\nhours = "09:00-17:00"\ndays = "Mon-Fri"\n')
    new_york = ZoneInfo("America/New_York")
    friday = datetime(2026, 3, 6, 16, tzinfo=new_york)  # summer time starts on Sunday 8 March
    sla = evaluate(office, hand_off(at=friday), [], datetime(2026, 3, 12, 12, tzinfo=UTC))
    # 24 business hours: 1 Friday, 8 Monday, 8 Tuesday, 7 Wednesday (now on EDT).
    assert sla.first_touch_due == datetime(2026, 3, 11, 16, tzinfo=new_york)
    assert sla.first_touch_due == datetime(2026, 3, 11, 20, tzinfo=UTC)
    # 48 business hours: 1 + 8 x 5 through Friday 13 March, then 7 on Monday 16 March.
    assert sla.worked_due == datetime(2026, 3, 16, 16, tzinfo=new_york)
    assert [b.kind for b in sla.breaches] == ["first_touch"]
    # On the Monday after the hand-off no business day has passed yet: no breach.
    monday = datetime(2026, 3, 9, 16, tzinfo=new_york)
    assert evaluate(office, hand_off(at=friday), [], monday).breaches == ()


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="time-zone-aware"):
        evaluate(SLA, hand_off(), [], datetime(2026, 3, 5))


# --- reassignment --------------------------------------------------------------------------


def test_not_worked_in_its_window_goes_to_the_next_rep_of_the_team() -> None:
    sla = evaluate(SLA, hand_off(B), [call(1, by=B)], hours(50))
    move = reassignment(SLA, sla, TEAM)
    assert move is not None
    assert (move.from_owner, move.to_owner, move.team, move.reassignments) == (B, C, "SDR-NA", 1)
    assert move.due_at == hours(48)
    assert "not worked within the SLA window" in move.note
    again = reassignment(SLA, evaluate(SLA, hand_off(B), [], hours(90)), TEAM)
    assert again is not None and again.key == move.key  # one move per breached turn
    assert not never_accepted(SLA, sla, move)


def test_reassignment_starts_the_clock_again_for_the_new_owner() -> None:
    clock = FrozenClock(hours(50))
    old = evaluate(SLA, hand_off(C), [], clock.now())
    move = reassignment(SLA, old, TEAM)
    assert move is not None and move.to_owner == A  # round the end of the team
    turn = old.assignment.reassigned(move, clock.now())
    assert (turn.owner_id, turn.assigned_at, turn.reassignments) == (A, hours(50), 1)
    fresh = evaluate(SLA, turn, [], clock.now())
    assert fresh.breaches == ()
    assert fresh.first_touch_due == hours(74)
    assert fresh.worked_due == hours(98)
    clock.advance(timedelta(hours=25))
    late = evaluate(SLA, turn, [], clock.now())
    (breach,) = late.breaches
    assert (breach.owner_id, breach.due_at) == (A, hours(74))
    assert breach.key not in {b.key for b in old.breaches}
    # The new owner's work counts for the new turn.
    assert evaluate(SLA, turn, [call(51, by=A), status(60, "Working - Contacted", by=A)],
                    clock.now()).breaches == ()


def test_no_reassignment_when_worked_off_in_the_file_or_without_a_team() -> None:
    breached = evaluate(SLA, hand_off(), [], hours(50))
    off = with_("[breach]\nreassign = false\n")
    assert reassignment(off, evaluate(off, hand_off(), [], hours(50)), TEAM) is None
    assert never_accepted(off, breached, None)
    worked = evaluate(SLA, hand_off(), [status(49, "Working - Contacted")], hours(50))
    assert worked.breach("worked") is not None  # worked late: a breach, yet no move
    assert reassignment(SLA, worked, TEAM) is None
    assert not never_accepted(SLA, worked, None)
    teamless = evaluate(SLA, Assignment(LEAD, A, ASSIGNED), [], hours(50))
    assert reassignment(SLA, teamless, TEAM) is None
    assert reassignment(SLA, breached, [A]) is None  # nobody else in the team
    assert reassignment(SLA, evaluate(SLA, hand_off(), [], hours(47)), TEAM) is None


def test_after_the_turn_limit_the_lead_counts_as_never_accepted() -> None:
    limit = SLA.breach.max_reassignments
    last = evaluate(SLA, hand_off(reassignments=limit), [], hours(50))
    move = reassignment(SLA, last, TEAM)
    assert move is None
    assert never_accepted(SLA, last, move)
    assert reassignment(SLA, evaluate(SLA, hand_off(reassignments=limit - 1), [], hours(50)),
                        TEAM) is not None


def test_next_member() -> None:
    assert next_member(TEAM, A) == B
    assert next_member(TEAM, C) == A
    assert next_member(TEAM, "005Z00000000001AAA") == A  # the owner left the team
    assert next_member([A], A) is None
    assert next_member([], A) is None


# --- "worked": a worked status AND a touch in the turn ------------------------------------------

def already(status_at_start: str | None, owner: str = A) -> Assignment:
    return Assignment(LEAD, owner, ASSIGNED, team="SDR-NA", status=status_at_start)


def test_a_lead_already_in_a_worked_status_is_worked_at_its_first_touch() -> None:
    sla = evaluate(SLA, already("Working - Contacted"), [call(30, by=B)], hours(72))
    assert (sla.first_touch_at, sla.worked_at) == (hours(30), hours(30))
    assert sla.worked_by == B
    assert [b.kind for b in sla.breaches] == ["first_touch"]  # touched late, worked in time


def test_a_worked_status_it_already_had_is_not_work_without_a_touch() -> None:
    sla = evaluate(SLA, already("Working - Contacted"), [], hours(72))
    assert (sla.first_touch_at, sla.worked_at) == (None, None)
    assert [b.kind for b in sla.breaches] == ["first_touch", "worked"]
    assert sla.open


def test_a_touch_on_an_open_lead_is_no_work_until_its_status_says_so() -> None:
    for start in ("Open - Not Contacted", None):  # None: the status at hand-off is unknown
        sla = evaluate(SLA, already(start), [call(2)], hours(72))
        assert (sla.first_touch_at, sla.worked_at) == (hours(2), None)
        sla = evaluate(SLA, already(start), [call(2), status(5, "Working - Contacted")],
                       hours(72))
        assert sla.worked_at == hours(5)


def test_a_lead_moved_out_of_a_worked_status_needs_the_status_again() -> None:
    moved = [status(1, "Open - Not Contacted"), call(2)]
    sla = evaluate(SLA, already("Working - Contacted"), moved, hours(72))
    assert (sla.first_touch_at, sla.worked_at) == (hours(1), None)  # a status change touches
    touches = [call(2), status(3, "Open - Not Contacted"), call(4)]
    sla = evaluate(SLA, already("Working - Contacted"), touches, hours(72))
    assert sla.worked_at == hours(2)  # worked at the first touch, while still in the status


def test_handshakes_own_writes_never_work_a_lead() -> None:
    ours = Activity(hours(2), "task", task_type="Call", by_handshake=True)
    sla = evaluate(SLA, already("Working - Contacted"), [ours], hours(72))
    assert sla.worked_at is None
