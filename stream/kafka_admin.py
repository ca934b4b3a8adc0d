"""Kafka from the worker's side: the topics it needs, waiting for a broker that is not
up yet, and the watch that reports when the broker goes away and when it is back.

Co-partitioning is what lets each agent read its table without a repartition, so a
topic with another partition count is a configuration error, reported clearly.

While Kafka is unreachable the Kafka client retries on its own every 100 ms per
connection (aiokafka's fixed ``retry_backoff_ms``, which Faust does not expose) and
logs an error for each attempt. The worker keeps those lines out of the log while it
knows the broker is down and reports the outage itself: one warning per probe of the
broker, with the wait before the next one (0.5 s doubling up to
``LTVCAC_RETRY_MAX_SECONDS``), and one info line when the broker answers again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError
from mode import Service

from schemas.topics import DEAD_LETTERS, SOURCE_TOPICS
from stream.config import Settings, next_retry_delay
from stream.errors import ConfigurationError

log = logging.getLogger(__name__)
# logical name -> topic name of the topics between the agents
INTERNAL_TOPICS = {
    "visitor-updates": "ltvcac-visitor-updates",
    "customer-updates": "ltvcac-customer-updates",
    "channel-deltas": "ltvcac-channel-deltas",
}
INTERNAL_TOPIC_NAMES = tuple(INTERNAL_TOPICS.values())

# While Kafka is reachable the watch probes it this often (a hung broker logs nothing).
HEALTHY_PROBE_SECONDS = 10.0
# A probe is one connection and one ApiVersions request; longer than this is a failure.
PROBE_TIMEOUT_SECONDS = 5.0
# Kafka client errors wake the watch; it probes at most this often while Kafka answers.
_MIN_PROBE_GAP_SECONDS = 1.0
# A worker asked to stop while Kafka is unreachable exits after this long: its last
# offset commit would otherwise wait for Kafka to come back.
STOP_GRACE_SECONDS = 5.0


def topic_names(settings: Settings) -> list[str]:
    """Physical names of all topics the worker uses, except Faust's changelogs."""
    names = [c.name for c in SOURCE_TOPICS] + [DEAD_LETTERS, *INTERNAL_TOPIC_NAMES]
    return [settings.topic_prefix + name for name in names]


def client_options(settings: Settings) -> dict[str, Any]:
    """Bootstrap servers and security settings for aiokafka clients and connections."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "security_protocol": settings.kafka_security_protocol,
    }
    if settings.kafka_security_protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = ssl.create_default_context(cafile=settings.kafka_ssl_cafile)
    if settings.kafka_sasl_mechanism:
        options["sasl_mechanism"] = settings.kafka_sasl_mechanism
        options["sasl_plain_username"] = settings.kafka_sasl_username
        options["sasl_plain_password"] = settings.kafka_sasl_password
    return options


def _describe(error: BaseException) -> str:
    text = str(error)
    name = type(error).__name__
    if not text:
        return name
    return text if text.startswith(name) else f"{name}: {text}"


class _ClientLogGate(logging.Filter):
    """Keeps the Kafka client's warnings and errors out of the log while the worker
    knows Kafka is down (they are counted instead), and tells the watch about them
    otherwise. The client logs from the consumer thread too, hence the lock."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._holding = 0
        self._held = 0
        self.on_trouble: Callable[[], None] | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        with self._lock:
            if self._holding:
                self._held += 1
                return False
        if self.on_trouble is not None:
            self.on_trouble()
        return True

    @contextlib.contextmanager
    def holding(self) -> Iterator[None]:
        with self._lock:
            self._holding += 1
        try:
            yield
        finally:
            with self._lock:
                self._holding -= 1

    def take_held(self) -> int:
        """How many client lines were kept out of the log since the last call."""
        with self._lock:
            held, self._held = self._held, 0
            return held


_GATE = _ClientLogGate()


