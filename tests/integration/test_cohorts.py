"""Acquisition cohorts reach Redis and the payback gauge carries its basis, with values
worked out by hand.

Every visitor touches one channel, so every attribution model gives the same figures;
the last-touch (primary) ones are checked. The newest event is 2 April 2026 12:00 UTC:
the current month is April, and January, February and March are complete.

- search: clicks 1.00 each by v1, v2, v3 and an agency fee of 171.00 -> spend 174.00.
  c1 (v1) buys o1 on 10 Jan (100.00, cost 40.00 -> 60.00) and o2 on 15 Feb (50.00,
  margin 0.5 -> 25.00), and gets 20.00 of o1 refunded on 3 Feb (-12.00, in February);
  c2 (v2) buys o3 on 20 Jan (40.00, cost 10.00 -> 30.00) and o4 on 5 Mar (30.00, cost
  10.00 -> 20.00); c3 (v3) buys o5 on 10 Feb (80.00, cost 20.00 -> 60.00).
  January cohort, 2 customers: 90.00 in January, 13.00 in February, 20.00 in March:
  45.00, 51.50, 61.50 per customer cumulated. February cohort, 1 customer: 60.00, 60.00.
  Curve: 150/3 = 50.00, 163/3 = 54.33 (both cohorts), 123/2 = 61.50 (January only).
  CAC 174.00 / 3 = 58.00 is crossed in month 2: 2 + (58 - 163/3) / (61.5 - 163/3)
  = 2 + 22/43 months, basis cohort.
- social: click 2.00 by v5 and 100.00 of media spend; c5 (v5) buys o6 on 16 Jan (50.00,
  cost 30.00 -> 20.00). CAC 102.00, above the curve (20.00 every month): basis rate,
  102 / (20.00 / (77/365 years observed) / 12) months.
- email: click 5.00 by v6; c6 (v6) buys o7 on 1 Apr (100.00 at the default 30% ->
  30.00). April is not complete: no curve, basis rate, 5 / (30.00 / (30/365) / 12).
- display: a click by v9 (never buys) on 2 Apr 12:00, the newest event.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from stream.devstack import StackEndpoints
from tests.integration.conftest import Deployment, wait_until
from tests.integration.events import click, purchase, refund, spend, wire

pytestmark = pytest.mark.integration
LAST = "last_touch"

HISTORY = wire(
    [
        click("k1", "2026-01-09T09:00:00Z", "v1", "search", "1.00"),
        click("k2", "2026-01-19T09:00:00Z", "v2", "search", "1.00"),
        click("k3", "2026-02-09T09:00:00Z", "v3", "search", "1.00"),
        spend(
            "s1", "2026-01-05T00:00:00Z", "search", "171.00", "agency", "2026-01-05", "2026-01-13"
        ),
        purchase(
            "p1",
            "2026-01-10T10:00:00Z",
            "c1",
            "o1",
            "100.00",
            cost_of_goods="40.00",
            visitor_id="v1",
        ),
        purchase(
            "p3",
            "2026-01-20T10:00:00Z",
            "c2",
            "o3",
            "40.00",
            cost_of_goods="10.00",
            visitor_id="v2",
        ),
        refund("f1", "2026-02-03T10:00:00Z", "c1", "o1", "20.00"),
        purchase(
            "p5",
            "2026-02-10T10:00:00Z",
            "c3",
            "o5",
            "80.00",
            cost_of_goods="20.00",
            visitor_id="v3",
        ),
        purchase("p2", "2026-02-15T10:00:00Z", "c1", "o2", "50.00", margin="0.5"),
        purchase("p4", "2026-03-05T10:00:00Z", "c2", "o4", "30.00", cost_of_goods="10.00"),
        click("k5", "2026-01-15T09:00:00Z", "v5", "social", "2.00"),
        spend(
            "s2", "2026-01-15T00:00:00Z", "social", "100.00", "media", "2026-01-15", "2026-01-15"
        ),
        purchase(
            "p6",
            "2026-01-16T10:00:00Z",
            "c5",
            "o6",
            "50.00",
            cost_of_goods="30.00",
            visitor_id="v5",
        ),
        click("k6", "2026-04-01T09:00:00Z", "v6", "email", "5.00"),
        purchase("p7", "2026-04-01T10:00:00Z", "c6", "o7", "100.00", visitor_id="v6"),
        click("k9", "2026-04-02T12:00:00Z", "v9", "display", "0.50"),
    ]
)
SEARCH_PAYBACK = 2 + 22 / 43
SOCIAL_PAYBACK = 102 / (20 / (77 / 365) / 12)
EMAIL_PAYBACK = 5 / (30 / (30 / 365) / 12)
SEARCH_JANUARY = {
    "customers": 2.0,
    "complete_months": 3.0,
    "gp_per_customer:0": 45.0,
    "gp_per_customer:1": 51.5,
    "gp_per_customer:2": 61.5,
    "gp_per_customer_to_date": 61.5,
}
SEARCH_FEBRUARY = {
    "customers": 1.0,
    "complete_months": 2.0,
    "gp_per_customer:0": 60.0,
    "gp_per_customer:1": 60.0,
    "gp_per_customer_to_date": 60.0,
}


def paybacks(deployment: Deployment, channel: str, window: str) -> dict[str, float]:
    """The last-touch payback series of a channel and window: basis -> months."""
    return {
        dict(labels)["basis"]: value
        for labels, value in deployment.gauges("ltvcac_payback_months").items()
        if {("channel", channel), ("window", window), ("model", LAST)} <= labels
    }


def cohort(deployment: Deployment, channel: str, month: str) -> dict[str, float]:
    return {k: float(v) for k, v in deployment.redis_hash(f"cohort:{channel}:{month}").items()}


def cohort_months(deployment: Deployment, channel: str) -> set[str]:
    return deployment.redis.smembers(f"{deployment.redis_prefix}cohorts:{channel}")  # type: ignore[return-value]


def close(actual: dict[str, float], expected: dict[str, float]) -> bool:
    return actual.keys() == expected.keys() and all(
        actual[key] == pytest.approx(value) for key, value in expected.items()
    )


@pytest.fixture
async def deployment(stack: StackEndpoints, tmp_path: Path) -> AsyncIterator[Deployment]:
    """A worker whose "today" is the day of the newest event (an hour of lateness), fed
    the history in event-time order so that nothing is too late."""
    deployed = Deployment(stack, tmp_path, extra_env={"LTVCAC_ALLOWED_LATENESS_SECONDS": "3600"})
    await asyncio.to_thread(deployed.worker.start)
    try:
        yield deployed
    finally:
        await asyncio.to_thread(deployed.cleanup)


def in_time_order(
    messages: list[tuple[str, str | None, bytes]],
) -> list[tuple[str, str | None, bytes]]:
    return sorted(messages, key=lambda message: json.loads(message[2])["occurred_at"])


async def test_cohorts_in_redis_and_payback_from_the_cohort_curve_or_the_rate(
    deployment: Deployment,
) -> None:
    await deployment.publish_paced(in_time_order(HISTORY))

    def settled() -> bool:
        return (
            close(paybacks(deployment, "search", "lifetime"), {"cohort": SEARCH_PAYBACK})
            and close(paybacks(deployment, "social", "lifetime"), {"rate": SOCIAL_PAYBACK})
            and close(paybacks(deployment, "email", "lifetime"), {"rate": EMAIL_PAYBACK})
            and close(cohort(deployment, "search", "2026-01"), SEARCH_JANUARY)
            and cohort_months(deployment, "email") == {"2026-04"}
        )

    await wait_until(settled, what="the history to reach the gauges and Redis")

    # exactly one payback series per channel, window and model, labelled with its basis
    assert paybacks(deployment, "search", "90d") == {"cohort": pytest.approx(SEARCH_PAYBACK)}
    assert paybacks(deployment, "social", "90d") == {"rate": pytest.approx(SOCIAL_PAYBACK)}
    assert paybacks(deployment, "search", "30d") == {}  # no customer acquired in 30 days
    flags = deployment.gauges("ltvcac_payback_months_defined")
    search = {("channel", "search"), ("model", LAST)}
    assert {
        (dict(labels)["window"], dict(labels)["basis"], dict(labels)["reason"]): value
        for labels, value in flags.items()
        if search <= labels
    } == {
        ("30d", "rate", "no_customers"): 0.0,
        ("90d", "cohort", "ok"): 1.0,
        ("lifetime", "cohort", "ok"): 1.0,
    }

    # Redis: the cohorts of the primary model, complete months only on the curve
    assert close(cohort(deployment, "search", "2026-01"), SEARCH_JANUARY)
    assert close(cohort(deployment, "search", "2026-02"), SEARCH_FEBRUARY)
    assert cohort_months(deployment, "search") == {"2026-01", "2026-02"}
    assert close(
        cohort(deployment, "social", "2026-01"),
        {
            "customers": 1.0,
            "complete_months": 3.0,
            **{f"gp_per_customer:{k}": 20.0 for k in range(3)},
            "gp_per_customer_to_date": 20.0,
        },
    )
    # acquired this month: no complete month, the month so far shown apart
    assert close(
        cohort(deployment, "email", "2026-04"),
        {"customers": 1.0, "complete_months": 0.0, "gp_per_customer_to_date": 30.0},
    )
    assert close(
        cohort(deployment, "all", "2026-01"),
        {
            "customers": 3.0,  # c1, c2 and c5
            "complete_months": 3.0,
            "gp_per_customer:0": 110 / 3,
            "gp_per_customer:1": 123 / 3,
            "gp_per_customer:2": 143 / 3,
            "gp_per_customer_to_date": 143 / 3,
        },
    )
    channel = deployment.redis_hash("channel:search")
    assert float(channel["payback_months:lifetime:last_touch"]) == pytest.approx(SEARCH_PAYBACK)
    assert channel["payback_basis:lifetime:last_touch"] == "cohort"
    assert "payback_basis:30d:last_touch" not in channel
    assert deployment.redis_hash("channel:social")["payback_basis:90d:last_touch"] == "rate"

    # c7 joins search in April: a new cohort, and a CAC of 174.00 / 4 = 43.50 reached in
    # month 0 of the curve (50.00): 43.5 / 50 months
    await deployment.publish(
        wire(
            [
                click("k10", "2026-04-02T12:10:00Z", "v7", "search", "0.00"),
                purchase("p8", "2026-04-02T12:20:00Z", "c7", "o8", "10.00", visitor_id="v7"),
            ]
        )
    )
    await wait_until(
        lambda: (
            cohort_months(deployment, "search") == {"2026-01", "2026-02", "2026-04"}
            and close(paybacks(deployment, "search", "lifetime"), {"cohort": 43.5 / 50})
        ),
        what="c7 in the April cohort of search",
    )
    assert close(
        cohort(deployment, "search", "2026-04"),
        {"customers": 1.0, "complete_months": 0.0, "gp_per_customer_to_date": 3.0},
    )

    # an email click between search's and the purchase makes email c7's last touch: the
    # April cohort of search is gone from Redis, and search's payback is back
    await deployment.publish(wire([click("k11", "2026-04-02T12:15:00Z", "v7", "email", "0.00")]))
    await wait_until(
        lambda: (
            cohort_months(deployment, "search") == {"2026-01", "2026-02"}
            and deployment.redis_hash("cohort:search:2026-04") == {}
            and close(paybacks(deployment, "search", "lifetime"), {"cohort": SEARCH_PAYBACK})
            and cohort(deployment, "email", "2026-04").get("customers") == 2.0
        ),
        what="c7 to move from the search cohort to the email cohort",
    )
    assert close(
        cohort(deployment, "email", "2026-04"),
        {"customers": 2.0, "complete_months": 0.0, "gp_per_customer_to_date": 16.5},
    )
    assert close(cohort(deployment, "search", "2026-01"), SEARCH_JANUARY)
