"""Scaling: the same pre-published workload read by one and by two ``ltvcac worker``
processes of one app id, each in a fresh consumer group.

Two workers share the partitions of every topic (and so the tables' changelogs); their
``/metrics`` are summed. On a small machine the broker, Redis and the workers share the
same cores, so the speed-up says how much of one worker's time is its own work.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import Section, StageResult
from bench.pipeline import PipelineOptions, run_pipeline
from bench.report import drain_lines
from stream.devstack import StackEndpoints

log = logging.getLogger("bench.scaling")

TITLE = "Scaling: one and two ltvcac workers of one app id"
COLUMNS = [
    "workers",
    "events",
    "seconds",
    "events/s",
    "speed-up",
    "source events per worker",
    "rebalances per worker",
    "end to end s",
]


def measure(
    fresh_copy: Callable[[], str],
    expected: dict[str, int],
    options: PipelineOptions,
    one_worker: tuple[StageResult, dict[str, Any]] | None,
    endpoints: StackEndpoints,
    args: argparse.Namespace,
    workdir: Path,
) -> list[Section]:
    """One and two workers, each run on its own copy of the workload (``fresh_copy``
    publishes one and returns its topic prefix; ``expected`` events per topic).
    ``one_worker``: the throughput part's run of one worker on a copy, if it ran;
    otherwise one is run here."""
    reused = one_worker is not None
    if one_worker is None:
        log.info("scaling: one worker")
        one_worker = run_pipeline(endpoints, fresh_copy(), expected, workdir, options, workers=1)
    log.info("scaling: two workers")
    two_workers = run_pipeline(endpoints, fresh_copy(), expected, workdir, options, workers=2)
    return [section(one_worker, two_workers, reused)]


def section(
    one: tuple[StageResult, dict[str, Any]],
    two: tuple[StageResult, dict[str, Any]],
    reused: bool,
) -> Section:
    (single, single_drain), (pair, pair_drain) = one, two
    speed_up = pair.rate / single.rate if single.rate > 0 else float("nan")
    notes = [
        "events/s over all source events, counted from ltvcac_events_total (summed over the"
        " workers) between the first scrape that saw an event and the one that saw them all",
        "speed-up = events/s of two workers / events/s of one; each run starts a fresh app"
        " id (consumer group, changelogs) on its own pre-published copy of the workload",
        "the one-worker row is the throughput part's run"
        if reused
        else "the one-worker row was run for this section",
        f"two workers: ready {pair.details['worker_ready_after']:.2f}s, first event counted "
        f"{pair.first_after:.2f}s after start",
        *(
            f"two workers, {line}" if not line.startswith(" ") else line
            for line in drain_lines(pair_drain, pair.events)
        ),
    ]
    return Section(
        title=TITLE,
        columns=COLUMNS,
        rows=[_row(single, single_drain, 1.0), _row(pair, pair_drain, speed_up)],
        notes=notes,
        data={
            "speed_up": round(speed_up, 3),
            "one_worker_reused_from_throughput": reused,
            "runs": [_data(single, single_drain), _data(pair, pair_drain)],
        },
    )


def _row(stage: StageResult, drain: dict[str, Any], speed_up: float) -> list[str]:
    return [
        str(stage.details["workers"]),
        f"{stage.events:,}",
        f"{stage.seconds:.3f}",
        f"{stage.rate:,.0f}",
        f"{speed_up:.2f}x",
        " + ".join(f"{n:,}" for n in stage.details["per_worker_source_events"]),
        " + ".join(str(n) for n in stage.details["rebalances_per_worker"]),
        f"{drain['end_to_end_seconds']:.2f}",
    ]


def _data(stage: StageResult, drain: dict[str, Any]) -> dict[str, Any]:
    return {
        "workers": stage.details["workers"],
        "events": stage.events,
        "seconds": round(stage.seconds, 4),
        "events_per_second": round(stage.rate, 1),
        "counted_within_seconds": stage.counted,
        "first_event_after_seconds": round(stage.first_after or 0.0, 3),
        **{k: v for k, v in stage.details.items() if k != "workers"},
        "drain": drain,
    }
