"""Several workers share the partitions: two start, one is killed and the survivor takes
over, then a third joins. Every figure equals the ground truth of `tests.reference` (which
shares no code with the service), each channel's series are exported by exactly one live
worker, and Redis holds every customer exactly.

Ownership is checked on every poll, not only at the end: each worker is scraped twice in
turn, and a series counts for a worker only when both of its scrapes show it, so it was
exported for the whole time between them. Those intervals overlap pairwise, so a series
counted for two workers was exported by both at the same moment.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from pathlib import Path

import pytest
from aiokafka.partitioner import murmur2

from stream.devstack import StackEndpoints, free_port
from stream.worker_process import Sample, WorkerProcess, channel_of
from tests.integration.conftest import LATENESS_SECONDS, Deployment, wait_until
from tests.integration.events import Message, click, purchase, referral, refund, spend, wire
from tests.integration.truth import (
    GAUGES,
    cohort_differences,
    customer_differences,
    sample_differences,
)
from tests.reference import Truth, expected_gauges, ground_truth

pytestmark = pytest.mark.integration

PARTITIONS = 4


def partition_of(key: str) -> int:
    """The partition a Kafka client's default (murmur2) partitioner gives ``key``."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % PARTITIONS


# Channel records land on every partition: all, paid and search 0, social and referral 1,
# podcast and direct 2, email 3 (asserted below), and customers on every partition too.
FIRST = [  # 1-2 March
    click("k1", "2026-03-01T08:00:00Z", "v1", "search", "2.00"),
    click("k2", "2026-03-01T08:10:00Z", "v2", "social", "1.00"),
    click("k3", "2026-03-01T08:20:00Z", "v3", "email", "0.50"),
    click("k4", "2026-03-01T08:30:00Z", "v4", "podcast", "3.00"),
    click("k5", "2026-03-01T08:40:00Z", "v5", "search", "1.50"),
    click("k6", "2026-03-01T08:50:00Z", "v6", "social", "0.40"),
    spend("s1", "2026-03-01T00:00:00Z", "search", "30.00", "media", "2026-02-24", "2026-03-02"),
    spend("s2", "2026-03-01T00:00:00Z", "email", "10.00", "agency", "2026-03-01", "2026-03-02"),
    referral("r1", "2026-03-01T09:00:00Z", "c1", "v7", "5.00"),
    purchase(
        "p1", "2026-03-01T10:00:00Z", "c1", "o1", "100.00", cost_of_goods="40.00", visitor_id="v1"
    ),
    purchase("p2", "2026-03-01T10:10:00Z", "c2", "o2", "50.00", margin="0.5", visitor_id="v2"),
    purchase("p3", "2026-03-01T10:20:00Z", "c3", "o3", "20.00", visitor_id="v3"),
    purchase(
        "p4", "2026-03-01T10:30:00Z", "c4", "o4", "80.00", cost_of_goods="50.00", visitor_id="v4"
    ),
    purchase("p5", "2026-03-01T10:40:00Z", "c5", "o5", "60.00", visitor_id="v5"),
    purchase("p6", "2026-03-01T10:50:00Z", "c6", "o6", "30.00", margin="0.4", visitor_id="v6"),
    purchase(
        "p7", "2026-03-01T11:00:00Z", "c7", "o7", "40.00", cost_of_goods="10.00", visitor_id="v7"
    ),
    purchase("p8", "2026-03-01T11:10:00Z", "c8", "o8", "25.00"),
    purchase("p9", "2026-03-02T09:00:00Z", "c9", "o9", "10.00"),
    purchase("p14", "2026-03-02T10:00:00Z", "c14", "o14", "12.00"),
    purchase("p15", "2026-03-02T11:00:00Z", "c15", "o15", "18.00"),
    purchase("p17", "2026-03-02T12:00:00Z", "c17", "o17", "16.00", margin="0.25"),
]
SECOND = [  # 10 April, today 3 April (a week of lateness): the 30-day windows lose March
    click("k10", "2026-04-09T12:00:00Z", "v10", "search", "2.50"),
    click("k11", "2026-04-09T13:00:00Z", "v11", "email", "0.60"),
    spend("s3", "2026-04-10T08:00:00Z", "social", "12.00", "media", "2026-04-01", "2026-04-10"),
    purchase(
        "p10",
        "2026-04-10T09:00:00Z",
        "c10",
        "o10",
        "45.00",
        cost_of_goods="15.00",
        visitor_id="v10",
    ),
    purchase("p11", "2026-04-10T09:30:00Z", "c11", "o11", "35.00", visitor_id="v11"),
    purchase("p1b", "2026-04-10T10:00:00Z", "c1", "o1b", "70.00", margin="0.5"),
    refund("f1", "2026-04-10T10:30:00Z", "c4", "o4", "20.00"),
    purchase("p12", "2026-04-10T11:00:00Z", "c12", "o12", "22.00"),
]
THIRD = [  # 20 June, today 13 June: the 90-day windows lose March
    click("k13", "2026-06-19T12:00:00Z", "v13", "podcast", "4.00"),
    referral("r2", "2026-06-19T10:00:00Z", "c2", "v16", "2.00"),
    spend("s4", "2026-06-20T08:00:00Z", "podcast", "20.00", "tools", "2026-06-01", "2026-06-20"),
    purchase(
        "p13",
        "2026-06-20T09:00:00Z",
        "c13",
        "o13",
        "90.00",
        cost_of_goods="30.00",
        visitor_id="v13",
    ),
    purchase("p2b", "2026-06-20T09:30:00Z", "c2", "o2b", "40.00"),
    refund("f2", "2026-06-20T10:00:00Z", "c10", "o10", "15.00"),
    purchase("p16", "2026-06-20T11:00:00Z", "c16", "o16", "28.00", visitor_id="v16"),
]

