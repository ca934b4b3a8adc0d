"""What every agent does with an outcome: count it, dead-letter it, send what it caused."""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from schemas.topics import DEAD_LETTERS
from stream.domain import lateness
from stream.domain.channel import Source
from stream.domain.ingest import Rejection, dead_letter, dead_letter_key
from stream.domain.outcome import REJECTED, Outcome

if TYPE_CHECKING:
    from stream.app import Runtime

log = logging.getLogger(__name__)
Handler = Callable[["Runtime", Any], Awaitable[None]]
R = TypeVar("R")


def register_agent(runtime: Runtime, topic: str, name: str, handle: Handler) -> None:
    """A table-writing agent: one event at a time (``concurrency=1``) so that offsets
    are never committed past an event that is still being applied."""

    @runtime.app.agent(runtime.topics[topic], name=name, concurrency=1)
    async def agent(stream: Any) -> None:
        async for event in stream.events():
            await handle(runtime, event.message)


def load(table: Any, key: str, new: Callable[[str], R], from_json: Callable[[Any], R]) -> R:
    """The stored record of ``key``, or a new empty one."""
    stored = table.get(key)
    return new(key) if stored is None else from_json(stored)


def too_late(
    runtime: Runtime, record: lateness.AppliedRecord, source: Source, occurred_at: dt.datetime
) -> Rejection | None:
    """A source event older than the watermark this worker knows less the allowed
    lateness is rejected, unless ``record`` applied it already (a redelivery)."""
    allowed = runtime.settings.allowed_lateness_seconds
    return lateness.too_late(record, source, occurred_at, runtime.watermark, allowed)


def source_of(message: Any) -> Source:
    return Source(message.topic, message.partition, message.offset)


def logical_topic(runtime: Runtime, physical: str) -> str:
    return physical.removeprefix(runtime.settings.topic_prefix)


def internal_json(message: Any) -> dict[str, Any] | Rejection:
    """Internal messages are ours, but a bad one still becomes a dead letter, not a crash."""
    try:
        value = json.loads(message.value)
    except (ValueError, TypeError) as error:
        return Rejection("invalid_internal", f"not JSON: {error}")
    if not isinstance(value, dict):
        return Rejection("invalid_internal", "not a JSON object")
    return value


INTERNAL_ERRORS = (KeyError, TypeError, ValueError)  # a malformed internal message


async def publish(runtime: Runtime, message: Any, outcome: Outcome) -> None:
    """Count the outcome and send its dead letter, deltas and messages."""
    topic = logical_topic(runtime, message.topic)
    runtime.counters.events.labels(topic, outcome.status).inc()
    if outcome.status == REJECTED:
        rejection = Rejection(outcome.reason or "rejected", outcome.detail)
        await send_dead_letter(runtime, message, rejection)
    for delta in outcome.deltas:
        await runtime.send("channel-deltas", delta.channel, delta.to_json())
    for internal in outcome.messages:
        await runtime.send(internal.topic, internal.key, internal.value)


async def send_dead_letter(runtime: Runtime, message: Any, rejection: Rejection) -> None:
    topic = logical_topic(runtime, message.topic)
    log.info(
        "dead letter reason=%s topic=%s partition=%d offset=%d detail=%s",
        rejection.reason,
        topic,
        message.partition,
        message.offset,
        rejection.detail,
    )
    runtime.counters.dead_letters.labels(rejection.reason).inc()
    envelope = dead_letter(
        rejection, topic, message.partition, message.offset, message.key, message.value
    )
    key = dead_letter_key(message.key).decode("utf-8", errors="replace")
    await runtime.send(DEAD_LETTERS, key, envelope)


async def reject(runtime: Runtime, message: Any, rejection: Rejection) -> None:
    await publish(runtime, message, Outcome.rejected(rejection.reason, rejection.detail))
