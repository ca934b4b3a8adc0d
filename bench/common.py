"""Shared pieces of the benchmark: results, errors and polling with a deadline."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import uvloop

from stream.config import Settings

T = TypeVar("T")

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = Path(__file__).resolve().parent / "results"


class BenchError(Exception):
    """A benchmark stage failed or did not finish in time; the message says which and why."""


@dataclass
class StageResult:
    """Throughput of one stage over the same ``events`` messages."""

    name: str
    events: int
    seconds: float  # first to last event of the stage
    first_after: float | None = None  # stage start to its first event (connect, join, ...)
    # Events seen within ``seconds`` when fewer than ``events`` (a sampled counter).
    counted: int | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        within = self.events if self.counted is None else self.counted
        return within / self.seconds if self.seconds > 0 else float("inf")


@dataclass
class Section:
    """One further measurement of the report (latency, state, recovery, scaling): a
    table of rows, the lines that explain it, its raw figures for the JSON report, and
    the plots (PNG paths relative to the results directory) that show it."""

    title: str
    columns: list[str]
    rows: list[list[str]]
    notes: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    plots: list[str] = field(default_factory=list)


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process so far (Linux ``/proc``), None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_for(
    probe: Callable[[], T | None],
    timeout: float,
    what: str,
    interval: float = 0.1,
    context: Callable[[], str] | None = None,
) -> tuple[T, float]:
    """Poll ``probe`` until it returns a value that is not None; returns it and when.

    Raises BenchError naming ``what`` (plus ``context()``, e.g. a log tail) on timeout.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        now = time.monotonic()
        if value is not None:
            return value, now
        if now >= deadline:
            extra = f"\n{context()}" if context is not None else ""
            raise BenchError(f"timed out after {timeout:.0f}s waiting for {what}{extra}")
        time.sleep(min(interval, max(0.0, deadline - now)))


def worker_event_loop() -> str:
    """The event loop the bench's ``ltvcac worker`` processes run on: ``LTVCAC_EVENT_LOOP``
    (they inherit it), else the setting's default. The baselines run on the same loop, so
    the ratios compare the work done, not the loops."""
    default = Settings.model_fields["event_loop"].default
    return os.environ.get("LTVCAC_EVENT_LOOP", default)


def running_loop_name() -> str:
    """``module.Class`` of the running event loop, as the worker logs its own."""
    loop = asyncio.get_running_loop()
    return f"{type(loop).__module__}.{type(loop).__qualname__}"


def run_async(
    work: Coroutine[Any, Any, T], timeout: float, what: str, event_loop: str = "asyncio"
) -> T:
    """Run ``work`` in a fresh event loop (``uvloop`` or ``asyncio``); BenchError naming
    ``what`` if it takes too long."""

    async def bounded() -> T:
        try:
            return await asyncio.wait_for(work, timeout)
        except TimeoutError:
            raise BenchError(f"timed out after {timeout:.0f}s: {what}") from None

    loop_factory = uvloop.new_event_loop if event_loop == "uvloop" else None
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(bounded())
