"""Redis or Kafka down: the stream goes on, the worker waits with backoff and says so in
its log, nothing is lost or counted twice, and SIGTERM still ends it cleanly.

How the outages are made:

- Redis: our own ``redis-server`` (no persistence) is terminated and later started
  again on the same port, empty, as a Redis restart without persistence (or a failover
  to an empty replica) looks to a client.
- Kafka not up yet: nothing listens on the bootstrap port until a broker is started
  there (connections refused, as while a broker boots).
- Kafka gone for a while: the broker advertises a TCP proxy that we cut: the proxy stops
  listening and resets every open connection, then listens again. That is what clients
  see when a broker process dies and is restarted (refused, reset), while the broker
  keeps its data; the embedded broker keeps data only in memory, so restarting it would
  lose everything, and SIGSTOP would model a hung broker rather than a gone one.

Every expected value is worked out by hand below from the README's definitions.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from stream.devstack import DevStack, StackEndpoints, free_port, redis_server_command
from stream.devstack import redis_reachable as redis_answers
from stream.domain.attribution import MODELS
from stream.worker_process import WorkerProcess, label_set
from tests.integration.conftest import Deployment, encode, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

RETRY_MAX = 2.0  # LTVCAC_RETRY_MAX_SECONDS of every worker here
TIMESTAMP = re.compile(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})")
Message = tuple[str, str, bytes]


# -- events, with the values they lead to worked out by hand ------------------------------


def purchase(customer: str, order: str, at: str, amount: str, **extra: Any) -> Message:
    body = {
        "type": "purchase",
        "event_id": f"e-{order}",
        "occurred_at": at,
        "schema_version": 1,
        "customer_id": customer,
        "order_id": order,
        "amount": amount,
        "currency": "USD",
        **extra,
    }
    return ("purchases", customer, encode(body))


def refund(customer: str, order: str, at: str, amount: str) -> Message:
    body = {
        "type": "refund",
        "event_id": f"r-{order}-{amount}",
        "occurred_at": at,
        "schema_version": 1,
        "customer_id": customer,
        "order_id": order,
        "amount": amount,
        "currency": "USD",
    }
    return ("purchases", customer, encode(body))


def customer_hash(
    revenue: str, profit: str, orders: int, refunds: int, first: str, last: str
) -> dict[str, str]:
    """A direct customer (no visitor, so no touches): all of it attributed to ``direct``."""
    return {
        "revenue": revenue,
        "gross_profit": profit,
        "orders": str(orders),
        "refunds": str(refunds),
        "first_order_at": first,
        "last_order_at": last,
        "acquisition_channel": "direct",
        "attribution": '{"direct": 1.0}',
        "attribution_models": json.dumps(
            {model: {"direct": 1.0} for model in MODELS}, sort_keys=True
        ),
        "referred_by": "",
        "referred_customers": "0",
    }


# -- helpers ---------------------------------------------------------------------------------


def deployment(kafka: str, redis_url: str, tmp_path: Path) -> tuple[Deployment, Path]:
    env = {"LTVCAC_RETRY_MAX_SECONDS": str(RETRY_MAX)}
    deployed = Deployment(StackEndpoints(kafka, redis_url), tmp_path, extra_env=env)
    return deployed, tmp_path / "worker.log"


def log_lines(path: Path) -> list[str]:
    try:
        return path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return []


def matching(lines: list[str], pattern: str) -> list[re.Match[str]]:
    found = (re.search(pattern, line) for line in lines)
    return [match for match in found if match is not None]


def logged_at(line: str) -> float:
    stamp = TIMESTAMP.search(line)
    assert stamp is not None, f"no timestamp in {line!r}"
    return dt.datetime.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()


def assert_backoff(retries: list[re.Match[str]]) -> None:
    """Retry lines name attempts 1, 2, 3, ... with the documented growing, capped waits,
    and each next attempt came at least that long after the line announcing the wait."""
    attempts = [int(match["attempt"]) for match in retries]
    delays = [float(match["retry_in"]) for match in retries]
    assert attempts == list(range(1, len(retries) + 1))
    # the documented waits: 0.5 s after the first failure, doubling, at most RETRY_MAX
    assert delays == [min(0.5 * 2**n, RETRY_MAX) for n in range(len(retries))]
    times = [logged_at(match.string) for match in retries]
    for index, delay in enumerate(delays[:-1]):
        gap = times[index + 1] - times[index]
        assert gap >= delay - 0.05, f"retried after {gap:.2f}s, announced {delay}s"


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used (``/proc/<pid>/stat``)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def applied_purchases(deployed: Deployment) -> float:
    events = deployed.gauges("ltvcac_events_total")
    return events.get(label_set(topic="purchases", outcome="applied"), 0.0)


def direct_figures(deployed: Deployment) -> tuple[float | None, float | None]:
    """(customers acquired, historical LTV) of the direct channel, lifetime."""
    customers = deployed.gauges("ltvcac_new_customers")
    ltv = deployed.gauges("ltvcac_lifetime_value")
    return (
        customers.get(label_set(channel="direct", window="lifetime", model="last_touch")),
        ltv.get(label_set(channel="direct", model="last_touch", method="historical")),
    )


async def sigterm_exit_status(worker: WorkerProcess, timeout: float = 20.0) -> int | None:
    """SIGTERM the worker; its exit status if it ended by itself within ``timeout``
    seconds, else None (``worker.stop()`` then kills it)."""
    process: subprocess.Popen[bytes] | None = worker._process  # the child WorkerProcess runs
    assert process is not None
    os.killpg(process.pid, signal.SIGTERM)
    try:
        return await asyncio.to_thread(process.wait, timeout)
    except subprocess.TimeoutExpired:
        return None


class RedisServer:
    """A redis-server of our own on a fixed port, to stop and start again."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._workdir = workdir
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._workdir.mkdir(parents=True, exist_ok=True)
        with (self._workdir / "redis.log").open("ab") as log:
            self._process = subprocess.Popen(
                redis_server_command(self.port, self._workdir),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 20
        while not redis_answers(self.url, timeout=0.25):
            assert self._process.poll() is None, "redis-server exited"
            assert time.monotonic() < deadline, "redis-server did not answer"
            time.sleep(0.05)  # poll interval while waiting for it to answer

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


class CuttableProxy:
    """A TCP proxy in its own thread. ``cut()`` stops listening (new connections are
    refused) and resets every open connection; ``restore()`` listens again."""

    def __init__(self, port: int, target_port: int) -> None:
        self.port = port
        self._target_port = target_port
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()
        self._cut = True

    def _call(self, make: Callable[[], Awaitable[None]]) -> None:
        asyncio.run_coroutine_threadsafe(make(), self._loop).result(10)

    def start(self) -> None:
        self._thread.start()
        self.restore()

    def restore(self) -> None:
        self._call(self._listen)

    def cut(self) -> None:
        self._call(self._drop_everything)

    def close(self) -> None:
        self.cut()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _listen(self) -> None:
        if self._server is not None:
            return
        self._cut = False
        self._server = await asyncio.start_server(
            self._handle, "127.0.0.1", self.port, reuse_address=True
        )

    async def _drop_everything(self) -> None:
        self._cut = True
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._open):
            _reset(writer)
        self._open.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._target_port)
        except OSError:
            _reset(writer)
            return
        if self._cut:
            _reset(writer)
            _reset(up_writer)
            return
        self._open |= {writer, up_writer}
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            self._open -= {writer, up_writer}


