"""Per-channel state: daily event-time buckets fed by deltas, applied exactly once.

Every delta names its source (topic, partition, offset, seq). Deltas from one
source partition arrive in order, so a high-water mark per source partition is
enough to ignore redelivered ones.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

ALL_CHANNELS = "all"  # blended: every channel
PAID_CHANNELS = "paid"  # every channel but direct


def stream_of(topic: str, partition: int) -> str:
    """The name of a source partition in records: ``topic:partition``."""
    return f"{topic}:{partition}"


@dataclass(frozen=True)
class Source:
    """Where a change came from; ``seq`` orders several outputs of one source event."""

    topic: str
    partition: int
    offset: int
    seq: int = 0

    @property
    def stream(self) -> str:
        return stream_of(self.topic, self.partition)

    @property
    def position(self) -> tuple[int, int]:
        return (self.offset, self.seq)


class AppliedOffsets:
    """Highest offset applied per source partition, for records keyed by an entity."""

    offsets: dict[str, int]

    def seen(self, source: Source) -> bool:
        return self.offsets.get(source.stream, -1) >= source.offset

    def mark(self, source: Source) -> None:
        self.offsets[source.stream] = max(self.offsets.get(source.stream, -1), source.offset)


SPEND_CATEGORIES = ("media", "salaries", "tools", "agency", "other")
MEDIA = "media"  # clicks and referral rewards are media spend too


def spend_key(category: str) -> str:
    return f"spend:{category}"


def campaign_spend_key(campaign: str) -> str:
    return f"campaign_spend:{campaign}"


def campaign_customers_key(campaign: str) -> str:
    """New customers of a campaign, by the primary attribution model."""
    return f"campaign_customers:{campaign}"


def customers_key(model: str) -> str:
    return f"customers:{model}"


def profit_key(model: str) -> str:
    return f"profit:{model}"


def orders_key(model: str) -> str:
    return f"orders:{model}"


def last_orders_key(model: str) -> str:
    """Customers whose latest order was on the bucket's day (for churn)."""
    return f"last_orders:{model}"


@functools.cache  # asked for every model of every change of a customer
def customer_keys(model: str) -> tuple[str, ...]:
    """The counters a customer puts in a channel's days under ``model``."""
    return (customers_key(model), profit_key(model), orders_key(model), last_orders_key(model))


# Referral counters, in ``all`` only (see Bucket).
REFERRED = "referred"
REFERRERS = "referrers"


def referred_key(counter: str) -> str:
    """The share of a weighted counter (``customers:{model}``, ...) credited to referral."""
    return f"referred_{counter}"


@dataclass
class Bucket:
    """One day of one channel: named integer counters, absent when zero.

    ``spend:{category}`` in cents; ``customers:{model}`` (acquired that day),
    ``profit:{model}`` (cents), ``orders:{model}`` and ``last_orders:{model}`` (customers
    whose latest order was that day) in millionths, weighted by that attribution model's
    weights; on a
    channel's own record ``campaign_spend:{campaign}`` (cents) and
    ``campaign_customers:{campaign}`` (millionths, primary model).

    ``all`` also counts, for the referral figures: ``referred_customers:{model}``,
    ``referred_profit:{model}`` and ``referred_orders:{model}`` (the same counters
    weighted by the model's ``referral`` weight only); ``referred``, whole customers
    acquired that day with a referrer (primary model); ``referrers``, whole customers
    who referred customers, on the latest day one of those was acquired.
    """

    counts: dict[str, int] = field(default_factory=dict)

    def get(self, key: str) -> int:
        return self.counts.get(key, 0)

    def add(self, other: Bucket, sign: int = 1) -> None:
        for key, value in other.counts.items():
            total = self.counts.get(key, 0) + sign * value
            if total:
                self.counts[key] = total
            else:
                self.counts.pop(key, None)

    @property
    def spend_cents(self) -> int:
        """Spend of every category (fully loaded)."""
        return sum(self.get(spend_key(category)) for category in SPEND_CATEGORIES)

    def __bool__(self) -> bool:
        return bool(self.counts)

    def to_json(self) -> dict[str, int]:
        return dict(self.counts)

    @classmethod
    def from_json(cls, counts: dict[str, int]) -> Bucket:
        return cls(dict(counts))


def _add_into(target: dict[int, Bucket], changes: dict[int, Bucket]) -> None:
    """Add buckets by key; a bucket with no counter left is removed."""
    for key, change in changes.items():
        bucket = target.setdefault(key, Bucket())
        bucket.add(change)
        if not bucket:
            del target[key]  # retracted: the record is the same as if never sent


