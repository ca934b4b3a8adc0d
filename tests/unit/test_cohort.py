"""Acquisition cohorts and payback from the cohort curve, against values worked by hand.

Months are counted from January 1970: January 2026 is (2026 - 1970) x 12 = 672. Cohort
counters are ``customers:{model}`` (millionths) and ``profit:{model}:{k}`` (cents x
millionths) for month k since the acquisition month.
"""

import datetime as dt
import json
from decimal import Decimal

import pytest
from prometheus_client import CollectorRegistry

from schemas.events import Purchase, Refund
from stream.domain.channel import (
    Bucket,
    ChannelDelta,
    ChannelRecord,
    Source,
    customers_key,
    orders_key,
    profit_key,
    spend_key,
)
from stream.domain.cohort import (
    CohortRow,
    average_curve,
    cohort_rows,
    month_name,
    month_of,
    month_of_day,
    payback_from_curve,
    profit_by_month,
)
from stream.domain.customer import (
    CustomerRecord,
    CustomerRules,
    handle_attribution,
    handle_purchase,
    handle_refund,
)
from stream.domain.figures import (
    COHORT,
    RATE,
    Figure,
    LtvParams,
    Payback,
    channel_figures,
    payback_months,
)
from stream.domain.fx import FxRates
from stream.domain.outcome import REDELIVERED
from stream.domain.timeline import day_of_date
from stream.metrics import ChannelFiguresCollector
from stream.serving.projection import channel_fields, cohort_fields
from tests.unit.events import event

M = 1_000_000
H = M // 2
MODELS = ("first_touch", "last_touch", "linear", "time_decay", "position_based")
LAST = "last_touch"
RULES = CustomerRules(FxRates("USD"), Decimal("0.30"))
PARAMS = LtvParams(Decimal(3), Decimal(0), 30)
DEC, JAN, FEB, MAR = 671, 672, 673, 674


def at(date: str) -> int:
    return int(dt.datetime.fromisoformat(f"{date}T10:00:00+00:00").timestamp())


def purchase(order: str, date: str, amount: str, **extra: object) -> Purchase:
    p: Purchase = event(
        "purchase",
        f"{date}T10:00:00Z",
        customer_id="c1",
        order_id=order,
        amount=amount,
        currency="USD",
        **extra,
    )
    return p


def refund(order: str, date: str, amount: str) -> Refund:
    r: Refund = event(
        "refund",
        f"{date}T10:00:00Z",
        customer_id="c1",
        order_id=order,
        amount=amount,
        currency="USD",
    )
    return r


def src(offset: int, topic: str = "purchases") -> Source:
    return Source(topic, 0, offset)


def cohort(customers: int = 0, weight: int = M, **profit_by_month: int) -> Bucket:
    """One cohort's counters in every model with the same weight: whole ``customers`` and
    gross profit cents by month since acquisition (``m0=6000``, ``m2=-1200``)."""
    counts = {}
    for model in MODELS:
        if customers:
            counts[f"customers:{model}"] = customers * weight
        for month, cents in profit_by_month.items():
            counts[f"profit:{model}:{month.removeprefix('m')}"] = cents * weight
    return Bucket(counts)


def cohorts_by_channel(deltas: list[ChannelDelta]) -> dict[str, dict[int, Bucket]]:
    return {d.channel: d.cohorts for d in deltas if d.cohorts}


# -- months --------------------------------------------------------------------------


def test_months_are_utc_calendar_months_counted_from_january_1970() -> None:
    assert month_of(0) == 0 and month_name(0) == "1970-01"
    assert month_of(at("2026-01-31") + 14 * 3600 - 1) == JAN  # 31 Jan 23:59:59 UTC
    assert month_of(at("2026-02-01") - 10 * 3600) == FEB  # 1 Feb 00:00:00 UTC
    assert (month_name(DEC), month_name(JAN), month_name(MAR)) == ("2025-12", "2026-01", "2026-03")
    assert month_of_day(day_of_date(dt.date(2026, 3, 31))) == MAR


