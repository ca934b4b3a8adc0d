"""Kafka transport whose table recovery reads each changelog to its true end.

Faust recovers a table by reading its changelog up to the end offset that the broker
reports through ListOffsets. Some Kafka-protocol brokers under-report it: the embedded
Tansu broker answers with the base offset of the newest record batch plus one, so a
changelog whose last batch holds several records looks shorter than it is, recovery
stops early and the worker restarts with part of its state missing.

The high watermark in a Fetch response is right on every broker we know, so this
transport checks each reported end offset with one fetch and keeps the larger value.
On Apache Kafka both agree and the check costs one fetch per rebalance.

It also rewinds, at the end of each recovery, the source partitions nobody has
committed yet. Faust seeks every partition back to its committed offset then, so that
records fetched during the rebalance and dropped (a partition paused for recovery
after its fetch was issued) are read again; but aiokafka's ``seek_to_committed`` does
not move a partition that has no committed offset, so such records were lost for
good. The earliest-offset policy of the app says where those partitions start.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any, ClassVar

import aiokafka
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

log = logging.getLogger(__name__)

# How long to wait for the fetch answers before trusting ListOffsets alone.
_FETCH_DEADLINE_SECONDS = 10.0
_FETCH_WAIT_MS = 100


async def fetched_highwaters(
    consumer: aiokafka.AIOKafkaConsumer, reported: Mapping[TP, int]
) -> dict[TP, int]:
    """Each partition's end offset: the larger of ``reported`` and a fetch's high watermark.

    ``consumer`` must be started, without a group, and is left assigned to ``reported``.
    """
    partitions = [aiokafka.TopicPartition(tp.topic, tp.partition) for tp in reported]
    consumer.assign(partitions)
    for tp in partitions:
        # One record before the reported end, so the fetch returns at once when it exists.
        consumer.seek(tp, max(reported[TP(tp.topic, tp.partition)] - 1, 0))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _FETCH_DEADLINE_SECONDS
    while any(consumer.highwater(tp) is None for tp in partitions) and loop.time() < deadline:
        await consumer.getmany(*partitions, timeout_ms=_FETCH_WAIT_MS, max_records=1)
    result: dict[TP, int] = {}
    for tp in partitions:
        key = TP(tp.topic, tp.partition)
        fetched = consumer.highwater(tp)
        if fetched is None:
            log.warning("highwater unchecked topic=%s partition=%d", tp.topic, tp.partition)
        elif fetched > reported[key]:
            log.info(
                "highwater corrected topic=%s partition=%d reported=%d fetched=%d",
                tp.topic,
                tp.partition,
                reported[key],
                fetched,
            )
        result[key] = max(reported[key], fetched or 0)
    return result


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    async def seek_to_committed(self) -> Mapping[TP, int]:
        committed: Mapping[TP, int] = await self.call_thread(self._seek_to_committed_or_beginning)
        return committed

    async def _seek_to_committed_or_beginning(self) -> Mapping[TP, int]:
        consumer = self._ensure_consumer()
        committed: Mapping[TP, int] = await consumer.seek_to_committed()
        app = self.consumer.app
        if app.conf.consumer_auto_offset_reset == "earliest":
            changelogs = app.tables.changelog_topics
            uncommitted = [
                tp for tp, offset in committed.items() if not offset and tp.topic not in changelogs
            ]
            if uncommitted:
                await consumer.seek_to_beginning(*uncommitted)
        return committed

    def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        # Faust fixes a fetch's longest wait at 1.5 s. A broker that holds a fetch that long
        # although records arrived meanwhile (Tansu does) adds it to every hop of the
        # pipeline; on Kafka, which answers once records arrive, it only paces idle fetches.
        consumer._fetch_max_wait_ms = transport.fetch_max_wait_ms
        return consumer

    async def _highwaters(self, partitions: list[TP]) -> Mapping[TP, int]:
        reported = await super()._highwaters(partitions)
        if self.consumer.in_transaction or not reported:
            return reported
        probe = self._create_client_consumer(self.transport)  # type: ignore[arg-type]  # no group
        await probe.start()
        try:
            return await fetched_highwaters(probe, reported)
        finally:
            await probe.stop()


class _Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class Transport(faust_aiokafka.Transport):
    """The aiokafka transport with checked changelog end offsets and a settable fetch wait."""

    Consumer: ClassVar[type[Any]] = _Consumer
    fetch_max_wait_ms = 100  # LTVCAC_FETCH_MAX_WAIT_MS
