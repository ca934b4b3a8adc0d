"""A channel forgets the id of spend that is too late to count and whose batch the broker
has, so that its record stays as large as the spend of the allowed lateness; a duplicate
of forgotten spend is still refused, and a redelivery still sends what it must."""

from __future__ import annotations

import datetime as dt
import json
from types import SimpleNamespace
from typing import Any

from prometheus_client import CollectorRegistry

from schemas.events import AdSpend, parse_event
from stream.agents import channels as channel_agent
from stream.agents.common import Records, note_completed
from stream.domain.channel import AppliedSpend, ChannelRecord, Source
from stream.domain.fx import FxRates
from stream.domain.lateness import too_late
from stream.domain.outcome import APPLIED, REDELIVERED
from stream.domain.spend import SpendMemory, handle_ad_spend
from stream.metrics import PipelineCounters
from tests.unit.events import event_json

HOUR = 3600
USD = FxRates("USD")


def spend_json(event_id: str, occurred_at: str) -> dict[str, Any]:
    return event_json(
        "ad_spend",
        occurred_at,
        event_id=event_id,
        channel="search",
        amount="10.00",
        currency="USD",
        category="media",
        period_start=occurred_at[:10],
        period_end=occurred_at[:10],
    )


def spend(event_id: str, occurred_at: str) -> AdSpend:
    parsed = parse_event(json.dumps(spend_json(event_id, occurred_at)).encode())
    assert isinstance(parsed, AdSpend)
    return parsed


def seconds(text: str) -> int:
    return int(dt.datetime.fromisoformat(text).timestamp())


OLD = spend("s-old", "2026-03-01T08:00:00+00:00")
NEW = spend("s-new", "2026-03-05T12:00:00+00:00")


def record_after(completed: dict[str, int]) -> tuple[ChannelRecord, list[object]]:
    """OLD applied at offset 1, then NEW at offset 2 (partition 0), which moves the
    watermark four days on; ``completed``: what the broker has, by source stream."""
    record = ChannelRecord("search")
    memory = SpendMemory(HOUR, completed)
    old = handle_ad_spend(record, OLD, Source("ad-spend", 0, 1), USD, memory)
    new = handle_ad_spend(record, NEW, Source("ad-spend", 0, 2), USD, memory)
    assert (old.status, new.status) == (APPLIED, APPLIED)
    return record, [old.deltas, new.deltas]


def test_spend_older_than_the_lateness_is_forgotten_once_its_batch_is_on_the_broker() -> None:
    record, _ = record_after({"ad-spend:0": 1})
    assert record.watermark == seconds("2026-03-05T12:00:00+00:00")
    assert record.spend_event_ids == {
        "s-new": AppliedSpend(2, seconds("2026-03-05T12:00:00+00:00"), 0)
    }


def test_spend_whose_batch_may_not_be_on_the_broker_is_kept_however_old() -> None:
    for completed in ({}, {"ad-spend:0": 0}, {"ad-spend:1": 5}):
        record, _ = record_after(completed)
        assert sorted(record.spend_event_ids) == ["s-new", "s-old"]


def test_spend_inside_the_lateness_is_kept() -> None:
    record = ChannelRecord("search")
    memory = SpendMemory(5 * 24 * HOUR, {"ad-spend:0": 10})
    handle_ad_spend(record, OLD, Source("ad-spend", 0, 1), USD, memory)
    handle_ad_spend(record, NEW, Source("ad-spend", 0, 2), USD, memory)
    assert sorted(record.spend_event_ids) == ["s-new", "s-old"]


