"""The follow-up SLA of one hand-off: due times, first touch, worked, breaches, reassignment.

    status = evaluate(sla.spec, Assignment("00Q...", "005...", assigned_at, team="SDR-NA"),
                      activities, now)
    status.breaches                       # each with a stable `key`: alert and record it once
    move = reassignment(sla.spec, status, team_members)
    if move: next_assignment = status.assignment.reassigned(move, at=now)  # fresh windows

Pure: the caller reads the store and Salesforce, passes what happened, and writes the results.
The same inputs give the same breaches (same keys), so a re-run alerts nobody twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Literal

from connector.mapping.sla import SlaFile
from connector.sla.calendar import Calendar

__all__ = [
    "Activity",
    "Assignment",
    "BreachKind",
    "Reassignment",
    "SlaBreach",
    "SlaStatus",
    "calendar_of",
    "evaluate",
    "never_accepted",
    "next_member",
    "reassignment",
]

BreachKind = Literal["first_touch", "worked"]
ActivityKind = Literal["task", "event", "status"]


def _utc(when: datetime, what: str) -> datetime:
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(f"{what} must be a time-zone-aware datetime")
    return when.astimezone(UTC)


def _stamp(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


@dataclass(frozen=True, slots=True)
class Assignment:
    """One owner's turn with a handed-off Lead: the SLA windows start at `assigned_at`.
    `reassignments` counts the turns before this one (0 for the hand-off itself). `status`:
    the Lead's status when the turn began (None: unknown), so a Lead handed off already in a
    worked status is worked at its first touch in this turn (see `evaluate`)."""

    lead_id: str
    owner_id: str
    assigned_at: datetime
    team: str | None = None
    reassignments: int = 0
    status: str | None = None

    def reassigned(self, move: Reassignment, at: datetime) -> Assignment:
        """The new owner's turn, its windows starting at `at` (when the new owner was set)."""
        return replace(self, owner_id=move.to_owner, assigned_at=_utc(at, "at"),
                       reassignments=move.reassignments)


@dataclass(frozen=True, slots=True)
class Activity:
    """Something that happened on the Lead: a completed Task (`task_type` = its TaskSubtype,
    else Type), an Event that started, or a status change (`status` = the new value).

    `at`: when the work happened (a Task's CompletedDateTime, else CreatedDate; an Event's
    start; the change's time), never a Task's ActivityDate (a due date). `by`: the user who did
    it (reported as who touched and worked the lead). `by_handshake`: one of
    Handshake's own writes (a hand-off or alert Task, a recycle), which never counts."""

    at: datetime
    kind: ActivityKind
    by: str | None = None
    task_type: str | None = None
    status: str | None = None
    converted: bool = False
    by_handshake: bool = False


@dataclass(frozen=True, slots=True)
class SlaBreach:
    """A window that passed without what it asked for. `met_at`: when it was done late (None
    while still not done). `key` names the breach for good: alert and record it once."""

    lead_id: str
    owner_id: str
    kind: BreachKind
    assigned_at: datetime
    due_at: datetime
    met_at: datetime | None = None

    @property
    def key(self) -> str:
        """Stable across runs: the hand-off turn and the window, never `now`."""
        return f"sla:{self.lead_id}:{self.owner_id}:{_stamp(self.assigned_at)}:{self.kind}"


@dataclass(frozen=True, slots=True)
class SlaStatus:
    """One assignment's SLA as of `now`."""

    assignment: Assignment
    now: datetime
    first_touch_due: datetime
    worked_due: datetime
    first_touch_at: datetime | None
    worked_at: datetime | None
    breaches: tuple[SlaBreach, ...]
    first_touch_by: str | None = None
    worked_by: str | None = None

    def breach(self, kind: BreachKind) -> SlaBreach | None:
        """The breach of that window, if any."""
        return next((b for b in self.breaches if b.kind == kind), None)

    @property
    def open(self) -> bool:
        """Still waiting to be worked (breached or not)."""
        return self.worked_at is None


@dataclass(frozen=True, slots=True)
class Reassignment:
    """Give the Lead to the next rep of its team, with a note; `reassignments` is the new
    owner's count. `key` is stable: the same breach never moves the Lead twice."""

    lead_id: str
    from_owner: str
    to_owner: str
    team: str
    due_at: datetime
    note: str
    reassignments: int

    @property
    def key(self) -> str:
        """One per breached turn."""
        return f"reassign:{self.lead_id}:{self.from_owner}:{_stamp(self.due_at)}"


