"""The batch adapter of the table agents, without a broker: records are read once and
written once per batch, in the partition of the message that last changed them, what
the batch caused leaves only once the broker has its records, and an unforeseen error
in a handler is a dead letter, not a crashed agent."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.errors import KafkaTimeoutError
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from stream.agents import channels as channel_agent
from stream.agents.common import (
    DELTAS_MESSAGE_BYTES,
    Records,
    handle_batch,
    handle_safely,
    publish,
    send_deltas,
)
from stream.app import create_runtime
from stream.config import Settings
from stream.delivery import delivered
from stream.domain.channel import Bucket, ChannelDelta, ChannelRecord, Source
from stream.domain.outcome import APPLIED, Message, Outcome
from stream.errors import DeliveryFailed
from stream.metrics import PipelineCounters


class FakeTable(dict[str, Any]):
    """A table's reads and the writes the batch makes (key, value, partition)."""

    def __init__(self, stored: dict[str, Any], timeline: list[str] | None = None) -> None:
        super().__init__(stored)
        self.reads: list[str] = []
        self.writes: list[tuple[str, Any, int]] = []
        self.timeline = [] if timeline is None else timeline
        self.refuse = False  # the broker refuses the writes
        self.send_error: Exception | None = None  # the producer refuses to send at all

    def get_json(self, key: str) -> Any:
        self.reads.append(key)
        return self.get(key)

    async def write_now(self, key: str, value: Any, partition: int) -> None:
        if self.send_error is not None:
            raise self.send_error
        self.writes.append((key, value, partition))
        self[key] = value

    async def sent(self) -> None:
        if self.refuse:
            raise DeliveryFailed("1 of 1 messages (changelog of t) not delivered")
        self.acknowledged = len(self.writes)  # the broker has every write made so far
        self.timeline.append(f"records acknowledged: {len(self.writes)}")


@dataclass
class Counter:
    key: str
    count: int = 0


def counters(table: FakeTable) -> Records[Counter]:
    return Records(table, Counter, lambda v: Counter(v["key"], v["count"]), lambda c: vars(c))


def message(partition: int, offset: int = 0) -> Any:
    return SimpleNamespace(topic="t.purchases", partition=partition, offset=offset, key=b"k")


async def test_a_record_is_read_once_and_written_once_with_its_last_changes_partition() -> None:
    table = FakeTable({"a": {"key": "a", "count": 10}})
    batch = counters(table)
    for partition in (0, 1, 1):
        record = batch.get("a")
        record.count += 1
        batch.changed("a", message(partition))
    batch.get("b")  # read, never changed: never written

    assert table.writes == []  # nothing before the batch ends
    await batch.write()
    assert table.reads == ["a", "b"]
    assert table.writes == [("a", {"key": "a", "count": 13}, 1)]
    assert table.acknowledged == 1  # written, and waited for
    await batch.write()
    assert len(table.writes) == 1  # a second write of the same batch writes nothing more


async def test_a_new_key_starts_empty_and_keys_are_written_in_order() -> None:
    table = FakeTable({})
    batch = counters(table)
    for key in ("z", "m"):
        batch.get(key).count += 2
        batch.changed(key, message(3))
    await batch.write()
    assert table.writes == [("m", {"key": "m", "count": 2}, 3), ("z", {"key": "z", "count": 2}, 3)]


