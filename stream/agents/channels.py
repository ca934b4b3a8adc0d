"""Channels by channel: ad spend events and the deltas customers and visitors send."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from schemas.events import AdSpend
from schemas.topics import AD_SPEND
from stream.agents.common import (
    INTERNAL_ERRORS,
    internal_json,
    logical_topic,
    publish,
    register_agent,
    reject,
    source_of,
    too_late,
)
from stream.domain.channel import (
    ChannelDelta,
    ChannelRecord,
    assemble,
    block_key,
    blocks_json,
    header_json,
)
from stream.domain.ingest import Rejection, validate
from stream.domain.outcome import APPLIED, REDELIVERED, Outcome
from stream.domain.spend import handle_ad_spend, period_days

if TYPE_CHECKING:
    from stream.app import Runtime


def register(runtime: Runtime) -> None:
    register_agent(runtime, "channels-in", "channels", handle)


async def handle(runtime: Runtime, message: Any) -> None:
    source = source_of(message)
    if logical_topic(runtime, message.topic) == AD_SPEND.name:
        event = validate(AD_SPEND, message.key, message.value)
        if isinstance(event, Rejection):
            return await reject(runtime, message, event)
        assert isinstance(event, AdSpend)
        days = period_days(event)
        record = _load(runtime, event.channel, days)
        if late := too_late(runtime, record, source, event.occurred_at):
            return await reject(runtime, message, late)
        outcome = handle_ad_spend(record, event, source, runtime.fx)
    else:
        update = internal_json(message)
        if isinstance(update, Rejection):
            return await reject(runtime, message, update)
        try:
            delta = ChannelDelta.from_json(update)
        except INTERNAL_ERRORS as error:
            return await reject(runtime, message, Rejection("invalid_internal", repr(error)))
        days = list(delta.buckets)
        record = _load(runtime, delta.channel, days)
        outcome = Outcome(APPLIED if record.apply(delta) else REDELIVERED)
    if outcome.changed_state:
        _store(runtime, record, days)
        runtime.advance_watermark(record.watermark)
    await publish(runtime, message, outcome)


def _load(runtime: Runtime, channel: str, days: list[int]) -> ChannelRecord:
    """The channel's header with the buckets of the blocks holding ``days``."""
    header = runtime.channels.get(channel)
    if header is None:
        header = header_json(ChannelRecord(channel))
    keys = {block_key(channel, day) for day in days}
    return assemble(header, filter(None, (runtime.channels.get(key) for key in keys)))


def _store(runtime: Runtime, record: ChannelRecord, days: list[int]) -> None:
    runtime.channels[record.channel] = header_json(record)
    for key, block in blocks_json(record, days).items():
        if block is not None:
            runtime.channels[key] = block
        elif runtime.channels.get(key) is not None:
            del runtime.channels[key]  # every bucket of the block retracted
