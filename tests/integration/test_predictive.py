"""Predictive CLV on the embedded stack: the worker fits BG/NBD and Gamma-Gamma on a timer,
publishes each fit, and the gauges and Redis follow a refit without a restart.

The customer's summary (repeat purchase days, recency, age) is worked out here from the
events the test sent, independently of the service; the closed forms it is scored with
are checked against the literature and simulations in ``tests/unit/test_clv.py``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import heapq
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from stream.demo import demo_events
from stream.devstack import StackEndpoints
from stream.domain import clv
from stream.worker_process import label_set
from tests.integration.conftest import Deployment, encode, wait_until
from tests.reference import DAY, seconds

pytestmark = pytest.mark.integration

START = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
LAST = "last_touch"
HORIZON_DAYS = 3 * 365.25
CHUNK = 600  # messages: about five days of the shops' traffic, inside the week of lateness


@pytest.fixture
async def deployment(stack: StackEndpoints, tmp_path: Path) -> AsyncIterator[Deployment]:
    deployed = Deployment(
        stack,
        tmp_path,
        extra_env={
            "LTVCAC_PREDICTIVE_FIT_INTERVAL_SECONDS": "3",
            "LTVCAC_PREDICTIVE_MIN_CUSTOMERS": "10",
        },
    )
    await asyncio.to_thread(deployed.worker.start)
    try:
        yield deployed
    finally:
        await asyncio.to_thread(deployed.cleanup)


def history(days: int) -> list[tuple[str, str, dict[str, Any]]]:
    """Two demo shops' traffic merged in time: several hundred customers in four months."""
    shops = [demo_events(seed, START, days) for seed in (11, 12)]
    return list(heapq.merge(*shops, key=lambda message: message[2]["occurred_at"]))


def purchase_days(events: list[tuple[str, str, dict[str, Any]]], customer: str) -> list[int]:
    return sorted(
        {
            seconds(event["occurred_at"]) // DAY
            for _, _, event in events
            if event["type"] == "purchase" and event["customer_id"] == customer
        }
    )


@dataclass(frozen=True)
class Published:
    """The fit in use, as /metrics shows it."""

    version: int
    bg_nbd: clv.BgNbdParams
    today: int  # event-time day of the customers' ages


def fitted(deployment: Deployment) -> Published | None:
    samples = deployment.worker.samples()
    version = samples.get(("ltvcac_predictive_fit_version", frozenset()))
    if version is None:
        return None

    def parameter(name: str) -> float:
        return samples[("ltvcac_predictive_fit_parameter", label_set(fit="bg_nbd", parameter=name))]

    params = clv.BgNbdParams(parameter("r"), parameter("alpha"), parameter("a"), parameter("b"))
    day = samples[("ltvcac_predictive_fit_event_day_timestamp_seconds", frozenset())]
    return Published(int(version), params, int(day) // DAY)


async def scored(
    deployment: Deployment, customer: str, orders: int, today: int
) -> tuple[dict[str, str], Published]:
    """The customer's hash once it holds its ``orders`` scored with a fit made on ``today``,
    and that fit (read before and after Redis, so that no newer fit came between)."""
    found: dict[str, Any] = {}

    def consistent() -> bool:
        fit = fitted(deployment)
        if fit is None or fit.today != today:
            return False
        stored = deployment.redis_hash(f"customer:{customer}")
        if (stored.get("model_version"), stored.get("orders")) != (str(fit.version), str(orders)):
            return False
        found.update(stored=stored, fit=fit)
        return fitted(deployment) == fit

    await wait_until(consistent, timeout=120, what=f"{customer} scored with a fit of day {today}")
    return found["stored"], found["fit"]


def expected_scores(
    fit: Published, events: list[tuple[str, str, dict[str, Any]]], customer: str
) -> tuple[float, float]:
    """(expected purchases over the horizon, probability alive) of the customer, from its
    purchase days in ``events`` and the fit's day."""
    days = purchase_days(events, customer)
    x, t_x, age = len(days) - 1, days[-1] - days[0], fit.today - days[0]
    purchases = clv.expected_purchases(fit.bg_nbd, x, t_x, age, HORIZON_DAYS)
    return purchases, clv.probability_alive(fit.bg_nbd, x, t_x, age)


def today_after(events: list[tuple[str, str, dict[str, Any]]]) -> int:
    """The day of the newest event: customers' ages run to it."""
    return max(seconds(e["occurred_at"]) for _, _, e in events) // DAY


def orders_of(events: list[tuple[str, str, dict[str, Any]]], customer: str) -> int:
    return sum(1 for _, _, e in events if e["type"] == "purchase" and e["customer_id"] == customer)


async def test_a_refit_changes_the_gauges_and_redis_without_a_restart(
    deployment: Deployment,
) -> None:
    first = history(90)
    # in event-time order, a chunk at a time: read as a backlog, the clicks' newest
    # events would make older purchases too late
    await deployment.publish_paced([(t, k, encode(e)) for t, k, e in first], CHUNK)
    customer = next(
        e["customer_id"]
        for _, _, e in first
        if e["type"] == "purchase" and len(purchase_days(first, e["customer_id"])) >= 3
    )

    stored, fit = await scored(deployment, customer, orders_of(first, customer), today_after(first))
    purchases, alive = expected_scores(fit, first, customer)
    assert float(stored["expected_purchases"]) == pytest.approx(purchases, abs=1e-4)
    assert float(stored["probability_alive"]) == pytest.approx(alive, abs=1e-4)
    assert float(stored["predicted_clv"]) > 0

    def channel_ltv() -> float | None:
        labels = label_set(channel="all", model=LAST, method="predictive")
        return deployment.worker.samples().get(("ltvcac_lifetime_value", labels))

    await wait_until(lambda: channel_ltv() is not None, what="the predictive LTV of all")
    before = channel_ltv()
    samples = deployment.worker.samples()
    buyers = {e["customer_id"] for _, _, e in first if e["type"] == "purchase"}
    # one worker fits on every customer
    assert samples[("ltvcac_predictive_fit_customers", label_set(fit="bg_nbd"))] == len(buyers)
    assert samples[("ltvcac_predictive_fit_age_seconds", frozenset())] >= 0

    # two more months of the shops: the next fits see new purchases and older customers
    everything = history(150)
    more = everything[len(first) :]
    await deployment.publish_paced([(t, k, encode(e)) for t, k, e in more], CHUNK)
    stored_after, fit_after = await scored(
        deployment, customer, orders_of(everything, customer), today_after(everything)
    )
    assert fit_after.version > fit.version
    assert fit_after.bg_nbd != fit.bg_nbd
    purchases, alive = expected_scores(fit_after, everything, customer)
    assert float(stored_after["expected_purchases"]) == pytest.approx(purchases, abs=1e-4)
    assert float(stored_after["probability_alive"]) == pytest.approx(alive, abs=1e-4)
    assert stored_after["predicted_clv"] != stored["predicted_clv"]
    await wait_until(
        lambda: channel_ltv() not in (None, before), what="the predictive LTV of all to move"
    )