def calendar_of(sla: SlaFile) -> Calendar:
    """The calendar the file's windows count in."""
    return Calendar(sla.business_hours if sla.windows.business_hours_only else None)


def _touches(sla: SlaFile, activity: Activity) -> bool:
    if activity.kind == "task":
        wanted = {t.casefold() for t in sla.first_touch.task_types}
        return (activity.task_type or "").strip().casefold() in wanted
    if activity.kind == "event":
        return sla.first_touch.events
    return sla.first_touch.status_change


def _worked_status(sla: SlaFile, status: str | None) -> bool:
    wanted = {s.strip().casefold() for s in sla.worked.statuses}
    return (status or "").strip().casefold() in wanted


def _works(sla: SlaFile, activity: Activity) -> bool:
    if activity.kind != "status":
        return False
    if activity.converted and sla.worked.converted:
        return True
    return _worked_status(sla, activity.status)


def evaluate(sla: SlaFile, assignment: Assignment, activities: Iterable[Activity],
             now: datetime, calendar: Calendar | None = None) -> SlaStatus:
    """The SLA of `assignment` as of `now`: due times, first touch and worked times (the
    earliest that count, at or after the assignment and not after `now`), and the breaches.

    Worked is reached when the Lead is in a worked status AND a person touched it in this
    turn: at the status change into a worked status (a touch too), or, for a Lead already in
    a worked status when the turn began (`assignment.status`), at its first touch since."""
    now = _utc(now, "now")
    start = _utc(assignment.assigned_at, "assigned_at")
    assignment = replace(assignment, assigned_at=start)
    cal = calendar or calendar_of(sla)
    first_due = cal.add(start, sla.windows.first_touch_hours)
    worked_due = cal.add(start, sla.windows.worked_hours)
    seen = sorted((a for a in activities if not a.by_handshake
                   and start <= _utc(a.at, "activity time") <= now),
                  key=lambda a: _utc(a.at, "activity time"))
    touch: Activity | None = None
    work: Activity | None = None
    current = assignment.status
    for activity in seen:
        if activity.kind == "status":
            current = activity.status
        works = _works(sla, activity)  # reaching a worked status is a touch too
        touched = works or _touches(sla, activity)
        if touch is None and touched:
            touch = activity
        if work is None and (works or (touched and _worked_status(sla, current))):
            work = activity
        if work is not None:
            break
    first = _utc(touch.at, "") if touch else None
    worked = _utc(work.at, "") if work else None
    windows: tuple[tuple[BreachKind, datetime, datetime | None], ...] = (
        ("first_touch", first_due, first), ("worked", worked_due, worked))
    breaches = [SlaBreach(assignment.lead_id, assignment.owner_id, kind, start, due, done)
                for kind, due, done in windows
                if (done is None and now >= due) or (done is not None and done > due)]
    return SlaStatus(assignment, now, first_due, worked_due, first, worked, tuple(breaches),
                     touch.by if touch else None, work.by if work else None)


def next_member(members: Sequence[str], current: str) -> str | None:
    """The member after `current` in the team's order (round the end); the first member when
    `current` is not in the team; None when nobody else is."""
    others = [m for m in members if m != current]
    if not others:
        return None
    if current not in members:
        return others[0]
    at = members.index(current)
    for step in range(1, len(members)):
        candidate = members[(at + step) % len(members)]
        if candidate != current:
            return candidate
    return None


def reassignment(sla: SlaFile, status: SlaStatus,
                 team_members: Sequence[str]) -> Reassignment | None:
    """Whether the Lead moves to another rep: its worked window passed without it being worked,
    the file says reassign, the turn limit is not reached, and its routing team has another
    (active) member. `team_members`: the active members' user ids, in the team's order."""
    a = status.assignment
    breach = status.breach("worked")
    if not sla.breach.reassign or breach is None or status.worked_at is not None:
        return None
    if a.team is None or a.reassignments >= sla.breach.max_reassignments:
        return None
    to = next_member(team_members, a.owner_id)
    if to is None:
        return None
    return Reassignment(a.lead_id, a.owner_id, to, a.team, breach.due_at,
                        sla.breach.reassign_note, a.reassignments + 1)


def never_accepted(sla: SlaFile, status: SlaStatus, move: Reassignment | None) -> bool:
    """Not worked in its window and not given to another rep (reassignment off, the turn
    limit reached, or nobody else in the team): the Lead goes back to marketing."""
    return status.breach("worked") is not None and status.worked_at is None and move is None