def test_profit_counts_in_the_month_it_happened_and_never_before_month_zero() -> None:
    amounts = [
        (at("2026-01-30"), 6000),
        (at("2026-02-02"), 2500),
        (at("2026-03-01"), -1200),  # a refund two months on
        (at("2025-12-31"), -100),  # a refund dated before the acquisition month: month 0
        (at("2026-04-10"), 700),
        (at("2026-04-11"), -700),  # a month whose profit sums to zero is absent
    ]
    assert profit_by_month(at("2026-01-30"), amounts) == {0: 5900, 1: 2500, 2: -1200}


# -- cohort cells from a customer's orders and refunds ---------------------------------


def test_orders_and_a_refund_across_month_boundaries_fill_the_acquisition_cohort() -> None:
    record = CustomerRecord("c1")  # no visitor: direct at once
    first = handle_purchase(
        record, purchase("o1", "2026-01-30", "100.00", cost_of_goods="40"), src(1), RULES
    )
    # acquired in January with 60.00 of profit in month 0
    assert cohorts_by_channel(first.deltas) == {
        "all": {JAN: cohort(1, m0=6000)},
        "direct": {JAN: cohort(1, m0=6000)},
    }
    second = handle_purchase(
        record, purchase("o2", "2026-02-02", "50.00", margin="0.5"), src(2), RULES
    )
    assert cohorts_by_channel(second.deltas)["direct"] == {JAN: cohort(m1=2500)}
    # 20.00 of o1 refunded on 1 March: 20% of its 60.00 profit taken back in month 2
    back = handle_refund(record, refund("o1", "2026-03-01", "20.00"), src(3), RULES)
    assert cohorts_by_channel(back.deltas)["direct"] == {JAN: cohort(m2=-1200)}

    channel = ChannelRecord("direct")
    for delta in first.deltas + second.deltas + back.deltas:
        if delta.channel == "direct":
            assert channel.apply(delta)
    assert channel.cohorts == {JAN: cohort(1, m0=6000, m1=2500, m2=-1200)}
    assert channel.cohorts[JAN].get("profit:linear:2") == -1_200_000_000

    # an earlier order arriving late moves the customer to the December cohort: everything
    # moves one month on, and January is taken back whole
    earlier = handle_purchase(record, purchase("o0", "2025-12-20", "10.00"), src(4), RULES)
    moved = cohorts_by_channel(earlier.deltas)
    assert moved["direct"] == {
        DEC: cohort(1, m0=300, m1=6000, m2=2500, m3=-1200),
        JAN: cohort(-1, m0=-6000, m1=-2500, m2=1200),
    }
    assert moved["all"] == moved["direct"]
    for delta in earlier.deltas:
        if delta.channel == "direct":
            channel.apply(delta)
    assert channel.cohorts == {DEC: cohort(1, m0=300, m1=6000, m2=2500, m3=-1200)}


def test_cohorts_are_weighted_by_each_model() -> None:
    record = CustomerRecord("c1")
    handle_purchase(record, purchase("o1", "2026-03-01", "100.00", visitor_id="v1"), src(1), RULES)
    weights = {
        "first_touch": {"search": M},
        "last_touch": {"social": M},
        "linear": {"search": H, "social": H},
        "position_based": {"search": H, "social": H},
        "time_decay": {"search": 250_000, "social": 750_000},
    }
    outcome = handle_attribution(
        record, "v1", at("2026-03-01"), weights, src(0, "customer-updates")
    )
    search = cohorts_by_channel(outcome.deltas)["search"][MAR]
    # 30.00 of profit at the default margin; last touch gives search nothing
    assert search.counts == {
        "customers:first_touch": M,
        "customers:linear": H,
        "customers:position_based": H,
        "customers:time_decay": 250_000,
        "profit:first_touch:0": 3000 * M,
        "profit:linear:0": 3000 * H,
        "profit:position_based:0": 3000 * H,
        "profit:time_decay:0": 3000 * 250_000,
    }
    assert cohorts_by_channel(outcome.deltas)["paid"] == {MAR: cohort(1, m0=3000)}


