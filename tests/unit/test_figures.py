"""CAC, LTV, LTV:CAC and payback from channel buckets, against figures worked by hand.

The channel: 2 customers acquired on day 100 with 100.00 of spend; 3 orders with
90.00 of gross profit in total (60.00 on day 100, 30.00 on day 110).
"""

from decimal import Decimal

import pytest

from stream.domain.channel import Bucket, ChannelRecord
from stream.domain.figures import LtvParams, channel_figures, now_day

M = 1_000_000
PARAMS = LtvParams(Decimal(3), Decimal(0), 30)


def record() -> ChannelRecord:
    return ChannelRecord(
        "search",
        buckets={
            100: Bucket(spend_cents=10000, customers=2 * M, gross_profit=6000 * M, orders=2 * M),
            110: Bucket(gross_profit=3000 * M, orders=1 * M),
        },
    )


def test_figures_a_hundred_days_after_acquisition() -> None:
    # today = 199: tenure 100 days -> exposure 2 x 100/365 customer-years
    f = channel_figures(record(), 199, ["90d", "lifetime"], ["historical", "formula"], PARAMS)
    assert f.ltv["historical"].value == pytest.approx(45.0)  # 90 / 2
    # 30.00 per order x (3 orders / (200/365) years) x 3 years
    assert f.ltv["formula"].value == pytest.approx(30 * (3 / (200 / 365)) * 3)  # 492.75
    life = f.windows["lifetime"]
    assert (life.spend, life.new_customers) == (100.0, 2.0)
    assert life.cac.value == pytest.approx(50.0)
    # monthly profit per customer = 90 / (200/365) / 12 = 13.6875
    assert life.payback_months.value == pytest.approx(50 / 13.6875)
    assert f.ratio[("lifetime", "historical")].value == pytest.approx(0.9)
    assert f.ratio[("lifetime", "formula")].value == pytest.approx(492.75 / 50)
    # the 90-day window (days 110..199) has no spend and no new customers
    recent = f.windows["90d"]
    assert (recent.spend, recent.new_customers) == (0.0, 0.0)
    assert (recent.cac.value, recent.cac.reason) == (None, "no_customers")
    assert f.ratio[("90d", "historical")].reason == "no_customers"
    assert recent.payback_months.value is None


def test_young_customers_count_at_least_the_minimum_tenure() -> None:
    # today = 119: tenure 20 days, counted as 30 -> exposure 2 x 30/365
    f = channel_figures(record(), 119, ["30d"], ["formula"], PARAMS)
    assert f.ltv["formula"].value == pytest.approx(30 * (3 / (60 / 365)) * 3)  # 1642.5


def test_retention_cost_is_taken_off_formula_ltv() -> None:
    params = LtvParams(Decimal(3), Decimal(10), 30)
    f = channel_figures(record(), 199, ["lifetime"], ["formula"], params)
    assert f.ltv["formula"].value == pytest.approx(492.75 - 30)


def test_channel_without_spend_has_zero_cac_and_no_ratio() -> None:
    free = ChannelRecord("direct", buckets={5: Bucket(customers=M, gross_profit=500 * M, orders=M)})
    f = channel_figures(free, 5, ["lifetime"], ["historical"], PARAMS)
    assert f.windows["lifetime"].cac.value == 0.0
    ratio = f.ratio[("lifetime", "historical")]
    assert (ratio.value, ratio.reason) == (None, "no_spend")


def test_channel_with_only_spend_has_no_ltv() -> None:
    spend_only = ChannelRecord("social", buckets={5: Bucket(spend_cents=999)})
    f = channel_figures(spend_only, 5, ["lifetime"], ["historical", "formula"], PARAMS)
    assert f.ltv["historical"].reason == "no_customers"
    assert f.ltv["formula"].reason == "no_customers"
    assert f.windows["lifetime"].spend == 9.99


def test_unprofitable_customers_never_pay_back() -> None:
    loss = ChannelRecord(
        "x", buckets={5: Bucket(spend_cents=100, customers=M, gross_profit=-100 * M, orders=M)}
    )
    f = channel_figures(loss, 5, ["lifetime"], ["historical"], PARAMS)
    assert f.windows["lifetime"].payback_months.reason == "no_profit"


def test_now_is_the_newest_event_less_the_lateness() -> None:
    a, b = ChannelRecord("a", watermark=10 * 86_400 + 1800), ChannelRecord("b", watermark=5)
    assert now_day([a, b], 3600) == 9
    assert now_day([a, b], 0) == 10
    assert now_day([], 3600) == 0
