"""The demo shop's traffic: valid events on the right topics, and the intended economics.

The economics are recomputed here from the raw events with a deliberately simple
reference (last touch, gross profit from cost of goods or margin), independent of
``stream.domain``.
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import json
from collections import Counter, defaultdict
from decimal import Decimal

import pytest

from schemas.events import parse_event
from schemas.topics import topic_for
from stream.demo import DemoEvent, demo_events, render_table

SEED = 11
START = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
DAYS = 180
DAY = 86_400
LOOKBACK_DAYS = 30
DEFAULT_MARGIN = Decimal("0.30")  # the worker's default, for purchases without a basis


@functools.cache
def shop(seed: int = SEED) -> tuple[DemoEvent, ...]:
    return tuple(demo_events(seed, START, DAYS))


def at(event: dict[str, object]) -> dt.datetime:
    return dt.datetime.fromisoformat(str(event["occurred_at"]))


def of_type(kind: str, seed: int = SEED) -> list[dict[str, object]]:
    return [event for _, _, event in shop(seed) if event["type"] == kind]


def test_every_event_is_valid_and_keyed_by_its_contract() -> None:
    assert len(shop()) > 5_000
    for topic, key, event in shop():
        parsed = parse_event(json.dumps(event).encode())
        contract = topic_for(parsed.type)
        assert topic == contract.name
        assert key == getattr(parsed, contract.event_keys[parsed.type])


def test_events_follow_the_wire_conventions() -> None:
    money_fields = ("amount", "cost", "cost_of_goods", "reward_cost")
    for _, _, event in shop():
        assert event["schema_version"] == 1
        assert str(event["occurred_at"]).endswith("Z")
        for name in money_fields:
            if name in event:
                whole, _, cents = str(event[name]).partition(".")
                assert whole.isdigit() and len(cents) == 2, event
        if "currency" in event:
            assert event["currency"] == "USD"


def test_event_ids_are_unique() -> None:
    ids = [event["event_id"] for _, _, event in shop()]
    assert len(ids) == len(set(ids))


def test_event_time_never_goes_back_and_stays_in_the_simulated_days() -> None:
    times = [at(event) for _, _, event in shop()]
    assert times == sorted(times)
    assert times[0] >= START and times[-1] < START + dt.timedelta(days=DAYS)


def test_the_same_seed_gives_the_same_events_and_another_seed_others() -> None:
    again = list(demo_events(SEED, START, DAYS))
    assert again == list(shop())
    other = list(itertools.islice(demo_events(SEED + 1, START, DAYS), 50))
    assert other != list(shop()[:50])


def test_the_generator_is_lazy_and_a_naive_start_is_utc() -> None:
    first = list(itertools.islice(demo_events(SEED, START, 100 * 365), 10))
    assert first == list(shop()[:10])
    naive = list(itertools.islice(demo_events(SEED, START.replace(tzinfo=None), DAYS), 10))
    assert naive == first
    assert list(demo_events(SEED, START, 0)) == []


def test_refunds_are_for_an_order_of_the_same_customer_and_never_exceed_it() -> None:
    orders: dict[str, tuple[str, Decimal, str]] = {}
    refunded: defaultdict[str, Decimal] = defaultdict(Decimal)
    for _, _, event in shop():
        if event["type"] == "purchase":
            orders[str(event["order_id"])] = (
                str(event["customer_id"]),
                Decimal(str(event["amount"])),
                str(event["currency"]),
            )
        elif event["type"] == "refund":
            order_id = str(event["order_id"])
            assert order_id in orders, "refund before its order"
            customer, amount, currency = orders[order_id]
            assert event["customer_id"] == customer
            assert event["currency"] == currency
            refunded[order_id] += Decimal(str(event["amount"]))
            assert refunded[order_id] <= amount
    share = len(of_type("refund")) / len(of_type("purchase"))
    assert 0.02 < share < 0.09
    full = sum(1 for order_id, total in refunded.items() if total == orders[order_id][1])
    assert 0 < full < len(refunded), "both full and partial refunds"


def test_the_shop_has_every_kind_of_traffic() -> None:
    clicks = Counter(str(event["channel"]) for event in of_type("ad_click"))
    assert {"search", "social", "display"} <= set(clicks)
    purchases = of_type("purchase")
    assert any("visitor_id" not in p for p in purchases), "organic customers"
    assert any("cost_of_goods" in p for p in purchases)
    assert any("margin" in p for p in purchases)
    assert any("cost_of_goods" not in p and "margin" not in p for p in purchases)
    referred = {str(r["referred_visitor_id"]) for r in of_type("referral")}
    assert any(p.get("visitor_id") in referred for p in purchases)
    agency = [s for s in of_type("ad_spend") if s["category"] == "agency"]
    assert agency and all(s["channel"] == "search" for s in agency)
    for spend in of_type("ad_spend"):
        first = dt.date.fromisoformat(str(spend["period_start"]))
        last = dt.date.fromisoformat(str(spend["period_end"]))
        assert first <= last < at(spend).date(), "invoiced after the period"


def test_customers_come_back_on_later_days() -> None:
    days_by_customer: defaultdict[str, list[dt.date]] = defaultdict(list)
    for purchase in of_type("purchase"):
        days_by_customer[str(purchase["customer_id"])].append(at(purchase).date())
    repeaters = [days for days in days_by_customer.values() if len(days) > 1]
    assert len(repeaters) > len(days_by_customer) / 5
    assert all(a < b for days in repeaters for a, b in itertools.pairwise(days))


def test_visitors_touch_before_they_buy_and_only_the_first_order_names_them() -> None:
    touched: dict[str, dt.datetime] = {}
    seen_customers: set[str] = set()
    for _, _, event in shop():
        if event["type"] == "ad_click":
            touched.setdefault(str(event["visitor_id"]), at(event))
        elif event["type"] == "referral":
            touched.setdefault(str(event["referred_visitor_id"]), at(event))
        elif event["type"] == "purchase":
            customer = str(event["customer_id"])
            if "visitor_id" in event:
                assert customer not in seen_customers
                first_touch = touched[str(event["visitor_id"])]
                assert first_touch < at(event) <= first_touch + dt.timedelta(days=LOOKBACK_DAYS)
            seen_customers.add(customer)


def economics(seed: int) -> dict[str, tuple[float, float]]:
    """Per channel: (lifetime LTV:CAC, historical LTV / CAC of the last 90 days).

    A customer belongs to the channel of the last touch of the visitor named on the
    first purchase (``direct`` without one); spend = click costs + referral rewards
    + spend events; LTV = gross profit net of refunds per customer.
    """
    end = START + dt.timedelta(days=DAYS)
    recent = end - dt.timedelta(days=90)
    last_touch: dict[str, str] = {}
    spend: defaultdict[str, Decimal] = defaultdict(Decimal)
    recent_spend: defaultdict[str, Decimal] = defaultdict(Decimal)
    channel_of: dict[str, str] = {}
    acquired_at: dict[str, dt.datetime] = {}
    orders: dict[str, tuple[str, Decimal, Decimal]] = {}
    profit: defaultdict[str, Decimal] = defaultdict(Decimal)
    for _, _, event in shop(seed):
        kind, when = event["type"], at(event)
        if kind in ("ad_click", "referral"):
            is_click = kind == "ad_click"
            visitor = str(event["visitor_id" if is_click else "referred_visitor_id"])
            channel = str(event["channel"]) if is_click else "referral"
            cost = Decimal(str(event["cost" if is_click else "reward_cost"]))
            last_touch[visitor] = channel
            spend[channel] += cost
            recent_spend[channel] += cost if when >= recent else 0
        elif kind == "ad_spend":
            amount = Decimal(str(event["amount"]))
            first = dt.date.fromisoformat(str(event["period_start"]))
            last = dt.date.fromisoformat(str(event["period_end"]))
            days = [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
            spend[str(event["channel"])] += amount
            inside = sum(1 for day in days if day >= recent.date())
            recent_spend[str(event["channel"])] += amount * inside / len(days)
        elif kind == "purchase":
            customer = str(event["customer_id"])
            if customer not in channel_of:
                visitor = event.get("visitor_id")
                channel_of[customer] = last_touch.get(str(visitor), "direct")
                acquired_at[customer] = when
            amount = Decimal(str(event["amount"]))
            if "cost_of_goods" in event:
                gross = amount - Decimal(str(event["cost_of_goods"]))
            else:
                gross = amount * Decimal(str(event.get("margin", DEFAULT_MARGIN)))
            orders[str(event["order_id"])] = (customer, amount, gross)
            profit[customer] += gross
        elif kind == "refund":
            customer, amount, gross = orders[str(event["order_id"])]
            profit[customer] -= gross * Decimal(str(event["amount"])) / amount
    result = {}
    for channel in ("search", "display", "social", "referral"):
        customers = [c for c, ch in channel_of.items() if ch == channel]
        recent_customers = [c for c in customers if acquired_at[c] >= recent]
        ltv = sum(profit[c] for c in customers) / len(customers)
        lifetime_cac = spend[channel] / len(customers)
        recent_cac = recent_spend[channel] / len(recent_customers)
        result[channel] = (float(ltv / lifetime_cac), float(ltv / recent_cac))
    return result


@pytest.mark.parametrize("seed", [SEED, 7, 2024])
def test_search_pays_back_well_above_three_to_one_and_social_does_not(seed: int) -> None:
    ratios = economics(seed)
    for lifetime, last_90_days in (ratios["search"], ratios["social"], ratios["display"]):
        assert lifetime > 0 and last_90_days > 0
    assert ratios["search"][0] > 4 and ratios["search"][1] > 4
    assert ratios["social"][0] < 1 and ratios["social"][1] < 1
    assert ratios["social"][1] < ratios["display"][1] < 3 < ratios["search"][1]


def test_the_live_table_shows_the_primary_model_absent_figures_as_a_dash_and_all_last() -> None:
    def labels(**values: str) -> frozenset[tuple[str, str]]:
        return frozenset(values.items())

    search = {"channel": "search", "window": "90d"}
    samples = {
        ("ltvcac_attribution_model_info", labels(model="linear")): 1.0,
        ("ltvcac_spend", labels(channel="all", window="90d")): 120.0,
        ("ltvcac_spend", labels(channel="paid", window="90d")): 120.0,
        ("ltvcac_spend", labels(**search)): 120.0,
        ("ltvcac_spend", labels(channel="direct", window="90d")): 0.0,
        ("ltvcac_new_customers", labels(**search, model="linear")): 4.0,
        ("ltvcac_new_customers", labels(**search, model="last_touch")): 3.0,
        ("ltvcac_customer_acquisition_cost", labels(**search, model="linear", cost="media")): 9.0,
        (
            "ltvcac_customer_acquisition_cost",
            labels(**search, model="linear", cost="fully_loaded"),
        ): 30.0,
        (
            "ltvcac_lifetime_value",
            labels(channel="search", model="linear", method="historical"),
        ): 99.5,
        (
            "ltvcac_lifetime_value",
            labels(channel="search", model="linear", method="predictive"),
        ): 150.25,
        ("ltvcac_ltv_cac_ratio", labels(**search, model="linear", method="historical")): 3.3,
        ("ltvcac_payback_months", labels(**search, model="linear", basis="cohort")): 2.4,
        ("ltvcac_payback_months", labels(**search, model="last_touch", basis="rate")): 7.0,
    }
    header, direct, search_row, paid, blended = render_table(samples)
    assert "LTV:CAC 90d" in header
    assert direct.split()[0] == "direct" and "—" in direct.split()
    assert search_row.split() == [
        "search",
        "120.00",
        "4",
        "30.00",
        "99.50",
        "150.25",
        "3.30",
        "2.4",
    ]
    assert paid.split()[0] == "paid"
    assert blended.split()[0] == "all"
