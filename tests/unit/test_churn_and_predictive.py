"""The churn LTV and the predictive LTV's pure parts, against values worked by hand or
computed independently of the code under test."""

from __future__ import annotations

import csv
import datetime as dt
import math
from decimal import Decimal
from pathlib import Path

import pytest

from schemas.events import Purchase, Refund
from stream.domain import clv
from stream.domain.channel import (
    Bucket,
    ChannelRecord,
    Source,
    customers_key,
    last_orders_key,
    profit_key,
)
from stream.domain.customer import CustomerRecord, CustomerRules, handle_purchase, handle_refund
from stream.domain.figures import (
    NO_CHURN,
    NO_CUSTOMERS,
    NOT_FITTED,
    Figure,
    LtvParams,
    channel_figures,
)
from stream.domain.predictive import (
    Fit,
    Horizon,
    NotFitted,
    Summary,
    fit,
    score,
    summary_of,
)

CDNOW = Path(__file__).parent.parent / "data" / "cdnow_summary.csv"  # see tests/data/README.md
M = 1_000_000
LAST = "last_touch"
PARAMS = LtvParams(Decimal(3), Decimal(0), 30, churn_inactive_days=90)
TODAY = 1000


def day(customers: float = 0, profit_cents: int = 0, last: float = 0) -> Bucket:
    counts = {
        customers_key(LAST): int(customers * M),
        profit_key(LAST): profit_cents * M,
        last_orders_key(LAST): int(last * M),
    }
    return Bucket({k: v for k, v in counts.items() if v})


def churn_ltv(buckets: dict[int, Bucket]) -> tuple[float | None, str]:
    figures = channel_figures(
        ChannelRecord("search", buckets), TODAY, ["lifetime"], ["churn"], PARAMS, [LAST]
    )
    ltv = figures.ltv[(LAST, "churn")]
    return ltv.value, ltv.reason


def test_churn_ltv_worked_by_hand() -> None:
    # 4 customers acquired on day 800. Last orders: two on day 990 and 960 (active: less
    # than 90 days old), one on day 900 (100 days: churned 10 days ago, inside the last
    # month), one on day 850 (150 days: churned before the last month, not counted).
    # Gross profit in the last 30 days (days 971..1000): 60.00 on day 990.
    buckets = {
        800: day(customers=4, profit_cents=10000),
        850: day(last=1),
        900: day(last=1),
        960: day(last=1),
        990: day(profit_cents=6000, last=1),
    }
    # monthly profit per active customer 60.00 / 2 = 30.00; monthly churn 1 / (2 + 1)
    value, reason = churn_ltv(buckets)
    assert value == pytest.approx(30.0 / (1 / 3))
    assert reason == "ok"


def test_churn_boundaries() -> None:
    # day 911 is 89 days old: active; day 910 is 90 days old: churned; day 881 (119 days)
    # churned in the last month, day 880 (120 days) not
    buckets = {
        880: day(customers=4, last=1),
        881: day(last=1),
        910: day(last=1),
        911: day(last=1),
        1000: day(profit_cents=1000),
    }
    value, _ = churn_ltv(buckets)
    # 1 active, 2 churned in the last month: churn 2/3; 10.00 per active customer
    assert value == pytest.approx(10.0 / (2 / 3))


def test_churn_ltv_is_undefined_without_active_customers_or_without_churn() -> None:
    assert churn_ltv({500: day(customers=1, profit_cents=100, last=1)}) == (None, NO_CUSTOMERS)
    assert churn_ltv({990: day(customers=1, profit_cents=100, last=1)}) == (None, NO_CHURN)


def test_predictive_ltv_comes_from_outside_and_is_not_fitted_without_it() -> None:
    record = ChannelRecord("search", {990: day(customers=1, profit_cents=100, last=1)})
    figures = channel_figures(record, TODAY, ["lifetime"], ["predictive"], PARAMS, [LAST])
    assert figures.ltv[(LAST, "predictive")].reason == NOT_FITTED
    given = channel_figures(
        record,
        TODAY,
        ["lifetime"],
        ["predictive"],
        PARAMS,
        [LAST],
        predictive={LAST: Figure(250.0)},
    )
    assert given.ltv[(LAST, "predictive")].value == 250.0


# -- customer summaries -------------------------------------------------------------------

RULES = CustomerRules(default_margin=Decimal("0.30"))


def at(day_of_2026: int, hour: int = 10) -> dt.datetime:
    return dt.datetime(2026, 1, 1, hour, tzinfo=dt.UTC) + dt.timedelta(days=day_of_2026 - 1)


def buy(record: CustomerRecord, order: str, when: dt.datetime, amount: str, offset: int) -> None:
    event = Purchase(
        type="purchase",
        event_id=f"e-{order}",
        occurred_at=when.isoformat(),
        schema_version=1,
        customer_id=record.customer_id,
        order_id=order,
        amount=Decimal(amount),
        currency="USD",
        margin=Decimal("0.5"),
    )
    handle_purchase(record, event, Source("purchases", 0, offset), RULES)


