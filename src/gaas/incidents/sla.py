"""SLA clock arithmetic: adding resolution time and measuring elapsed time, around the clock or
in business hours (a time zone, working days, a daily window, holidays).

Pure functions over aware datetimes; the service decides when the clock starts, stops and resumes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

# A calendar whose working time never comes (every day a holiday) must not loop forever:
# no SLA target is longer than a year, so ten years of days is a safe bound.
MAX_DAYS = 3660


@dataclass(frozen=True)
class Calendar:
    """When the SLA clock runs. `zone` None means around the clock (24x7)."""

    zone: ZoneInfo | None = None
    start: time | None = None
    end: time | None = None
    days: frozenset[int] = frozenset({1, 2, 3, 4, 5})  # ISO weekdays, Monday = 1
    holidays: frozenset[date] = frozenset()

    @property
    def around_the_clock(self) -> bool:
        return self.zone is None


ALWAYS = Calendar()


def _windows(calendar: Calendar, since: datetime):
    """The calendar's working periods (UTC), in order, from the local day containing `since`."""
    assert calendar.zone is not None and calendar.start is not None and calendar.end is not None
    day = since.astimezone(calendar.zone).date()
    for _ in range(MAX_DAYS):
        if day.isoweekday() in calendar.days and day not in calendar.holidays:
            opens = datetime.combine(day, calendar.start, calendar.zone).astimezone(UTC)
            closes = datetime.combine(day, calendar.end, calendar.zone).astimezone(UTC)
            if closes > opens:
                yield opens, closes
        day += timedelta(days=1)


def add_working_time(calendar: Calendar, start: datetime, seconds: int) -> datetime:
    """The moment at which `seconds` of working time have passed since `start`."""
    if calendar.around_the_clock:
        return start + timedelta(seconds=seconds)
    remaining = timedelta(seconds=seconds)
    cursor = start
    last_close = start
    for opens, closes in _windows(calendar, start):
        if closes <= cursor:
            continue
        begin = max(opens, cursor)
        available = closes - begin
        if remaining <= available:
            return begin + remaining
        remaining -= available
        cursor = last_close = closes
    # Not reachable with a sane calendar (validated on write); never leave an incident without a date.
    return last_close + remaining


def working_seconds_between(calendar: Calendar, start: datetime, end: datetime) -> int:
    """Working time between two moments, in whole seconds (0 if end is not after start)."""
    if end <= start:
        return 0
    if calendar.around_the_clock:
        return int((end - start).total_seconds())
    total = timedelta()
    for opens, closes in _windows(calendar, start):
        if opens >= end:
            break
        begin, finish = max(opens, start), min(closes, end)
        if finish > begin:
            total += finish - begin
    return int(total.total_seconds())
