"""Referrals on the real broker and Redis, published out of order: the referral tree in
Redis and the referral gauges end at values worked out by hand (and at the reference's).

All on 1-2 March 2026 (every window holds everything); profits from cost of goods:
- a (20.00) and b (10.00) buy on 1 March without a visitor: direct.
- x1 (40.00) buys through v1, whom a referred: referred by a.
- x2 (30.00) buys through v2, referred by a at 11:00 and by b at 13:00; the purchase is
  published first, then a's referral, then b's: direct, then a, then b (the last touch).
- x3 (20.00) buys through v3: a search click at 15:00, a's referral at 16:00, published
  in reverse: referred by a (last touch); first touch credits search.
- x4 (30.00) buys through v4 after a social click: not referred.
- x5 (10.00) buys through v5: b's referral at 8:00, then an email click at 11:00 that is
  published last and takes the last touch from the referral: b's credit is retracted.

Last touch: x1, x2, x3 referred (3 of 7 customers) by a and b (2 referrers), viral
coefficient 1.5; LTV of referred (40 + 30 + 20) / 3 = 30.00, of the others (20 + 10 +
30 + 10) / 4 = 17.50. Linear credits referral with x1, x2, half of x3 and half of x5:
share 3/7, LTV (40 + 30 + 10 + 5) / 3 and (20 + 10 + 10 + 30 + 5) / 4.
"""

from __future__ import annotations

from typing import Any

import pytest

from stream.metrics import REFERRAL_SERIES
from stream.worker_process import label_set
from tests.integration.conftest import Deployment, wait_until
from tests.integration.events import Message, click, purchase, referral, wire
from tests.integration.truth import sample_differences
from tests.reference import expected_gauges, ground_truth

pytestmark = pytest.mark.integration

WINDOWS = ("30d", "90d", "lifetime")


def bought(event_id: str, at: str, customer: str, amount: str, cost: str, **extra: Any) -> Message:
    return purchase(event_id, at, customer, f"o-{customer}", amount, cost_of_goods=cost, **extra)


HISTORY = [  # in the order published
    bought("pa", "2026-03-01T08:00:00Z", "a", "50.00", "30.00"),
    bought("pb", "2026-03-01T09:00:00Z", "b", "40.00", "30.00"),
    referral("r1", "2026-03-02T10:00:00Z", "a", "v1", "5.00"),
    bought("p1", "2026-03-02T12:00:00Z", "x1", "100.00", "60.00", visitor_id="v1"),
    bought("p2", "2026-03-02T14:00:00Z", "x2", "80.00", "50.00", visitor_id="v2"),
    referral("r2a", "2026-03-02T11:00:00Z", "a", "v2", "5.00"),
    bought("p3", "2026-03-02T17:00:00Z", "x3", "60.00", "40.00", visitor_id="v3"),
    referral("r3", "2026-03-02T16:00:00Z", "a", "v3", "5.00"),
    click("k3", "2026-03-02T15:00:00Z", "v3", "search", "1.00"),
    click("k4", "2026-03-02T09:00:00Z", "v4", "social", "1.00"),
    bought("p4", "2026-03-02T10:00:00Z", "x4", "70.00", "40.00", visitor_id="v4"),
    referral("r5", "2026-03-02T08:00:00Z", "b", "v5", "5.00"),
    bought("p5", "2026-03-02T12:00:00Z", "x5", "30.00", "20.00", visitor_id="v5"),
    referral("r2b", "2026-03-02T13:00:00Z", "b", "v2", "5.00"),
    click("k5", "2026-03-02T11:00:00Z", "v5", "email", "1.00"),
]

HAND: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
for window in WINDOWS:
    HAND[("ltvcac_referral_share", label_set(window=window, model="last_touch"))] = 3 / 7
    HAND[("ltvcac_referral_share", label_set(window=window, model="linear"))] = 3 / 7
    HAND[("ltvcac_referred_customers", label_set(window=window))] = 3.0
    HAND[("ltvcac_referrers", label_set(window=window))] = 2.0
    HAND[("ltvcac_viral_coefficient", label_set(window=window))] = 1.5
for referred, model, ltv in (
    ("true", "last_touch", 90 / 3),
    ("false", "last_touch", 70 / 4),
    ("true", "linear", 85 / 3),
    ("false", "linear", 75 / 4),
):
    labels = label_set(referred=referred, model=model, method="historical")
    HAND[("ltvcac_lifetime_value_by_referral", labels)] = ltv


def referral_samples(deployment: Deployment) -> dict[Any, float]:
    return {
        (name, labels): value
        for (name, labels), value in deployment.worker.samples().items()
        if name in REFERRAL_SERIES
    }


def redis_tree(deployment: Deployment) -> dict[str, Any]:
    prefix = deployment.redis_prefix
    return {
        "referred_by": {
            c: deployment.redis.hget(f"{prefix}customer:{c}", "referred_by")
            for c in ("a", "b", "x1", "x2", "x3", "x4", "x5")
        },
        "referrals": {
            c: deployment.redis.smembers(f"{prefix}referrals:{c}") for c in ("a", "b", "x2")
        },
        "referred_customers": {
            c: deployment.redis.hget(f"{prefix}customer:{c}", "referred_customers")
            for c in ("a", "b")
        },
    }


EXPECTED_TREE = {
    "referred_by": {"a": "", "b": "", "x1": "a", "x2": "b", "x3": "a", "x4": "", "x5": ""},
    "referrals": {"a": {"x1", "x3"}, "b": {"x2"}, "x2": set()},
    "referred_customers": {"a": "2", "b": "1"},
}


async def test_referrals_out_of_order_give_the_hand_computed_tree_and_figures(
    deployment: Deployment,
) -> None:
    await deployment.publish(wire(HISTORY))
    truth = ground_truth(event for _, _, event in HISTORY)
    reference = {key: v for key, v in expected_gauges(truth).items() if key[0] in REFERRAL_SERIES}
    # the reference agrees with the hand (it also has the models not worked out by hand)
    assert sample_differences({k: v for k, v in reference.items() if k in HAND}, HAND) == []

    def settled() -> bool:
        return (
            not sample_differences(referral_samples(deployment), reference)
            and redis_tree(deployment) == EXPECTED_TREE
        )

    await wait_until(settled, what="the referral figures and tree to settle")
    samples = referral_samples(deployment)
    for key, value in HAND.items():
        assert samples[key] == pytest.approx(value), key
    assert redis_tree(deployment) == EXPECTED_TREE
    # the hash of all holds the same figures
    await wait_until(
        lambda: deployment.redis_hash("channel:all").get("viral_coefficient:30d") == "1.5",
        what="the referral figures in the hash of all",
    )
    figures = deployment.redis_hash("channel:all")
    assert float(figures["referral_share:lifetime:last_touch"]) == pytest.approx(3 / 7)
    assert float(figures["ltv_referred:last_touch:historical"]) == pytest.approx(30.0)
    assert float(figures["ltv_not_referred:linear:historical"]) == pytest.approx(75 / 4)
    assert (figures["referrers:90d"], figures["referred_customers:90d"]) == ("2.0", "3.0")
