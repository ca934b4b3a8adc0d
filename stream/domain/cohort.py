"""Acquisition cohorts: customers and gross profit by month since acquisition, the cohort
LTV curve drawn from them, and the month in which that curve covers a CAC.

A customer belongs to the cohort of the UTC calendar month of its acquisition (its
earliest order). Month ``k`` since acquisition is the k-th calendar month after that one
(month 0 is the acquisition month itself). Gross profit counts in the month it happened:
an order's in the month of the order, a refund's (negative) in the month of the refund; a
refund dated before the acquisition month counts in month 0.

A channel record keeps one ``Bucket`` per acquisition month (months since January 1970),
integers only, applied exactly once like the daily buckets:

- ``customers:{model}``: customers acquired that month, in millionths weighted by the
  model's attribution weights;
- ``profit:{model}:{k}``: gross profit in month ``k`` since acquisition, cents x weight.

Only complete months are on a curve: with the event-time "today" in month ``current``,
the cohort acquired in month ``a`` has the complete months 0 .. current - a - 1 (a cohort
acquired this month has none yet).
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from stream.domain.channel import Bucket, customers_key
from stream.domain.money import WEIGHT_SCALE
from stream.domain.timeline import SECONDS_PER_DAY

Cohorts = Mapping[int, Bucket]  # acquisition month -> counters


def month_of(seconds: int) -> int:
    """Seconds since the epoch -> UTC calendar month, counted from January 1970 (= 0)."""
    return month_of_day(seconds // SECONDS_PER_DAY)


@functools.lru_cache(maxsize=4096)  # asked for every order of a customer on every change
def month_of_day(day: int) -> int:
    """Day number (UTC) -> its calendar month, counted from January 1970."""
    moment = dt.datetime.fromtimestamp(day * SECONDS_PER_DAY, dt.UTC)
    return (moment.year - 1970) * 12 + moment.month - 1


def month_name(month: int) -> str:
    """Month counted from January 1970 -> ``YYYY-MM``."""
    years, index = divmod(month, 12)
    return f"{1970 + years:04d}-{index + 1:02d}"


def month_profit_key(model: str, months_since: int) -> str:
    return f"{_month_profit_prefix(model)}{months_since}"


def _month_profit_prefix(model: str) -> str:
    return f"profit:{model}:"


def profit_by_month(acquired_at: int, amounts: Iterable[tuple[int, int]]) -> dict[int, int]:
    """Gross profit in cents by month since acquisition, from (event time, cents) pairs
    (orders positive, refunds negative); months whose profit sums to zero are absent."""
    start = month_of(acquired_at)
    by_month: dict[int, int] = {}
    for at, cents in amounts:
        since = max(month_of(at) - start, 0)
        by_month[since] = by_month.get(since, 0) + cents
    return {since: cents for since, cents in sorted(by_month.items()) if cents}


def _cumulative(cohort: Bucket, model: str, months: int) -> list[int]:
    """Weighted gross profit to the end of each of months 0 .. months - 1."""
    totals, running = [], 0
    for since in range(months):
        running += cohort.get(month_profit_key(model, since))
        totals.append(running)
    return totals


@dataclass(frozen=True)
class CohortRow:
    """One acquisition month of a channel under one attribution model."""

    month: int  # acquisition month, counted from January 1970
    customers: float  # weighted by the model
    gp_per_customer: tuple[float, ...]  # cumulative, to the end of each complete month
    gp_per_customer_to_date: float  # cumulative over every month, the current one too


def cohort_rows(cohorts: Cohorts, current_month: int, model: str) -> list[CohortRow]:
    """The cohorts with customers under ``model``, oldest first, in currency units."""
    rows = []
    prefix = _month_profit_prefix(model)
    for month, cohort in sorted(cohorts.items()):
        customers = cohort.get(customers_key(model))
        if customers <= 0:
            continue
        cumulative = _cumulative(cohort, model, current_month - month)
        to_date = sum(v for key, v in cohort.counts.items() if key.startswith(prefix))
        rows.append(
            CohortRow(
                month,
                customers / WEIGHT_SCALE,
                tuple(profit / customers / 100 for profit in cumulative),
                to_date / customers / 100,
            )
        )
    return rows


def average_curve(cohorts: Cohorts, current_month: int, model: str) -> list[float]:
    """The channel's cohort LTV curve: for each month k since acquisition, the cumulative
    gross profit per customer to the end of month k over the cohorts whose month k is
    complete, weighted by their customers (their total profit / their total customers).
    Its length is the number of complete months of the oldest cohort."""
    profit: list[int] = []
    customers: list[int] = []
    for month, cohort in cohorts.items():
        count = cohort.get(customers_key(model))
        if count <= 0:
            continue
        for since, cumulative in enumerate(_cumulative(cohort, model, current_month - month)):
            if since == len(profit):
                profit.append(0)
                customers.append(0)
            profit[since] += cumulative
            customers[since] += count
    return [p / c / 100 for p, c in zip(profit, customers, strict=True)]


def payback_from_curve(curve: Sequence[float], cac: float) -> float | None:
    """Months from the start of the acquisition month until the curve covers ``cac``.

    The curve is 0 at the start of month 0 and ``curve[k]`` at the end of month k, linear
    in between: in the first month k with ``curve[k] >= cac`` the answer is
    ``k + (cac - curve[k-1]) / (curve[k] - curve[k-1])`` (``curve[-1]`` = 0). No CAC to
    recover (``cac <= 0``) is 0 months. None when the curve is empty or never gets there.
    """
    if not curve:
        return None
    if cac <= 0:
        return 0.0
    before = 0.0
    for since, after in enumerate(curve):
        if after >= cac:
            return since + (cac - before) / (after - before)
        before = after
    return None