# 1 December: only partition 0 (all and search) gets anything, so the worker that does
# not hold it must learn the new watermark from the other to move its windows on.
FOURTH = [
    spend("s5", "2026-12-01T08:00:00Z", "search", "9.00", "media", "2026-12-01", "2026-12-01"),
]


def truth_of(*batches: list[Message]) -> Truth:
    return ground_truth(event for batch in batches for _, _, event in batch)


# -- what the workers show -------------------------------------------------------------


def owned_series(workers: Sequence[WorkerProcess]) -> list[dict[Sample, float]]:
    """Per worker, the channel series it exported throughout the two rounds of scrapes;
    fails at once when a series was exported by two workers at the same time."""
    first = [worker.channel_samples() for worker in workers]
    second = [worker.channel_samples() for worker in workers]
    stable = [{k: v for k, v in b.items() if k in a} for a, b in zip(first, second, strict=True)]
    for i, mine in enumerate(stable):
        for j in range(i + 1, len(stable)):
            both = sorted(str(key) for key in mine.keys() & stable[j].keys())
            assert not both, f"exported by workers {i} and {j} at once: {both[:5]}"
    return stable


def channels_of(series: dict[Sample, float]) -> set[str]:
    return {channel for key in series if (channel := channel_of(key)) is not None}


def differences(workers: Sequence[WorkerProcess], truth: Truth) -> list[str]:
    """Why the live workers together do not show exactly the ground truth, each channel
    on one worker only (empty when they do)."""
    expected = expected_gauges(truth, LATENESS_SECONDS)
    owned = owned_series(workers)
    problems = []
    channel_workers: dict[str, list[int]] = {}
    for index, series in enumerate(owned):
        for channel in channels_of(series):
            channel_workers.setdefault(channel, []).append(index)
    problems += [f"{c} on workers {w}" for c, w in channel_workers.items() if len(w) > 1]
    actual = {key: value for series in owned for key, value in series.items() if key[0] in GAUGES}
    problems += sample_differences(actual, expected)
    return sorted(problems)


async def settle(workers: Sequence[WorkerProcess], truth: Truth, what: str) -> None:
    try:
        await wait_until(lambda: not differences(workers, truth), timeout=90, what=what)
    except pytest.fail.Exception:
        problems = differences(workers, truth)
        pytest.fail(f"{what}: {len(problems)} differences:\n" + "\n".join(problems[:30]))