def _reset(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):  # linger 0: close with a reset, not a FIN
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
    writer.transport.abort()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()


@pytest.fixture(scope="module")
def proxied_broker() -> Iterator[tuple[CuttableProxy, StackEndpoints]]:
    """A broker that tells clients to connect through a proxy we can cut."""
    broker_port, proxy_port = free_port(), free_port()
    proxy = CuttableProxy(proxy_port, broker_port)
    proxy.start()
    redis_url = os.environ.get("LTVCAC_REDIS_URL") or os.environ.get("REDIS_URL")
    try:
        with DevStack(
            redis_url=redis_url, kafka_port=broker_port, kafka_advertised_port=proxy_port
        ) as endpoints:
            yield proxy, endpoints
    finally:
        proxy.close()


# -- Redis ----------------------------------------------------------------------------------


async def test_redis_down_stream_goes_on_and_an_empty_redis_gets_everything_back(
    stack: StackEndpoints, tmp_path: Path
) -> None:
    redis_server = RedisServer(tmp_path / "redis")
    await asyncio.to_thread(redis_server.start)
    deployed, log_path = deployment(stack.kafka_bootstrap, redis_server.url, tmp_path)
    try:
        await asyncio.to_thread(deployed.worker.start)
        # c1: 100.00 - cost 40.00 = 60.00; c2: 50.00 x margin 0.5 = 25.00;
        # c3: 20.00 x default margin 0.30 = 6.00
        await deployed.publish(
            [
                purchase("c1", "o1", "2026-03-01T10:00:00Z", "100.00", cost_of_goods="40.00"),
                purchase("c2", "o2", "2026-03-01T11:00:00Z", "50.00", margin="0.5"),
                purchase("c3", "o3", "2026-03-01T12:00:00Z", "20.00"),
            ]
        )
        c3 = customer_hash("20.00", "6.00", 1, 0, "2026-03-01T12:00:00Z", "2026-03-01T12:00:00Z")
        await wait_until(
            lambda: deployed.redis_hash("customer:c3") == c3, what="c3 projected to Redis"
        )

        await asyncio.to_thread(redis_server.stop)
        # c1 buys o4 30.00 - cost 10.00 = 20.00 -> revenue 130.00, profit 80.00;
        # c2 gets 10.00 of o2's 50.00 back: 20% of its 25.00 profit -> 40.00 and 20.00;
        # c4: 10.00 x margin 0.2 = 2.00. Direct: 4 customers, (80 + 20 + 6 + 2) / 4 = 27.
        await deployed.publish(
            [
                purchase("c1", "o4", "2026-03-02T09:00:00Z", "30.00", cost_of_goods="10.00"),
                refund("c2", "o2", "2026-03-02T11:00:00Z", "10.00"),
                purchase("c4", "o5", "2026-03-02T10:00:00Z", "10.00", margin="0.2"),
            ]
        )
        await wait_until(
            lambda: direct_figures(deployed) == (4.0, 27.0) and applied_purchases(deployed) == 6,
            what="the stream to go on while Redis is down",
        )

        failures = r"redis projection failed, retrying pending=\d+ attempt=(?P<attempt>\d+) "
        failures += r"retry_in=(?P<retry_in>[\d.]+)s error=\S"
        await wait_until(
            lambda: len(matching(log_lines(log_path), failures)) >= 4,
            what="four failed Redis writes in the worker log",
        )
        retries = matching(log_lines(log_path), failures)
        assert_backoff(retries)
        errors = deployed.worker.samples()[("ltvcac_projection_errors_total", frozenset())]
        assert errors >= len(retries)
        assert direct_figures(deployed) == (4.0, 27.0)  # Redis is still down

        await asyncio.to_thread(redis_server.start)  # same port, empty
        expected = {
            "c1": customer_hash(
                "130.00", "80.00", 2, 0, "2026-03-01T10:00:00Z", "2026-03-02T09:00:00Z"
            ),
            "c2": customer_hash(
                "40.00", "20.00", 1, 1, "2026-03-01T11:00:00Z", "2026-03-01T11:00:00Z"
            ),
            "c3": c3,  # unchanged during the outage: only a full rewrite brings it back
            "c4": customer_hash(
                "10.00", "2.00", 1, 0, "2026-03-02T10:00:00Z", "2026-03-02T10:00:00Z"
            ),
        }

        def everything_back() -> bool:
            direct = deployed.redis_hash("channel:direct")
            return (
                all(deployed.redis_hash(f"customer:{c}") == h for c, h in expected.items())
                and float(direct.get("new_customers:lifetime:last_touch", "nan")) == 4.0
                and float(direct.get("ltv:last_touch:historical", "nan")) == 27.0
            )

        await wait_until(everything_back, what="every customer back in the restarted Redis")
        assert deployed.redis.smembers(deployed.redis_prefix + "channels") == {"all", "direct"}
        lines = log_lines(log_path)
        assert matching(lines, r"redis projection recovered attempts=\d+ down_for=[\d.]+s")
        assert matching(lines, r"redis projection keys missing .* rewriting every customer")
        assert deployed.worker.samples()[("ltvcac_projection_errors_total", frozenset())] >= 4
    finally:
        await asyncio.to_thread(deployed.cleanup)
        await asyncio.to_thread(redis_server.stop)