@dataclass
class FakeRuntime:
    """What ``reject`` needs of the runtime: settings, counters and a way to send."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    sent: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    timeline: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.settings = SimpleNamespace(topic_prefix="t.", max_message_bytes=1_048_576)
        self.counters = PipelineCounters(self.registry)
        self.topics = {"channel-deltas": FakeTopic(self.timeline)}

    async def send(self, topic: str, key: str, value: dict[str, Any]) -> asyncio.Future[None]:
        self.sent.append((topic, key, value))
        self.timeline.append(f"sent to {topic}")
        return acknowledged()


def acknowledged() -> asyncio.Future[None]:
    future = asyncio.get_running_loop().create_future()
    future.set_result(None)
    return future


async def test_an_unforeseen_error_is_an_internal_error_dead_letter() -> None:
    runtime = FakeRuntime()
    bad = SimpleNamespace(
        topic="t.purchases", partition=1, offset=41, key=b"c1", value=b'{"type": "purchase"}'
    )

    async def broken(_runtime: Any, _message: Any, _batch: Records[Any]) -> None:
        raise ZeroDivisionError("division by zero")

    batch = counters(FakeTable({}))
    await handle_safely(runtime, bad, broken, batch)

    [(topic, key, letter)] = [(m.topic, m.key, m.value) for m in batch.messages]
    assert (topic, key) == ("dead-letters", "c1")
    assert letter["reason"] == "internal_error"
    assert letter["detail"] == "ZeroDivisionError('division by zero')"
    assert (letter["topic"], letter["partition"], letter["offset"]) == ("purchases", 1, 41)
    assert json.loads(letter["value_text"]) == {"type": "purchase"}
    value = runtime.registry.get_sample_value(
        "ltvcac_dead_letters_total", {"reason": "internal_error"}
    )
    assert value == 1.0


class FakeTopic:
    def __init__(self, timeline: list[str] | None = None) -> None:
        self.sent: list[tuple[bytes, bytes]] = []
        self.timeline = [] if timeline is None else timeline

    async def send(self, key: bytes, value: bytes) -> asyncio.Future[None]:
        self.sent.append((key, value))
        self.timeline.append("sent to channel-deltas")
        return acknowledged()


def spend_delta(channel: str, offset: int, cents: int) -> ChannelDelta:
    bucket = Bucket({"spend:media": cents})
    return ChannelDelta(channel, Source("ad-clicks", 0, offset), 86400 * 20_000, {20_000: bucket})


async def test_a_batchs_deltas_go_out_as_one_message_per_channel_in_their_order() -> None:
    runtime = FakeRuntime()
    topic = FakeTopic()
    runtime.topics = {"channel-deltas": topic}  # type: ignore[attr-defined]
    deltas = [spend_delta("search", 1, 10), spend_delta("social", 2, 20)]
    deltas += [spend_delta("search", 3, 30)]

    await send_deltas(runtime, deltas)  # type: ignore[arg-type]

    sent = {key: json.loads(value)["deltas"] for key, value in topic.sent}
    assert sorted(sent) == [b"search", b"social"]
    assert [ChannelDelta.from_json(item) for item in sent[b"search"]] == [deltas[0], deltas[2]]
    assert [ChannelDelta.from_json(item) for item in sent[b"social"]] == [deltas[1]]


async def test_large_batches_of_deltas_are_split_below_the_message_limit() -> None:
    runtime = FakeRuntime()
    topic = FakeTopic()
    runtime.topics = {"channel-deltas": topic}  # type: ignore[attr-defined]
    deltas = [spend_delta("search", offset, offset) for offset in range(20_000)]

    await send_deltas(runtime, deltas)  # type: ignore[arg-type]

    assert len(topic.sent) > 1
    assert all(len(value) <= DELTAS_MESSAGE_BYTES + len('{"deltas":[]}') for _, value in topic.sent)
    received = [item for _, value in topic.sent for item in json.loads(value)["deltas"]]
    assert [ChannelDelta.from_json(item) for item in received] == deltas


def test_a_message_of_deltas_applies_each_delta_exactly_once() -> None:
    record = ChannelRecord("search")
    first = spend_delta("search", 1, 10)
    assert record.apply(first)
    later = [spend_delta("search", 2, 20), spend_delta("search", 3, 30)]
    message = {"deltas": [first.to_json(), *(delta.to_json() for delta in later)]}

    applied = [record.apply(delta) for delta in channel_agent._deltas(message)]

    assert applied == [False, True, True]  # the first was applied before the crash
    assert record.buckets[20_000].counts == {"spend:media": 60}


def test_a_message_of_deltas_of_several_channels_is_malformed() -> None:
    mixed = {
        "deltas": [spend_delta("search", 1, 1).to_json(), spend_delta("email", 2, 1).to_json()]
    }
    with pytest.raises(ValueError, match="one channel"):
        channel_agent._deltas(mixed)
    with pytest.raises(ValueError, match="non-empty"):
        channel_agent._deltas({"deltas": []})
    # a single delta, as workers before batched deltas sent it
    assert channel_agent._deltas(spend_delta("email", 2, 1).to_json())[0].channel == "email"


async def test_a_written_record_is_announced_once_the_table_holds_it() -> None:
    table = FakeTable({})
    announced: list[tuple[str, Any]] = []
    batch = Records(
        table,
        Counter,
        lambda v: Counter(v["key"], v["count"]),
        lambda c: dict(vars(c)),
        written=lambda c: announced.append((c.key, table.get(c.key))),
    )
    batch.get("a").count += 1
    batch.changed("a", message(0))
    assert announced == []  # not while the batch is still handling its events
    await batch.write()
    assert announced == [("a", {"key": "a", "count": 1})]


@dataclass
class Event:  # what a batch gets from Faust (it must take a weak reference)
    message: Any


def event(offset: int) -> Event:
    return Event(message(0, offset))


async def count_and_send(runtime: Any, msg: Any, batch: Records[Counter]) -> None:
    """Counts the message in record ``a``; causes a delta and an internal message."""
    batch.get("a").count += 1
    batch.changed("a", msg)
    caused = Outcome(
        APPLIED,
        [spend_delta("search", msg.offset, 10)],
        [Message("visitor-updates", "v1", {"offset": msg.offset})],
    )
    publish(runtime, msg, caused, batch)


async def test_what_a_batch_caused_leaves_only_once_the_broker_has_its_records() -> None:
    runtime = FakeRuntime()
    table = FakeTable({}, runtime.timeline)

    await handle_batch(runtime, [event(7), event(8)], count_and_send, counters(table))  # type: ignore[arg-type]

    # a crash before the acknowledgement loses the outputs with the records
    assert runtime.timeline == [
        "records acknowledged: 1",
        "sent to channel-deltas",  # both deltas, in one message for the channel
        "sent to visitor-updates",
        "sent to visitor-updates",
    ]
    [(_, value)] = runtime.topics["channel-deltas"].sent
    assert [d["source"] for d in json.loads(value)["deltas"]] == [
        spend_delta("search", offset, 10).to_json()["source"] for offset in (7, 8)
    ]
    assert table.writes == [("a", {"key": "a", "count": 2}, 0)]


async def test_deltas_are_split_below_a_quarter_of_a_smaller_message_limit() -> None:
    runtime = FakeRuntime()
    runtime.settings.max_message_bytes = 524_288  # the smallest the setting allows
    topic = FakeTopic()
    runtime.topics = {"channel-deltas": topic}  # type: ignore[attr-defined]
    deltas = [spend_delta("search", offset, offset) for offset in range(5_000)]

    await send_deltas(runtime, deltas)  # type: ignore[arg-type]

    assert len(topic.sent) > 1
    assert all(len(value) <= 131_072 + len('{"deltas":[]}') for _, value in topic.sent)
    received = [item for _, value in topic.sent for item in json.loads(value)["deltas"]]
    assert [ChannelDelta.from_json(item) for item in received] == deltas


async def test_a_refused_write_sends_nothing_and_stops_the_batch() -> None:
    runtime = FakeRuntime()
    table = FakeTable({}, runtime.timeline)
    table.refuse = True

    with pytest.raises(DeliveryFailed, match="changelog"):
        await handle_batch(runtime, [event(7)], count_and_send, counters(table))  # type: ignore[arg-type]

    assert runtime.timeline == []


async def test_a_send_the_producer_refuses_outright_stops_the_batch_as_a_refused_write() -> None:
    runtime = FakeRuntime()
    table = FakeTable({}, runtime.timeline)
    table.send_error = KafkaTimeoutError()  # what aiokafka raises without broker metadata

    with pytest.raises(DeliveryFailed, match="KafkaTimeoutError"):
        await handle_batch(runtime, [event(7)], count_and_send, counters(table))  # type: ignore[arg-type]

    assert runtime.timeline == []
    assert table.writes == []


async def test_delivered_waits_for_every_acknowledgement_and_names_a_failure() -> None:
    loop = asyncio.get_running_loop()
    pending = [loop.create_future() for _ in range(3)]
    waiting = asyncio.ensure_future(delivered(pending, "outputs of a batch"))
    pending[0].set_result(None)
    pending[2].set_result(None)
    await asyncio.sleep(0)  # one turn of the loop, not a wait: one is still missing
    assert not waiting.done()
    pending[1].set_exception(TimeoutError("no answer"))

    with pytest.raises(DeliveryFailed) as failure:
        await waiting
    assert str(failure.value) == (
        "1 of 3 messages (outputs of a batch) not delivered: TimeoutError('no answer')"
    )
    await delivered([], "nothing")  # nothing to wait for


class BatchRequests:
    """Stands in for an agent's stream: notes each ``take_events`` call, yields nothing."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, float]] = []

    async def take_events(self, max_events: int, within: float) -> Any:
        self.calls.append((max_events, within))
        for batch in ():  # an async generator that ends at once
            yield batch


@pytest.mark.parametrize("window", [0.01, 0.25])
async def test_table_agents_batch_within_the_configured_window(window: float) -> None:
    runtime = create_runtime(Settings(batch_window_seconds=window), {})
    for name in ("customers", "visitors", "channels"):
        stream = BatchRequests()
        await runtime.app.agents[name].fun(stream)
        assert stream.calls == [(500, window)]


@pytest.mark.parametrize("window", ["0", "-1", "1.5", "soon"])
def test_a_batch_window_outside_0_to_1_second_is_refused(
    window: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LTVCAC_BATCH_WINDOW_SECONDS", window)
    with pytest.raises(ValidationError, match="batch_window_seconds"):
        Settings()
