"""CAC, LTV, LTV:CAC and payback from channel buckets, against figures worked by hand.

The channel: 2 customers acquired on day 100 with 100.00 of spend (80.00 media, 20.00
salaries); 3 orders with 90.00 of gross profit in total (60.00 on day 100, 30.00 on
day 110). Under ``linear`` attribution the channel has only half of it (weights 0.5).
"""

from decimal import Decimal

import pytest

from stream.domain.channel import (
    Bucket,
    ChannelRecord,
    customers_key,
    orders_key,
    profit_key,
    spend_key,
)
from stream.domain.figures import LtvParams, channel_figures, now_day

M = 1_000_000
PARAMS = LtvParams(Decimal(3), Decimal(0), 30)
LAST, LINEAR = "last_touch", "linear"


def bucket(
    spend: dict[str, int] | None = None,
    customers: int = 0,
    profit: int = 0,
    orders: int = 0,
    weights: dict[str, float] | None = None,
) -> Bucket:
    """Counters of one day: spend in cents by category; customers, profit in cents and
    orders of the whole customers, weighted per model (default: last touch, all of it)."""
    counts = {spend_key(category): cents for category, cents in (spend or {}).items()}
    for model, weight in (weights or {LAST: 1.0}).items():
        for key, value in (
            (customers_key(model), customers),
            (profit_key(model), profit),
            (orders_key(model), orders),
        ):
            if value:
                counts[key] = int(value * weight * M)
    return Bucket(counts)


def record() -> ChannelRecord:
    weights = {LAST: 1.0, LINEAR: 0.5}
    return ChannelRecord(
        "search",
        buckets={
            100: bucket({"media": 8000, "salaries": 2000}, 2, 6000, 2, weights),
            110: bucket(profit=3000, orders=1, weights=weights),
        },
    )


def test_figures_a_hundred_days_after_acquisition() -> None:
    # today = 199: tenure 100 days -> exposure 2 x 100/365 customer-years
    f = channel_figures(
        record(), 199, ["90d", "lifetime"], ["historical", "formula"], PARAMS, [LAST]
    )
    assert f.ltv[(LAST, "historical")].value == pytest.approx(45.0)  # 90 / 2
    # 30.00 per order x (3 orders / (200/365) years) x 3 years
    assert f.ltv[(LAST, "formula")].value == pytest.approx(30 * (3 / (200 / 365)) * 3)  # 492.75
    life = f.windows["lifetime"]
    assert (life.spend, life.new_customers) == (100.0, {LAST: 2.0})
    assert life.spend_by_category == {
        "media": 80.0,
        "salaries": 20.0,
        "tools": 0.0,
        "agency": 0.0,
        "other": 0.0,
    }
    assert life.cac[(LAST, "fully_loaded")].value == pytest.approx(50.0)
    assert life.cac[(LAST, "media")].value == pytest.approx(40.0)
    # monthly profit per customer = 90 / (200/365) / 12 = 13.6875
    assert life.payback_months[LAST].value == pytest.approx(50 / 13.6875)
    assert f.ratio[("lifetime", LAST, "historical")].value == pytest.approx(0.9)
    assert f.ratio[("lifetime", LAST, "formula")].value == pytest.approx(492.75 / 50)
    # the 90-day window (days 110..199) has no spend and no new customers
    recent = f.windows["90d"]
    assert (recent.spend, recent.new_customers) == (0.0, {LAST: 0.0})
    cac = recent.cac[(LAST, "fully_loaded")]
    assert (cac.value, cac.reason) == (None, "no_customers")
    assert f.ratio[("90d", LAST, "historical")].reason == "no_customers"
    assert recent.payback_months[LAST].value is None