# -- Kafka ----------------------------------------------------------------------------------

KAFKA_RETRY = (
    r"kafka not reachable, retrying bootstrap=\S+ attempt=(?P<attempt>\d+) "
    r"retry_in=(?P<retry_in>[\d.]+)s error=\S"
)
KAFKA_OUTAGE = (
    r"kafka unreachable, retrying bootstrap=\S+ attempt=(?P<attempt>\d+) "
    r"retry_in=(?P<retry_in>[\d.]+)s client_errors_held=\d+ error=\S"
)


async def test_worker_waits_for_a_broker_that_is_not_up_yet(
    stack: StackEndpoints, tmp_path: Path
) -> None:
    port = free_port()  # nothing listens here until the broker starts
    deployed, log_path = deployment(f"127.0.0.1:{port}", stack.redis_url, tmp_path)
    starting = asyncio.create_task(asyncio.to_thread(deployed.worker.start, 120.0))
    broker: DevStack | None = None
    try:
        await wait_until(
            lambda: len(matching(log_lines(log_path), KAFKA_RETRY)) >= 2,
            what="the worker to report that Kafka is not reachable",
        )
        pid = deployed.worker.pid
        cpu_before, began = cpu_seconds(pid), time.monotonic()
        await wait_until(
            lambda: len(matching(log_lines(log_path), KAFKA_RETRY)) >= 6,
            what="six attempts to reach Kafka",
        )
        cpu_used, waited = cpu_seconds(pid) - cpu_before, time.monotonic() - began
        assert not starting.done() and alive(pid), "the worker gave up"
        # waiting, not spinning: a busy loop would use about one CPU second per second
        assert cpu_used < 0.25 * waited, f"{cpu_used:.2f}s CPU in {waited:.2f}s of waiting"
        lines = log_lines(log_path)
        retries = matching(lines, KAFKA_RETRY)
        assert_backoff(retries)
        # one line per attempt: the client's own error for each attempt is not repeated
        assert not matching(lines, r"Unable connect to")

        broker = DevStack(redis_url=stack.redis_url, kafka_port=port)
        await asyncio.to_thread(broker.start)
        await starting  # /metrics answers: the worker came up
        assert matching(log_lines(log_path), r"kafka reachable bootstrap=\S+ attempts=\d+")

        # 40.00 - cost 10.00 = 30.00 and 25.00 x margin 0.4 = 10.00: LTV (30 + 10) / 2 = 20
        await deployed.publish(
            [
                purchase("k1", "o1", "2026-03-01T10:00:00Z", "40.00", cost_of_goods="10.00"),
                purchase("k2", "o2", "2026-03-01T11:00:00Z", "25.00", margin="0.4"),
            ]
        )
        await wait_until(
            lambda: direct_figures(deployed) == (2.0, 20.0), what="the events to be processed"
        )
    finally:
        if not starting.done():
            deployed.worker.kill()
        with contextlib.suppress(Exception):
            await starting
        await asyncio.to_thread(deployed.cleanup)
        if broker is not None:
            await asyncio.to_thread(broker.stop)


