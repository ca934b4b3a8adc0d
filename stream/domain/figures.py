"""CAC, LTV, LTV:CAC and payback of a channel, computed from its daily buckets and its
acquisition cohorts.

Definitions (ARCHITECTURE section 5, documented in the README), for every attribution
model m (customers, gross profit and orders weighted by m's weights):

- spend(w): sum over the days of window w, every category (fully loaded); media
  spend(w): clicks, referral rewards and ``media`` spend events only.
- new customers(w, m): sum over the days of window w.
- CAC(w, m, cost) = spend(w) / new customers(w, m), ``cost`` fully loaded or media.
- exposure(m) = customer-years observed in the trailing year: each customer counts
  for the days since acquisition, at least ``min_tenure_days`` and at most 365.
- historical LTV(m) = gross profit to date / customers to date.
- formula LTV(m) = average order gross profit x orders per year x lifetime years
  - yearly retention cost x lifetime years; orders per year = orders in the
  trailing 365 days / exposure.
- churn LTV(m) = monthly gross profit per active customer / monthly churn: active
  customers ordered last within ``churn_inactive_days``; monthly churn = customers whose
  last order is between that threshold and a month before it (they turned inactive in
  the last month) / (those + the active ones); monthly gross profit = gross profit of
  the last 30 days.
- predictive LTV(m): the mean discounted CLV of the channel's customers from the fitted
  BG/NBD and Gamma-Gamma models (``stream.domain.predictive``), weighted by m.
- payback months(w, m), basis ``cohort``: when the channel's cohort LTV curve under m
  (``stream.domain.cohort.average_curve``) reaches the fully loaded CAC(w, m), the
  months until it does, interpolated linearly inside the month where it crosses;
  basis ``rate`` otherwise (no cohort with a complete month, or the curve stays below
  the CAC): fully loaded CAC(w, m) / (gross profit in the trailing 365 days / exposure
  / 12).
- LTV:CAC(w, m, method) = LTV(m, method) / fully loaded CAC(w, m).

Referral figures, from the ``all`` record alone (its referral counters, see ``Bucket``):

- referral share(w, m) = customers acquired in w that m credits to ``referral`` / new
  customers(w, m).
- referred customers(w): customers acquired in w with a referrer (primary model);
  referrers(w): distinct customers who referred at least one of the customers acquired
  in w (each counts on the latest day one of its referred customers was acquired, and
  windows include every later day, so this is exact); viral coefficient(w) = referred
  customers(w) / referrers(w).
- LTV by referral(m, method): each LTV method over the share of every customer that m
  credits to ``referral`` (referred; equal to the ``referral`` channel's LTV) and over
  the rest (not referred).

A figure that cannot be computed is ``None`` with a reason, never 0 or infinity.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from stream.domain.attribution import MODELS
from stream.domain.channel import (
    ALL_CHANNELS,
    MEDIA,
    REFERRED,
    REFERRERS,
    SPEND_CATEGORIES,
    Bucket,
    ChannelRecord,
    campaign_customers_key,
    campaign_spend_key,
    customer_keys,
    customers_key,
    last_orders_key,
    orders_key,
    profit_key,
    referred_key,
    spend_key,
)
from stream.domain.cohort import (
    CohortRow,
    average_curve,
    cohort_rows,
    month_of_day,
    payback_from_curve,
)
from stream.domain.money import WEIGHT_SCALE
from stream.domain.timeline import day_of, in_window

OK = "ok"
NO_CUSTOMERS = "no_customers"
NO_ORDERS = "no_orders"
NO_SPEND = "no_spend"
NO_PROFIT = "no_profit"
NO_CHURN = "no_churn"
NOT_FITTED = "not_fitted"  # no predictive model fitted yet
NOT_SCORED = "not_scored"  # fitted, but not every partition's customers scored with the fit
PREDICTIVE = "predictive"
NO_REFERRERS = "no_referrers"


@dataclass(frozen=True)
class Figure:
    """A value, or ``None`` and the reason it is undefined."""

    value: float | None
    reason: str = OK

    @classmethod
    def undefined(cls, reason: str) -> Figure:
        return cls(None, reason)


COHORT = "cohort"  # payback read from the cohort LTV curve
RATE = "rate"  # payback from the monthly gross profit rate of the trailing year


@dataclass(frozen=True)
class Payback(Figure):
    """Payback months, and the basis they were computed on: ``cohort`` or ``rate``."""

    basis: str = RATE


@dataclass(frozen=True)
class LtvParams:
    """Settings the LTV and payback definitions depend on."""

    expected_lifetime_years: Decimal = Decimal(3)
    yearly_retention_cost: Decimal = Decimal(0)
    min_tenure_days: int = 30
    churn_inactive_days: int = 90


MEDIA_COST = "media"
FULLY_LOADED = "fully_loaded"
COSTS = (MEDIA_COST, FULLY_LOADED)


@dataclass(frozen=True)
class WindowFigures:
    spend: float  # every category
    spend_by_category: dict[str, float]
    new_customers: dict[str, float]  # by model
    cac: dict[tuple[str, str], Figure]  # (model, cost) -> CAC
    payback_months: dict[str, Payback]  # by model, from the fully loaded CAC


@dataclass(frozen=True)
class CampaignFigures:
    spend: float
    new_customers: float  # by the primary model
    cac: Figure


@dataclass(frozen=True)
class ReferralFigures:
    """Referral figures of the blended record ``all``."""

    share: dict[tuple[str, str], Figure]  # (window, model) -> share of new customers
    referred: dict[str, float]  # window -> customers acquired with a referrer
    referrers: dict[str, float]  # window -> distinct customers who referred them
    viral: dict[str, Figure]  # window -> referred customers per referrer
    ltv: dict[tuple[bool, str, str], Figure]  # (referred, model, method) -> LTV


@dataclass(frozen=True)
class ChannelFigures:
    channel: str
    windows: dict[str, WindowFigures]
    ltv: dict[tuple[str, str], Figure]  # (model, method) -> LTV
    ratio: dict[tuple[str, str, str], Figure]  # (window, model, method) -> LTV:CAC
    # campaign -> window -> figures: every campaign, and the top ones plus ``other``
    campaigns: dict[str, dict[str, CampaignFigures]] = field(default_factory=dict)
    top_campaigns: dict[str, dict[str, CampaignFigures]] = field(default_factory=dict)
    cohorts: dict[str, list[CohortRow]] = field(default_factory=dict)  # by model
    referrals: ReferralFigures | None = None  # of ``all`` only


def now_day(records: Iterable[ChannelRecord], lateness_seconds: int) -> int:
    """The event-time "today": the largest event time seen, less the allowed lateness."""
    watermark = max((record.watermark for record in records), default=0)
    return day_of(max(watermark - lateness_seconds, 0))


TRAILING_YEAR = "365d"
LIFETIME = "lifetime"


def window_totals(record: ChannelRecord, today: int, windows: Iterable[str]) -> dict[str, Bucket]:
    """The record's buckets summed over each window ending on ``today``, and over the
    trailing year and the lifetime, which every LTV needs: one pass over the days."""
    totals = {window: Bucket() for window in {*windows, TRAILING_YEAR, LIFETIME}}
    for day, bucket in record.buckets.items():
        for window, total in totals.items():
            if in_window(day, today, window):
                total.add(bucket)
    return totals


def _ratio(numerator: float, denominator: float, reason: str) -> Figure:
    return Figure(numerator / denominator) if denominator > 0 else Figure.undefined(reason)


def exposure_years(record: ChannelRecord, today: int, min_tenure_days: int, model: str) -> float:
    """Customer-years observed in the trailing year (weighted customers x capped tenure)."""
    total = 0.0
    key = customers_key(model)
    for day, bucket in record.buckets.items():
        if customers := bucket.get(key):
            tenure = min(max(today - day + 1, min_tenure_days), 365)
            total += customers / WEIGHT_SCALE * tenure / 365
    return total


MONTH_DAYS = 30  # the month of the churn method


@dataclass(frozen=True)
class Activity:
    """What the churn method reads from a channel's days, weighted customers of a model:
    ``active`` ordered last within the inactivity threshold; ``churned`` crossed the
    threshold in the last month (their last order is in the month before it);
    ``month_profit_cents`` is the gross profit of the last month (weighted)."""

    active: float
    churned: float
    month_profit_cents: float


def activity(record: ChannelRecord, today: int, inactive_days: int, model: str) -> Activity:
    """The churn basis of ``model`` on ``today``: one pass over the days."""
    active = churned = profit = 0
    last, gross = last_orders_key(model), profit_key(model)
    for day, bucket in record.buckets.items():
        age = today - day  # days since the bucket's day; later days count as today
        if age < inactive_days:
            active += bucket.get(last)
        elif age < inactive_days + MONTH_DAYS:
            churned += bucket.get(last)
        if age < MONTH_DAYS:
            profit += bucket.get(gross)
    return Activity(active / WEIGHT_SCALE, churned / WEIGHT_SCALE, profit / WEIGHT_SCALE)


def churn_ltv(basis: Activity) -> Figure:
    """Monthly gross profit per active customer / monthly churn, where monthly churn is
    the share of the customers active a month ago (active now or churned since) that
    churned: undefined without active customers, or when nobody churned."""
    if basis.active <= 0:
        return Figure.undefined(NO_CUSTOMERS)
    if basis.churned <= 0:
        return Figure.undefined(NO_CHURN)
    monthly_profit = basis.month_profit_cents / 100 / basis.active
    churn = basis.churned / (basis.active + basis.churned)
    return Figure(monthly_profit / churn)


def ltv_figures(
    totals: dict[str, Bucket], exposure: float, basis: Activity, params: LtvParams, model: str
) -> dict[str, Figure]:
    """LTV per method but ``predictive`` (which comes from the fitted model), in currency
    units per customer (``totals`` from ``window_totals``, ``exposure`` from
    ``exposure_years``, ``basis`` from ``activity``)."""
    lifetime = totals[LIFETIME]
    customers = lifetime.get(customers_key(model)) / WEIGHT_SCALE
    profit = lifetime.get(profit_key(model))
    orders = lifetime.get(orders_key(model))
    historical = _ratio(profit / WEIGHT_SCALE / 100, customers, NO_CUSTOMERS)

    trailing_orders = totals[TRAILING_YEAR].get(orders_key(model))
    if customers <= 0 or exposure <= 0:
        formula = Figure.undefined(NO_CUSTOMERS)
    elif orders <= 0:
        formula = Figure.undefined(NO_ORDERS)
    else:
        order_profit = profit / orders / 100
        orders_per_year = trailing_orders / WEIGHT_SCALE / exposure
        years = float(params.expected_lifetime_years)
        value = order_profit * orders_per_year * years - float(params.yearly_retention_cost) * years
        formula = Figure(value)
    return {"historical": historical, "formula": formula, "churn": churn_ltv(basis)}


def monthly_profit_per_customer(totals: dict[str, Bucket], exposure: float, model: str) -> Figure:
    """Gross profit per customer per month, from the trailing year."""
    trailing = totals[TRAILING_YEAR].get(profit_key(model))
    if exposure <= 0:
        return Figure.undefined(NO_CUSTOMERS)
    return Figure(trailing / WEIGHT_SCALE / 100 / exposure / 12)


def channel_figures(
    record: ChannelRecord,
    today: int,
    windows: Iterable[str],
    methods: Iterable[str],
    params: LtvParams,
    models: Iterable[str] = tuple(MODELS),
    campaign_top: int = 10,
    predictive: Mapping[str, Figure] | None = None,
) -> ChannelFigures:
    """Every exported figure of one channel as of event-time day ``today``;
    ``predictive``: the channel's predictive LTV by model (``stream.domain.predictive``),
    undefined with reason ``not_fitted`` where absent."""
    models, methods, windows = list(models), list(methods), list(windows)
    totals = window_totals(record, today, windows)
    ltv: dict[tuple[str, str], Figure] = {}
    monthly: dict[str, Figure] = {}
    curves: dict[str, list[float]] = {}
    cohorts: dict[str, list[CohortRow]] = {}
    month = month_of_day(today)
    for model in models:
        exposure = exposure_years(record, today, params.min_tenure_days, model)
        basis = activity(record, today, params.churn_inactive_days, model)
        by_method = ltv_figures(totals, exposure, basis, params, model)
        by_method[PREDICTIVE] = (predictive or {}).get(model, Figure.undefined(NOT_FITTED))
        ltv.update({(model, method): by_method[method] for method in methods})
        monthly[model] = monthly_profit_per_customer(totals, exposure, model)
        curves[model] = average_curve(record.cohorts, month, model)
        cohorts[model] = cohort_rows(record.cohorts, month, model)
    per_window: dict[str, WindowFigures] = {}
    ratio: dict[tuple[str, str, str], Figure] = {}
    for window in windows:
        total = totals[window]
        spend = total.spend_cents / 100
        media = total.get(spend_key(MEDIA)) / 100
        new_customers, cac, payback = {}, {}, {}
        for model in models:
            customers = total.get(customers_key(model)) / WEIGHT_SCALE
            new_customers[model] = customers
            cac[(model, MEDIA_COST)] = _ratio(media, customers, NO_CUSTOMERS)
            loaded = cac[(model, FULLY_LOADED)] = _ratio(spend, customers, NO_CUSTOMERS)
            payback[model] = payback_months(loaded, curves[model], monthly[model])
            for method in methods:
                ratio[(window, model, method)] = _quotient(ltv[(model, method)], loaded, NO_SPEND)
        by_category = {c: total.get(spend_key(c)) / 100 for c in SPEND_CATEGORIES}
        per_window[window] = WindowFigures(spend, by_category, new_customers, cac, payback)
    referrals = None
    if record.channel == ALL_CHANNELS:
        referrals = referral_figures(record, today, windows, methods, params, models)
    return ChannelFigures(
        record.channel,
        per_window,
        ltv,
        ratio,
        campaign_figures(totals, windows),
        campaign_figures(totals, windows, campaign_top),
        cohorts,
        referrals,
    )


def payback_months(cac: Figure, curve: Sequence[float], monthly: Figure) -> Payback:
    """From the cohort curve when it reaches the CAC; else from the monthly rate (an
    undefined CAC gives an undefined payback on the rate basis, with the CAC's reason)."""
    if cac.value is not None:
        months = payback_from_curve(curve, cac.value)
        if months is not None:
            return Payback(months, OK, COHORT)
    rate = _quotient(cac, monthly, NO_PROFIT)
    return Payback(rate.value, rate.reason, RATE)


def referral_figures(
    record: ChannelRecord,
    today: int,
    windows: Iterable[str],
    methods: Iterable[str],
    params: LtvParams,
    models: Iterable[str] = tuple(MODELS),
) -> ReferralFigures:
    """Referral share, viral coefficient and LTV of referred and other customers, from
    the referral counters of the ``all`` record."""
    models, methods, windows = list(models), list(methods), list(windows)
    share: dict[tuple[str, str], Figure] = {}
    referred: dict[str, float] = {}
    referrers: dict[str, float] = {}
    viral: dict[str, Figure] = {}
    totals = window_totals(record, today, windows)
    for window in windows:
        total = totals[window]
        for model in models:
            key = customers_key(model)
            share[(window, model)] = _ratio(
                total.get(referred_key(key)), total.get(key), NO_CUSTOMERS
            )
        referred[window] = float(total.get(REFERRED))
        referrers[window] = float(total.get(REFERRERS))
        viral[window] = _ratio(referred[window], referrers[window], NO_REFERRERS)
    ltv: dict[tuple[bool, str, str], Figure] = {}
    for is_referred in (True, False):
        part = _referral_part(record, is_referred, models)
        part_totals = window_totals(part, today, [])
        for model in models:
            exposure = exposure_years(part, today, params.min_tenure_days, model)
            basis = activity(part, today, params.churn_inactive_days, model)
            by_method = ltv_figures(part_totals, exposure, basis, params, model)
            ltv.update({(is_referred, model, m): by_method[m] for m in methods if m in by_method})
    return ReferralFigures(share, referred, referrers, viral, ltv)


def _referral_part(record: ChannelRecord, referred: bool, models: list[str]) -> ChannelRecord:
    """The customers, profit and orders of ``record`` that each model credits to
    referral (``referred``) or to any other channel, as a record of their own."""
    buckets: dict[int, Bucket] = {}
    for day, bucket in record.buckets.items():
        counts: dict[str, int] = {}
        for model in models:
            for key in customer_keys(model):
                share = bucket.get(referred_key(key))
                if value := share if referred else bucket.get(key) - share:
                    counts[key] = value
        if counts:
            buckets[day] = Bucket(counts)
    return ChannelRecord(record.channel, buckets)


def _quotient(numerator: Figure, denominator: Figure, reason_if_not_positive: str) -> Figure:
    """numerator / denominator; the first undefined operand's reason wins."""
    if numerator.value is None:
        return numerator
    if denominator.value is None:
        return denominator
    if denominator.value <= 0:
        return Figure.undefined(reason_if_not_positive)
    return Figure(numerator.value / denominator.value)


OTHER_CAMPAIGNS = "other"


def campaign_figures(
    totals: dict[str, Bucket], windows: Iterable[str], top: int | None = None
) -> dict[str, dict[str, CampaignFigures]]:
    """Spend, new customers and CAC per campaign and window (primary model), from the
    totals of ``window_totals``.

    With ``top``, the ``top`` campaigns with the most lifetime spend keep their name
    (ties by name) and the rest are summed under ``other``; without it, every campaign.
    """
    spend_prefix, customers_prefix = campaign_spend_key(""), campaign_customers_key("")
    lifetime = totals[LIFETIME]
    names = {
        key.split(":", 1)[1]
        for key in lifetime.counts
        if key.startswith((spend_prefix, customers_prefix))
    }
    ranked = sorted(names, key=lambda c: (-lifetime.get(campaign_spend_key(c)), c))
    kept = set(ranked if top is None else ranked[:top])
    result: dict[str, dict[str, CampaignFigures]] = {}
    for window in windows:
        total = totals[window]
        sums: dict[str, list[int]] = {}
        for name in names:
            label = name if name in kept else OTHER_CAMPAIGNS
            cell = sums.setdefault(label, [0, 0])
            cell[0] += total.get(campaign_spend_key(name))
            cell[1] += total.get(campaign_customers_key(name))
        for label, (cents, weighted) in sums.items():
            spend, customers = cents / 100, weighted / WEIGHT_SCALE
            figures = CampaignFigures(spend, customers, _ratio(spend, customers, NO_CUSTOMERS))
            result.setdefault(label, {})[window] = figures
    return result