def test_a_redelivered_purchase_sends_the_same_cohort_deltas() -> None:
    record = CustomerRecord("c1")
    handle_purchase(record, purchase("o1", "2026-01-30", "100.00"), src(1), RULES)
    applied = handle_purchase(record, purchase("o2", "2026-02-02", "50.00"), src(2), RULES)
    again = handle_purchase(record, purchase("o2", "2026-02-02", "50.00"), src(2), RULES)
    assert again.status == REDELIVERED
    assert again.deltas == applied.deltas
    assert cohorts_by_channel(again.deltas)["direct"] == {JAN: cohort(m1=1500)}


# -- exactly once in the channel record --------------------------------------------------


def test_channel_applies_cohort_changes_once_per_source_position() -> None:
    def delta(offset: int, cohorts: dict[int, Bucket]) -> ChannelDelta:
        return ChannelDelta("search", Source("purchases", 1, offset), at("2026-02-02"), {}, cohorts)

    record = ChannelRecord("search")
    first = delta(10, {JAN: Bucket({"customers:linear": H, "profit:linear:0": 7 * H})})
    assert record.apply(first) is True
    assert record.apply(first) is False  # redelivered
    assert record.apply(delta(9, {JAN: Bucket({"profit:linear:1": 5})})) is False  # older
    assert record.apply(delta(11, {JAN: Bucket({"profit:linear:1": 5})})) is True
    assert record.cohorts == {
        JAN: Bucket({"customers:linear": H, "profit:linear:0": 7 * H, "profit:linear:1": 5})
    }
    # the wire format and the stored record keep cohorts exactly
    assert ChannelDelta.from_json(json.loads(json.dumps(first.to_json()))) == first
    assert ChannelRecord.from_json(json.loads(json.dumps(record.to_json()))) == record
    # a cohort taken back to zero disappears
    back = {JAN: Bucket({"customers:linear": -H, "profit:linear:0": -7 * H, "profit:linear:1": -5})}
    assert record.apply(delta(12, back))
    assert record.cohorts == {}


def test_records_and_deltas_written_before_cohorts_existed_still_load() -> None:
    stored = ChannelRecord("search", buckets={5: Bucket({"spend:media": 100})}).to_json()
    del stored["cohorts"]
    assert ChannelRecord.from_json(stored).cohorts == {}
    wire = ChannelDelta("search", Source("ad-spend", 0, 1), 0, {5: Bucket({"spend:media": 1})})
    data = wire.to_json()
    del data["cohorts"]
    assert ChannelDelta.from_json(data) == wire


# -- the curve ---------------------------------------------------------------------------
#
# In March (current month), last touch only:
# - January: 2 customers; 30.00 of profit in January, 20.00 in February, 10.00 in March;
# - February: 1 customer; 40.00 in February, 5.00 in March;
# - March: 1 customer; 100.00 in March.
# Complete months: January's 0 and 1, February's 0, none of March's.


def cohorts() -> dict[int, Bucket]:
    return {
        JAN: Bucket(
            {
                "customers:last_touch": 2 * M,
                "profit:last_touch:0": 3000 * M,
                "profit:last_touch:1": 2000 * M,
                "profit:last_touch:2": 1000 * M,
            }
        ),
        FEB: Bucket(
            {
                "customers:last_touch": M,
                "profit:last_touch:0": 4000 * M,
                "profit:last_touch:1": 500 * M,
            }
        ),
        MAR: Bucket({"customers:last_touch": M, "profit:last_touch:0": 10000 * M}),
    }


def test_each_cohort_has_cumulative_profit_per_customer_for_its_complete_months() -> None:
    assert cohort_rows(cohorts(), MAR, LAST) == [
        CohortRow(JAN, 2.0, (15.0, 25.0), 30.0),
        CohortRow(FEB, 1.0, (40.0,), 45.0),
        CohortRow(MAR, 1.0, (), 100.0),
    ]
    assert cohort_rows(cohorts(), MAR, "linear") == []  # no customer under linear


