"""CAC, LTV, LTV:CAC and payback of a channel, computed from its daily buckets.

Definitions (ARCHITECTURE section 5, documented in the README):

- spend(w), new customers(w): sums over the days of window w.
- CAC(w) = spend(w) / new customers(w).
- exposure = customer-years observed in the trailing year: each customer counts
  for the days since acquisition, at least ``min_tenure_days`` and at most 365.
- historical LTV = gross profit to date / customers to date.
- formula LTV = average order gross profit x orders per year x lifetime years
  - yearly retention cost x lifetime years; orders per year = orders in the
  trailing 365 days / exposure.
- payback months(w) = CAC(w) / (gross profit in the trailing 365 days / exposure / 12).
- LTV:CAC(w, m) = LTV(m) / CAC(w).

A figure that cannot be computed is ``None`` with a reason, never 0 or infinity.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from stream.domain.channel import Bucket, ChannelRecord
from stream.domain.money import WEIGHT_SCALE
from stream.domain.timeline import day_of, in_window

OK = "ok"
NO_CUSTOMERS = "no_customers"
NO_ORDERS = "no_orders"
NO_SPEND = "no_spend"
NO_PROFIT = "no_profit"


@dataclass(frozen=True)
class Figure:
    """A value, or ``None`` and the reason it is undefined."""

    value: float | None
    reason: str = OK

    @classmethod
    def undefined(cls, reason: str) -> Figure:
        return cls(None, reason)


@dataclass(frozen=True)
class LtvParams:
    """Settings the LTV and payback definitions depend on."""

    expected_lifetime_years: Decimal = Decimal(3)
    yearly_retention_cost: Decimal = Decimal(0)
    min_tenure_days: int = 30


@dataclass(frozen=True)
class WindowFigures:
    spend: float
    new_customers: float
    cac: Figure
    payback_months: Figure


@dataclass(frozen=True)
class ChannelFigures:
    channel: str
    windows: dict[str, WindowFigures]
    ltv: dict[str, Figure]
    ratio: dict[tuple[str, str], Figure]  # (window, method) -> LTV:CAC


def now_day(records: Iterable[ChannelRecord], lateness_seconds: int) -> int:
    """The event-time "today": the largest event time seen, less the allowed lateness."""
    watermark = max((record.watermark for record in records), default=0)
    return day_of(max(watermark - lateness_seconds, 0))


def _sum(buckets: Iterable[Bucket]) -> Bucket:
    total = Bucket()
    for bucket in buckets:
        total.add(bucket)
    return total


def _ratio(numerator: float, denominator: float, reason: str) -> Figure:
    return Figure(numerator / denominator) if denominator > 0 else Figure.undefined(reason)


def exposure_years(record: ChannelRecord, today: int, min_tenure_days: int) -> float:
    """Customer-years observed in the trailing year (weighted customers x capped tenure)."""
    total = 0.0
    for day, bucket in record.buckets.items():
        if bucket.customers:
            tenure = min(max(today - day + 1, min_tenure_days), 365)
            total += bucket.customers / WEIGHT_SCALE * tenure / 365
    return total


def ltv_figures(record: ChannelRecord, today: int, params: LtvParams) -> dict[str, Figure]:
    """LTV per method, in currency units per customer."""
    lifetime = _sum(record.buckets.values())
    customers = lifetime.customers / WEIGHT_SCALE
    historical = _ratio(lifetime.gross_profit / WEIGHT_SCALE / 100, customers, NO_CUSTOMERS)

    trailing_orders = sum(
        b.orders for d, b in record.buckets.items() if in_window(d, today, "365d")
    )
    exposure = exposure_years(record, today, params.min_tenure_days)
    if customers <= 0 or exposure <= 0:
        formula = Figure.undefined(NO_CUSTOMERS)
    elif lifetime.orders <= 0:
        formula = Figure.undefined(NO_ORDERS)
    else:
        order_profit = lifetime.gross_profit / lifetime.orders / 100
        orders_per_year = trailing_orders / WEIGHT_SCALE / exposure
        years = float(params.expected_lifetime_years)
        value = order_profit * orders_per_year * years - float(params.yearly_retention_cost) * years
        formula = Figure(value)
    return {"historical": historical, "formula": formula}


def monthly_profit_per_customer(record: ChannelRecord, today: int, params: LtvParams) -> Figure:
    """Gross profit per customer per month, from the trailing year."""
    trailing = sum(b.gross_profit for d, b in record.buckets.items() if in_window(d, today, "365d"))
    exposure = exposure_years(record, today, params.min_tenure_days)
    if exposure <= 0:
        return Figure.undefined(NO_CUSTOMERS)
    return Figure(trailing / WEIGHT_SCALE / 100 / exposure / 12)


def channel_figures(
    record: ChannelRecord,
    today: int,
    windows: Iterable[str],
    methods: Iterable[str],
    params: LtvParams,
) -> ChannelFigures:
    """Every exported figure of one channel as of event-time day ``today``."""
    ltv_all = ltv_figures(record, today, params)
    ltv = {method: ltv_all[method] for method in methods}
    monthly = monthly_profit_per_customer(record, today, params)
    per_window: dict[str, WindowFigures] = {}
    ratio: dict[tuple[str, str], Figure] = {}
    for window in windows:
        total = _sum(b for d, b in record.buckets.items() if in_window(d, today, window))
        spend = total.spend_cents / 100
        customers = total.customers / WEIGHT_SCALE
        cac = _ratio(spend, customers, NO_CUSTOMERS)
        per_window[window] = WindowFigures(
            spend, customers, cac, _quotient(cac, monthly, NO_PROFIT)
        )
        for method, value in ltv.items():
            ratio[(window, method)] = _quotient(value, cac, NO_SPEND)
    return ChannelFigures(record.channel, per_window, ltv, ratio)


def _quotient(numerator: Figure, denominator: Figure, reason_if_not_positive: str) -> Figure:
    """numerator / denominator; the first undefined operand's reason wins."""
    if numerator.value is None:
        return numerator
    if denominator.value is None:
        return denominator
    if denominator.value <= 0:
        return Figure.undefined(reason_if_not_positive)
    return Figure(numerator.value / denominator.value)
