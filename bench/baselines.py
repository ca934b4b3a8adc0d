"""Baselines: the same source topics read by a raw aiokafka consumer and a bare Faust agent.

They bound what the full pipeline could reach on this machine: the raw consumer is
the client library alone, the bare agent adds Faust's stream machinery but no work.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer

from bench.common import REPO_ROOT, BenchError, StageResult, running_loop_name, wait_for

_EXIT_GRACE = 30.0  # seconds a finished bare worker gets to leave its group cleanly


async def consume_raw(bootstrap: str, topics: Sequence[str], events: int) -> StageResult:
    """Read ``events`` messages in all from the start of ``topics``; decode each JSON value.

    Unbounded: callers put a deadline on it (``bench.common.run_async``).
    """
    group = f"bench-raw-{uuid.uuid4().hex[:12]}"
    consumer = AIOKafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,  # read-only measurement; nothing resumes from it
    )
    began = time.monotonic()
    try:  # start() inside: a deadline may cancel it halfway through the group join
        await consumer.start()
        first, last = await _read(consumer, events)
    finally:
        await consumer.stop()
    return StageResult(
        "raw aiokafka (getmany + json.loads)",
        events,
        last - first,
        first_after=first - began,
        details={"group_id": group, "event_loop": running_loop_name()},
    )


async def _read(consumer: AIOKafkaConsumer, events: int) -> tuple[float, float]:
    """Monotonic times at which the first and the ``events``-th message were in hand."""
    seen = 0
    first: float | None = None
    while seen < events:
        batches = await consumer.getmany(timeout_ms=500)
        for records in batches.values():
            if first is None and records:
                first = time.monotonic()
            for record in records:
                json.loads(record.value)
            seen += len(records)
    assert first is not None
    return first, time.monotonic()


def run_bare_faust(
    bootstrap: str,
    topics: Sequence[str],
    partitions: int,
    events: int,
    workdir: Path,
    timeout: float,
    event_loop: str,
    session_timeout: float = 10.0,
) -> StageResult:
    """Run ``bench.bare_faust`` on ``topics`` in a child process, on ``event_loop``, until
    it has counted ``events`` messages in all."""
    app_id = f"bench-bare-{uuid.uuid4().hex[:12]}"
    result_path = workdir / f"{app_id}.json"
    log_path = workdir / "bare-faust.log"
    command = [
        *(sys.executable, "-m", "bench.bare_faust"),
        *("--bootstrap", bootstrap, "--partitions", str(partitions)),
        *(option for topic in topics for option in ("--topic", topic)),
        *("--events", str(events), "--app-id", app_id, "--result", str(result_path)),
        *("--session-timeout", str(session_timeout), "--event-loop", event_loop),
    ]
    began_wall = time.time()
    with log_path.open("ab") as log:
        # Own session: a terminal Ctrl-C reaches us only, and we stop the whole group.
        child = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        result = _await_result(child, result_path, log_path, timeout)
        _await_exit(child)
    finally:
        _stop(child)
    return StageResult(
        "bare Faust agent (count only)",
        int(result["events"]),
        float(result["seconds"]),
        first_after=float(result["first_at"]) - began_wall,
        details={
            "app_id": app_id,
            "exit_code": child.returncode,
            "event_loop": result["event_loop"],
        },
    )


def _await_result(
    child: subprocess.Popen[bytes], result_path: Path, log_path: Path, timeout: float
) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        if result_path.exists():
            loaded: dict[str, Any] = json.loads(result_path.read_text())
            return loaded
        if child.poll() is not None:
            raise BenchError(
                f"bare Faust worker exited with {child.returncode} before counting all "
                f"messages; log {log_path}:\n{_tail(log_path)}"
            )
        return None

    result, _ = wait_for(
        probe,
        timeout,
        "the bare Faust agent to count all messages",
        context=lambda: f"log {log_path}:\n{_tail(log_path)}",
    )
    return result


def _await_exit(child: subprocess.Popen[bytes]) -> None:
    # It stops itself after writing the result; a clean leave keeps the broker tidy.
    with contextlib.suppress(subprocess.TimeoutExpired):
        child.wait(_EXIT_GRACE)


def _stop(child: subprocess.Popen[bytes]) -> None:
    """SIGTERM the child's group, SIGKILL if it lingers; no-op once it has exited."""
    for signum, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, None)):
        if child.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signum)
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(grace)


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