def _install_gate() -> None:
    """Put the gate on every aiokafka logger (a logger's filters see only its own records)."""
    names = {"aiokafka"} | {
        name for name in logging.Logger.manager.loggerDict if name.startswith("aiokafka.")
    }
    for name in names:
        logger = logging.getLogger(name)
        if _GATE not in logger.filters:
            logger.addFilter(_GATE)


async def connect_admin(settings: Settings) -> AIOKafkaAdminClient:
    """Connect, retrying with capped exponential backoff while the broker is not up yet."""
    _install_gate()
    began = time.monotonic()
    attempt, delay = 0, 0.0
    while True:
        attempt += 1
        admin = AIOKafkaAdminClient(**client_options(settings))
        try:
            with _GATE.holding():  # the client logs each failed bootstrap; we say it once
                await admin.start()
        except KafkaError as error:
            await admin.close()
            _GATE.take_held()
            delay = next_retry_delay(delay, settings.retry_max_seconds)
            log.warning(
                "kafka not reachable, retrying bootstrap=%s attempt=%d retry_in=%.1fs error=%s",
                settings.kafka_bootstrap_servers,
                attempt,
                delay,
                _describe(error),
            )
            await asyncio.sleep(delay)  # backoff between attempts
            continue
        except BaseException:  # cancelled (SIGTERM) while connecting
            await admin.close()
            raise
        if attempt > 1:
            log.info(
                "kafka reachable bootstrap=%s attempts=%d waited=%.1fs",
                settings.kafka_bootstrap_servers,
                attempt,
                time.monotonic() - began,
            )
        return admin


async def ensure_topics(settings: Settings) -> None:
    """Create missing topics; fail on an existing topic with another partition count."""
    admin = await connect_admin(settings)
    try:
        wanted = topic_names(settings)
        existing = set(await admin.list_topics())
        missing = [name for name in wanted if name not in existing]
        if missing:
            log.info("creating topics names=%s partitions=%d", missing, settings.topic_partitions)
            await admin.create_topics(
                [NewTopic(name, settings.topic_partitions, 1) for name in missing]
            )
        present = [name for name in wanted if name in existing]
        if present:
            for description in await admin.describe_topics(present):
                count = len(description["partitions"])
                if count != settings.topic_partitions:
                    raise ConfigurationError(
                        f"topic {description['topic']} has {count} partitions, but "
                        f"LTVCAC_TOPIC_PARTITIONS={settings.topic_partitions}; all topics "
                        "must have the same partition count"
                    )
    finally:
        await admin.close()


async def probe_kafka(settings: Settings, timeout: float = PROBE_TIMEOUT_SECONDS) -> str | None:
    """None when a bootstrap broker answers a Kafka request within ``timeout`` seconds,
    else why not. One connection and one ApiVersions request (plus SASL when set)."""
    from aiokafka.conn import create_conn

    options = client_options(settings)
    servers = options.pop("bootstrap_servers").split(",")
    problem = "no bootstrap server"
    for server in servers:
        host, _, port = server.strip().rpartition(":")
        try:
            conn = await asyncio.wait_for(
                create_conn(
                    host.strip("[]"), int(port), request_timeout_ms=int(timeout * 1000), **options
                ),
                timeout,
            )
        except (OSError, KafkaError, TimeoutError, ValueError) as error:
            problem = f"{server.strip()}: {_describe(error)}"
            continue
        conn.close()
        return None
    return problem


