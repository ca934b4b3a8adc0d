"""The changelog end offset used for recovery is the true one on the embedded broker."""

from __future__ import annotations

import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from faust.types import TP

from stream.devstack import StackEndpoints, create_topics
from stream.transport import fetched_highwaters

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

RECORDS = 500


async def test_end_offset_counts_every_record_of_a_batched_topic(stack: StackEndpoints) -> None:
    topic = f"t{uuid.uuid4().hex[:8]}.changelog"
    await create_topics(stack.kafka_bootstrap, [topic], 1)
    producer = AIOKafkaProducer(bootstrap_servers=stack.kafka_bootstrap, linger_ms=50)
    await producer.start()
    try:
        # Sent without awaiting each one, so that the producer packs them into batches.
        futures = [await producer.send(topic, b"x", key=b"k") for _ in range(RECORDS)]
        for future in futures:
            await future
    finally:
        await producer.stop()

    probe = AIOKafkaConsumer(bootstrap_servers=stack.kafka_bootstrap, group_id=None)
    await probe.start()
    try:
        tp = TP(topic, 0)
        for reported in (0, 1, RECORDS):
            assert await fetched_highwaters(probe, {tp: reported}) == {tp: RECORDS}
    finally:
        await probe.stop()
