"""The full pipeline: an ``ltvcac worker`` process reading the pre-published purchases.

Progress is read the way an operator would, from ``ltvcac_events_total`` on
``/metrics``. Purchases are counted as soon as the customers agent handled them; the
conversions, attributions and channel deltas they cause follow on internal topics,
so "drain" is how long those counts keep moving once every purchase was counted.
"""

from __future__ import annotations

import contextlib
import re
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import redis
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from bench.common import BenchError, StageResult, run_async, wait_for
from schemas.topics import PURCHASES
from stream.devstack import StackEndpoints, free_port
from stream.kafka_admin import INTERNAL_TOPIC_NAMES
from stream.worker_process import WorkerProcess

EVENTS_TOTAL = "ltvcac_events_total"
CHANNEL_DELTAS = "ltvcac-channel-deltas"
_FAILED_SCRAPES = 20  # consecutive /metrics failures that mean the worker is gone
_PROBLEM = re.compile(r"\[(?:WARNING|ERROR|CRITICAL)\]\s*(.*)")


@dataclass(frozen=True)
class PipelineOptions:
    """How the worker is run and watched."""

    partitions: int
    timeout: float
    poll_interval: float = 0.5
    quiet_seconds: float = 3.0  # unchanged internal counts for this long = drained
    session_timeout: float = 10.0


class _Scraper:
    """Reads ``ltvcac_events_total`` by (topic, outcome); tolerates a few failed scrapes."""

    def __init__(self, worker: WorkerProcess) -> None:
        self.worker = worker
        self.failures = 0

    def counts(self) -> dict[tuple[str, str], float] | None:
        try:
            samples = self.worker.samples()
        except OSError as error:
            self.failures += 1
            if self.failures >= _FAILED_SCRAPES:
                raise BenchError(
                    f"worker stopped answering /metrics ({error}); log tail:\n"
                    f"{self.worker.log_tail()}"
                ) from error
            return None
        self.failures = 0
        result: dict[tuple[str, str], float] = {}
        for (name, labels), value in samples.items():
            if name == EVENTS_TOTAL:
                label = dict(labels)
                result[(label["topic"], label["outcome"])] = value
        return result


def _total(counts: dict[tuple[str, str], float], topic: str) -> int:
    return int(sum(value for (name, _), value in counts.items() if name == topic))


def worker_env(endpoints: StackEndpoints, prefix: str, options: PipelineOptions) -> dict[str, str]:
    unique = uuid.uuid4().hex[:12]
    return {
        "LTVCAC_KAFKA_BOOTSTRAP_SERVERS": endpoints.kafka_bootstrap,
        "LTVCAC_REDIS_URL": endpoints.redis_url,
        "LTVCAC_TOPIC_PREFIX": prefix,
        "LTVCAC_TOPIC_PARTITIONS": str(options.partitions),
        "LTVCAC_APP_ID": f"bench-ltvcac-{unique}",
        "LTVCAC_WEB_PORT": str(free_port()),
        "LTVCAC_REDIS_KEY_PREFIX": f"bench-{unique}:",
        "LTVCAC_SESSION_TIMEOUT_SECONDS": str(options.session_timeout),
        "LTVCAC_LOG_LEVEL": "warning",
    }


def run_pipeline(
    endpoints: StackEndpoints, prefix: str, events: int, workdir: Path, options: PipelineOptions
) -> tuple[StageResult, dict[str, object]]:
    """Measure the worker on ``events`` purchases; returns the stage and drain figures."""
    env = worker_env(endpoints, prefix, options)
    worker = WorkerProcess(env, workdir / "worker.log")
    began = time.monotonic()
    try:
        worker.start(timeout=options.timeout)
        ready = time.monotonic()
        stage, counted_all, at_all = _measure_purchases(worker, events, options, began)
        stage.details["worker_ready_after"] = round(ready - began, 3)
        drain_seconds, consumed = _measure_drain(worker, counted_all, at_all, options)
        internal = run_async(
            _produced_vs_consumed(endpoints.kafka_bootstrap, prefix, consumed),
            options.timeout,
            "counting the messages on the internal topics",
        )
    finally:
        worker.stop()
        _delete_keys(endpoints.redis_url, env["LTVCAC_REDIS_KEY_PREFIX"])
    drain: dict[str, object] = {
        "drain_seconds": round(drain_seconds, 3),
        "quiet_seconds": options.quiet_seconds,
        # First purchase counted -> every consequence applied: what a dashboard waits for.
        "end_to_end_seconds": round(stage.seconds + drain_seconds, 3),
        "channel_deltas": consumed[CHANNEL_DELTAS],
        "internal_topics": internal,
        "worker_log_problems": log_problems(workdir / "worker.log"),
    }
    return stage, drain


def log_problems(path: Path) -> dict[str, int]:
    """WARNING/ERROR lines of a Faust log, grouped by message with numbers masked."""
    problems: Counter[str] = Counter()
    with contextlib.suppress(OSError), path.open(errors="replace") as lines:
        for line in lines:
            match = _PROBLEM.search(line)
            if match:
                problems[re.sub(r"\d+", "N", match.group(1).strip())[:120]] += 1
    return dict(problems.most_common(10))


