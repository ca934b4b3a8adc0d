"""Ground truth from a list of events, computed without any of the service's code.

A plain, slow restatement of the README's definitions for last-touch attribution:
de-duplicate, credit each customer's earliest order to the latest touch of its
visitor inside the lookback (``direct`` without one), sum money by event-time day.
Tests compare what the service produced, however it was fed, with this.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

DAY = 86_400
WINDOW_DAYS = {"7d": 7, "30d": 30, "90d": 90, "365d": 365, "lifetime": None}


@dataclass
class CustomerTruth:
    revenue_cents: int = 0
    profit_cents: int = 0
    orders: int = 0
    refunds: int = 0
    first: tuple[int, str] | None = None  # (time, order_id) of the acquisition
    last_order_at: int = 0
    visitor: str | None = None
    channel: str = ""


@dataclass
class Truth:
    customers: dict[str, CustomerTruth] = field(default_factory=dict)
    # channel -> day -> [spend cents, customers, gross profit cents, orders]
    buckets: dict[str, dict[int, list[int]]] = field(default_factory=dict)
    watermark: int = 0

    def add(self, channel: str, day: int, index: int, amount: int) -> None:
        for name in (channel, "all"):
            self.buckets.setdefault(name, {}).setdefault(day, [0, 0, 0, 0])[index] += amount


def seconds(timestamp: str) -> int:
    return int(dt.datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp())


def cents(amount: str) -> int:
    return int(Decimal(amount) * 100)


def half_even(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def ground_truth(
    events: Iterable[dict[str, Any]],
    lookback_days: int = 30,
    default_margin: Decimal = Decimal("0.30"),
) -> Truth:
    truth = Truth()
    seen_events: set[str] = set()
    orders: dict[str, tuple[str, int, int, int]] = {}  # order -> customer, at, amount, profit
    touches: dict[str, list[tuple[int, str, str]]] = {}  # visitor -> (at, event_id, channel)
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
            touches.setdefault(visitor, []).append((at, event["event_id"], channel))
            if cost:
                truth.add(channel, at // DAY, 0, cost)
                truth.watermark = max(truth.watermark, at)
        elif kind == "ad_spend":
            first = dt.date.fromisoformat(event["period_start"])
            days = (dt.date.fromisoformat(event["period_end"]) - first).days + 1
            base, odd = divmod(cents(event["amount"]), days)
            start = (first - dt.date(1970, 1, 1)).days
            for index in range(days):
                truth.add(event["channel"], start + index, 0, base + (1 if index < odd else 0))
            truth.watermark = max(truth.watermark, at)

    for customer in truth.customers.values():
        assert customer.first is not None
        converted_at = customer.first[0]
        qualifying = [
            touch
            for touch in touches.get(customer.visitor or "", [])
            if converted_at - lookback_days * DAY <= touch[0] <= converted_at
        ]
        customer.channel = max(qualifying)[2] if qualifying else "direct"
        truth.add(customer.channel, converted_at // DAY, 1, 1)
    for customer_id, at, _, profit in orders.values():
        channel = truth.customers[customer_id].channel
        truth.add(channel, at // DAY, 2, profit)
        truth.add(channel, at // DAY, 3, 1)
        truth.watermark = max(truth.watermark, at)
    for refund in refunds:
        customer_id, _, amount, profit = orders[refund["order_id"]]
        customer = truth.customers[customer_id]
        refunded = cents(refund["amount"])
        reduction = half_even(Decimal(profit) * refunded / amount)
        customer.revenue_cents -= refunded
        customer.profit_cents -= reduction
        customer.refunds += 1
        at = seconds(refund["occurred_at"])
        truth.add(customer.channel, at // DAY, 2, -reduction)
        truth.watermark = max(truth.watermark, at)
    return truth


def expected_gauges(
    truth: Truth,
    lateness_seconds: int = 3600,
    windows: Iterable[str] = ("30d", "90d", "lifetime"),
    lifetime_years: float = 3.0,
    min_tenure_days: int = 30,
) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every defined channel gauge, by (name, labels), as the README defines them."""
    today = max(truth.watermark - lateness_seconds, 0) // DAY
    gauges: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}

    def put(name: str, value: float, **labels: str) -> None:
        gauges[(name, frozenset(labels.items()))] = value

    for channel, days in truth.buckets.items():
        if not any(any(bucket) for bucket in days.values()):
            continue
        customers = sum(b[1] for b in days.values())
        profit = sum(b[2] for b in days.values()) / 100
        orders = sum(b[3] for b in days.values())
        exposure = sum(
            b[1] * min(max(today - day + 1, min_tenure_days), 365) / 365 for day, b in days.items()
        )
        trailing = [b for day, b in days.items() if day > today - 365]
        ltv: dict[str, float] = {}
        if customers > 0:
            ltv["historical"] = profit / customers
            if orders > 0:
                per_year = sum(b[3] for b in trailing) / exposure
                ltv["formula"] = profit / orders * per_year * lifetime_years
        for method, value in ltv.items():
            put("ltvcac_lifetime_value", value, channel=channel, method=method)
        monthly = sum(b[2] for b in trailing) / 100 / exposure / 12 if exposure > 0 else None
        for window in windows:
            length = WINDOW_DAYS[window]
            inside = [b for day, b in days.items() if length is None or day > today - length]
            spend = sum(b[0] for b in inside) / 100
            new = sum(b[1] for b in inside)
            put("ltvcac_spend", spend, channel=channel, window=window)
            put("ltvcac_new_customers", new, channel=channel, window=window)
            if new <= 0:
                continue
            cac = spend / new
            put("ltvcac_customer_acquisition_cost", cac, channel=channel, window=window)
            if monthly is not None and monthly > 0:
                put("ltvcac_payback_months", cac / monthly, channel=channel, window=window)
            if cac > 0:
                for method, value in ltv.items():
                    put(
                        "ltvcac_ltv_cac_ratio",
                        value / cac,
                        channel=channel,
                        window=window,
                        method=method,
                    )
    return gauges
