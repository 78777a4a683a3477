"""SLA hours: every hour in UTC, or business hours in a time zone across weekends, holidays and
summer-time changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from connector.mapping.sla import BusinessHours
from connector.sla import Calendar

NEW_YORK = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")
OFFICE = BusinessHours.model_validate({"time_zone": "America/New_York", "hours": "09:00-17:00",
                                       "days": "Mon-Fri", "holidays": ["2026-12-25"]})


def ny(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=NEW_YORK)


def test_every_hour_counts_without_business_hours_even_across_a_dst_change() -> None:
    # US summer time starts Sunday 8 March 2026 at 02:00: 24 real hours from Saturday noon
    # end at 13:00 local on Sunday.
    due = Calendar().add(ny(2026, 3, 7, 12), 24)
    assert due - ny(2026, 3, 7, 12) == timedelta(hours=24)
    assert due.astimezone(NEW_YORK).hour == 13
    assert due.tzinfo is UTC


def test_friday_afternoon_plus_a_working_day_and_more_lands_after_the_weekend() -> None:
    # Friday 16:00: 1 hour on Friday, 8 Monday, 8 Tuesday, 7 Wednesday.
    due = Calendar(OFFICE).add(ny(2026, 1, 9, 16), 24)
    assert due == ny(2026, 1, 14, 16)


def test_a_lead_assigned_at_the_weekend_starts_counting_on_monday_morning() -> None:
    due = Calendar(OFFICE).add(ny(2026, 1, 10, 11), 1)
    assert due == ny(2026, 1, 12, 10)


def test_business_hours_across_the_spring_forward_weekend() -> None:
    # Friday 6 March 16:00 EST (21:00 UTC) + 8 business hours: 1 on Friday, 7 on Monday 9 March,
    # which is on summer time: 16:00 EDT is 20:00 UTC.
    due = Calendar(OFFICE).add(ny(2026, 3, 6, 16), 8)
    assert due == datetime(2026, 3, 9, 20, tzinfo=UTC)
    assert due.astimezone(NEW_YORK).hour == 16


def test_the_autumn_day_with_25_hours_counts_25() -> None:
    always = BusinessHours(time_zone="Europe/Berlin", hours="00:00-24:00",
                           days=["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"])
    calendar = Calendar(always)
    start = datetime(2026, 10, 25, 0, tzinfo=BERLIN)  # summer time ends this Sunday
    end = datetime(2026, 10, 26, 0, tzinfo=BERLIN)
    assert calendar.elapsed(start, end) == timedelta(hours=25)
    assert calendar.add(start, 25) == end


def test_an_opening_time_that_does_not_exist_on_the_spring_forward_day() -> None:
    # 02:00 does not exist in New York on 8 March 2026: the day's window starts at 03:00 EDT.
    night = BusinessHours.model_validate({"time_zone": "America/New_York",
                                          "hours": "02:00-10:00", "days": "Sun"})
    day = Calendar(night)
    assert day.elapsed(ny(2026, 3, 8), ny(2026, 3, 9)) == timedelta(hours=7)
    assert day.add(ny(2026, 3, 8), 1) == datetime(2026, 3, 8, 8, tzinfo=UTC)  # 04:00 EDT


def test_a_holiday_counts_no_hour() -> None:
    # Thursday 24 December 16:00 + 8 h: 1 on Thursday, Christmas off, weekend off, 7 on Monday.
    assert Calendar(OFFICE).add(ny(2026, 12, 24, 16), 8) == ny(2026, 12, 28, 16)


def test_elapsed_counts_only_business_hours() -> None:
    calendar = Calendar(OFFICE)
    assert calendar.elapsed(ny(2026, 1, 9, 16), ny(2026, 1, 12, 10)) == timedelta(hours=2)
    assert calendar.elapsed(ny(2026, 1, 12, 10), ny(2026, 1, 9, 16)) == timedelta(0)
    assert Calendar().elapsed(ny(2026, 1, 9, 16), ny(2026, 1, 12, 10)) == timedelta(hours=66)


def test_add_and_elapsed_agree() -> None:
    calendar = Calendar(OFFICE)
    start = ny(2026, 3, 5, 13, 30)
    for hours in (0.5, 3, 8, 24, 48, 100):
        assert calendar.elapsed(start, calendar.add(start, hours)) == timedelta(hours=hours)


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="time-zone-aware"):
        Calendar().add(datetime(2026, 1, 1), 1)