def _measure_purchases(
    worker: WorkerProcess, events: int, options: PipelineOptions, began: float
) -> tuple[StageResult, float, dict[tuple[str, str], float]]:
    """Scrape until all purchases are counted; returns the stage, when, and the counts."""
    scraper = _Scraper(worker)

    def purchases_at_least(floor: int) -> Callable[[], dict[tuple[str, str], float] | None]:
        def probe() -> dict[tuple[str, str], float] | None:
            counts = scraper.counts()
            return counts if counts and _total(counts, PURCHASES.name) >= floor else None

        return probe

    def log() -> str:
        return f"worker log tail:\n{worker.log_tail()}"

    first_counts, first = wait_for(
        purchases_at_least(1),
        options.timeout,
        "the worker to count a purchase",
        options.poll_interval,
        log,
    )
    all_counts, last = wait_for(
        purchases_at_least(events),
        options.timeout,
        f"the worker to count {events} purchases",
        options.poll_interval,
        log,
    )
    # A scrape only samples the counter, so the first one already includes some
    # events: the rate is taken over what was counted between the two scrapes.
    at_first = _total(first_counts, PURCHASES.name)
    outcomes = {out: int(v) for (topic, out), v in all_counts.items() if topic == PURCHASES.name}
    span = last - first
    stage = StageResult(
        "ltvcac worker (full pipeline)",
        events,
        span,
        first_after=first - began,
        counted=_total(all_counts, PURCHASES.name) - at_first,
        details={
            "purchases_counted_at_first_scrape": at_first,
            "events_per_second_n_over_span": round(events / span, 1) if span > 0 else None,
            "all_counted_after": round(last - began, 3),
            "purchase_outcomes": outcomes,
            "poll_interval": options.poll_interval,
        },
    )
    return stage, last, all_counts


def _measure_drain(
    worker: WorkerProcess,
    counted_all: float,
    at_all: dict[tuple[str, str], float],
    options: PipelineOptions,
) -> tuple[float, dict[str, int]]:
    """Poll until the internal topic counts stop changing for ``quiet_seconds``.

    Returns seconds from "all purchases counted" to the last change, and the counts.
    """
    scraper = _Scraper(worker)
    internal = list(INTERNAL_TOPIC_NAMES)
    counts = at_all
    last_seen = tuple(_total(counts, topic) for topic in internal)
    last_change = counted_all

    def probe() -> bool | None:
        nonlocal last_seen, last_change, counts
        fresh = scraper.counts()
        now = time.monotonic()
        if fresh is None:
            return None
        counts = fresh
        seen = tuple(_total(fresh, topic) for topic in internal)
        if seen != last_seen:
            last_seen, last_change = seen, now
            return None
        return True if now - last_change >= options.quiet_seconds else None

    wait_for(
        probe,
        options.timeout,
        "the internal topics to settle",
        options.poll_interval,
        lambda: f"worker log tail:\n{worker.log_tail()}",
    )
    return max(0.0, last_change - counted_all), {topic: _total(counts, topic) for topic in internal}


async def _produced_vs_consumed(
    bootstrap: str, prefix: str, consumed: dict[str, int]
) -> dict[str, dict[str, int]]:
    """Messages on each internal topic next to what the worker counted from it."""
    names = [prefix + topic for topic in consumed]
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        await admin.start()
        described = await admin.describe_topics(names)
    finally:
        await admin.close()
    partitions = [
        TopicPartition(item["topic"], part["partition"])
        for item in described
        for part in item["partitions"]
    ]
    produced = await _count_messages(bootstrap, partitions)
    return {
        topic: {"produced": produced.get(prefix + topic, 0), "consumed": count}
        for topic, count in consumed.items()
    }


async def _count_messages(bootstrap: str, partitions: list[TopicPartition]) -> dict[str, int]:
    """Read every message of ``partitions`` and count them per topic.

    Not ``end_offsets()``: Tansu answers ListOffsets(latest) with the last batch's base
    offset + 1, which undercounts whenever the last batch holds several records. The
    high watermark in fetch responses is right, so read up to it.
    """
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        await consumer.start()
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        counts: dict[str, int] = {}
        while not await _at_highwater(consumer, partitions):
            for tp, records in (await consumer.getmany(timeout_ms=500)).items():
                counts[tp.topic] = counts.get(tp.topic, 0) + len(records)
        return counts
    finally:
        await consumer.stop()


async def _at_highwater(consumer: AIOKafkaConsumer, partitions: list[TopicPartition]) -> bool:
    for tp in partitions:
        highwater = consumer.highwater(tp)
        if highwater is None or await consumer.position(tp) < highwater:
            return False
    return True


def _delete_keys(redis_url: str, key_prefix: str) -> None:
    """Remove what this run projected, in case the Redis outlives the stack."""
    with contextlib.suppress(redis.RedisError, OSError):
        client = redis.Redis.from_url(redis_url, socket_timeout=5)
        try:
            keys = list(client.scan_iter(match=f"{key_prefix}*", count=1000))
            for start in range(0, len(keys), 1000):
                client.delete(*keys[start : start + 1000])
        finally:
            client.close()
