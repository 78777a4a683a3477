"""When SLA hours count: every hour, or only business hours in a time zone (days, daily
hours, holidays). Arithmetic is on UTC instants, so a summer-time change never adds or loses an
hour: a business day from 09:00 to 17:00 local time is whatever real time lies between them."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from connector.mapping.sla import BusinessHours

__all__ = ["Calendar"]

# A window longer than this many days of searching has no business hours at all (validated
# files always have some; this only bounds the loop).
_MAX_DAYS = 3 * 366


def _aware(when: datetime, what: str) -> datetime:
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(f"{what} must be a time-zone-aware datetime")
    return when.astimezone(UTC)


class Calendar:
    """Adds SLA hours to an instant and measures SLA time between two instants."""

    def __init__(self, business_hours: BusinessHours | None = None) -> None:
        self.business_hours = business_hours
        if business_hours is not None:
            self._zone = business_hours.zone()
            self._open, self._close = business_hours.span()
            self._days = business_hours.weekdays()
            self._holidays = frozenset(business_hours.holidays)

    def _day_window(self, day: date) -> tuple[datetime, datetime] | None:
        """A business day's opening and closing instants in UTC, or None on a day off."""
        if day.weekday() not in self._days or day in self._holidays:
            return None
        opens = datetime.combine(day, self._open, tzinfo=self._zone)
        closes = (datetime.combine(day, self._close, tzinfo=self._zone) if self._close
                  else datetime.combine(day + timedelta(days=1), time(0), tzinfo=self._zone))
        return opens.astimezone(UTC), closes.astimezone(UTC)

    def add(self, start: datetime, hours: float) -> datetime:
        """The instant `hours` of SLA time after `start` (UTC)."""
        begin = _aware(start, "start")
        remaining = timedelta(hours=hours)
        if self.business_hours is None:
            return begin + remaining
        day = begin.astimezone(self._zone).date()
        for _ in range(_MAX_DAYS):
            window = self._day_window(day)
            day += timedelta(days=1)
            if window is None or window[1] <= begin:
                continue
            frm = max(window[0], begin)
            available = window[1] - frm
            if remaining <= available:
                return frm + remaining
            remaining -= available
        raise ValueError("the business hours leave no working time in three years")

    def elapsed(self, start: datetime, end: datetime) -> timedelta:
        """SLA time between two instants (zero when `end` is not after `start`)."""
        begin, finish = _aware(start, "start"), _aware(end, "end")
        if finish <= begin:
            return timedelta(0)
        if self.business_hours is None:
            return finish - begin
        total = timedelta(0)
        day = begin.astimezone(self._zone).date()
        last = finish.astimezone(self._zone).date()
        while day <= last:
            window = self._day_window(day)
            day += timedelta(days=1)
            if window is None:
                continue
            overlap = min(window[1], finish) - max(window[0], begin)
            if overlap > timedelta(0):
                total += overlap
        return total
