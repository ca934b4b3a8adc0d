"""What handling one input produced: a status, and the messages to send because of it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from stream.domain.attribution import DIRECT
from stream.domain.channel import (
    ALL_CHANNELS,
    PAID_CHANNELS,
    Bucket,
    ChannelDelta,
    Source,
    campaign_spend_key,
    spend_key,
)

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
    channel: str,
    category: str,
    source: Source,
    occurred_at: int,
    spend_by_day: dict[int, int],
    campaign: str | None = None,
) -> list[ChannelDelta]:
    """Spend is not weighted: the same cents go to the channel, to ``all`` and, unless
    the channel is ``direct``, to ``paid``; the channel's own delta comes first and
    also counts the spend of its campaign."""
    key = spend_key(category)
    days = {day: cents for day, cents in spend_by_day.items() if cents}
    own_keys = [key] if campaign is None else [key, campaign_spend_key(campaign)]
    own = {day: Bucket(dict.fromkeys(own_keys, cents)) for day, cents in days.items()}
    shared = {day: Bucket({key: cents}) for day, cents in days.items()}
    others = [ALL_CHANNELS] + ([] if channel == DIRECT else [PAID_CHANNELS])
    return [ChannelDelta(channel, source, occurred_at, own)] + [
        ChannelDelta(name, source, occurred_at, shared) for name in others
    ]
