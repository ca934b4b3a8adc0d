"""Ground truth from a list of events, computed without any of the service's code.

A plain, slow restatement of the README's definitions: de-duplicate, credit each
customer's earliest order to the touches of its visitor inside the lookback (``direct``
without one) by every attribution model, sum money by event-time day. Tests compare
what the service produced, however it was fed, with this.

Buckets are counters named as the README's Redis layout names figures: ``spend:{category}``
in cents, and per model ``customers:{m}``, ``profit:{m}`` (cents) and ``orders:{m}``
in millionths of a customer, weighted by the model.

Cohorts are counters per channel and acquisition month (the UTC calendar month of the
earliest order, counted from January 1970): per model ``customers:{m}`` and
``profit:{m}:{k}``, the gross profit (cents) in the k-th month after the acquisition
month (a refund in the month it happened, never before month 0), weighted by the model.

Referrals: a customer whose primary model credits a referral touch was referred by the
referrer of the referral touch that model credits most (ties: the latest). ``all`` also
counts ``referred_customers:{m}``, ``referred_profit:{m}``, ``referred_orders:{m}`` (the
part weighted by m's ``referral`` weight), ``referred`` (1 per referred customer on its
acquisition day) and ``referrers`` (1 per customer who referred any, on the latest
acquisition day of those it referred).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

DAY = 86_400
WINDOW_DAYS = {"7d": 7, "30d": 30, "90d": 90, "365d": 365, "lifetime": None}
MODELS = ("first_touch", "last_touch", "linear", "time_decay", "position_based")
CATEGORIES = ("media", "salaries", "tools", "agency", "other")
SCALE = 1_000_000
Touch = tuple[int, str, str, str]  # (time, event_id, channel, campaign or "")


@dataclass
class CustomerTruth:
    revenue_cents: int = 0
    profit_cents: int = 0
    orders: int = 0
    refunds: int = 0
    first: tuple[int, str] | None = None  # (time, order_id) of the acquisition
    last_order_at: int = 0
    visitor: str | None = None
    weights: dict[str, dict[str, int]] = field(default_factory=dict)  # model -> weights
    campaigns: dict[tuple[str, str], int] = field(default_factory=dict)  # primary model
    channel: str = ""  # of the primary model
    referred_by: str | None = None  # of the primary model


@dataclass
class Truth:
    customers: dict[str, CustomerTruth] = field(default_factory=dict)
    buckets: dict[str, dict[int, dict[str, int]]] = field(default_factory=dict)
    cohorts: dict[str, dict[int, dict[str, int]]] = field(default_factory=dict)
    watermark: int = 0
    referrals: dict[str, set[str]] = field(default_factory=dict)  # referrer -> referred

    def add(self, channel: str, day: int, key: str, amount: int) -> None:
        counters = self.buckets.setdefault(channel, {}).setdefault(day, {})
        counters[key] = counters.get(key, 0) + amount
        if not counters[key]:
            del counters[key]

    def add_spend(self, channel: str, day: int, category: str, cents: int) -> None:
        for name in (channel, "all") if channel == "direct" else (channel, "all", "paid"):
            self.add(name, day, f"spend:{category}", cents)


def shares(
    model: str, touches: list[Touch], converted_at: int, half_life_days: float
) -> list[float]:
    """Each touch's raw share (touches oldest first)."""
    n = len(touches)
    if model == "first_touch":
        return [1.0] + [0.0] * (n - 1)
    if model == "last_touch":
        return [0.0] * (n - 1) + [1.0]
    if model == "linear":
        return [1.0] * n
    if model == "time_decay":
        newest = touches[-1][0]  # ages from the newest touch: same proportions, no underflow
        return [0.5 ** ((newest - at) / (half_life_days * DAY)) for at, *_ in touches]
    if n <= 2:  # position based
        return [1.0] * n
    return [0.4] + [0.2 / (n - 2)] * (n - 2) + [0.4]


def millionths(by_channel: dict[str, float]) -> dict[str, int]:
    """Largest remainder: floors, then one more to the largest fractions (ties by name)."""
    total = sum(by_channel.values())
    exact = {c: v / total * SCALE for c, v in by_channel.items()}
    result = {c: int(v) for c, v in exact.items()}
    missing = SCALE - sum(result.values())
    for c in sorted(exact, key=lambda c: (result[c] - exact[c], c))[:missing]:
        result[c] += 1
    return {c: w for c, w in result.items() if w > 0}