async def test_broker_gone_for_a_while_nothing_lost_nothing_twice(
    proxied_broker: tuple[CuttableProxy, StackEndpoints], tmp_path: Path
) -> None:
    proxy, endpoints = proxied_broker
    deployed, log_path = deployment(endpoints.kafka_bootstrap, endpoints.redis_url, tmp_path)
    shop = AIOKafkaProducer(bootstrap_servers=endpoints.kafka_bootstrap)
    try:
        await asyncio.to_thread(deployed.worker.start)
        # 40.00 - cost 10.00 = 30.00; 25.00 x margin 0.4 = 10.00
        await deployed.publish(
            [
                purchase("k1", "o1", "2026-03-01T10:00:00Z", "40.00", cost_of_goods="10.00"),
                purchase("k2", "o2", "2026-03-01T11:00:00Z", "25.00", margin="0.4"),
            ]
        )
        await wait_until(lambda: direct_figures(deployed) == (2.0, 20.0), what="first events")
        await shop.start()  # a shop's producer, connected before the outage

        pid = deployed.worker.pid
        cpu_before, began = cpu_seconds(pid), time.monotonic()
        lines_before = len(log_lines(log_path))
        proxy.cut()
        # sent during the outage: the producer holds them until the broker is back.
        # k1 buys o3 60.00 - cost 30.00 = 30.00 -> revenue 100.00, profit 60.00;
        # k3: 10.00 x default margin 0.30 = 3.00
        during = [
            purchase("k1", "o3", "2026-03-02T09:00:00Z", "60.00", cost_of_goods="30.00"),
            purchase("k3", "o4", "2026-03-02T10:00:00Z", "10.00"),
        ]
        deliveries = [
            asyncio.create_task(
                shop.send_and_wait(deployed.prefix + topic, value=value, key=key.encode())
            )
            for topic, key, value in during
        ]
        await wait_until(
            lambda: len(matching(log_lines(log_path)[lines_before:], KAFKA_OUTAGE)) >= 5,
            what="five probes of the unreachable broker",
        )
        cpu_used, waited = cpu_seconds(pid) - cpu_before, time.monotonic() - began
        assert alive(pid), "the worker died during the outage"
        assert cpu_used < 0.25 * waited, f"{cpu_used:.2f}s CPU in {waited:.2f}s of outage"
        outage_lines = log_lines(log_path)[lines_before:]
        probes = matching(outage_lines, KAFKA_OUTAGE)
        assert_backoff(probes)
        # a few lines per probe, not the client's error for each of its 100 ms retries
        assert len(outage_lines) <= 3 * len(probes) + 10, "\n".join(outage_lines[-20:])

        proxy.restore()
        await asyncio.wait_for(asyncio.gather(*deliveries), 60)
        await wait_until(
            lambda: bool(matching(log_lines(log_path), r"kafka recovered bootstrap=\S+ down_for=")),
            what="the worker to notice that Kafka is back",
        )
        # after: k2 gets 5.00 of o2's 25.00 back: 20% of its 10.00 profit -> 20.00 and 8.00;
        # k4: 50.00 - cost 45.00 = 5.00. Direct: 4 customers, (60 + 8 + 3 + 5) / 4 = 19.
        await deployed.publish(
            [
                refund("k2", "o2", "2026-03-02T11:00:00Z", "5.00"),
                purchase("k4", "o5", "2026-03-02T12:00:00Z", "50.00", cost_of_goods="45.00"),
            ]
        )
        await wait_until(
            lambda: direct_figures(deployed) == (4.0, 19.0) and applied_purchases(deployed) == 6,
            what="every event applied once",
            found=lambda: (
                f"direct (customers, LTV) {direct_figures(deployed)}, "
                f"{applied_purchases(deployed)} purchases applied; worker log ends:\n"
                + "\n".join(log_lines(log_path)[-30:])
            ),
        )
        expected = {
            "k1": customer_hash(
                "100.00", "60.00", 2, 0, "2026-03-01T10:00:00Z", "2026-03-02T09:00:00Z"
            ),
            "k2": customer_hash(
                "20.00", "8.00", 1, 1, "2026-03-01T11:00:00Z", "2026-03-01T11:00:00Z"
            ),
            "k3": customer_hash(
                "10.00", "3.00", 1, 0, "2026-03-02T10:00:00Z", "2026-03-02T10:00:00Z"
            ),
            "k4": customer_hash(
                "50.00", "5.00", 1, 0, "2026-03-02T12:00:00Z", "2026-03-02T12:00:00Z"
            ),
        }
        await wait_until(
            lambda: all(deployed.redis_hash(f"customer:{c}") == h for c, h in expected.items()),
            what="every customer's exact values in Redis",
        )
        assert direct_figures(deployed) == (4.0, 19.0)
        assert applied_purchases(deployed) == 6
    finally:
        proxy.restore()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(shop.stop(), 10)
        await asyncio.to_thread(deployed.cleanup)


