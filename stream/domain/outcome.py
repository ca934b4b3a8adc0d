"""What handling one input produced: a status, and the messages to send because of it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from stream.domain.channel import ALL_CHANNELS, Bucket, ChannelDelta, Source

APPLIED = "applied"
DUPLICATE = "duplicate"
REDELIVERED = "redelivered"
REJECTED = "rejected"


@dataclass(frozen=True)
class Message:
    """An internal message: ``topic`` is a logical name (``visitor-updates``, ...)."""

    topic: str
    key: str
    value: dict[str, Any]


@dataclass
class Outcome:
    status: str
    deltas: list[ChannelDelta] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    reason: str | None = None
    detail: str = ""

    @property
    def changed_state(self) -> bool:
        """Applied and duplicate events change the record (at least its offsets)."""
        return self.status in (APPLIED, DUPLICATE)

    @classmethod
    def rejected(cls, reason: str, detail: str) -> Outcome:
        return cls(REJECTED, reason=reason, detail=detail)


def spend_deltas(
    channel: str, source: Source, occurred_at: int, spend_by_day: dict[int, int]
) -> list[ChannelDelta]:
    """Spend is not weighted: the same cents go to the channel and to ``all``."""
    buckets = {day: Bucket(spend_cents=cents) for day, cents in spend_by_day.items()}
    return [
        ChannelDelta(channel, source, occurred_at, buckets),
        ChannelDelta(ALL_CHANNELS, source, occurred_at, buckets),
    ]