def attribution(
    touches: list[Touch], converted_at: int, lookback_days: int, half_life_days: float
) -> dict[str, dict[str, int]]:
    inside = sorted(
        t for t in touches if converted_at - lookback_days * DAY <= t[0] <= converted_at
    )
    if not inside:
        return {model: {"direct": SCALE} for model in MODELS}
    result = {}
    for model in MODELS:
        by_channel: dict[str, float] = {}
        for (_, _, channel, _), share in zip(
            inside, shares(model, inside, converted_at, half_life_days), strict=True
        ):
            by_channel[channel] = by_channel.get(channel, 0.0) + share
        result[model] = millionths(by_channel)
    return result


def month(at: int) -> int:
    """The UTC calendar month of a time, counted from January 1970."""
    moment = dt.datetime.fromtimestamp(at, dt.UTC)
    return (moment.year - 1970) * 12 + moment.month - 1


def seconds(timestamp: str) -> int:
    return int(dt.datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp())


def cents(amount: str) -> int:
    return int(Decimal(amount) * 100)


def half_even(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def campaign_attribution(
    touches: list[Touch], converted_at: int, lookback_days: int, half_life_days: float, model: str
) -> dict[tuple[str, str], int]:
    """(channel, campaign) -> millionths of the customer; touches without a campaign
    take their share but are not listed."""
    inside = sorted(
        t for t in touches if converted_at - lookback_days * DAY <= t[0] <= converted_at
    )
    if not inside:
        return {}
    by_pair: dict[str, float] = {}
    for (_, _, channel, campaign), share in zip(
        inside, shares(model, inside, converted_at, half_life_days), strict=True
    ):
        key = f"{channel}\x00{campaign}"
        by_pair[key] = by_pair.get(key, 0.0) + share
    result = {}
    for key, weight in millionths(by_pair).items():
        channel, campaign = key.split("\x00")
        if campaign:
            result[(channel, campaign)] = weight
    return result


def ground_truth(
    events: Iterable[dict[str, Any]],
    lookback_days: int = 30,
    default_margin: Decimal = Decimal("0.30"),
    half_life_days: float = 7.0,
    primary: str = "last_touch",
) -> Truth:
    truth = Truth()
    seen_events: set[str] = set()
    orders: dict[str, tuple[str, int, int, int]] = {}  # order -> customer, at, amount, profit
    touches: dict[str, list[Touch]] = {}  # by visitor
    referrer_of: dict[str, str] = {}  # referral event_id -> referrer
    refunds: list[dict[str, Any]] = []
    for event in events:
        if event["event_id"] in seen_events:
            continue
        seen_events.add(event["event_id"])
        at = seconds(event["occurred_at"])
        kind = event["type"]
        if kind == "purchase" and event["order_id"] not in orders:
            amount = cents(event["amount"])
            if "cost_of_goods" in event:
                profit = amount - cents(event["cost_of_goods"])
            else:
                profit = half_even(amount * Decimal(event.get("margin", default_margin)))
            orders[event["order_id"]] = (event["customer_id"], at, amount, profit)
            customer = truth.customers.setdefault(event["customer_id"], CustomerTruth())
            customer.revenue_cents += amount
            customer.profit_cents += profit
            customer.orders += 1
            customer.last_order_at = max(customer.last_order_at, at)
            if customer.first is None or (at, event["order_id"]) < customer.first:
                customer.first = (at, event["order_id"])
                customer.visitor = event.get("visitor_id")
        elif kind == "refund":
            refunds.append(event)
        elif kind in ("ad_click", "referral"):
            visitor = event["visitor_id"] if kind == "ad_click" else event["referred_visitor_id"]
            channel = event["channel"] if kind == "ad_click" else "referral"
            cost = cents(event["cost"] if kind == "ad_click" else event["reward_cost"])
            campaign = event.get("campaign") or ""
            touches.setdefault(visitor, []).append((at, event["event_id"], channel, campaign))
            if kind == "referral":
                referrer_of[event["event_id"]] = event["referrer_customer_id"]
            if cost:
                truth.add_spend(channel, at // DAY, "media", cost)
                if campaign:
                    truth.add(channel, at // DAY, f"campaign_spend:{campaign}", cost)
                truth.watermark = max(truth.watermark, at)
        elif kind == "ad_spend":
            first = dt.date.fromisoformat(event["period_start"])
            days = (dt.date.fromisoformat(event["period_end"]) - first).days + 1
            base, odd = divmod(cents(event["amount"]), days)
            start = (first - dt.date(1970, 1, 1)).days
            for index in range(days):
                spend = base + (1 if index < odd else 0)
                if spend:
                    truth.add_spend(event["channel"], start + index, event["category"], spend)
                    if event.get("campaign"):
                        key = f"campaign_spend:{event['campaign']}"
                        truth.add(event["channel"], start + index, key, spend)
            truth.watermark = max(truth.watermark, at)

    def credit(customer: CustomerTruth, day: int, name: str, amount: int) -> None:
        for model, weights in customer.weights.items():
            paid = SCALE - weights.get("direct", 0)
            for channel, weight in [*weights.items(), ("all", SCALE), ("paid", paid)]:
                if weight:
                    truth.add(channel, day, f"{name}:{model}", amount * weight)
            if weights.get("referral"):
                truth.add("all", day, f"referred_{name}:{model}", amount * weights["referral"])

    def credit_cohort(customer: CustomerTruth, name: str, amount: int) -> None:
        assert customer.first is not None
        acquired = month(customer.first[0])
        for model, weights in customer.weights.items():
            paid = SCALE - weights.get("direct", 0)
            for channel, weight in [*weights.items(), ("all", SCALE), ("paid", paid)]:
                if weight:
                    counters = truth.cohorts.setdefault(channel, {}).setdefault(acquired, {})
                    key = name.format(model=model)
                    counters[key] = counters.get(key, 0) + amount * weight
                    if not counters[key]:
                        del counters[key]

    def months_since_acquisition(customer: CustomerTruth, at: int) -> int:
        assert customer.first is not None
        return max(month(at) - month(customer.first[0]), 0)

    for customer in truth.customers.values():
        assert customer.first is not None
        converted_at = customer.first[0]
        visits = touches.get(customer.visitor or "", [])
        customer.weights = attribution(visits, converted_at, lookback_days, half_life_days)
        primary_weights = customer.weights[primary]
        customer.channel = max(sorted(primary_weights), key=lambda c: primary_weights[c])
        credit(customer, converted_at // DAY, "customers", 1)
        customer.campaigns = campaign_attribution(
            visits, converted_at, lookback_days, half_life_days, primary
        )
        for (channel, campaign), weight in customer.campaigns.items():
            truth.add(channel, converted_at // DAY, f"campaign_customers:{campaign}", weight)
        credit_cohort(customer, "customers:{model}", 1)
        if "referral" in primary_weights:
            inside = sorted(
                t for t in visits if converted_at - lookback_days * DAY <= t[0] <= converted_at
            )
            primary_shares = shares(primary, inside, converted_at, half_life_days)
            credited = [
                (share, index)
                for index, (touch, share) in enumerate(zip(inside, primary_shares, strict=True))
                if touch[2] == "referral" and share > 0
            ]
            customer.referred_by = referrer_of[inside[max(credited)[1]][1]]
    for customer_id, customer in truth.customers.items():
        if customer.referred_by is not None:
            truth.referrals.setdefault(customer.referred_by, set()).add(customer_id)
            assert customer.first is not None
            truth.add("all", customer.first[0] // DAY, "referred", 1)
    for referred in truth.referrals.values():
        latest = max(truth.customers[c].first or (0, "") for c in referred)
        truth.add("all", latest[0] // DAY, "referrers", 1)
    for customer_id, at, _, profit in orders.values():
        customer = truth.customers[customer_id]
        credit(customer, at // DAY, "profit", profit)
        credit(customer, at // DAY, "orders", 1)
        since = months_since_acquisition(customer, at)
        credit_cohort(customer, f"profit:{{model}}:{since}", profit)
        truth.watermark = max(truth.watermark, at)
    for customer in truth.customers.values():
        credit(customer, customer.last_order_at // DAY, "last_orders", 1)
    for refund in refunds:
        customer_id, _, amount, profit = orders[refund["order_id"]]
        customer = truth.customers[customer_id]
        refunded = cents(refund["amount"])
        reduction = half_even(Decimal(profit) * refunded / amount)
        customer.revenue_cents -= refunded
        customer.profit_cents -= reduction
        customer.refunds += 1
        at = seconds(refund["occurred_at"])
        credit(customer, at // DAY, "profit", -reduction)
        since = months_since_acquisition(customer, at)
        credit_cohort(customer, f"profit:{{model}}:{since}", -reduction)
        truth.watermark = max(truth.watermark, at)
    for days in [*truth.buckets.values(), *truth.cohorts.values()]:
        for day in [day for day, counters in days.items() if not counters]:
            del days[day]
    return truth


def cohort_curve(cohorts: dict[int, dict[str, int]], current: int, model: str) -> list[float]:
    """Cumulative gross profit per customer to the end of each month k since acquisition,
    over the cohorts whose month k is complete (acquired before ``current`` - k), weighted
    by their customers."""
    curve = []
    k = 0
    while True:
        old_enough = [
            counters
            for acquired, counters in cohorts.items()
            if acquired + k < current and counters.get(f"customers:{model}", 0) > 0
        ]
        if not old_enough:
            return curve
        profit = sum(c.get(f"profit:{model}:{j}", 0) for c in old_enough for j in range(k + 1))
        customers = sum(c[f"customers:{model}"] for c in old_enough)
        curve.append(profit / customers / 100)
        k += 1


def cohort_payback(curve: list[float], cac: float) -> float | None:
    """Months until the curve (0 at the start, linear inside each month) reaches the CAC."""
    if not curve:
        return None
    if cac <= 0:
        return 0.0
    for k, value in enumerate(curve):
        if value >= cac:
            before = curve[k - 1] if k > 0 else 0.0
            return k + (cac - before) / (value - before)
    return None


def expected_cohorts(
    truth: Truth, lateness_seconds: int = 3600, model: str = "last_touch"
) -> dict[str, dict[str, dict[str, float]]]:
    """The Redis cohort hashes of one model, as the README lays them out: channel ->
    ``YYYY-MM`` -> fields."""
    today = max(truth.watermark - lateness_seconds, 0) // DAY
    current = month(today * DAY)
    result: dict[str, dict[str, dict[str, float]]] = {}
    for channel, cohorts in truth.cohorts.items():
        for acquired, counters in cohorts.items():
            customers = counters.get(f"customers:{model}", 0)
            if customers <= 0:
                continue
            year, index = divmod(acquired, 12)
            fields: dict[str, float] = {"customers": customers / SCALE}
            complete = max(current - acquired, 0)
            fields["complete_months"] = complete
            cumulative = 0
            for k in range(complete):
                cumulative += counters.get(f"profit:{model}:{k}", 0)
                fields[f"gp_per_customer:{k}"] = cumulative / customers / 100
            to_date = sum(v for key, v in counters.items() if key.startswith(f"profit:{model}:"))
            fields["gp_per_customer_to_date"] = to_date / customers / 100
            result.setdefault(channel, {})[f"{1970 + year}-{index + 1:02d}"] = fields
    return result


def expected_gauges(
    truth: Truth,
    lateness_seconds: int = 3600,
    windows: Iterable[str] = ("30d", "90d", "lifetime"),
    lifetime_years: float = 3.0,
    min_tenure_days: int = 30,
    churn_inactive_days: int = 90,
) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every defined channel gauge, by (name, labels), as the README defines them (all
    but the predictive LTV, which depends on when the model was fitted)."""
    today = max(truth.watermark - lateness_seconds, 0) // DAY
    gauges: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}

    def put(name: str, value: float, **labels: str) -> None:
        gauges[(name, frozenset(labels.items()))] = value

    def total(days: Iterable[dict[str, int]], key: str) -> int:
        return sum(counters.get(key, 0) for counters in days)

    for channel, days in truth.buckets.items():
        if not days:
            continue
        trailing = [counters for day, counters in days.items() if day > today - 365]
        for window in windows:
            length = WINDOW_DAYS[window]
            inside = [c for day, c in days.items() if length is None or day > today - length]
            by_category = {c: total(inside, f"spend:{c}") / 100 for c in CATEGORIES}
            put("ltvcac_spend", sum(by_category.values()), channel=channel, window=window)
            for category, spend in by_category.items():
                put(
                    "ltvcac_spend_by_category",
                    spend,
                    channel=channel,
                    window=window,
                    category=category,
                )
        for model in MODELS:
            customers = total(days.values(), f"customers:{model}") / SCALE
            profit = total(days.values(), f"profit:{model}") / SCALE / 100
            orders = total(days.values(), f"orders:{model}") / SCALE
            exposure = sum(
                c.get(f"customers:{model}", 0)
                / SCALE
                * min(max(today - day + 1, min_tenure_days), 365)
                / 365
                for day, c in days.items()
            )
            ltv: dict[str, float] = {}
            if customers > 0:
                ltv["historical"] = profit / customers
                if orders > 0 and exposure > 0:
                    per_year = total(trailing, f"orders:{model}") / SCALE / exposure
                    ltv["formula"] = profit / orders * per_year * lifetime_years
            # churn: active = last order within the threshold; churned in the last month =
            # last order in the 30 days before the threshold
            last = f"last_orders:{model}"
            active = sum(c.get(last, 0) for d, c in days.items() if today - d < churn_inactive_days)
            churned = sum(
                c.get(last, 0)
                for d, c in days.items()
                if churn_inactive_days <= today - d < churn_inactive_days + 30
            )
            if active > 0 and churned > 0:
                month_profit = sum(
                    c.get(f"profit:{model}", 0) for d, c in days.items() if today - d < 30
                )
                per_active = month_profit / 100 / active  # both weighted: the scale cancels
                ltv["churn"] = per_active / (churned / (active + churned))
            for method, value in ltv.items():
                put("ltvcac_lifetime_value", value, channel=channel, model=model, method=method)
            trailing_profit = total(trailing, f"profit:{model}") / SCALE / 100
            monthly = trailing_profit / exposure / 12 if exposure > 0 else None
            current = month(today * DAY)
            curve = cohort_curve(truth.cohorts.get(channel, {}), current, model)
            for window in windows:
                length = WINDOW_DAYS[window]
                inside = [c for day, c in days.items() if length is None or day > today - length]
                spend = sum(total(inside, f"spend:{c}") for c in CATEGORIES) / 100
                media = total(inside, "spend:media") / 100
                new = total(inside, f"customers:{model}") / SCALE
                labels = {"channel": channel, "window": window, "model": model}
                put("ltvcac_new_customers", new, **labels)
                if new <= 0:
                    continue
                cac = spend / new
                put("ltvcac_customer_acquisition_cost", cac, cost="fully_loaded", **labels)
                put("ltvcac_customer_acquisition_cost", media / new, cost="media", **labels)
                payback = cohort_payback(curve, cac)
                if payback is not None:
                    put("ltvcac_payback_months", payback, basis="cohort", **labels)
                elif monthly is not None and monthly > 0:
                    put("ltvcac_payback_months", cac / monthly, basis="rate", **labels)
                if cac > 0:
                    for method, value in ltv.items():
                        put("ltvcac_ltv_cac_ratio", value / cac, method=method, **labels)
    if truth.buckets.get("all"):
        gauges.update(
            referral_gauges(
                truth,
                today,
                lateness_seconds,
                windows,
                lifetime_years,
                min_tenure_days,
                churn_inactive_days,
            )
        )
    return gauges


def referral_gauges(
    truth: Truth,
    today: int,
    lateness_seconds: int,
    windows: Iterable[str],
    lifetime_years: float,
    min_tenure_days: int,
    churn_inactive_days: int,
) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """The referral gauges, from the counters of ``all``."""
    days = truth.buckets["all"]
    gauges: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}

    def put(name: str, value: float, **labels: str) -> None:
        gauges[(name, frozenset(labels.items()))] = value

    for window in windows:
        length = WINDOW_DAYS[window]
        inside = [c for day, c in days.items() if length is None or day > today - length]
        for model in MODELS:
            customers = sum(c.get(f"customers:{model}", 0) for c in inside)
            referred = sum(c.get(f"referred_customers:{model}", 0) for c in inside)
            if customers > 0:
                put("ltvcac_referral_share", referred / customers, window=window, model=model)
        referred_whole = sum(c.get("referred", 0) for c in inside)
        referrers = sum(c.get("referrers", 0) for c in inside)
        put("ltvcac_referred_customers", referred_whole, window=window)
        put("ltvcac_referrers", referrers, window=window)
        if referrers > 0:
            put("ltvcac_viral_coefficient", referred_whole / referrers, window=window)
    # referred and other customers as two channels of their own: their LTV
    parts = Truth(watermark=truth.watermark)
    for day, counters in days.items():
        for model in MODELS:
            for name in ("customers", "profit", "orders", "last_orders"):
                everyone = counters.get(f"{name}:{model}", 0)
                referred = counters.get(f"referred_{name}:{model}", 0)
                parts.add("true", day, f"{name}:{model}", referred)
                parts.add("false", day, f"{name}:{model}", everyone - referred)
    part_gauges = expected_gauges(
        parts, lateness_seconds, windows, lifetime_years, min_tenure_days, churn_inactive_days
    )
    for (name, labels), value in part_gauges.items():
        if name == "ltvcac_lifetime_value":
            label = dict(labels)
            put(
                "ltvcac_lifetime_value_by_referral",
                value,
                referred=label["channel"],
                model=label["model"],
                method=label["method"],
            )
    return gauges
