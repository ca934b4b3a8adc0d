"""Channels by channel: ad spend events and the deltas customers and visitors send."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from schemas.events import AdSpend
from schemas.topics import AD_SPEND
from stream.agents.common import (
    INTERNAL_ERRORS,
    Records,
    internal_json,
    logical_topic,
    publish,
    register_agent,
    reject,
    source_of,
    too_late,
)
from stream.domain.channel import ChannelDelta, ChannelRecord
from stream.domain.ingest import Rejection, validate
from stream.domain.outcome import APPLIED, REDELIVERED, Outcome
from stream.domain.spend import handle_ad_spend

if TYPE_CHECKING:
    from stream.app import Runtime


def register(runtime: Runtime) -> None:
    register_agent(runtime, "channels-in", "channels", handle, lambda: records(runtime))


def records(runtime: Runtime) -> Records[ChannelRecord]:
    return Records(runtime.channels, ChannelRecord, ChannelRecord.from_json, ChannelRecord.to_json)


async def handle(runtime: Runtime, message: Any, channels: Records[ChannelRecord]) -> None:
    source = source_of(message)
    if logical_topic(runtime, message.topic) == AD_SPEND.name:
        event = validate(AD_SPEND, message.key, message.value)
        if isinstance(event, Rejection):
            return reject(runtime, message, event, channels)
        assert isinstance(event, AdSpend)
        record = channels.get(event.channel)
        # never judged against less than the record's watermark: the spend ids it forgot
        # are of spend that is too late against it (``SpendMemory``)
        runtime.advance_watermark(record.watermark)
        if late := too_late(runtime, record, source, event.occurred_at):
            return reject(runtime, message, late, channels)
        outcome = handle_ad_spend(record, event, source, runtime.fx, runtime.spend_memory)
    else:
        update = internal_json(message)
        if isinstance(update, Rejection):
            return reject(runtime, message, update, channels)
        try:
            deltas = _deltas(update)
        except INTERNAL_ERRORS as error:
            return reject(runtime, message, Rejection("invalid_internal", repr(error)), channels)
        record = channels.get(deltas[0].channel)
        applied = [record.apply(delta) for delta in deltas]  # each exactly once
        outcome = Outcome(APPLIED if any(applied) else REDELIVERED)
    if outcome.changed_state:
        channels.changed(record.channel, message)
        runtime.advance_watermark(record.watermark)
    publish(runtime, message, outcome, channels)


def _deltas(update: dict[str, Any]) -> list[ChannelDelta]:
    """The deltas of a message (``stream.agents.common.send_deltas``), all of one channel;
    a message of a single delta is what workers before batched deltas sent."""
    items = update.get("deltas", [update])
    if not isinstance(items, list) or not items:
        raise ValueError("deltas must be a non-empty list")
    deltas = [ChannelDelta.from_json(item) for item in items]
    if len({delta.channel for delta in deltas}) != 1:
        raise ValueError("the deltas of a message must all be of one channel")
    return deltas
