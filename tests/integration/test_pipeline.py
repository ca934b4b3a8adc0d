"""Events published by a Kafka client reach the gauges and Redis with exact values."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path

import pytest

from stream.devstack import StackEndpoints
from stream.domain.attribution import MODELS
from stream.worker_process import label_set
from tests.integration.conftest import Deployment, encode, wait_until
from tests.integration.events import click, purchase, wire
from tests.integration.events import spend as ad_spend
from tests.integration.scenario import (
    EXPECTED,
    MESSAGES,
    SEARCH_FORMULA_LTV,
    SEARCH_PAYBACK_MONTHS,
)

pytestmark = pytest.mark.integration
LAST = "last_touch"


def settled(deployment: Deployment) -> bool:
    """All of the scenario has reached the blended channel."""
    spend = deployment.gauges("ltvcac_spend")
    ltv = deployment.gauges("ltvcac_lifetime_value")
    customers = deployment.gauges("ltvcac_new_customers")
    return (
        spend.get(label_set(channel="all", window="lifetime")) == 80.5
        and customers.get(label_set(channel="all", window="lifetime", model=LAST)) == 4.0
        and ltv.get(label_set(channel="all", model=LAST, method="historical")) == 25.0
    )


def assert_scenario_figures(deployment: Deployment) -> None:
    samples = deployment.worker.samples()

    def gauge(name: str, **labels: str) -> float | None:
        return samples.get((name, label_set(**labels)))

    # every visitor touched one channel only, so every model gives the same figures
    for channel, (spend, customers, ltv) in EXPECTED.items():
        cac = spend / customers
        for model in MODELS:
            assert gauge(
                "ltvcac_lifetime_value", channel=channel, model=model, method="historical"
            ) == pytest.approx(ltv)
        for window in ("30d", "90d", "lifetime"):
            assert gauge("ltvcac_spend", channel=channel, window=window) == pytest.approx(spend)
            for model in MODELS:
                labels = {"channel": channel, "window": window, "model": model}
                assert gauge("ltvcac_new_customers", **labels) == customers
                assert gauge(
                    "ltvcac_customer_acquisition_cost", cost="fully_loaded", **labels
                ) == pytest.approx(cac)
                ratio = gauge("ltvcac_ltv_cac_ratio", method="historical", **labels)
                if spend:
                    assert ratio == pytest.approx(ltv / cac)
                else:  # undefined: absent, and the flag says why
                    assert ratio is None
                    flag = gauge(
                        "ltvcac_ltv_cac_ratio_defined",
                        method="historical",
                        reason="no_spend",
                        **labels,
                    )
                    assert flag == 0.0
    # search: 4.00 of clicks are media, the 70.00 agency fee is not
    assert gauge(
        "ltvcac_customer_acquisition_cost",
        channel="search",
        window="90d",
        model=LAST,
        cost="media",
    ) == pytest.approx(4.0)
    assert gauge(
        "ltvcac_spend_by_category", channel="search", window="90d", category="agency"
    ) == pytest.approx(70.0)
    # paid: every channel but direct (c3): 80.50 / 3 customers
    assert gauge(
        "ltvcac_customer_acquisition_cost",
        channel="paid",
        window="90d",
        model=LAST,
        cost="fully_loaded",
    ) == pytest.approx(80.5 / 3)
    assert gauge(
        "ltvcac_lifetime_value", channel="search", model=LAST, method="formula"
    ) == pytest.approx(SEARCH_FORMULA_LTV)
    # every customer was acquired this month: no cohort has a complete month yet
    assert gauge(
        "ltvcac_payback_months", channel="search", window="30d", model=LAST, basis="rate"
    ) == pytest.approx(SEARCH_PAYBACK_MONTHS)
    assert gauge("ltvcac_attribution_model_info", model=LAST) == 1.0
    # nothing per customer ever becomes a label
    assert not any("customer_id" in dict(labels) for _, labels in samples)


async def test_scenario_gives_hand_computed_gauges_and_redis_values(
    deployment: Deployment,
) -> None:
    await deployment.publish(MESSAGES)
    await wait_until(lambda: settled(deployment), what="the scenario to reach the gauges")
    assert_scenario_figures(deployment)

    # the projection is written on a timer: wait for the last changes (attributions)
    expected_c1 = {
        "revenue": "130.00",
        "gross_profit": "73.00",
        "orders": "2",
        "refunds": "1",
        "first_order_at": "2026-03-01T10:00:00Z",
        "last_order_at": "2026-03-02T09:00:00Z",
        "acquisition_channel": "search",
        "attribution": '{"search": 1.0}',
        "attribution_models": json.dumps(
            {model: {"search": 1.0} for model in sorted(MODELS)}, sort_keys=True
        ),
        "referred_by": "",
        "referred_customers": "1",  # c4
    }

    def projected() -> bool:
        channel = deployment.redis_hash("channel:search").get("ltv:last_touch:historical")
        return (
            deployment.redis_hash("customer:c1") == expected_c1
            and deployment.redis_hash("customer:c4").get("acquisition_channel") == "referral"
            and channel is not None
            and float(channel) == pytest.approx(73.0)
        )

    await wait_until(projected, what="customers and channels in Redis")
    assert deployment.redis_hash("customer:c1") == expected_c1
    assert deployment.redis_hash("customer:c3")["acquisition_channel"] == "direct"
    assert deployment.redis_hash("customer:c4")["acquisition_channel"] == "referral"
    assert deployment.redis_hash("customer:c4")["referred_by"] == "c1"
    assert deployment.redis.smembers(deployment.redis_prefix + "referrals:c1") == {"c4"}
    search = deployment.redis_hash("channel:search")
    assert float(search["spend:90d"]) == pytest.approx(74.0)
    assert float(search["spend:90d:agency"]) == pytest.approx(70.0)
    assert float(search["cac:90d:last_touch:fully_loaded"]) == pytest.approx(74.0)
    assert float(search["cac:90d:linear:media"]) == pytest.approx(4.0)
    assert float(search["ltv:last_touch:historical"]) == pytest.approx(73.0)
    assert float(search["ltv_cac:90d:last_touch:historical"]) == pytest.approx(73.0 / 74.0)
    direct = deployment.redis_hash("channel:direct")
    assert "ltv_cac:90d:last_touch:historical" not in direct
    assert deployment.redis.smembers(deployment.redis_prefix + "channels") == {*EXPECTED, "paid"}


def newest_first(messages: list[tuple[str, str, bytes]]) -> list[tuple[str, str, bytes]]:
    """The messages newest first, but the purchases topic in its own order (a shop sends a
    customer's purchases and refunds in order; a refund never precedes its purchase)."""
    by_time = sorted(messages, key=lambda m: json.loads(m[2])["occurred_at"], reverse=True)
    purchases = iter([m for m in messages if m[0] == "purchases"])
    return [next(purchases) if m[0] == "purchases" else m for m in by_time]


async def test_the_scenario_published_newest_first_gives_the_same_figures(
    deployment: Deployment,
) -> None:
    """Clicks, referrals and spend arrive after the purchases they led to: the customers
    are attributed again as their touches arrive and end where the in-order run ends."""
    reordered = newest_first(MESSAGES)
    assert reordered != MESSAGES
    await deployment.publish(reordered)
    await wait_until(lambda: settled(deployment), what="the scenario to reach the gauges")
    await wait_until(
        lambda: deployment.redis_hash("customer:c4").get("referred_by") == "c1",
        what="c4's referrer in Redis",
    )
    assert_scenario_figures(deployment)


async def test_producer_retries_do_not_change_the_numbers(deployment: Deployment) -> None:
    await deployment.publish(MESSAGES + MESSAGES)  # every event delivered twice

    def all_duplicates_seen() -> bool:
        events = deployment.gauges("ltvcac_events_total")
        duplicates = sum(v for labels, v in events.items() if ("outcome", "duplicate") in labels)
        return duplicates == len(MESSAGES) and settled(deployment)

    await wait_until(all_duplicates_seen, what="every second copy to be seen as a duplicate")
    assert_scenario_figures(deployment)


async def test_malformed_events_become_dead_letters_and_neighbours_count(
    deployment: Deployment,
) -> None:
    def purchase(customer: str, order: str, **changes: object) -> dict[str, object]:
        body: dict[str, object] = {
            "type": "purchase",
            "event_id": f"e-{order}",
            "occurred_at": "2026-03-01T10:00:00Z",
            "schema_version": 1,
            "customer_id": customer,
            "order_id": order,
            "amount": "10.00",
            "currency": "USD",
        }
        body.update(changes)
        return body

    missing_amount = purchase("c3", "o3")
    del missing_amount["amount"]
    bad = [
        ("c1", b'{"type": "purchase", "event_id": ', "invalid_json"),
        ("c3", encode(missing_amount), "invalid_event"),
        ("c4", encode(purchase("c4", "o4", amount=["10"])), "invalid_event"),
        ("c5", encode(purchase("c5", "o5", amount="-10.00")), "invalid_event"),
        ("c6", encode({**purchase("c6", "o6"), "type": "teleport"}), "unknown_type"),
        ("not-c7", encode(purchase("c7", "o7")), "key_mismatch"),
    ]
    messages = [("purchases", "good1", encode(purchase("good1", "g1")))]
    messages += [("purchases", key, value) for key, value, _ in bad]
    messages += [("purchases", "good2", encode(purchase("good2", "g2", amount="30.00")))]
    await deployment.publish(messages)

    def counted() -> bool:
        letters = sum(deployment.gauges("ltvcac_dead_letters_total").values())
        customers = deployment.gauges("ltvcac_new_customers")
        return (
            letters == len(bad)
            and customers.get(label_set(channel="direct", window="lifetime", model=LAST)) == 2.0
        )

    await wait_until(counted, what="dead letters and the valid neighbours")
    letters = await deployment.read_topic("dead-letters", len(bad))
    by_key = {record.key.decode(): json.loads(record.value) for record in letters}
    assert sorted(by_key) == sorted(key for key, _, _ in bad)
    for key, value, reason in bad:
        letter = by_key[key]
        assert letter["reason"] == reason, letter
        assert letter["topic"] == "purchases"
        assert base64.b64decode(letter["value_b64"]) == value
        assert letter["detail"]
    assert "amount" in by_key["c3"]["detail"]
    ltv = deployment.gauges("ltvcac_lifetime_value")
    # two direct customers with 30% default margin on 10.00 and 30.00: (3 + 9) / 2
    assert ltv[label_set(channel="direct", model=LAST, method="historical")] == pytest.approx(6.0)
    assert (
        deployment.worker.samples()[("ltvcac_spend", label_set(channel="all", window="lifetime"))]
        == 0.0
    )


async def test_a_channel_whose_only_customer_is_reattributed_disappears(
    deployment: Deployment,
) -> None:
    order = purchase("p1", "2026-03-01T10:00:00Z", "c1", "o1", "10.00", visitor_id="v1")
    await deployment.publish(wire([order]))

    def channels_in_redis() -> set[str]:
        return deployment.redis.smembers(deployment.redis_prefix + "channels")  # type: ignore[return-value]

    lifetime_customers = label_set(channel="direct", window="lifetime", model=LAST)
    await wait_until(
        lambda: (
            deployment.gauges("ltvcac_new_customers").get(lifetime_customers) == 1.0
            and channels_in_redis() == {"all", "direct"}
        ),
        what="the customer as direct",
    )

    # the click came before the order but arrives after it, inside the allowed lateness
    await deployment.publish(wire([click("k1", "2026-03-01T09:00:00Z", "v1", "search", "1.00")]))

    def exported_channels() -> set[str]:
        return {
            dict(labels)["channel"]
            for (name, labels) in deployment.worker.samples()
            if name == "ltvcac_new_customers"
        }

    search_customers = label_set(channel="search", window="lifetime", model=LAST)
    # the deltas to direct and to search travel apart: wait for both
    await wait_until(
        lambda: (
            exported_channels() == {"all", "paid", "search"}
            and channels_in_redis() == {"all", "paid", "search"}
            and deployment.gauges("ltvcac_new_customers").get(search_customers) == 1.0
        ),
        what="direct to be gone from the gauges and Redis, and search to hold the customer",
    )
    assert deployment.redis_hash("channel:direct") == {}
    assert deployment.redis_hash("customer:c1")["acquisition_channel"] == "search"


async def test_campaign_figures_keep_the_top_campaigns_and_sum_the_rest(
    stack: StackEndpoints, tmp_path: Path
) -> None:
    deployment = Deployment(stack, tmp_path, extra_env={"LTVCAC_CAMPAIGN_TOP_N": "1"})
    await asyncio.to_thread(deployment.worker.start)
    try:
        brand_fee = ad_spend(
            "s1", "2026-03-01T00:00:00Z", "search", "30.00", "media", "2026-03-01", "2026-03-01"
        )
        brand_fee[2]["campaign"] = "brand"
        await deployment.publish(
            wire(
                [
                    click("k1", "2026-03-01T08:00:00Z", "v1", "search", "2.00", campaign="brand"),
                    click("k2", "2026-03-01T08:00:00Z", "v2", "search", "5.00", campaign="promo"),
                    click("k3", "2026-03-01T08:00:00Z", "v3", "search", "1.00", campaign="spring"),
                    click("k4", "2026-03-01T08:00:00Z", "v4", "search", "1.00"),
                    brand_fee,
                    purchase("p1", "2026-03-01T10:00:00Z", "c1", "o1", "50.00", visitor_id="v1"),
                    purchase("p2", "2026-03-01T10:00:00Z", "c2", "o2", "50.00", visitor_id="v2"),
                    purchase("p3", "2026-03-01T10:00:00Z", "c3", "o3", "50.00", visitor_id="v3"),
                    purchase("p4", "2026-03-01T10:00:00Z", "c4", "o4", "50.00", visitor_id="v4"),
                ]
            )
        )
        # brand: 32.00 for c1; promo 5.00 for c2; spring 1.00 for c3; c4's click has none.
        # Top 1 by spend is brand; promo and spring sum to other: 6.00 for 2 customers.
        expected = {
            "brand": (32.0, 1.0, 32.0),
            "other": (6.0, 2.0, 3.0),
        }

        def campaign_gauges() -> dict[str, tuple[float | None, ...]]:
            samples = deployment.worker.samples()

            def value(name: str, campaign: str) -> float | None:
                labels = label_set(channel="search", window="lifetime", campaign=campaign)
                return samples.get((name, labels))

            return {
                campaign: (
                    value("ltvcac_campaign_spend", campaign),
                    value("ltvcac_campaign_new_customers", campaign),
                    value("ltvcac_campaign_customer_acquisition_cost", campaign),
                )
                for campaign in {
                    dict(labels)["campaign"]
                    for name, labels in samples
                    if name == "ltvcac_campaign_spend"
                }
            }

        await wait_until(lambda: campaign_gauges() == expected, what="the campaign gauges")
        exact = {
            "spend:lifetime:brand": 32.0,
            "new_customers:lifetime:brand": 1.0,
            "cac:lifetime:brand": 32.0,
            "spend:lifetime:promo": 5.0,
            "new_customers:lifetime:promo": 1.0,
            "cac:lifetime:promo": 5.0,
            "spend:lifetime:spring": 1.0,
            "new_customers:lifetime:spring": 1.0,
            "cac:lifetime:spring": 1.0,
        }

        def redis_campaigns() -> dict[str, float]:
            stored = deployment.redis_hash("campaigns:search")
            return {k: float(v) for k, v in stored.items() if ":lifetime:" in k}

        await wait_until(lambda: redis_campaigns() == exact, what="every campaign in Redis")
    finally:
        await asyncio.to_thread(deployment.cleanup)