def test_each_model_has_its_own_customers_and_the_same_spend() -> None:
    # linear gives the channel half of each customer: 1 customer, 45.00 of profit
    f = channel_figures(record(), 199, ["lifetime"], ["historical"], PARAMS, [LAST, LINEAR])
    life = f.windows["lifetime"]
    assert life.new_customers == {LAST: 2.0, LINEAR: 1.0}
    assert life.cac[(LINEAR, "fully_loaded")].value == pytest.approx(100.0)
    assert life.cac[(LINEAR, "media")].value == pytest.approx(80.0)
    # LTV per customer is the same (45.00) but CAC doubles, so the ratio halves
    assert f.ltv[(LINEAR, "historical")].value == pytest.approx(45.0)
    assert f.ratio[("lifetime", LINEAR, "historical")].value == pytest.approx(0.45)
    # exposure halves with the customers and so does profit: payback = 100 / 13.6875
    assert life.payback_months[LINEAR].value == pytest.approx(100 / 13.6875)


def test_young_customers_count_at_least_the_minimum_tenure() -> None:
    # today = 119: tenure 20 days, counted as 30 -> exposure 2 x 30/365
    f = channel_figures(record(), 119, ["30d"], ["formula"], PARAMS, [LAST])
    assert f.ltv[(LAST, "formula")].value == pytest.approx(30 * (3 / (60 / 365)) * 3)  # 1642.5


def test_retention_cost_is_taken_off_formula_ltv() -> None:
    params = LtvParams(Decimal(3), Decimal(10), 30)
    f = channel_figures(record(), 199, ["lifetime"], ["formula"], params, [LAST])
    assert f.ltv[(LAST, "formula")].value == pytest.approx(492.75 - 30)


def test_channel_without_spend_has_zero_cac_and_no_ratio() -> None:
    free = ChannelRecord("direct", buckets={5: bucket(customers=1, profit=500, orders=1)})
    f = channel_figures(free, 5, ["lifetime"], ["historical"], PARAMS, [LAST])
    assert f.windows["lifetime"].cac[(LAST, "fully_loaded")].value == 0.0
    ratio = f.ratio[("lifetime", LAST, "historical")]
    assert (ratio.value, ratio.reason) == (None, "no_spend")


def test_channel_with_only_spend_has_no_ltv() -> None:
    spend_only = ChannelRecord("social", buckets={5: bucket({"media": 999})})
    f = channel_figures(spend_only, 5, ["lifetime"], ["historical", "formula"], PARAMS, [LAST])
    assert f.ltv[(LAST, "historical")].reason == "no_customers"
    assert f.ltv[(LAST, "formula")].reason == "no_customers"
    assert f.windows["lifetime"].spend == 9.99


def test_unprofitable_customers_never_pay_back() -> None:
    loss = ChannelRecord("x", buckets={5: bucket({"media": 100}, 1, -100, 1)})
    f = channel_figures(loss, 5, ["lifetime"], ["historical"], PARAMS, [LAST])
    assert f.windows["lifetime"].payback_months[LAST].reason == "no_profit"


def test_now_is_the_newest_event_less_the_lateness() -> None:
    a, b = ChannelRecord("a", watermark=10 * 86_400 + 1800), ChannelRecord("b", watermark=5)
    assert now_day([a, b], 3600) == 9
    assert now_day([a, b], 0) == 10
    assert now_day([], 3600) == 0


def test_campaigns_beyond_the_top_are_summed_as_other() -> None:
    # a: 50.00 spend, 2 customers; b: 30.00, 1; c: 10.00, no customer; day 100
    counts = {
        "campaign_spend:a": 5000,
        "campaign_customers:a": 2 * M,
        "campaign_spend:b": 3000,
        "campaign_customers:b": M,
        "campaign_spend:c": 1000,
    }
    channel = ChannelRecord("search", buckets={100: Bucket(counts)})
    f = channel_figures(channel, 100, ["lifetime"], ["historical"], PARAMS, [LAST], 1)
    every = {c: w["lifetime"] for c, w in f.campaigns.items()}
    assert {c: (v.spend, v.new_customers, v.cac.value) for c, v in every.items()} == {
        "a": (50.0, 2.0, 25.0),
        "b": (30.0, 1.0, 30.0),
        "c": (10.0, 0.0, None),
    }
    top = {c: w["lifetime"] for c, w in f.top_campaigns.items()}
    # b and c together: 40.00 for 1 customer
    assert {c: (v.spend, v.new_customers, v.cac.value) for c, v in top.items()} == {
        "a": (50.0, 2.0, 25.0),
        "other": (40.0, 1.0, 40.0),
    }
