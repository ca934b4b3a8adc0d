"""Allowed lateness on a real worker: after a far newer event, source events older than
the watermark less the lateness are dead letters ``too_late``; those inside it count in
their day.

Lateness one day, windows 7d and lifetime. c1 buys on 1 March, then c2 on 10 March at
12:00: the watermark. Published after that, 9 March 11:00 (a purchase), 11:59:59 (a
click) and an ad spend of 1 March are too late; a click at 12:30 and a purchase at 13:00
on 9 March are not, nor is an identify of 1 March (it carries no money). Today is 9 March
(10 March 12:00 less a day): the 7-day window holds 3 to 10 March.

- direct: c1 (1 March, 100.00 at margin 0.5: profit 50.00), c2 (10 March, 40.00: 20.00).
- search, and paid (every channel but direct): click 2.00 (media) by v4; c4 via v4 buys
  30.00 (profit 15.00) on 9 March. One touch: every attribution model agrees.
- all: spend 2.00; 3 customers, 2 of them in the 7-day window; profit 85.00.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from stream.devstack import StackEndpoints
from stream.domain.attribution import MODELS
from stream.worker_process import Sample, label_set
from tests.integration.conftest import Deployment, wait_until
from tests.integration.events import click, event, purchase, spend, wire
from tests.integration.truth import sample_differences

pytestmark = pytest.mark.integration

LATENESS = {
    "LTVCAC_ALLOWED_LATENESS_SECONDS": "86400",
    "LTVCAC_WINDOWS": '["7d","lifetime"]',
    "LTVCAC_LTV_METHODS": '["historical"]',
}
FIRST = purchase("p1", "2026-03-01T10:00:00Z", "c1", "o1", "100.00", margin="0.5")
NEWER = purchase("p2", "2026-03-10T12:00:00Z", "c2", "o2", "40.00", margin="0.5")
TOO_LATE = [
    purchase("p3", "2026-03-09T11:00:00Z", "c3", "o3", "60.00"),
    click("k3", "2026-03-09T11:59:59Z", "v3", "social", "5.00"),
    spend("s1", "2026-03-01T00:00:00Z", "search", "70.00", "agency", "2026-03-01", "2026-03-07"),
]
INSIDE = [
    click("k4", "2026-03-09T12:30:00Z", "v4", "search", "2.00"),
    purchase("p4", "2026-03-09T13:00:00Z", "c4", "o4", "30.00", margin="0.5", visitor_id="v4"),
    (
        "identities",
        "v9",
        event("identify", "i9", "2026-03-01T00:00:00Z", visitor_id="v9", customer_id="c9"),
    ),
]
CHECKED = (
    "ltvcac_spend",
    "ltvcac_new_customers",
    "ltvcac_customer_acquisition_cost",
    "ltvcac_lifetime_value",
    "ltvcac_ltv_cac_ratio",
)


def expected() -> dict[Sample, float]:
    gauges: dict[Sample, float] = {}

    def put(name: str, value: float, **labels: str) -> None:
        gauges[(name, label_set(**labels))] = value

    # channel: spend (all of it media), new customers (7d, lifetime), historical LTV
    for channel, spent, new, ltv in [
        ("direct", 0.0, (1.0, 2.0), 35.0),
        ("search", 2.0, (1.0, 1.0), 15.0),
        ("paid", 2.0, (1.0, 1.0), 15.0),
        ("all", 2.0, (2.0, 3.0), 85.0 / 3),
    ]:
        for window in ("7d", "lifetime"):
            put("ltvcac_spend", spent, channel=channel, window=window)
        for model in MODELS:
            put("ltvcac_lifetime_value", ltv, channel=channel, model=model, method="historical")
            for window, customers in zip(("7d", "lifetime"), new, strict=True):
                cac = spent / customers
                labels = {"channel": channel, "window": window, "model": model}
                put("ltvcac_new_customers", customers, **labels)
                for cost in ("media", "fully_loaded"):
                    put("ltvcac_customer_acquisition_cost", cac, cost=cost, **labels)
                if cac:  # direct has no spend: no ratio
                    put("ltvcac_ltv_cac_ratio", ltv / cac, method="historical", **labels)
    return gauges


def differences(deployment: Deployment) -> list[str]:
    actual = {key: v for key, v in deployment.worker.samples().items() if key[0] in CHECKED}
    return sample_differences(actual, expected())


def counted(deployment: Deployment, name: str, **labels: str) -> float | None:
    return deployment.gauges(name).get(label_set(**labels))


async def test_events_later_than_the_lateness_are_dead_letters_and_the_rest_counts(
    stack: StackEndpoints, tmp_path: Path
) -> None:
    deployment = Deployment(stack, tmp_path, extra_env=LATENESS)
    try:
        await asyncio.to_thread(deployment.worker.start)
        direct = label_set(channel="direct", window="lifetime", model="last_touch")
        await deployment.publish(wire([FIRST]))
        await wait_until(
            lambda: deployment.gauges("ltvcac_new_customers").get(direct) == 1.0,
            what="the first purchase",
        )
        await deployment.publish(wire([NEWER]))
        await wait_until(
            lambda: deployment.gauges("ltvcac_new_customers").get(direct) == 2.0,
            what="the far newer purchase to move the watermark",
        )

        await deployment.publish(wire(TOO_LATE + INSIDE))
        await wait_until(
            lambda: (
                counted(deployment, "ltvcac_dead_letters_total", reason="too_late") == 3.0
                and not differences(deployment)
                and deployment.redis_hash("customer:c4").get("acquisition_channel") == "search"
            ),
            what="three dead letters and the hand-computed gauges",
        )
        assert differences(deployment) == []

        letters = await deployment.read_topic("dead-letters", 3)
        by_topic = {letter["topic"]: letter for letter in (json.loads(r.value) for r in letters)}
        assert sorted(by_topic) == ["ad-clicks", "ad-spend", "purchases"]
        assert {letter["reason"] for letter in by_topic.values()} == {"too_late"}
        assert by_topic["purchases"]["detail"] == (
            "occurred_at 2026-03-09T11:00:00Z is more than the allowed lateness of 86400s"
            " before the watermark 2026-03-10T12:00:00Z"
        )
        assert by_topic["ad-clicks"]["detail"].startswith("occurred_at 2026-03-09T11:59:59Z ")
        assert json.loads(by_topic["ad-spend"]["value_text"])["event_id"] == "s1"

        for topic in ("purchases", "ad-clicks", "ad-spend"):
            assert (
                counted(deployment, "ltvcac_events_total", topic=topic, outcome="rejected") == 1.0
            )
        assert (
            counted(deployment, "ltvcac_events_total", topic="identities", outcome="applied") == 1.0
        )
        assert deployment.redis_hash("customer:c3") == {}
        assert deployment.redis_hash("customer:c4")["first_order_at"] == "2026-03-09T13:00:00Z"
    finally:
        await asyncio.to_thread(deployment.cleanup)
