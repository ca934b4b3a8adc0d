"""Event time: days since the epoch (UTC) and the windows computed over them."""

from __future__ import annotations

import datetime as dt

SECONDS_PER_DAY = 86_400
WINDOW_DAYS: dict[str, int | None] = {
    "7d": 7,
    "30d": 30,
    "90d": 90,
    "365d": 365,
    "lifetime": None,
}


def epoch_seconds(moment: dt.datetime) -> int:
    """Aware datetime -> whole seconds since the epoch."""
    return int(moment.timestamp())


def day_of(seconds: int) -> int:
    """Seconds since the epoch -> day number (UTC)."""
    return seconds // SECONDS_PER_DAY


def day_of_date(date: dt.date) -> int:
    """Calendar date (UTC) -> day number."""
    return (date - dt.date(1970, 1, 1)).days


def date_of_day(day: int) -> dt.date:
    """Day number -> calendar date (UTC)."""
    return dt.date(1970, 1, 1) + dt.timedelta(days=day)


def in_window(day: int, now_day: int, window: str) -> bool:
    """A bucket belongs to a window ending at ``now_day`` (later buckets count too)."""
    length = WINDOW_DAYS[window]
    return length is None or day > now_day - length
