"""Allowed lateness (ARCHITECTURE section 4, "Time").

The watermark is the newest event time applied to the channels, in seconds since the
epoch. Windows end on the day of the watermark less the allowed lateness, and a source
event that happened before that moment is too late: it goes to dead letters with reason
``too_late`` instead of changing a day the windows have moved past. Every event that is
not too late lands on that day or later, so every window still holds it.
"""

from __future__ import annotations

import datetime as dt
from typing import Protocol

from stream.domain.channel import Source
from stream.domain.ingest import Rejection
from stream.domain.timeline import day_of, epoch_seconds

TOO_LATE = "too_late"


class AppliedRecord(Protocol):
    """A record that knows which source offsets it has applied."""

    def seen(self, source: Source) -> bool: ...


def event_today(watermark: int, lateness_seconds: int) -> int:
    """The event-time "today" windows end on: the day of the watermark less the lateness."""
    return day_of(max(watermark - lateness_seconds, 0))


def too_late(
    record: AppliedRecord,
    source: Source,
    occurred_at: dt.datetime,
    watermark: int,
    lateness_seconds: int,
) -> Rejection | None:
    """Why a source event must not be applied to ``record`` (``None`` when it may be).

    An event the record applied already (redelivered after a crash) is never too late:
    it is answered from state, so its deltas are sent again as the first time.
    """
    if record.seen(source):
        return None
    at = epoch_seconds(occurred_at)
    if at >= watermark - lateness_seconds:
        return None
    return Rejection(
        TOO_LATE,
        f"occurred_at {_timestamp(at)} is more than the allowed lateness of"
        f" {lateness_seconds}s before the watermark {_timestamp(watermark)}",
    )


def _timestamp(seconds: int) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
