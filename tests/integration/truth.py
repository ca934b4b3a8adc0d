"""Compare a deployment's gauges and Redis customers with the ground truth."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import pytest

from stream.metrics import REFERRAL_SERIES
from tests.integration.conftest import Deployment, wait_until
from tests.reference import Truth, expected_cohorts

GAUGES = (
    "ltvcac_spend",
    "ltvcac_spend_by_category",
    "ltvcac_new_customers",
    "ltvcac_customer_acquisition_cost",
    "ltvcac_payback_months",
    "ltvcac_lifetime_value",
    "ltvcac_ltv_cac_ratio",
    *REFERRAL_SERIES,
)


def gauge_differences(deployment: Deployment, expected: dict[Any, float]) -> list[str]:
    actual = {
        (name, labels): value
        for (name, labels), value in deployment.worker.samples().items()
        if name in GAUGES
    }
    return sample_differences(actual, expected)


def sample_differences(actual: dict[Any, float], expected: dict[Any, float]) -> list[str]:
    """Why ``actual`` samples are not exactly ``expected`` (empty when they are)."""
    problems = [f"missing {key}" for key in expected.keys() - actual.keys()]
    problems += [f"unexpected {key}={actual[key]}" for key in actual.keys() - expected.keys()]
    problems += [
        f"{key}: {actual[key]} != {value}"
        for key, value in expected.items()
        if key in actual and not math.isclose(actual[key], value, rel_tol=1e-9, abs_tol=1e-9)
    ]
    return sorted(problems)


def money(value: int) -> str:
    return f"{value / 100:.2f}"


def timestamp(seconds: int) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat().replace("+00:00", "Z")


def customer_differences(deployment: Deployment, truth: Truth) -> list[str]:
    pipe = deployment.redis.pipeline(transaction=False)
    ids = sorted(truth.customers)
    for customer_id in ids:
        pipe.hgetall(f"{deployment.redis_prefix}customer:{customer_id}")
    problems = []
    for customer_id, stored in zip(ids, pipe.execute(), strict=True):
        customer = truth.customers[customer_id]
        assert customer.first is not None
        expected = {
            "revenue": money(customer.revenue_cents),
            "gross_profit": money(customer.profit_cents),
            "orders": str(customer.orders),
            "refunds": str(customer.refunds),
            "acquisition_channel": customer.channel,
            "first_order_at": timestamp(customer.first[0]),
            "last_order_at": timestamp(customer.last_order_at),
            "referred_by": customer.referred_by or "",
            "referred_customers": str(len(truth.referrals.get(customer_id, ()))),
        }
        wrong = {k: (stored.get(k), v) for k, v in expected.items() if stored.get(k) != v}
        if wrong:
            problems.append(f"{customer_id}: {wrong}")
    return problems + referral_differences(deployment, truth)


def referral_differences(deployment: Deployment, truth: Truth) -> list[str]:
    """The customers each referrer referred, in Redis, against the truth."""
    pipe = deployment.redis.pipeline(transaction=False)
    referrers = sorted(truth.referrals)
    for referrer in referrers:
        pipe.smembers(f"{deployment.redis_prefix}referrals:{referrer}")
    return [
        f"referrals:{referrer}: {sorted(stored)} != {sorted(truth.referrals[referrer])}"
        for referrer, stored in zip(referrers, pipe.execute(), strict=True)
        if stored != truth.referrals[referrer]
    ]


def cohort_differences(deployment: Deployment, truth: Truth, lateness_seconds: int) -> list[str]:
    """Redis cohort hashes and sets of every channel against the ground truth, for a
    deployment with that lateness (which decides the current month)."""
    expected = expected_cohorts(truth, lateness_seconds)
    problems = []
    channels = expected.keys() | truth.buckets.keys()
    for channel in sorted(channels):
        months = expected.get(channel, {})
        key = f"{deployment.redis_prefix}cohorts:{channel}"
        stored_months = sorted(deployment.redis.smembers(key))  # type: ignore[arg-type]
        if stored_months != sorted(months):
            problems.append(f"cohorts:{channel} {stored_months} != {sorted(months)}")
        for name, fields in months.items():
            stored = deployment.redis_hash(f"cohort:{channel}:{name}")
            if stored.keys() != fields.keys() or not all(
                math.isclose(float(stored[k]), v, rel_tol=1e-9, abs_tol=1e-9)
                for k, v in fields.items()
            ):
                problems.append(f"cohort:{channel}:{name} {stored} != {fields}")
    return problems


async def wait_for_truth(
    deployment: Deployment, expected: dict[Any, float], truth: Truth, timeout: float
) -> None:
    """Wait until every gauge and every customer equal the truth; else list what differs."""
    try:
        await wait_until(
            lambda: (
                not gauge_differences(deployment, expected)
                and not customer_differences(deployment, truth)
            ),
            timeout=timeout,
            what="every gauge and every customer to equal the ground truth",
        )
    except pytest.fail.Exception:
        gauges = gauge_differences(deployment, expected)
        customers = customer_differences(deployment, truth)
        pytest.fail(
            f"{len(gauges)} gauge and {len(customers)} customer differences:\n"
            + "\n".join(gauges[:20] + customers[:20])
        )