def test_a_duplicate_of_forgotten_spend_is_too_late_and_a_redelivery_sends_nothing() -> None:
    record, deltas = record_after({"ad-spend:0": 1})
    # the producer sent OLD again: judged against the record's watermark, it is refused
    # before its id is looked at
    duplicate = Source("ad-spend", 0, 3)
    assert too_late(record, duplicate, OLD.occurred_at, record.watermark, HOUR) is not None
    # OLD read again after a crash: its batch's outputs are on the broker already
    again = handle_ad_spend(record, OLD, Source("ad-spend", 0, 1), USD)
    assert (again.status, again.deltas) == (REDELIVERED, [])
    # NEW, kept, still sends its deltas again
    again = handle_ad_spend(record, NEW, Source("ad-spend", 0, 2), USD)
    assert (again.status, again.deltas) == (REDELIVERED, deltas[1])


def test_without_a_memory_every_spend_id_is_kept() -> None:
    record = ChannelRecord("search")
    handle_ad_spend(record, OLD, Source("ad-spend", 0, 1), USD)
    handle_ad_spend(record, NEW, Source("ad-spend", 0, 2), USD)
    assert sorted(record.spend_event_ids) == ["s-new", "s-old"]


def test_a_record_stored_with_offsets_alone_loads_and_is_forgotten_by_its_keys_partition() -> None:
    stored = ChannelRecord("search").to_json()
    watermark = seconds("2026-03-01T08:00:00+00:00")
    stored |= {"watermark": watermark, "spend_event_ids": {"s-legacy": 7}}
    record = ChannelRecord.from_json(stored)
    assert record.spend_event_ids == {"s-legacy": AppliedSpend(7, watermark, None)}
    assert ChannelRecord.from_json(record.to_json()) == record

    memory = SpendMemory(HOUR, {"ad-spend:2": 7})
    handle_ad_spend(record, NEW, Source("ad-spend", 2, 8), USD, memory)
    assert sorted(record.spend_event_ids) == ["s-new"]


class Table(dict[str, Any]):
    def get_json(self, key: str) -> Any:
        return self.get(key)


class Runtime:
    """What the channels agent asks of the runtime, with a worker that knows no event
    time yet: as one just started."""

    settings = SimpleNamespace(topic_prefix="", allowed_lateness_seconds=HOUR)
    fx = USD

    def __init__(self) -> None:
        self.watermark = 0
        self.completed: dict[str, int] = {}
        self.counters = PipelineCounters(CollectorRegistry())

    @property
    def spend_memory(self) -> SpendMemory:
        return SpendMemory(HOUR, self.completed)

    def advance_watermark(self, *event_times: int) -> int:
        self.watermark = max(self.watermark, *event_times)
        return self.watermark


async def test_a_just_started_worker_refuses_a_duplicate_of_forgotten_spend_as_too_late() -> None:
    record, _ = record_after({"ad-spend:0": 1})
    table = Table({"search": record.to_json()})
    batch = Records(table, ChannelRecord, ChannelRecord.from_json, ChannelRecord.to_json)
    value = spend_json("s-old", "2026-03-01T08:00:00+00:00")
    duplicate = SimpleNamespace(
        topic="ad-spend", partition=0, offset=3, key=b"search", value=json.dumps(value).encode()
    )

    await channel_agent.handle(Runtime(), duplicate, batch)  # type: ignore[arg-type]

    [letter] = [message.value for message in batch.messages]
    assert letter["reason"] == "too_late"
    assert batch.get("search") == record  # nothing counted twice
    assert batch.deltas == []


def test_a_completed_batch_notes_the_highest_offset_of_each_source_partition() -> None:
    completed = {"ad-spend:0": 9}
    events = [
        SimpleNamespace(message=SimpleNamespace(topic=topic, partition=partition, offset=offset))
        for topic, partition, offset in [
            ("ad-spend", 0, 4),  # read again after a rebalance: 9 stays
            ("ad-spend", 1, 2),
            ("ad-spend", 1, 3),
            ("ltvcac-channel-deltas", 1, 7),
        ]
    ]
    note_completed(completed, events)
    assert completed == {"ad-spend:0": 9, "ad-spend:1": 3, "ltvcac-channel-deltas:1": 7}
