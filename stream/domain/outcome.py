"""What handling one input produced: a status, and the messages to send because of it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from stream.domain.attribution import Weights
from stream.domain.channel import ALL_CHANNELS, Bucket, ChannelDelta, Source
from stream.domain.money import WEIGHT_SCALE

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


def unsupported_currency(currency: str, reporting_currency: str) -> Outcome | None:
    """Amounts in another currency are rejected, never counted 1:1."""
    if currency == reporting_currency:
        return None
    return Outcome.rejected(
        "unsupported_currency",
        f"currency {currency} is not the reporting currency {reporting_currency}",
    )


def split_deltas(
    weights: Weights, source: Source, occurred_at: int, buckets: dict[int, Bucket]
) -> list[ChannelDelta]:
    """Deltas for each weighted channel and for ``all`` from unweighted day buckets.

    ``buckets`` hold whole units (1 customer, cents, 1 order); each channel gets them
    times its weight, ``all`` gets them whole (times ``WEIGHT_SCALE``).
    """
    deltas = [
        ChannelDelta(
            channel,
            Source(source.topic, source.partition, source.offset, seq),
            occurred_at,
            {day: _weighted(bucket, weight) for day, bucket in buckets.items()},
        )
        for seq, (channel, weight) in enumerate(sorted(weights.items()))
    ]
    whole = {day: _weighted(bucket, WEIGHT_SCALE) for day, bucket in buckets.items()}
    deltas.append(ChannelDelta(ALL_CHANNELS, source, occurred_at, whole))
    return deltas


def spend_deltas(
    channel: str, source: Source, occurred_at: int, spend_by_day: dict[int, int]
) -> list[ChannelDelta]:
    """Spend is not weighted: the same cents go to the channel and to ``all``."""
    buckets = {day: Bucket(spend_cents=cents) for day, cents in spend_by_day.items()}
    return [
        ChannelDelta(channel, source, occurred_at, buckets),
        ChannelDelta(ALL_CHANNELS, source, occurred_at, buckets),
    ]


def _weighted(bucket: Bucket, weight: int) -> Bucket:
    return Bucket(
        spend_cents=bucket.spend_cents,
        customers=bucket.customers * weight,
        gross_profit=bucket.gross_profit * weight,
        orders=bucket.orders * weight,
    )
