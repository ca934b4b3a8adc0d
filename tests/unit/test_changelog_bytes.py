"""A table write handed straight to the Kafka producer carries the bytes Faust's own
changelog send would (``changelog_topic.send``): Faust's recovery reads them back, and
compaction keeps one record per key only if every write of a key has the same key bytes."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from stream.app import OwnedTable, create_runtime
from stream.config import Settings


class Recorder:
    """Stands in for the Kafka producer: keeps what it was given."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def send(self, topic: str, **message: Any) -> asyncio.Future[None]:
        self.sent.append({"topic": topic, **message})
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future


def faust_bytes(table: OwnedTable, key: str, value: Any) -> tuple[bytes, bytes]:
    topic: Any = table.changelog_topic
    raw_key, _ = topic.prepare_key(key, table.key_serializer)
    raw_value, _ = topic.prepare_value(value, table.value_serializer)
    return raw_key, raw_value


@pytest.mark.parametrize("table_name", ["customers", "visitors", "channels"])
async def test_a_direct_write_sends_what_faust_would(
    table_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = create_runtime(Settings(), {})
    table: Any = getattr(runtime, table_name)
    recorder = Recorder()
    monkeypatch.setattr(type(runtime.app.producer), "_ensure_producer", lambda _: recorder)
    record = {"id": "zoë", "orders": {"o1": [1, "12.50"]}, "weights": {"1": 0.5}, "n": None}

    await table.write_now("zoë-ü", record, partition=1)

    stored = record if not table.json_bytes else table.get("zoë-ü")
    assert recorder.sent == [
        {
            "topic": table.changelog_topic_name,
            "key": faust_bytes(table, "zoë-ü", stored)[0],
            "value": faust_bytes(table, "zoë-ü", stored)[1],
            "partition": 1,
        }
    ]
    assert recorder.sent[0]["key"] == '"zoë-ü"'.encode()  # a JSON string, UTF-8
    assert table.get_json("zoë-ü") == record
    assert table.partition_of("zoë-ü") == 1
