"""Backfill equals live: one history published in order, shuffled within five days, and
replayed from a file with ``ltvcac replay`` ends in identical figures, equal to the
ground truth.

Two of the three reach the worker as a backlog, which it reads topic by topic (the few
ad-spend events of the whole history may come first), so, as the README says of any
backfill, the workers run with a lateness covering the whole history: no event is too
late, whatever the order the worker reads them in."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from stream.demo import demo_events
from stream.devstack import StackEndpoints
from tests.integration.conftest import Deployment, encode
from tests.integration.events import wire
from tests.integration.truth import wait_for_truth
from tests.reference import expected_gauges, ground_truth, seconds

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

DAYS = 150
LATENESS_SECONDS = DAYS * 86_400
SHUFFLE_SECONDS = 5 * 86_400
CHUNK = 100  # messages: about a day and a half of traffic, far less than the shuffle
Message = tuple[str, str, dict[str, Any]]


def shuffled_within(events: list[Message], lateness: int, rng: random.Random) -> list[Message]:
    """Each event moved up to ``lateness`` later; one customer's purchases and refunds keep
    their order (one key, one partition: a shop's producer sends them in order)."""
    moved = sorted(events, key=lambda m: seconds(m[2]["occurred_at"]) + rng.uniform(0, lateness))
    in_order: dict[str, list[Message]] = {}
    for message in events:
        if message[0] == "purchases":
            in_order.setdefault(message[1], []).append(message)
    result = []
    for message in moved:
        result.append(in_order[message[1]].pop(0) if message[0] == "purchases" else message)
    return result


def replay(deployment: Deployment, path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stream.cli", "replay", str(path)],
        env={**os.environ, **deployment.env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


async def test_in_order_shuffled_and_replayed_histories_agree(
    stack: StackEndpoints, tmp_path: Path
) -> None:
    events = list(demo_events(21, dt.datetime(2025, 1, 1, tzinfo=dt.UTC), DAYS))
    shuffled = shuffled_within(events, SHUFFLE_SECONDS, random.Random(21))
    assert shuffled != events and sorted(map(str, shuffled)) == sorted(map(str, events))
    truth = ground_truth(event for _, _, event in events)
    expected = expected_gauges(truth, lateness_seconds=LATENESS_SECONDS)
    history = tmp_path / "history.jsonl"
    history.write_text("".join(json.dumps(event) + "\n" for _, _, event in events))

    lateness = {"LTVCAC_ALLOWED_LATENESS_SECONDS": str(LATENESS_SECONDS)}
    live, late, replayed = (
        Deployment(stack, tmp_path / name, extra_env=lateness)
        for name in ("live", "shuffled", "replayed")
    )
    deployments = (live, late, replayed)
    try:
        await asyncio.gather(*(asyncio.to_thread(d.worker.start) for d in deployments))
        await live.publish([(t, k, encode(e)) for t, k, e in events])
        await late.publish_paced(wire(shuffled), CHUNK)
        result = await asyncio.to_thread(replay, replayed, history)
        assert result.returncode == 0, result.stderr
        for deployment in deployments:
            await wait_for_truth(deployment, expected, truth, timeout=240)
    finally:
        for deployment in deployments:
            await asyncio.to_thread(deployment.cleanup)