def test_the_curve_averages_the_cohorts_old_enough_for_each_month_by_customers() -> None:
    # month 0: (30 + 40) / (2 + 1); month 1: January only, 50 / 2; March is not complete
    assert average_curve(cohorts(), MAR, LAST) == pytest.approx([70 / 3, 25.0])
    # a month later, March's month 0 and January's month 2 are complete too
    assert average_curve(cohorts(), MAR + 1, LAST) == pytest.approx(
        [(30 + 40 + 100) / 4, (50 + 45) / 3, 60 / 2]
    )
    assert average_curve(cohorts(), JAN, LAST) == []  # no cohort has a complete month


def test_payback_interpolates_inside_the_month_where_the_curve_crosses_the_cac() -> None:
    curve = [70 / 3, 25.0]
    # 24.00 is reached in month 1: 1 + (24 - 23.33) / (25 - 23.33) = 1.4
    assert payback_from_curve(curve, 24.0) == pytest.approx(1.4)
    # 10.00 in month 0, from 0 at its start: 10 / 23.33 = 3/7
    assert payback_from_curve(curve, 10.0) == pytest.approx(3 / 7)
    assert payback_from_curve(curve, 25.0) == pytest.approx(2.0)  # at the end of month 1
    assert payback_from_curve(curve, 0.0) == 0.0  # nothing to recover
    assert payback_from_curve(curve, 25.01) is None  # never reached
    assert payback_from_curve([], 1.0) is None  # no complete month
    # a curve that dips (refunds) crosses where it first reaches the CAC
    assert payback_from_curve([10.0, 30.0, 20.0, 40.0], 25.0) == pytest.approx(1.75)


def test_payback_basis_is_the_cohort_curve_when_it_reaches_the_cac_else_the_rate() -> None:
    curve, monthly = [70 / 3, 25.0], Figure(5.0)
    assert payback_months(Figure(24.0), curve, monthly) == Payback(pytest.approx(1.4), "ok", COHORT)
    # the curve never reaches 30.00: 30 / 5.00 a month
    assert payback_months(Figure(30.0), curve, monthly) == Payback(6.0, "ok", RATE)
    assert payback_months(Figure(30.0), [], monthly) == Payback(6.0, "ok", RATE)
    # undefined: the CAC's reason, or no profit to pay back with
    assert payback_months(Figure.undefined("no_customers"), curve, monthly) == Payback(
        None, "no_customers", RATE
    )
    assert payback_months(Figure(30.0), curve, Figure(-1.0)) == Payback(None, "no_profit", RATE)


# -- figures, gauges and Redis fields of a channel ---------------------------------------
#
# The cohorts above, with matching daily buckets: 48.00 of media spend and 2 customers
# on 10 January (30.00 of profit), 1 customer on 5 February (40.00 + January's 20.00),
# 1 customer on 3 March (100.00 + January's 10.00 + February's 5.00); today 10 March.

TODAY = day_of_date(dt.date(2026, 3, 10))


def day_bucket(customers: int, profit: int, spend: int = 0) -> Bucket:
    counts = {customers_key(LAST): customers * M, profit_key(LAST): profit * M}
    counts[orders_key(LAST)] = M
    if spend:
        counts[spend_key("media")] = spend
    return Bucket(counts)


def channel(spend_cents: int) -> ChannelRecord:
    return ChannelRecord(
        "search",
        buckets={
            day_of_date(dt.date(2026, 1, 10)): day_bucket(2, 3000, spend_cents),
            day_of_date(dt.date(2026, 2, 5)): day_bucket(1, 6000),
            day_of_date(dt.date(2026, 3, 3)): day_bucket(1, 11500),
        },
        cohorts=cohorts(),
    )


def test_channel_payback_by_window_with_its_basis() -> None:
    # lifetime: 96.00 / 4 customers = CAC 24.00, reached in month 1 of the curve (1.4)
    f = channel_figures(channel(9600), TODAY, ["lifetime", "30d", "7d"], [], PARAMS, [LAST])
    assert f.windows["lifetime"].payback_months[LAST] == Payback(pytest.approx(1.4), "ok", COHORT)
    # 30 days (from 9 February): 1 customer, no spend: CAC 0, nothing to recover
    assert f.windows["30d"].payback_months[LAST] == Payback(0.0, "ok", COHORT)
    # 7 days: no customer, no CAC
    assert f.windows["7d"].payback_months[LAST] == Payback(None, "no_customers", RATE)
    assert f.cohorts[LAST] == cohort_rows(cohorts(), MAR, LAST)