def _applied_spend(stored: int | list[Any], watermark: int) -> AppliedSpend:
    """A stored spend id; one written before event times were kept holds its offset
    alone, and is kept as if it occurred at the record's watermark."""
    if isinstance(stored, int):
        return AppliedSpend(stored, watermark, None)
    offset, occurred_at, partition = stored
    return AppliedSpend(offset, occurred_at, partition)


def _cohorts_from_json(data: dict[str, dict[str, int]]) -> dict[int, Bucket]:
    return {int(month): Bucket.from_json(counts) for month, counts in data.items()}


@dataclass(frozen=True)
class ChannelDelta:
    """A change to one channel's buckets caused by one source event; ``cohorts`` is the
    change to its acquisition cohorts (by acquisition month, ``stream.domain.cohort``)."""

    channel: str
    source: Source
    occurred_at: int
    buckets: dict[int, Bucket]
    cohorts: dict[int, Bucket] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "source": [
                self.source.topic,
                self.source.partition,
                self.source.offset,
                self.source.seq,
            ],
            "occurred_at": self.occurred_at,
            "buckets": {str(day): bucket.to_json() for day, bucket in self.buckets.items()},
            "cohorts": {str(month): cohort.to_json() for month, cohort in self.cohorts.items()},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ChannelDelta:
        topic, partition, offset, seq = data["source"]
        return cls(
            channel=data["channel"],
            source=Source(topic, partition, offset, seq),
            occurred_at=data["occurred_at"],
            buckets={int(day): Bucket.from_json(v) for day, v in data["buckets"].items()},
            cohorts=_cohorts_from_json(data.get("cohorts", {})),
        )


class AppliedSpend(NamedTuple):
    """Where and when the ad-spend event that applied a spend id was."""

    offset: int
    occurred_at: int  # seconds since the epoch
    partition: int | None  # None: written before partitions were kept, the key's own


@dataclass
class ChannelRecord:
    """Everything known about one acquisition channel (or ``all`` of them)."""

    channel: str
    buckets: dict[int, Bucket] = field(default_factory=dict)
    applied: dict[str, tuple[int, int]] = field(default_factory=dict)
    watermark: int = 0  # largest event time applied, seconds since the epoch
    spend_event_ids: dict[str, AppliedSpend] = field(default_factory=dict)
    cohorts: dict[int, Bucket] = field(default_factory=dict)  # acquisition month -> counters

    def seen(self, source: Source) -> bool:
        last = self.applied.get(source.stream)
        return last is not None and source.position <= last

    def apply(self, delta: ChannelDelta) -> bool:
        """Add a delta unless its source position was applied already; True if applied."""
        if self.seen(delta.source):
            return False
        self.applied[delta.source.stream] = delta.source.position
        for day, change in delta.buckets.items():
            bucket = self.buckets.setdefault(day, Bucket())
            bucket.add(change)
            if not bucket:
                del self.buckets[day]  # retracted: the record is the same as if never sent
        _add_into(self.cohorts, delta.cohorts)
        self.watermark = max(self.watermark, delta.occurred_at)
        return True

    def forget_spend(self, before: int, completed: Callable[[int | None], int]) -> None:
        """Forget the ids of spend that occurred before ``before`` (seconds) and was applied
        at or below ``completed(partition)``, the highest offset of the partition whose
        outputs the broker has: a redelivery of such an event need not send them again."""
        self.spend_event_ids = {
            event_id: applied
            for event_id, applied in self.spend_event_ids.items()
            if applied.occurred_at >= before or applied.offset > completed(applied.partition)
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "buckets": {str(day): bucket.to_json() for day, bucket in self.buckets.items()},
            "applied": {stream: list(pos) for stream, pos in self.applied.items()},
            "watermark": self.watermark,
            "spend_event_ids": {
                event_id: list(applied) for event_id, applied in self.spend_event_ids.items()
            },
            "cohorts": {str(month): cohort.to_json() for month, cohort in self.cohorts.items()},
        }

    @staticmethod
    def stored_watermark(data: dict[str, Any]) -> int:
        """The watermark of a stored record, without decoding the rest."""
        watermark: int = data["watermark"]
        return watermark

    @staticmethod
    def stored_is_empty(data: dict[str, Any]) -> bool:
        """A stored record without buckets: every attribution was retracted."""
        return not data["buckets"]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ChannelRecord:
        return cls(
            channel=data["channel"],
            buckets={int(day): Bucket.from_json(v) for day, v in data["buckets"].items()},
            applied={stream: (pos[0], pos[1]) for stream, pos in data["applied"].items()},
            watermark=data["watermark"],
            spend_event_ids={
                event_id: _applied_spend(stored, data["watermark"])
                for event_id, stored in data["spend_event_ids"].items()
            },
            cohorts=_cohorts_from_json(data.get("cohorts", {})),
        )
