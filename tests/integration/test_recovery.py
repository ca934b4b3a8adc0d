"""The bulk changelog read of a table recovery, against the embedded broker.

A restarted worker recovers its tables through it and serves what it served before.

A changelog is written with a real producer, as Faust writes one (JSON keys, raw
values, several versions of a key, tombstones), and read back into a Faust table by
``BulkRecovery``. What the table must then hold is computed here from what was sent:
the last value of each key up to the offsets the read reports as applied.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import uuid
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import faust
import pytest
from aiokafka import AIOKafkaProducer
from faust.types import TP

from stream.devstack import StackEndpoints, create_topics
from stream.recovery import RECORDS_PER_READ, BulkRecovery, BulkRecoveryTableManager
from tests.integration.conftest import running, wait_until
from tests.integration.scenario import MESSAGES
from tests.integration.test_serving import ENV, settled, snapshot

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

PARTITIONS = 2
KEYS = 3_000
RECORDS = 25_000  # more than two reads' worth (RECORDS_PER_READ)
TOMBSTONE_SHARE = 0.03


@dataclass
class Sent:
    """One changelog record as the broker stored it."""

    partition: int
    offset: int
    key: str
    value: bytes | None


@dataclass
class Recovering:
    recovery: BulkRecovery
    table: faust.Table
    tps: set[TP]
    sent: list[Sent]


def expected(sent: list[Sent], applied: dict[int, int]) -> dict[str, bytes]:
    """Each key's last value among the records at or below ``applied[partition]``,
    without the keys whose last record is a tombstone."""
    latest: dict[str, bytes | None] = {}
    for record in sorted(sent, key=lambda r: (r.partition, r.offset)):
        if record.offset <= applied[record.partition]:
            latest[record.key] = record.value
    return {key: value for key, value in latest.items() if value is not None}


async def write_changelog(bootstrap: str, topic: str) -> list[Sent]:
    rng = random.Random(7)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        pending = []
        for version in range(RECORDS):
            key = f"c{rng.randrange(KEYS)}"
            partition = zlib.crc32(key.encode()) % PARTITIONS  # one partition per key
            value = None if rng.random() < TOMBSTONE_SHARE else b'{"v": %d}' % version
            future = await producer.send(
                topic, key=json.dumps(key).encode(), value=value, partition=partition
            )
            pending.append((future, key, value))
        sent = []
        for future, key, value in pending:
            metadata = await future
            sent.append(Sent(metadata.partition, metadata.offset, key, value))
        return sent
    finally:
        await producer.stop()


@pytest.fixture
async def recovering(stack: StackEndpoints) -> AsyncIterator[Recovering]:
    app = faust.App(
        f"bulk-{uuid.uuid4().hex[:8]}",
        broker=f"kafka://{stack.kafka_bootstrap}",
        TableManager=BulkRecoveryTableManager,
        autodiscover=False,
    )
    table = app.Table("customers", partitions=PARTITIONS, key_type=str, value_type=bytes)
    topic = table.changelog_topic_name
    await create_topics(stack.kafka_bootstrap, [topic], PARTITIONS)
    sent = await write_changelog(stack.kafka_bootstrap, topic)
    recovery = app.tables.recovery
    tps = {TP(topic, p) for p in range(PARTITIONS)}
    for tp in tps:
        recovery.tp_to_table[tp] = table
        # Faust's highwater: the offset of the partition's last record
        recovery.active_highwaters[tp] = max(r.offset for r in sent if r.partition == tp.partition)
    yield Recovering(recovery, table, tps, sent)


def by_partition(offsets: dict[TP, int]) -> dict[int, int]:
    return {tp.partition: offset for tp, offset in offsets.items()}


async def test_a_bulk_read_applies_every_record_to_the_end_of_each_partition(
    recovering: Recovering,
) -> None:
    offsets = {tp: -1 for tp in recovering.tps}  # nothing applied yet: a first start
    await recovering.recovery._read_ahead(recovering.tps, offsets)

    assert offsets == recovering.recovery.active_highwaters
    everything = {p: RECORDS for p in range(PARTITIONS)}
    assert dict(recovering.table.items()) == expected(recovering.sent, everything)
    assert any(r.value is None for r in recovering.sent)  # tombstones were among them


async def test_a_spent_budget_stops_between_reads_and_the_next_read_resumes_there(
    recovering: Recovering,
) -> None:
    recovering.recovery.budget_seconds = 1e-9  # one read per call
    offsets = {tp: -1 for tp in recovering.tps}
    calls = 0
    while offsets != recovering.recovery.active_highwaters:
        before = dict(offsets)
        await recovering.recovery._read_ahead(recovering.tps, offsets)
        calls += 1
        # What the table holds is exactly what the offsets say was applied, so Faust's
        # record-by-record loop, which goes on from these offsets, misses nothing.
        assert dict(recovering.table.items()) == expected(recovering.sent, by_partition(offsets))
        assert all(offsets[tp] >= before[tp] for tp in offsets)
        assert calls < 100, f"no progress: {offsets}"
    assert calls >= -(-RECORDS // RECORDS_PER_READ)  # each call read at most one read's worth


async def test_a_budget_of_zero_leaves_every_record_to_faust(recovering: Recovering) -> None:
    recovering.recovery.budget_seconds = 0
    offsets = {tp: -1 for tp in recovering.tps}
    await recovering.recovery._read_ahead(recovering.tps, offsets)
    assert offsets == {tp: -1 for tp in recovering.tps}
    assert dict(recovering.table.items()) == {}


@pytest.mark.parametrize("bulk_seconds", ["45", "0"])
async def test_a_restarted_worker_recovers_its_tables_from_the_changelogs(
    stack: StackEndpoints, tmp_path: Path, bulk_seconds: str
) -> None:
    """A restart on the memory store reads every table back from its changelog: in bulk
    by default, record by record by Faust with ``LTVCAC_BULK_RECOVERY_SECONDS=0``."""
    env = {**ENV, "LTVCAC_BULK_RECOVERY_SECONDS": bulk_seconds}
    async with running(stack, tmp_path, env) as deployed:
        await deployed.publish(MESSAGES)
        await wait_until(lambda: settled(deployed), what="the scenario in the worker and Redis")
        channels = deployed.worker.channel_samples()
        redis_before = snapshot(deployed)

        await asyncio.to_thread(deployed.worker.stop)
        log = tmp_path / "worker.log"
        first_start = len(log.read_text(errors="replace"))
        deployed.redis.delete(*redis_before)  # only the recovered tables can bring it back
        await asyncio.to_thread(deployed.worker.start)

        await wait_until(
            lambda: deployed.worker.channel_samples() == channels,
            what="every channel series as before the restart",
        )
        await wait_until(lambda: snapshot(deployed) == redis_before, what="Redis as before")
        restart = log.read_text(errors="replace")[first_start:]
        bulk = re.search(r"changelogs read in bulk partitions=\d+ records=(\d+)", restart)
        if bulk_seconds == "0":
            assert bulk is None
            assert "Restoring state from changelog topics" in restart
        else:
            assert bulk is not None and int(bulk.group(1)) > 0
            assert "Restoring state from changelog topics" not in restart  # nothing left