def test_channel_payback_falls_back_to_the_rate_when_the_curve_stays_below_the_cac() -> None:
    # CAC 120.00 / 4 = 30.00 is above the curve (25.00 at most). Exposure: 2 customers for
    # 60 days, 1 for 34, 1 for the minimum 30: 184/365 years; 205.00 of profit in the
    # trailing year: 205 / (184/365) / 12 a month.
    f = channel_figures(channel(12000), TODAY, ["lifetime"], [], PARAMS, [LAST])
    monthly = 205 / (184 / 365) / 12
    assert f.windows["lifetime"].payback_months[LAST] == Payback(
        pytest.approx(30 / monthly), "ok", RATE
    )


def test_a_channel_whose_cohorts_have_no_complete_month_pays_back_at_the_rate() -> None:
    # one customer this month: CAC 10.00, 5.00 of profit over the minimum 30 days
    young = ChannelRecord(
        "email",
        buckets={TODAY: day_bucket(1, 500, spend=1000)},
        cohorts={MAR: Bucket({"customers:last_touch": M, "profit:last_touch:0": 500 * M})},
    )
    f = channel_figures(young, TODAY, ["lifetime"], [], PARAMS, [LAST])
    monthly = 5 / (30 / 365) / 12
    assert f.windows["lifetime"].payback_months[LAST] == Payback(
        pytest.approx(10 / monthly), "ok", RATE
    )


def test_the_payback_gauge_has_one_series_per_window_and_model_labelled_with_its_basis() -> None:
    registry = CollectorRegistry()
    f = channel_figures(channel(9600), TODAY, ["lifetime", "7d"], [], PARAMS, [LAST])
    registry.register(ChannelFiguresCollector(lambda: [f], LAST, "historical"))
    lifetime = {"channel": "search", "window": "lifetime", "model": LAST}
    week = {"channel": "search", "window": "7d", "model": LAST}
    value = registry.get_sample_value("ltvcac_payback_months", {**lifetime, "basis": "cohort"})
    assert value == pytest.approx(1.4)
    assert registry.get_sample_value("ltvcac_payback_months", {**lifetime, "basis": "rate"}) is None
    flag = {**lifetime, "basis": "cohort", "reason": "ok"}
    assert registry.get_sample_value("ltvcac_payback_months_defined", flag) == 1.0
    flag = {**week, "basis": "rate", "reason": "no_customers"}
    assert registry.get_sample_value("ltvcac_payback_months_defined", flag) == 0.0
    series = [
        sample.labels
        for family in registry.collect()
        if family.name == "ltvcac_payback_months"
        for sample in family.samples
    ]
    assert series == [{**lifetime, "basis": "cohort"}]


def test_redis_fields_of_the_payback_basis_and_of_a_cohort() -> None:
    f = channel_figures(channel(9600), TODAY, ["lifetime", "7d"], [], PARAMS, [LAST])
    fields = channel_fields(f)
    assert float(fields["payback_months:lifetime:last_touch"]) == pytest.approx(1.4)
    assert fields["payback_basis:lifetime:last_touch"] == "cohort"
    assert "payback_basis:7d:last_touch" not in fields  # undefined: absent
    assert cohort_fields(CohortRow(JAN, 2.0, (15.0, 25.0), 30.0)) == {
        "customers": "2.0",
        "complete_months": "2",
        "gp_per_customer:0": "15.0",
        "gp_per_customer:1": "25.0",
        "gp_per_customer_to_date": "30.0",
    }
    assert cohort_fields(CohortRow(MAR, 1.0, (), 100.0)) == {
        "customers": "1.0",
        "complete_months": "0",
        "gp_per_customer_to_date": "100.0",
    }
