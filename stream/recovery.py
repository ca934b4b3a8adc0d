"""Table recovery that reads the active changelog partitions in bulk first.

Faust recovers a table record by record: each changelog record passes through its
consumer thread, the conductor, a queue, and a ``wait_for`` of its own in the recovery
loop, which also recomputes every partition's remaining offsets per record
(faust/tables/recovery.py, ``_slurp_changelogs``). That reads about 4,000 records/s on
one core, four minutes for a million customers.

Before Faust's loop starts, this recovery reads the active changelog partitions with a
plain consumer of its own: each record is turned into the message and event Faust's
consumer would make of it (``_to_message``, the changelog topic's ``decode``), applied
through the table in batches (``apply_changelog_batch``, as Faust's loop does), and its
offset recorded as applied. Faust's loop then reads only what is left, usually nothing.

The bulk read runs where Faust seeks the active partitions, a step Faust bounds by its
broker request timeout (90 s), stopping the recovery service when it is exceeded. So the
bulk read stops after ``budget_seconds`` (``LTVCAC_BULK_RECOVERY_SECONDS``, below that
timeout) and leaves the rest to Faust's loop, from the offsets it reached. A rebalance
that starts meanwhile cancels it between two reads, with every applied offset recorded,
as it cancels Faust's loop.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

import aiokafka
from faust.tables import TableManager
from faust.tables.recovery import Recovery
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth, server_list
from faust.types import TP

log = logging.getLogger(__name__)

FETCH_WAIT_MS = 100
RECORDS_PER_READ = 10_000
PARTITION_FETCH_BYTES = 8 * 1024 * 1024


class BulkRecovery(Recovery):
    """Faust's recovery, with the active changelog partitions read in bulk first."""

    budget_seconds = 45.0  # 0: no bulk read

    async def _seek_offsets(self, consumer: Any, tps: set[TP], offsets: Any, title: str) -> None:
        if title == "active":
            await self._read_ahead(tps, offsets)
        await super()._seek_offsets(consumer, tps, offsets, title)

    async def _read_ahead(self, tps: set[TP], offsets: dict[TP, int]) -> None:
        """Apply each partition's records after ``offsets[tp]`` (the last applied, -1 for
        none) up to its highwater (the last record's offset), and move ``offsets`` on."""
        ends = {
            tp: end
            for tp in tps
            if (end := self.active_highwaters.get(tp)) is not None and end > offsets[tp]
        }
        if not ends or self.budget_seconds <= 0:
            return
        began = time.monotonic()
        reader = self._changelog_reader()
        applied = 0
        try:
            await reader.start()
            applied = await self._read(reader, ends, offsets, began)
        except Exception as error:  # Faust's loop reads what is left, as it would have
            log.warning("bulk changelog read stopped error=%r", error)
        finally:
            await reader.stop()
        left = sum(ends[tp] - offsets[tp] for tp in ends)
        log.info(
            "changelogs read in bulk partitions=%d records=%d seconds=%.1f left_to_faust=%d",
            len(ends),
            applied,
            time.monotonic() - began,
            left,
        )

    async def _read(
        self, reader: aiokafka.AIOKafkaConsumer, ends: Mapping[TP, int], offsets: Any, began: float
    ) -> int:
        """Read and apply until every partition is past its end or the budget is spent;
        ``offsets`` moves on after each applied batch, so it is right whenever this stops."""
        deadline = began + self.budget_seconds
        partitions = {tp: aiokafka.TopicPartition(tp.topic, tp.partition) for tp in ends}
        reader.assign(list(partitions.values()))
        for tp, partition in partitions.items():
            reader.seek(partition, offsets[tp] + 1)
        unread = dict(ends)
        applied = 0
        consumer: Any = self.app.consumer
        to_message = consumer._to_message  # Faust's record -> message, as for its own reads
        while unread:
            fetched = await reader.getmany(
                *(partitions[tp] for tp in unread),
                timeout_ms=FETCH_WAIT_MS,
                max_records=RECORDS_PER_READ,
            )
            for partition, records in fetched.items():
                tp = TP(partition.topic, partition.partition)
                end = unread.get(tp)
                if end is None:
                    continue
                table = self.tp_to_table[tp]
                decode = table.changelog_topic.decode
                batch = [
                    await decode(to_message(tp, record))
                    for record in records
                    if offsets[tp] < record.offset <= end
                ]
                if batch:
                    table.apply_changelog_batch(batch)
                    offsets[tp] = batch[-1].message.offset
                    applied += len(batch)
            for tp in list(unread):
                # Past the end: every record up to it is applied (offsets may have gaps
                # where compaction removed records).
                if await reader.position(partitions[tp]) > unread[tp]:
                    offsets[tp] = unread.pop(tp)
            if time.monotonic() >= deadline:
                break
        return applied

    def _changelog_reader(self) -> aiokafka.AIOKafkaConsumer:
        conf = self.app.conf
        transport: Any = self.app.transport
        return aiokafka.AIOKafkaConsumer(
            client_id=f"{conf.broker_client_id}-recovery",
            bootstrap_servers=server_list(transport.url, transport.default_port),
            request_timeout_ms=int(conf.broker_request_timeout * 1000.0),
            enable_auto_commit=False,
            auto_offset_reset="earliest",  # only before the log's start: compacted away
            fetch_max_wait_ms=FETCH_WAIT_MS,
            max_partition_fetch_bytes=PARTITION_FETCH_BYTES,
            check_crcs=conf.broker_check_crcs,
            isolation_level="read_committed" if self.app.in_transaction else "read_uncommitted",
            **credentials_to_aiokafka_auth(conf.broker_credentials, conf.ssl_context),
        )


class BulkRecoveryTableManager(TableManager):
    """Faust's table manager with :class:`BulkRecovery`."""

    @property
    def recovery(self) -> BulkRecovery:
        if not isinstance(self._recovery, BulkRecovery):
            self._recovery = BulkRecovery(self.app, self, beacon=self.beacon, loop=self.loop)
        return self._recovery
