"""The full pipeline: ``ltvcac worker`` processes reading the pre-published source topics.

Progress is read the way an operator would, from ``ltvcac_events_total`` on
``/metrics`` (summed over the workers of one app id). A source event is counted as soon
as its agent handled it; the conversions, attributions and channel deltas it causes
follow on internal topics, so "drain" is how long those counts keep moving once every
source event was counted.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import redis
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from bench.common import BenchError, StageResult, cpu_seconds, run_async, wait_for
from stream.devstack import StackEndpoints, free_port
from stream.kafka_admin import INTERNAL_TOPIC_NAMES
from stream.worker_process import WorkerProcess

EVENTS_TOTAL = "ltvcac_events_total"
DEAD_LETTERS_TOTAL = "ltvcac_dead_letters_total"
REBALANCES_TOTAL = "ltvcac_rebalances_total"
CHANNEL_DELTAS = "ltvcac-channel-deltas"
REDELIVERED = "redelivered"  # handled again after a rebalance: not a new event
REJECTED = "rejected"
_START_GRACE = 30.0  # seconds an interrupted start gets to have spawned its worker
_FAILED_SCRAPES = 20  # consecutive /metrics failures that mean a worker is gone
_PROBLEM = re.compile(r"\[(?:WARNING|ERROR|CRITICAL)\]\s*(.*)")

Counts = dict[tuple[str, str], float]  # (topic, outcome) -> events


@dataclass(frozen=True)
class PipelineOptions:
    """How the workers are run and watched."""

    partitions: int
    timeout: float
    poll_interval: float = 0.5
    quiet_seconds: float = 3.0  # unchanged internal counts for this long = drained
    session_timeout: float = 10.0
    # A pre-published backlog is read topic by topic, not in event-time order across
    # topics: the lateness must cover the workload's span, or early events are too late.
    allowed_lateness_seconds: int = 3600


@dataclass(frozen=True)
class Scrape:
    """One scrape of every worker: events by (topic, outcome), summed and per worker,
    dead letters by reason and rebalances per worker."""

    events: Counts
    per_worker: list[Counts]
    dead_letters: dict[str, int]
    rebalances: list[int]


class _Scraper:
    """Scrapes every worker of the group; tolerates a few failed scrapes in a row."""

    def __init__(self, workers: list[WorkerProcess]) -> None:
        self.workers = workers
        self.failures = 0

    def scrape(self) -> Scrape | None:
        try:
            samples = [worker.samples() for worker in self.workers]
        except OSError as error:
            self.failures += 1
            if self.failures >= _FAILED_SCRAPES:
                raise BenchError(
                    f"a worker stopped answering /metrics ({error}); log tails:\n"
                    f"{log_tails(self.workers)}"
                ) from error
            return None
        self.failures = 0
        per_worker = [_events(one) for one in samples]
        summed: Counter[tuple[str, str]] = Counter()
        dead: Counter[str] = Counter()
        for counts, one in zip(per_worker, samples, strict=True):
            summed.update(counts)
            dead.update(_by_label(one, DEAD_LETTERS_TOTAL, "reason"))
        rebalances = [int(sum(_by_label(one, REBALANCES_TOTAL, None).values())) for one in samples]
        return Scrape(dict(summed), per_worker, dict(dead), rebalances)


def _events(samples: Mapping[tuple[str, frozenset[tuple[str, str]]], float]) -> Counts:
    result: Counts = {}
    for (name, labels), value in samples.items():
        if name == EVENTS_TOTAL:
            label = dict(labels)
            result[(label["topic"], label["outcome"])] = value
    return result


def _by_label(
    samples: Mapping[tuple[str, frozenset[tuple[str, str]]], float], metric: str, label: str | None
) -> dict[str, int]:
    result: dict[str, int] = {}
    for (name, labels), value in samples.items():
        if name == metric:
            key = "" if label is None else dict(labels)[label]
            result[key] = int(value)
    return result


def handled(counts: Counts, topic: str) -> int:
    """Events of ``topic`` handled for the first time (redeliveries after a rebalance
    are handled again and counted once more by the counter)."""
    return int(sum(v for (name, out), v in counts.items() if name == topic and out != REDELIVERED))


def _total(counts: Counts, topic: str) -> int:
    return int(sum(value for (name, _), value in counts.items() if name == topic))


def outcomes_by_topic(counts: Counts, topics: list[str]) -> dict[str, dict[str, int]]:
    return {
        topic: {out: int(v) for (name, out), v in sorted(counts.items()) if name == topic}
        for topic in topics
    }


def log_tails(workers: list[WorkerProcess]) -> str:
    return "\n".join(
        f"--- worker {number} ---\n{worker.log_tail()}" for number, worker in enumerate(workers, 1)
    )


def worker_env(
    endpoints: StackEndpoints, prefix: str, options: PipelineOptions, unique: str
) -> dict[str, str]:
    """Settings of one worker; workers given the same ``unique`` form one app."""
    return {
        "LTVCAC_KAFKA_BOOTSTRAP_SERVERS": endpoints.kafka_bootstrap,
        "LTVCAC_REDIS_URL": endpoints.redis_url,
        "LTVCAC_TOPIC_PREFIX": prefix,
        "LTVCAC_TOPIC_PARTITIONS": str(options.partitions),
        "LTVCAC_APP_ID": f"bench-ltvcac-{unique}",
        "LTVCAC_WEB_PORT": str(free_port()),
        "LTVCAC_REDIS_KEY_PREFIX": f"bench-{unique}:",
        "LTVCAC_SESSION_TIMEOUT_SECONDS": str(options.session_timeout),
        "LTVCAC_ALLOWED_LATENESS_SECONDS": str(options.allowed_lateness_seconds),
        "LTVCAC_LOG_LEVEL": "warning",
    }


def stage_name(workers: int) -> str:
    if workers == 1:
        return "ltvcac worker (full pipeline)"
    return f"ltvcac worker x{workers} (full pipeline, one app id)"


def run_pipeline(
    endpoints: StackEndpoints,
    prefix: str,
    expected: dict[str, int],
    workdir: Path,
    options: PipelineOptions,
    workers: int = 1,
) -> tuple[StageResult, dict[str, object]]:
    """Measure ``workers`` workers of one fresh app id on the pre-published source
    topics, ``expected`` events per topic; returns the stage and the drain figures.
    Raises BenchError if any input became a dead letter."""
    unique = uuid.uuid4().hex[:12]
    logs = [workdir / f"worker-{unique}-{n}.log" for n in range(1, workers + 1)]
    group = [WorkerProcess(worker_env(endpoints, prefix, options, unique), log) for log in logs]
    began = time.monotonic()
    try:
        _start_all(group, options.timeout)
        ready = time.monotonic()
        stage, counted_all, at_all = _measure_sources(group, expected, options, began)
        stage.name = stage_name(workers)
        stage.details["worker_ready_after"] = round(ready - began, 3)
        drain_seconds, consumed, settled = _measure_drain(group, counted_all, at_all, options)
        _fail_on_dead_letters(settled, list(expected), logs)
        internal = run_async(
            _produced_vs_consumed(endpoints.kafka_bootstrap, prefix, consumed),
            options.timeout,
            "counting the messages on the internal topics",
        )
        cpu = [cpu_seconds(worker.pid) for worker in group]
    finally:
        for worker in group:
            worker.stop()
        _delete_keys(endpoints.redis_url, f"bench-{unique}:")
    stage.details["outcomes"] = outcomes_by_topic(settled.events, list(expected))
    stage.details["internal_outcomes"] = outcomes_by_topic(settled.events, list(consumed))
    stage.details["per_worker_source_events"] = [
        sum(handled(counts, topic) for topic in expected) for counts in settled.per_worker
    ]
    stage.details["rebalances_per_worker"] = settled.rebalances
    if None not in cpu:  # start to drained, so every internal message is paid for
        total_cpu = sum(c for c in cpu if c is not None)
        stage.details["worker_cpu_seconds"] = round(total_cpu, 2)
        stage.details["worker_cpu_ms_per_source_event"] = round(
            1000 * total_cpu / sum(expected.values()), 3
        )
    drain: dict[str, object] = {
        "drain_seconds": round(drain_seconds, 3),
        "quiet_seconds": options.quiet_seconds,
        # First source event counted -> every consequence applied: what a dashboard waits for.
        "end_to_end_seconds": round(stage.seconds + drain_seconds, 3),
        "channel_deltas": consumed[CHANNEL_DELTAS],
        "internal_topics": internal,
        "worker_log_problems": log_problems(logs),
        "worker_logs": [str(log) for log in logs],
    }
    return stage, drain


def _start_all(group: list[WorkerProcess], timeout: float) -> None:
    """Start every worker at once, so they join the group together; each start() waits
    for its own /metrics. The first failure is raised once all have returned."""
    errors: list[BaseException] = []

    def start(worker: WorkerProcess) -> None:
        try:
            worker.start(timeout=timeout)
        except BaseException as error:  # re-raised in the caller's thread
            errors.append(error)

    threads = [threading.Thread(target=start, args=(w,), daemon=True) for w in group]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            thread.join()
    finally:
        # Interrupted: let each start() get past its spawn, so the caller stops them all.
        for thread in threads:
            thread.join(_START_GRACE)
    if errors:
        raise errors[0]


def _fail_on_dead_letters(scrape: Scrape, sources: list[str], logs: list[Path]) -> None:
    """A dead letter means the workload (or the pipeline) is wrong, not slow: stop."""
    rejected = {
        topic: n
        for topic, by in outcomes_by_topic(scrape.events, sources).items()
        if (n := by.get(REJECTED, 0))
    }
    if any(scrape.dead_letters.values()) or rejected:
        # Includes internal messages: one the pipeline itself rejected is a bug there.
        raise BenchError(
            f"the pipeline dead-lettered inputs: reasons {scrape.dead_letters}, rejected per "
            f"source topic {rejected}; outcomes {outcomes_by_topic(scrape.events, sources)}; "
            f"worker logs {[str(log) for log in logs]}"
        )


def log_problems(paths: list[Path]) -> dict[str, int]:
    """WARNING/ERROR lines of Faust logs, grouped by message with numbers masked."""
    problems: Counter[str] = Counter()
    for path in paths:
        with contextlib.suppress(OSError), path.open(errors="replace") as lines:
            for line in lines:
                match = _PROBLEM.search(line)
                if match:
                    problems[re.sub(r"\d+", "N", match.group(1).strip())[:120]] += 1
    return dict(problems.most_common(10))


def _measure_sources(
    group: list[WorkerProcess], expected: dict[str, int], options: PipelineOptions, began: float
) -> tuple[StageResult, float, Scrape]:
    """Scrape until every source topic's events are counted; returns the stage, when,
    and that scrape."""
    scraper = _Scraper(group)
    events = sum(expected.values())

    def sources(scrape: Scrape) -> int:
        return sum(handled(scrape.events, topic) for topic in expected)

    def first_counted() -> Scrape | None:
        scrape = scraper.scrape()
        return scrape if scrape and sources(scrape) >= 1 else None

    def all_counted() -> Scrape | None:
        scrape = scraper.scrape()
        if scrape is None:
            return None
        if any(handled(scrape.events, topic) < n for topic, n in expected.items()):
            return None
        return scrape

    def log() -> str:
        return f"worker log tails:\n{log_tails(group)}"

    first_scrape, first = wait_for(
        first_counted, options.timeout, "the workers to count an event", options.poll_interval, log
    )
    all_scrape, last = wait_for(
        all_counted,
        options.timeout,
        f"the workers to count {expected} source events",
        options.poll_interval,
        log,
    )
    # A scrape only samples the counter, so the first one already includes some
    # events: the rate is taken over what was counted between the two scrapes.
    at_first = sources(first_scrape)
    span = last - first
    stage = StageResult(
        stage_name(len(group)),
        events,
        span,
        first_after=first - began,
        counted=sources(all_scrape) - at_first,
        details={
            "workers": len(group),
            "events_by_topic": expected,
            "events_counted_at_first_scrape": at_first,
            "events_per_second_n_over_span": round(events / span, 1) if span > 0 else None,
            "all_counted_after": round(last - began, 3),
            "poll_interval": options.poll_interval,
            "allowed_lateness_seconds": options.allowed_lateness_seconds,
        },
    )
    return stage, last, all_scrape


def _measure_drain(
    group: list[WorkerProcess], counted_all: float, at_all: Scrape, options: PipelineOptions
) -> tuple[float, dict[str, int], Scrape]:
    """Poll until the internal topic counts stop changing for ``quiet_seconds``.

    Returns seconds from "all source events counted" to the last change, the internal
    counts, and the last scrape.
    """
    scraper = _Scraper(group)
    internal = list(INTERNAL_TOPIC_NAMES)
    latest = at_all
    last_seen = tuple(_total(latest.events, topic) for topic in internal)
    last_change = counted_all

    def probe() -> bool | None:
        nonlocal last_seen, last_change, latest
        fresh = scraper.scrape()
        now = time.monotonic()
        if fresh is None:
            return None
        latest = fresh
        seen = tuple(_total(fresh.events, topic) for topic in internal)
        if seen != last_seen:
            last_seen, last_change = seen, now
            return None
        return True if now - last_change >= options.quiet_seconds else None

    wait_for(
        probe,
        options.timeout,
        "the internal topics to settle",
        options.poll_interval,
        lambda: f"worker log tails:\n{log_tails(group)}",
    )
    consumed = {topic: _total(latest.events, topic) for topic in internal}
    return max(0.0, last_change - counted_all), consumed, latest


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
