"""Change windows in time: a window's occurrences (one-off, or daily/weekly at the same local
time in its time zone, until a date) that meet a period."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

STEPS = {"daily": timedelta(days=1), "weekly": timedelta(days=7)}
MAX_OCCURRENCES = 10_000  # a change or calendar period of years over a daily window, at most


def occurrences(start_at: datetime, end_at: datetime, recurrence: str, until: date | None, timezone: str,
                period_start: datetime, period_end: datetime) -> Iterator[tuple[datetime, datetime]]:
    """The window's occurrences overlapping [period_start, period_end), in order, in UTC."""
    length = end_at - start_at
    if recurrence not in STEPS:
        if start_at < period_end and end_at > period_start:
            yield start_at.astimezone(UTC), end_at.astimezone(UTC)
        return
    zone = ZoneInfo(timezone)
    local_first = start_at.astimezone(zone).replace(tzinfo=None)  # wall-clock time repeats, across DST too
    step = STEPS[recurrence]
    # Skip the occurrences ending before the period (a day of slack covers DST shifts).
    skip = max(0, (period_start - end_at) // step - 1)
    for k in range(skip, skip + MAX_OCCURRENCES):
        local = local_first + k * step
        if until is not None and local.date() > until:
            return
        begins = local.replace(tzinfo=zone).astimezone(UTC)
        if begins >= period_end:
            return
        ends = begins + length
        if ends > period_start:
            yield begins, ends


def overlapping(window, period_start: datetime, period_end: datetime) -> list[tuple[datetime, datetime]]:
    return list(occurrences(window.start_at, window.end_at, window.recurrence, window.recurrence_until,
                            window.timezone, period_start, period_end))


def containing(window, period_start: datetime, period_end: datetime) -> tuple[datetime, datetime] | None:
    """The occurrence that holds the whole period, if any."""
    for begins, ends in overlapping(window, period_start, period_end):
        if begins <= period_start and period_end <= ends:
            return begins, ends
    return None
