"""Crash test: SIGKILL the worker at random moments while it works through a long
history with producer duplicates; every number must still equal the ground truth.

``LTVCAC_CRASH_RUNS`` lists the runs as ``seed:events`` pairs, comma separated
(default ``1:100000,2:30000``); each seed draws its own history, duplicates and kills.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import heapq
import itertools
import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stream.demo import demo_events
from stream.devstack import StackEndpoints
from tests.integration.conftest import Deployment, encode, wait_until
from tests.integration.truth import wait_for_truth
from tests.reference import DAY, expected_gauges, ground_truth

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1200)]

RUNS = [
    tuple(int(part) for part in run.split(":"))
    for run in os.environ.get("LTVCAC_CRASH_RUNS", "1:100000,2:30000").split(",")
]
KILLS = 4
SHOPS = 8
DUPLICATE_RATE = 0.05
START = dt.datetime(2022, 1, 1, tzinfo=dt.UTC)
SPAN_DAYS = 3 * 365
# The history reaches the worker as a backlog, read topic by topic and, after each kill,
# from each partition's last commit: as for any backfill, a lateness covering the whole
# history, so that no event is too late whatever the order the worker reads them in.
LATENESS = {"LTVCAC_ALLOWED_LATENESS_SECONDS": str(SPAN_DAYS * DAY)}
Message = tuple[str, str, dict[str, Any]]


def busy_shop(seed: int) -> Iterator[Message]:
    """Several demo shops' traffic merged in time: 100,000 events span months, not years."""
    shops = [demo_events(seed * 100 + shop, START, SPAN_DAYS) for shop in range(SHOPS)]
    return heapq.merge(*shops, key=lambda message: message[2]["occurred_at"])


def with_duplicates(events: list[Message], rng: random.Random) -> list[Message]:
    """About 5% of the events sent a second time a little later, as a retrying producer does."""
    result: list[Message] = []
    retries: list[tuple[int, Message]] = []
    for index, event in enumerate(events):
        result.append(event)
        if rng.random() < DUPLICATE_RATE:
            retries.append((index + rng.randint(0, 20), event))
        result.extend(retry for due, retry in retries if due == index)
        retries = [(due, retry) for due, retry in retries if due != index]
    return result + [retry for _, retry in retries]


async def kill_at_random_moments(
    deployment: Deployment, rng: random.Random, total: int, clean: bool = False
) -> None:
    """SIGKILL the worker ``KILLS`` times (SIGTERM, a clean stop, with ``clean``), each
    after a random share of the ``total`` source events handled since its last start;
    one SIGKILL comes right after a start, during table recovery."""
    recovery_kill = -1 if clean else rng.randrange(KILLS)
    for kill in range(KILLS):
        if kill != recovery_kill:
            threshold = rng.randint(total // 12, total // 6)
            await wait_until(
                lambda: deployment.sources_handled() >= threshold,  # noqa: B023
                timeout=300,
                what=f"{threshold} source events handled before kill {kill + 1}",
            )
        await asyncio.to_thread(deployment.worker.stop if clean else deployment.worker.kill)
        await asyncio.to_thread(deployment.worker.start, 120)


async def interrupted_history_gives_the_truth(
    stack: StackEndpoints, tmp_path: Path, seed: int, events: int, clean: bool
) -> None:
    """A busy shop's history with duplicates, read while the worker is killed (or
    stopped) at random moments: every gauge and customer must equal the ground truth."""
    rng = random.Random(seed)
    history = list(itertools.islice(busy_shop(seed), events))
    messages = with_duplicates(history, rng)
    truth = ground_truth(event for _, _, event in history)
    expected = expected_gauges(truth, SPAN_DAYS * DAY)
    assert truth.watermark > (START.timestamp() + 30 * DAY)  # a long history, not a stub

    deployment = Deployment(stack, tmp_path, extra_env=LATENESS)
    await asyncio.to_thread(deployment.worker.start)
    try:
        await deployment.publish([(topic, key, encode(event)) for topic, key, event in messages])
        await kill_at_random_moments(deployment, rng, len(messages), clean)
        await wait_for_truth(deployment, expected, truth, timeout=600)
    finally:
        await asyncio.to_thread(deployment.cleanup)


@pytest.mark.parametrize(("seed", "events"), RUNS)
async def test_random_sigkills_change_no_number(
    stack: StackEndpoints, tmp_path: Path, seed: int, events: int
) -> None:
    await interrupted_history_gives_the_truth(stack, tmp_path, seed, events, clean=False)


async def test_random_clean_stops_change_no_number(stack: StackEndpoints, tmp_path: Path) -> None:
    """A clean stop (SIGTERM) while a backlog is read: Faust waits for the batch in hand
    before its last commit, and the restart reads on from there."""
    await interrupted_history_gives_the_truth(stack, tmp_path, 3, 30_000, clean=True)


SPEND_CHANNEL = "search"
SPEND_EVENTS = 4_000
SPEND_EVERY = dt.timedelta(minutes=20)  # 4,000 of them span 55 days


def spend_history(rng: random.Random) -> list[Message]:
    """One channel's spend in time order, one partition: read in order, none is late."""
    history = []
    for number in range(SPEND_EVENTS):
        at = (START + number * SPEND_EVERY).isoformat().replace("+00:00", "Z")
        amount = f"{rng.randint(100, 50_000) / 100:.2f}"
        body = {
            "type": "ad_spend",
            "event_id": f"spend-{number}",
            "occurred_at": at,
            "schema_version": 1,
            "channel": SPEND_CHANNEL,
            "amount": amount,
            "currency": "USD",
            "category": "media",
            "period_start": at[:10],
            "period_end": at[:10],
        }
        history.append(("ad-spend", SPEND_CHANNEL, body))
    return history


async def test_sigkills_count_spend_once_after_its_id_is_forgotten(
    stack: StackEndpoints, tmp_path: Path
) -> None:
    """With a lateness of a day, a channel forgets the ids of its spend as the history
    goes by (``stream.domain.spend``). After each kill the worker reads again from its
    last commit: spend it still remembers is redelivered, spend it forgot is too late,
    and its batch's deltas to ``all`` and ``paid`` reached the broker before the id was
    forgotten. Spend, in the channel and in both totals, is counted exactly once."""
    rng = random.Random(3)
    history = spend_history(rng)
    messages = with_duplicates(history, rng)
    total = sum(float(body["amount"]) for _, _, body in history)
    deployment = Deployment(
        stack, tmp_path, extra_env={"LTVCAC_ALLOWED_LATENESS_SECONDS": str(DAY)}
    )
    await asyncio.to_thread(deployment.worker.start)
    try:
        await deployment.publish([(topic, key, encode(event)) for topic, key, event in messages])
        await kill_at_random_moments(deployment, rng, len(messages))

        expected = {channel: total for channel in (SPEND_CHANNEL, "all", "paid")}
        await wait_until(
            lambda: (
                deployment.sources_handled() >= len(messages)
                and deployment.lifetime_spend() == pytest.approx(expected, rel=1e-12)
            ),
            what=f"lifetime spend of {total:.2f} in {sorted(expected)}",
            found=lambda: str(deployment.lifetime_spend()),
        )
        reasons = {  # of the last start only, as every counter
            dict(labels)["reason"]
            for labels, value in deployment.gauges("ltvcac_dead_letters_total").items()
            if value
        }
        assert reasons <= {"too_late"}  # forgotten spend read again, nothing else
    finally:
        await asyncio.to_thread(deployment.cleanup)
