"""Ad spend events: money spent on a channel over a period, spread evenly over its days."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from schemas.events import AdSpend
from stream.domain.channel import (
    AppliedSpend,
    ChannelDelta,
    ChannelRecord,
    Source,
    stream_of,
)
from stream.domain.fx import FxRates, Unconvertible
from stream.domain.money import split_evenly
from stream.domain.outcome import APPLIED, DUPLICATE, REDELIVERED, Outcome, spend_deltas
from stream.domain.timeline import day_of, day_of_date, epoch_seconds


def spread_over_days(event: AdSpend, cents: int) -> dict[int, int]:
    """``cents`` per day of the period; earlier days take the odd cents."""
    first = day_of_date(event.period_start)
    days = day_of_date(event.period_end) - first + 1
    return {first + i: part for i, part in enumerate(split_evenly(cents, days))}


@dataclass(frozen=True)
class SpendMemory:
    """How long a channel keeps the id of each spend it applied, for de-duplication.

    The caller rejects spend older than its watermark less ``lateness_seconds`` as too
    late before its id is looked at, against a watermark at least the record's: the id
    of such spend is never needed again for that, and is forgotten once the event that
    applied it is at or below ``completed`` (source stream -> highest offset of a batch
    whose outputs the broker has), for a redelivery of it must send its deltas again
    only if they might not have reached the broker. Without this the channel's record,
    rewritten by every batch that changes it, would grow with every spend ever applied.
    """

    lateness_seconds: int
    completed: Mapping[str, int]


def handle_ad_spend(
    record: ChannelRecord,
    event: AdSpend,
    source: Source,
    fx: FxRates,
    memory: SpendMemory | None = None,
) -> Outcome:
    """Apply spend, converted at the rate of its ``occurred_at`` day, to the channel's own
    record; the returned deltas carry it to ``all`` and ``paid``.

    Whether a redelivered event was applied is answered from the record, before any
    conversion; the one that applied it converts again for the deltas it sends.
    """
    if record.seen(source):
        applied = record.spend_event_ids.get(event.event_id)
        if applied is None or applied.offset != source.offset:
            return Outcome(REDELIVERED)  # not the event that applied this spend
        deltas = _deltas(event, source, fx)
        return Outcome(REDELIVERED, [] if isinstance(deltas, Unconvertible) else deltas[1:])
    if event.event_id in record.spend_event_ids:
        record.applied[source.stream] = source.position
        return Outcome(DUPLICATE)
    deltas = _deltas(event, source, fx)
    if isinstance(deltas, Unconvertible):
        return Outcome.rejected(deltas.reason, deltas.detail)
    own, *others = deltas
    record.apply(own)
    at = epoch_seconds(event.occurred_at)
    record.spend_event_ids[event.event_id] = AppliedSpend(source.offset, at, source.partition)
    if memory is not None:

        def completed_offset(partition: int | None) -> int:  # None: the event's own
            stream = stream_of(source.topic, source.partition if partition is None else partition)
            return memory.completed.get(stream, -1)

        record.forget_spend(record.watermark - memory.lateness_seconds, completed_offset)
    return Outcome(APPLIED, others)


def _deltas(event: AdSpend, source: Source, fx: FxRates) -> list[ChannelDelta] | Unconvertible:
    """The spend's deltas to its own channel, ``all`` and ``paid``, in the reporting
    currency."""
    at = epoch_seconds(event.occurred_at)
    cents = fx.to_cents(event.amount, event.currency, day_of(at))
    if isinstance(cents, Unconvertible):
        return cents
    spread = spread_over_days(event, cents)
    return spend_deltas(event.channel, event.category, source, at, spread, event.campaign)