def channel_differences(deployment: Deployment, truth: Truth) -> list[str]:
    """Redis channel hashes against the ground truth (the series that are always defined)."""
    problems = []
    for (name, labels), value in expected_gauges(truth, LATENESS_SECONDS).items():
        label = dict(labels)
        if name == "ltvcac_spend":
            field = f"spend:{label['window']}"
        elif name == "ltvcac_new_customers":
            field = f"new_customers:{label['window']}:{label['model']}"
        else:
            continue
        stored = deployment.redis_hash(f"channel:{label['channel']}").get(field)
        if stored is None or not math.isclose(float(stored), value, abs_tol=1e-9):
            problems.append(f"channel:{label['channel']} {field}={stored} != {value}")
    return problems


# -- the test --------------------------------------------------------------------------


async def test_workers_share_take_over_and_rebalance_with_exact_figures(
    stack: StackEndpoints, tmp_path: Path
) -> None:
    channels = {"all", "paid", "search", "social", "referral", "podcast", "direct", "email"}
    assert {partition_of(channel) for channel in channels} == set(range(PARTITIONS))
    assert channels == set(truth_of(FIRST).buckets)

    deployment = Deployment(stack, tmp_path)  # topics, consumer group and Redis keys
    env = {**deployment.env, "LTVCAC_TOPIC_PARTITIONS": str(PARTITIONS)}
    a, b, c = (
        WorkerProcess({**env, "LTVCAC_WEB_PORT": str(free_port())}, tmp_path / f"worker-{n}.log")
        for n in "abc"
    )
    try:
        await asyncio.gather(asyncio.to_thread(a.start), asyncio.to_thread(b.start))
        await deployment.publish(wire(FIRST))
        first = truth_of(FIRST)
        await settle([a, b], first, "two workers to show the first batch")
        held_by_a = channels_of(owned_series([a, b])[0])
        assert held_by_a, "the first worker holds no channel: no partitions were shared"
        await wait_until(
            lambda: not customer_differences(deployment, first),
            what="the first batch's customers in Redis",
        )

        await asyncio.to_thread(a.kill)
        # As if the killed worker's last Redis writes were lost: forget its customers. Only
        # the survivor's rewrite of the partitions it takes over can bring back those that
        # no later event touches.
        lost_partitions = {partition_of(channel) for channel in held_by_a}
        lost = [cid for cid in first.customers if partition_of(cid) in lost_partitions]
        later = {key for _, key, event in SECOND + THIRD if event["type"] in ("purchase", "refund")}
        assert set(lost) - later, "no customer of the killed worker stays untouched later"
        deployment.redis.delete(*[deployment.redis_prefix + f"customer:{cid}" for cid in lost])
        # the survivor takes over only after the session timeout, long after the delete
        assert not channels_of(b.channel_samples()) & held_by_a

        await deployment.publish(wire(SECOND))
        second = truth_of(FIRST, SECOND)
        await settle([b], second, "the survivor alone to show both batches")

        await asyncio.to_thread(c.start)
        await settle([b, c], second, "the survivor and the newcomer to share the channels")
        await wait_until(
            lambda: all(channels_of(series) for series in owned_series([b, c])),
            what="the newcomer to take over channels",
        )
        await settle([b, c], second, "the rebalance to settle")

        await deployment.publish(wire(THIRD))
        third = truth_of(FIRST, SECOND, THIRD)
        await settle([b, c], third, "the third batch on the two live workers")
        await deployment.publish(wire(FOURTH))
        final = truth_of(FIRST, SECOND, THIRD, FOURTH)
        await settle([b, c], final, "the new event-time day on both workers")
        assert a.running is False and b.running and c.running

        def redis_differences() -> list[str]:
            return (
                customer_differences(deployment, final)
                + channel_differences(deployment, final)
                + cohort_differences(deployment, final, LATENESS_SECONDS)
            )

        try:
            await wait_until(
                lambda: not redis_differences(), what="every customer, channel and cohort in Redis"
            )
        except pytest.fail.Exception:
            pytest.fail("Redis differs from the ground truth:\n" + "\n".join(redis_differences()))
        assert customer_differences(deployment, final) == []
        assert channel_differences(deployment, final) == []
        assert cohort_differences(deployment, final, LATENESS_SECONDS) == []
        assert differences([b, c], final) == []
    finally:
        for worker in (a, b, c):
            await asyncio.to_thread(worker.stop)
        await asyncio.to_thread(deployment.cleanup)