async def test_sigterm_ends_the_worker_cleanly_while_kafka_is_unreachable(
    stack: StackEndpoints,
    proxied_broker: tuple[CuttableProxy, StackEndpoints],
    tmp_path: Path,
) -> None:
    # never reached: the worker is still waiting for its first connection
    waiting, waiting_log = deployment(
        f"127.0.0.1:{free_port()}", stack.redis_url, tmp_path / "never"
    )
    starting = asyncio.create_task(asyncio.to_thread(waiting.worker.start, 60.0))
    try:
        await wait_until(
            lambda: bool(matching(log_lines(waiting_log), KAFKA_RETRY)),
            what="the worker waiting for Kafka",
        )
        status = await sigterm_exit_status(waiting.worker)
    finally:
        with contextlib.suppress(RuntimeError):  # start() reports that the worker exited
            await starting
        waiting.worker.stop()
    assert status == 0, waiting.worker.log_tail()
    assert matching(
        log_lines(waiting_log), r"worker stopped before kafka was reached signal=SIGTERM"
    )

    # gone while running: the consumer is retrying fetches when the signal comes
    proxy, endpoints = proxied_broker
    running, running_log = deployment(
        endpoints.kafka_bootstrap, endpoints.redis_url, tmp_path / "running"
    )
    try:
        await asyncio.to_thread(running.worker.start)
        await running.publish([purchase("s1", "o1", "2026-03-01T10:00:00Z", "10.00", margin="0.5")])
        await wait_until(lambda: direct_figures(running) == (1.0, 5.0), what="the worker running")
        proxy.cut()
        await wait_until(
            lambda: bool(matching(log_lines(running_log), KAFKA_OUTAGE)),
            what="the worker noticing the outage",
        )
        status = await sigterm_exit_status(running.worker)
        assert status == 0, "\n".join(log_lines(running_log)[-40:])  # not killed: it ended
    finally:
        proxy.restore()
        await asyncio.to_thread(running.cleanup)