def test_summary_counts_purchase_days_and_nets_refunds() -> None:
    record = CustomerRecord("c1")
    buy(record, "o1", at(1), "100.00", 1)  # first purchase: profit 50.00, not in the mean
    buy(record, "o2", at(11), "40.00", 2)  # repeat day 1: 20.00
    buy(record, "o3", at(11, hour=15), "20.00", 3)  # same day: 10.00 more, one purchase
    buy(record, "o4", at(31), "60.00", 4)  # repeat day 2: 30.00 ...
    refund = Refund(
        type="refund",
        event_id="f1",
        occurred_at=at(32).isoformat(),
        schema_version=1,
        customer_id="c1",
        order_id="o4",
        amount=Decimal("30.00"),
        currency="USD",
    )
    handle_refund(record, refund, Source("purchases", 0, 5), RULES)  # ... less half: 15.00
    today = (at(41) - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)).days
    summary = summary_of(record, today)
    # x = 2 repeat days, t_x = 30 days, T = 40 days, mean (30.00 + 15.00) / 2 = 22.50
    assert summary == Summary(frequency=2, recency=30, age=40, mean_profit=22.5)
    assert summary_of(CustomerRecord("nobody"), today) is None


def test_a_first_purchase_after_today_is_never_younger_than_its_recency() -> None:
    record = CustomerRecord("c1")
    buy(record, "o1", at(1), "10.00", 1)
    buy(record, "o2", at(5), "10.00", 2)
    first_day = (at(1) - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)).days
    assert summary_of(record, first_day + 2) == Summary(1, 4, 4, 5.0)


# -- fit and score --------------------------------------------------------------------------


def test_fit_needs_enough_customers_and_repeat_customers() -> None:
    few = [Summary(1, 5, 10, 10.0)] * 5 + [Summary(0, 0, 10, 0.0)] * 20
    with pytest.raises(NotFitted, match="25 customers, 5 with repeat purchases"):
        fit(few, 10, 1, 0.0, 100)


def test_fit_recovers_the_cdnow_parameters_in_days() -> None:
    """The CDNOW weeks turned into days: the same model with alpha seven times larger."""
    with CDNOW.open(newline="") as lines:
        rows = list(csv.DictReader(lines))
    summaries = [
        Summary(
            int(float(r["frequency"])),
            round(float(r["recency"]) * 7),
            round(float(r["T"]) * 7),
            float(r["monetary_value"]),
        )
        for r in rows
    ]
    fitted = fit(summaries, 200, 3, 1234.5, 777)
    assert (fitted.version, fitted.customers, fitted.repeat_customers) == (3, 2357, 946)
    assert fitted.bg_nbd.r == pytest.approx(0.243, rel=0.02)
    assert fitted.bg_nbd.alpha == pytest.approx(4.414 * 7, rel=0.02)
    assert fitted.bg_nbd.a == pytest.approx(0.793, rel=0.02)
    assert fitted.bg_nbd.b == pytest.approx(2.426, rel=0.02)
    assert fitted.gamma_gamma.p == pytest.approx(6.25, rel=0.02)
    assert Fit.from_json(fitted.to_json()) == fitted


PUBLISHED = Fit(
    version=1,
    bg_nbd=clv.BgNbdParams(r=0.243, alpha=4.414 * 7, a=0.793, b=2.426),  # per day
    gamma_gamma=clv.GammaGammaParams(p=6.25, q=3.74, v=15.44),
    customers=2357,
    repeat_customers=946,
    bg_nbd_log_likelihood=-9582.4,
    gamma_gamma_log_likelihood=-4055.9,
    fitted_at=0.0,
    today=0,
)


def test_score_is_the_papers_expectation_over_the_horizon() -> None:
    """FHL 2005: x = 2, t_x = 30.43, T = 38.86 weeks expects 1.226 purchases in 39 weeks."""
    horizon = Horizon(years=39 * 7 / 365.25, yearly_discount_rate=0.0)
    result = score(PUBLISHED, Summary(2, round(30.43 * 7), round(38.86 * 7), 20.0), horizon)
    assert result.expected_purchases == pytest.approx(1.226, abs=0.002)
    # no discounting: the CLV is expected purchases x the Gamma-Gamma conditional mean
    mean = 6.25 * (15.44 + 2 * 20.0) / (6.25 * 2 + 3.74 - 1)
    assert result.clv == pytest.approx(result.expected_purchases * mean, rel=1e-9)
    assert 0 < result.probability_alive < 1


def test_a_repeat_customer_without_profit_is_scored_with_one_cent() -> None:
    horizon = Horizon()
    nothing = score(PUBLISHED, Summary(3, 60, 90, -5.0), horizon)
    cent = score(PUBLISHED, Summary(3, 60, 90, 0.01), horizon)
    assert nothing == cent
    population_mean = 6.25 * 15.44 / (3.74 - 1)
    newcomer = score(PUBLISHED, Summary(0, 0, 90, 0.0), horizon)
    assert cent.clv / cent.expected_purchases < population_mean
    assert newcomer.probability_alive == 1.0


def test_discounting_is_monthly_at_the_yearly_rate() -> None:
    horizon = Horizon(years=2, yearly_discount_rate=0.10)
    assert horizon.months == 24
    assert (1 + horizon.monthly_discount_rate) ** 12 == pytest.approx(1.10)
    assert horizon.days == 2 * 365.25
    assert math.isclose(Horizon(years=0.01).months, 1)
