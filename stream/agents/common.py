"""What every agent does with an outcome: count it, dead-letter it, send what it caused."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import orjson

from schemas.topics import DEAD_LETTERS
from stream.current_event import current_event
from stream.delivery import delivered
from stream.domain import lateness
from stream.domain.channel import ChannelDelta, Source, stream_of
from stream.domain.ingest import Rejection, dead_letter, dead_letter_key
from stream.domain.outcome import REJECTED, Message, Outcome
from stream.errors import DeliveryFailed

if TYPE_CHECKING:
    from stream.app import Runtime

log = logging.getLogger(__name__)
Handler = Callable[["Runtime", Any], Awaitable[None]]
R = TypeVar("R")


# A batch ends when it holds this many events or ``batch_window_seconds`` after the
# previous one ended (README, Settings: what the window trades).
BATCH_MAX_EVENTS = 500


class Records(Generic[R]):
    """One table's records during a batch of events: each key is decoded from the table
    at most once and, if changed, encoded and written back once when the batch ends.

    A record is one table entry whatever its size (a channel's holds its whole history),
    so the change and the source offsets it applied always reach the changelog together;
    writing it once per batch instead of once per event is what keeps that affordable.
    """

    def __init__(
        self,
        table: Any,
        new: Callable[[str], R],
        from_json: Callable[[Any], R],
        to_json: Callable[[R], Any],
        written: Callable[[R], None] | None = None,
    ) -> None:
        self._table = table
        self._new = new
        self._from_json = from_json
        self._to_json = to_json
        self._written = written  # told of each record once it is in the table
        self._loaded: dict[str, R] = {}
        self._changed: dict[str, int] = {}  # key -> partition of the event that changed it
        # What the batch's events caused, in order: sent once its records are written.
        self.deltas: list[ChannelDelta] = []
        self.messages: list[Message] = []  # internal messages and dead letters

    def get(self, key: str) -> R:
        """The record of ``key`` as this batch left it, or a new empty one."""
        record = self._loaded.get(key)
        if record is None:
            stored = self._table.get_json(key)
            record = self._new(key) if stored is None else self._from_json(stored)
            self._loaded[key] = record
        return record

    def changed(self, key: str, message: Any) -> None:
        """``message`` changed ``key``'s record: write it, in the changelog partition of
        ``message`` (the partition of its key), when the batch ends."""
        self._changed[key] = message.partition

    async def write(self) -> None:
        """Write the changed records and wait until the broker has them."""
        for key, partition in sorted(self._changed.items()):
            await self._table.write_now(key, self._to_json(self._loaded[key]), partition)
            if self._written is not None:
                self._written(self._loaded[key])
        self._changed.clear()
        await self._table.sent()


BatchHandler = Callable[["Runtime", Any, Records[Any]], Awaitable[None]]


def register_agent(
    runtime: Runtime,
    topic: str,
    name: str,
    handle: BatchHandler,
    records: Callable[[], Records[Any]],
) -> None:
    """A table-writing agent: one batch at a time (``concurrency=1``).

    A batch first writes its records and waits until the broker has them, then sends
    what its events caused and waits for that too; only then are its events
    acknowledged, so offsets are never committed past an event whose change or output
    the broker does not hold. The order matters: a redelivered event re-sends its
    outputs from the record it finds, which is exact only if that record is the one
    they were computed from. A crash before the records are written loses their outputs
    with them, and the redelivered events compute both afresh, possibly interleaved
    differently across the input partitions; outputs sent first would have survived the
    lost record and no longer add up with the recomputed ones.
    """

    @runtime.app.agent(runtime.topics[topic], name=name, concurrency=1)
    async def agent(stream: Any) -> None:
        window = runtime.settings.batch_window_seconds
        async for events in stream.take_events(BATCH_MAX_EVENTS, window):
            try:
                await handle_batch(runtime, events, handle, records())
            except DeliveryFailed as error:
                # Not input: the broker lost what the batch produced. Stop, unacknowledged.
                log.critical("stopping the worker: %s", error)
                keep_uncommitted(events)
                await runtime.app.crash(error)
                return
            note_completed(runtime.completed, events)


def keep_uncommitted(events: list[Any]) -> None:
    """Keep the offsets of ``events`` from ever being committed, so that a restart reads
    them again. ``Stream.take_events`` acknowledges a batch's events once its body ends,
    however it ended, and a stopping worker commits what was acknowledged; a message
    already marked acknowledged is never counted as such (``Message.ack`` in
    faust/types/tuples.py), so its offset stays below the committed one."""
    for event in events:
        event.message.acked = True


def note_completed(completed: dict[str, int], events: list[Any]) -> None:
    """The broker has the records and outputs of ``events``: note their source offsets."""
    highest: dict[tuple[str, int], int] = {}  # a batch holds a few partitions, many events
    for event in events:
        message = event.message
        topic_partition = (message.topic, message.partition)
        highest[topic_partition] = max(highest.get(topic_partition, -1), message.offset)
    for (topic, partition), offset in highest.items():
        stream = stream_of(topic, partition)
        completed[stream] = max(completed.get(stream, -1), offset)


async def handle_batch(
    runtime: Runtime, events: list[Any], handle: BatchHandler, batch: Records[Any]
) -> None:
    """Handle ``events``, write their records, then send what they caused; returns once
    the broker has all of it (``register_agent`` says why in this order)."""
    for event in events:
        with current_event(event):
            await handle_safely(runtime, event.message, handle, batch)
    try:
        await batch.write()
        await send_outputs(runtime, batch)
    except DeliveryFailed:
        raise
    except Exception as error:
        # The producer refused a send outright (no broker metadata in time, stopped):
        # as a refused write, never an agent crash, after which Faust would acknowledge
        # the batch (``Stream.take_events`` acks its events whatever the body raised).
        raise DeliveryFailed(f"outputs of a batch not sent: {error!r}") from error


async def handle_safely(
    runtime: Runtime, message: Any, handle: BatchHandler, batch: Records[Any]
) -> None:
    """Handle one message; an error the handlers did not foresee is a dead letter with
    reason ``internal_error`` (and a logged traceback), never a crashed worker."""
    try:
        await handle(runtime, message, batch)
    except Exception as error:
        log.exception(
            "internal error topic=%s partition=%d offset=%d",
            logical_topic(runtime, message.topic),
            message.partition,
            message.offset,
        )
        reject(runtime, message, Rejection("internal_error", repr(error)), batch)


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
        value = orjson.loads(message.value)
    except (ValueError, TypeError) as error:
        return Rejection("invalid_internal", f"not JSON: {error}")
    if not isinstance(value, dict):
        return Rejection("invalid_internal", "not a JSON object")
    return value


INTERNAL_ERRORS = (KeyError, TypeError, ValueError)  # a malformed internal message


def publish(runtime: Runtime, message: Any, outcome: Outcome, batch: Records[Any]) -> None:
    """Count the outcome; its dead letter, deltas and messages are sent with the rest of
    ``batch``'s once the batch has written its records."""
    topic = logical_topic(runtime, message.topic)
    runtime.counters.count_event(topic, outcome.status)
    messages = list(outcome.messages)
    if outcome.status == REJECTED:
        rejection = Rejection(outcome.reason or "rejected", outcome.detail)
        messages.append(dead_letter_message(runtime, message, rejection))
    batch.deltas.extend(outcome.deltas)
    batch.messages.extend(messages)


async def send_outputs(runtime: Runtime, batch: Records[Any]) -> None:
    """Send what ``batch``'s events caused and wait until the broker has all of it."""
    futures = await send_deltas(runtime, batch.deltas)
    for internal in batch.messages:
        futures.append(await runtime.send(internal.topic, internal.key, internal.value))
    await delivered(futures, "outputs of a batch")


# A message of channel deltas holds at most about this many bytes of them, and at most a
# quarter of LTVCAC_MAX_MESSAGE_BYTES (the broker's default limit for a message is 1 MB).
DELTAS_MESSAGE_BYTES = 256 * 1024


async def send_deltas(runtime: Runtime, deltas: list[ChannelDelta]) -> list[Any]:
    """Send ``deltas`` as one message per channel (more if large), in their order;
    returns the futures of their delivery.

    Most source events change a few channels a little; a message per delta made the
    channel-deltas topic the pipeline's largest cost. Each delta keeps its own source
    position inside the message, so the channel still applies every one exactly once.
    """
    by_channel: dict[str, list[bytes]] = {}
    for delta in deltas:
        by_channel.setdefault(delta.channel, []).append(orjson.dumps(delta.to_json()))
    futures = []
    limit = min(DELTAS_MESSAGE_BYTES, runtime.settings.max_message_bytes // 4)
    for channel, encoded in by_channel.items():
        for chunk in _chunks(encoded, limit):
            value = b'{"deltas":[' + b",".join(chunk) + b"]}"
            topic = runtime.topics["channel-deltas"]
            futures.append(await topic.send(key=channel.encode(), value=value))
    return futures


def _chunks(encoded: list[bytes], limit: int) -> list[list[bytes]]:
    chunks: list[list[bytes]] = [[]]
    size = 0
    for item in encoded:
        if chunks[-1] and size + len(item) > limit:
            chunks.append([])
            size = 0
        chunks[-1].append(item)
        size += len(item) + 1  # and its comma
    return chunks


def dead_letter_message(runtime: Runtime, message: Any, rejection: Rejection) -> Message:
    """Log and count the rejection of ``message``; the dead letter to send for it."""
    topic = logical_topic(runtime, message.topic)
    # The detail may name customers or orders: only at debug level (it is in the letter).
    log.info(
        "dead letter reason=%s topic=%s partition=%d offset=%d",
        rejection.reason,
        topic,
        message.partition,
        message.offset,
    )
    log.debug("dead letter offset=%d detail=%s", message.offset, rejection.detail)
    runtime.counters.dead_letters.labels(rejection.reason).inc()
    envelope = dead_letter(
        rejection, topic, message.partition, message.offset, message.key, message.value
    )
    key = dead_letter_key(message.key).decode("utf-8", errors="replace")
    return Message(DEAD_LETTERS, key, envelope)


def reject(runtime: Runtime, message: Any, rejection: Rejection, batch: Records[Any]) -> None:
    outcome = Outcome.rejected(rejection.reason, rejection.detail)
    publish(runtime, message, outcome, batch)