class KafkaWatch(Service):
    """Runs beside the Faust app in the worker: probes Kafka every
    ``HEALTHY_PROBE_SECONDS`` and whenever the client logs trouble. While Kafka does not
    answer, it logs one warning per probe with the wait before the next, holds back the
    client's own per-retry errors, and logs ``kafka recovered`` once it answers again.

    A stopping worker commits its offsets last, and that commit waits for Kafka
    however long it is gone: `worker_stopping` makes sure such a stop still ends."""

    def __init__(self, settings: Settings, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._settings = settings
        self._trouble = asyncio.Event()
        self._unreachable = False

    @property
    def reachable(self) -> bool:
        """False while an outage is under way (since the last failed probe)."""
        return not self._unreachable

    async def on_start(self) -> None:
        loop = asyncio.get_running_loop()

        def trouble() -> None:  # called from any thread the Kafka client logs from
            with contextlib.suppress(RuntimeError):  # the loop is closed: shutting down
                loop.call_soon_threadsafe(self._trouble.set)

        _install_gate()
        _GATE.on_trouble = trouble

    async def on_stop(self) -> None:
        _GATE.on_trouble = None

    @Service.task
    async def _watch(self) -> None:
        while not self.should_stop:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._trouble.wait(), HEALTHY_PROBE_SECONDS)
            self._trouble.clear()
            problem = await probe_kafka(self._settings)
            if problem is None:
                await self.sleep(_MIN_PROBE_GAP_SECONDS)
                continue
            with _GATE.holding():
                await self._outage(problem)

    async def _outage(self, problem: str) -> None:
        """Probe with backoff until Kafka answers (or the worker stops)."""
        self._unreachable = True
        began = time.monotonic()
        attempt, delay, held = 1, 0.0, 0
        while True:
            delay = next_retry_delay(delay, self._settings.retry_max_seconds)
            client_errors = _GATE.take_held()
            held += client_errors
            log.warning(
                "kafka unreachable, retrying bootstrap=%s attempt=%d retry_in=%.1fs "
                "client_errors_held=%d error=%s",
                self._settings.kafka_bootstrap_servers,
                attempt,
                delay,
                client_errors,
                problem,
            )
            await self.sleep(delay)  # backoff; returns early when the worker stops
            if self.should_stop:
                return
            answer = await probe_kafka(self._settings)
            if answer is None:
                break
            problem = answer
            attempt += 1
        self._unreachable = False
        log.info(
            "kafka recovered bootstrap=%s down_for=%.1fs attempts=%d client_errors_held=%d",
            self._settings.kafka_bootstrap_servers,
            time.monotonic() - began,
            attempt + 1,
            held + _GATE.take_held(),
        )

    def worker_stopping(self) -> None:
        """The worker has begun to stop (SIGTERM, SIGINT). If Kafka is unreachable
        ``STOP_GRACE_SECONDS`` into the stop, the worker exits (status 0) without its
        last offset commit: as after a crash, the events since the last commit are read
        again at the next start, and the records' offsets keep them from being applied
        twice."""
        self.add_future(self._exit_if_stuck())

    async def _exit_if_stuck(self) -> None:
        began = time.monotonic()
        while True:
            await asyncio.sleep(0.5)  # polls the watch's verdict; a finished stop cancels this
            stopping_for = time.monotonic() - began
            if self._unreachable and stopping_for >= STOP_GRACE_SECONDS:
                log.warning(
                    "worker stopped without its last offset commit, kafka unreachable "
                    "bootstrap=%s stopping_for=%.1fs; events since the last commit are read "
                    "again at the next start",
                    self._settings.kafka_bootstrap_servers,
                    stopping_for,
                )
                for handler in logging.getLogger().handlers:
                    handler.flush()
                os._exit(0)


_FETCHER_PATCHED = False


def tolerate_cancelled_fetches() -> None:
    """Work around aiokafka 0.14: ``Fetcher.close()`` cancels its pending fetch tasks and
    awaits them without catching their ``CancelledError``. A fetch task that failed
    because the broker is down sleeps ``retry_backoff_ms`` outside the part that catches
    cancellation, so stopping the consumer during an outage raised ``CancelledError``
    out of ``consumer.stop()``; in a Faust worker that ends the consumer thread before
    it reports its shutdown, and the worker then waited for it forever: SIGTERM during
    a Kafka outage hung until SIGKILL. Here ``close()`` cancels and awaits the remaining
    fetch tasks instead; our own cancellation still propagates."""
    global _FETCHER_PATCHED
    if _FETCHER_PATCHED:
        return
    from aiokafka.consumer.fetcher import Fetcher

    original = Fetcher.close

    async def close(self: Any) -> None:
        try:
            await original(self)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise
            pending = [task for task in list(self._pending_tasks) if not task.done()]
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    Fetcher.close = close
    _FETCHER_PATCHED = True
