"""Ad spend events: money spent on a channel over a period, spread evenly over its days."""

from __future__ import annotations

from schemas.events import AdSpend
from stream.domain.channel import ChannelRecord, Source
from stream.domain.money import split_evenly, to_cents
from stream.domain.outcome import (
    APPLIED,
    DUPLICATE,
    REDELIVERED,
    Outcome,
    spend_deltas,
    unsupported_currency,
)
from stream.domain.timeline import day_of_date, epoch_seconds


def spread_over_days(event: AdSpend) -> dict[int, int]:
    """Cents per day of the period; earlier days take the odd cents."""
    first = day_of_date(event.period_start)
    days = day_of_date(event.period_end) - first + 1
    return {first + i: cents for i, cents in enumerate(split_evenly(to_cents(event.amount), days))}


def handle_ad_spend(
    record: ChannelRecord, event: AdSpend, source: Source, reporting_currency: str
) -> Outcome:
    """Apply spend to the channel's own record; the returned deltas carry it to ``all``
    and ``paid``."""
    if error := unsupported_currency(event.currency, reporting_currency):
        return error
    own, *others = spend_deltas(
        event.channel,
        event.category,
        source,
        epoch_seconds(event.occurred_at),
        spread_over_days(event),
        event.campaign,
    )
    if record.seen(source):
        applied_here = record.spend_event_ids.get(event.event_id) == source.offset
        return Outcome(REDELIVERED, others if applied_here else [])
    if event.event_id in record.spend_event_ids:
        record.applied[source.stream] = source.position
        return Outcome(DUPLICATE)
    record.apply(own)
    record.spend_event_ids[event.event_id] = source.offset
    return Outcome(APPLIED, others)
