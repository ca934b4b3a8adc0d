"""One embedded broker and Redis per session; a fresh worker, topics and keys per test."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from stream.devstack import StackEndpoints, free_port
from stream.worker_process import WorkerProcess

# Test batches span up to a few days of event time and are published at once, and a worker
# reads topics and partitions each at its own pace: with the service's default lateness of
# an hour, which events are too late would depend on that pace. A week covers every batch;
# tests of histories longer than that, or of the lateness itself, set their own.
LATENESS_SECONDS = 7 * 86_400
SOURCE_TOPICS = ("purchases", "ad-clicks", "referrals", "ad-spend", "identities", "fx-rates")


class Deployment:
    """A worker with its own topics (``prefix``), consumer group and Redis keys."""

    def __init__(
        self, stack: StackEndpoints, tmp_path: Path, extra_env: dict[str, str] | None = None
    ) -> None:
        run = uuid.uuid4().hex[:8]
        self.stack = stack
        self.prefix = f"t{run}."
        self.redis_prefix = f"test-{run}:"
        self.env = {
            "LTVCAC_KAFKA_BOOTSTRAP_SERVERS": stack.kafka_bootstrap,
            "LTVCAC_REDIS_URL": stack.redis_url,
            "LTVCAC_REDIS_KEY_PREFIX": self.redis_prefix,
            "LTVCAC_TOPIC_PREFIX": self.prefix,
            "LTVCAC_TOPIC_PARTITIONS": "2",
            "LTVCAC_APP_ID": f"ltvcac-test-{run}",
            "LTVCAC_WEB_PORT": str(free_port()),
            "LTVCAC_SESSION_TIMEOUT_SECONDS": "6",
            "LTVCAC_PROJECTION_INTERVAL_SECONDS": "0.2",
            "LTVCAC_ALLOWED_LATENESS_SECONDS": str(LATENESS_SECONDS),
            **(extra_env or {}),
        }
        tmp_path.mkdir(parents=True, exist_ok=True)
        self.worker = WorkerProcess(self.env, tmp_path / "worker.log")
        self.redis = redis.Redis.from_url(stack.redis_url, decode_responses=True)

    async def publish(self, messages: list[tuple[str, str | None, bytes]]) -> None:
        """Send (topic, key, value) in order with a real Kafka client, as a shop would."""
        producer = AIOKafkaProducer(bootstrap_servers=self.stack.kafka_bootstrap)
        await producer.start()
        try:
            for topic, key, value in messages:
                await producer.send(
                    self.prefix + topic, value=value, key=None if key is None else key.encode()
                )
            await producer.flush()
        finally:
            await producer.stop()

    def sources_handled(self) -> float:
        """Messages of the source topics the worker has handled, whatever the outcome."""
        return sum(
            value
            for labels, value in self.gauges("ltvcac_events_total").items()
            if dict(labels)["topic"] in SOURCE_TOPICS
        )

    async def publish_paced(
        self, messages: list[tuple[str, str | None, bytes]], chunk: int = 1
    ) -> None:
        """Publish ``chunk`` messages at a time, each chunk once the worker has handled the
        one before, so the worker sees this order (a backlog is read topic by topic)."""
        before = self.sources_handled()
        for start in range(0, len(messages), chunk):
            await self.publish(messages[start : start + chunk])
            done = before + min(start + chunk, len(messages))
            await wait_until(lambda: self.sources_handled() >= done, what=f"{done} handled")  # noqa: B023

    async def read_topic(self, topic: str, count: int, timeout: float = 60.0) -> list[Any]:
        """The first ``count`` messages of a topic (all partitions)."""
        consumer = AIOKafkaConsumer(
            self.prefix + topic,
            bootstrap_servers=self.stack.kafka_bootstrap,
            auto_offset_reset="earliest",
            group_id=None,
        )
        await consumer.start()
        found: list[Any] = []
        try:
            deadline = time.monotonic() + timeout
            while len(found) < count and time.monotonic() < deadline:
                batches = await consumer.getmany(timeout_ms=500)
                for records in batches.values():
                    found.extend(records)
        finally:
            await consumer.stop()
        return found

    def redis_hash(self, key: str) -> dict[str, str]:
        return self.redis.hgetall(self.redis_prefix + key)  # type: ignore[return-value]

    def gauges(self, name: str) -> dict[frozenset[tuple[str, str]], float]:
        return {labels: v for (n, labels), v in self.worker.samples().items() if n == name}

    def lifetime_spend(self) -> dict[str, float]:
        """``ltvcac_spend`` over the lifetime window, by channel."""
        return {
            dict(labels)["channel"]: value
            for labels, value in self.gauges("ltvcac_spend").items()
            if dict(labels)["window"] == "lifetime"
        }

    def cleanup(self) -> None:
        self.worker.stop()
        keys = list(self.redis.scan_iter(match=self.redis_prefix + "*"))
        if keys:
            self.redis.delete(*keys)
        self.redis.close()


@contextlib.asynccontextmanager
async def running(
    stack: StackEndpoints, tmp_path: Path, extra_env: dict[str, str] | None = None
) -> AsyncIterator[Deployment]:
    """A started worker with its own topics and keys, cleaned up afterwards."""
    deployed = Deployment(stack, tmp_path, extra_env)
    await asyncio.to_thread(deployed.worker.start)
    try:
        yield deployed
    finally:
        await asyncio.to_thread(deployed.cleanup)


@pytest.fixture
async def deployment(stack: StackEndpoints, tmp_path: Path) -> AsyncIterator[Deployment]:
    async with running(stack, tmp_path) as deployed:
        yield deployed


async def wait_until(
    check: Callable[[], bool],
    timeout: float = 60.0,
    what: str = "condition",
    found: Callable[[], str] | None = None,
) -> None:
    """Poll ``check`` until it holds; fail with ``what`` (and what ``found`` says was
    there instead) after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if await asyncio.to_thread(check):
                return
        except OSError:
            pass  # the worker's web server may be restarting
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}{await _found(found)}")
        await asyncio.sleep(0.25)  # poll interval, not synchronisation


async def _found(found: Callable[[], str] | None) -> str:
    if found is None:
        return ""
    try:
        return f"; found {await asyncio.to_thread(found)}"
    except OSError as error:
        return f"; found nothing ({error!r})"


def encode(event: dict[str, Any]) -> bytes:
    return json.dumps(event).encode()
