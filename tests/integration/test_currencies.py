"""Amounts in other currencies reach the gauges converted, with rates from the rates file
and the fx-rates topic; amounts without a rate on their day are dead letters."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from stream.devstack import StackEndpoints
from stream.worker_process import label_set
from tests.integration.conftest import Deployment, encode, wait_until
from tests.integration.events import Message, event, wire

pytestmark = pytest.mark.integration

# In the file: EUR 1.10 USD from 1 March 2026, 1.20 from 10 March.
RATES_FILE = "date,currency,rate\n2026-03-01,EUR,1.10\n2026-03-10,EUR,1.20\n"


def fx_rate(event_id: str, currency: str, rate: str, effective: str) -> Message:
    at = "2026-03-01T00:00:00Z"
    body = event("fx_rate", event_id, at, currency=currency, rate=rate, effective_date=effective)
    return ("fx-rates", currency, body)


def purchase(
    event_id: str, at: str, customer: str, amount: str, currency: str, **extra: str
) -> Message:
    body = event(
        "purchase",
        event_id,
        at,
        customer_id=customer,
        order_id=f"o-{event_id}",
        amount=amount,
        currency=currency,
        **extra,
    )
    return ("purchases", customer, body)


def refund(event_id: str, at: str, customer: str, order: str, amount: str) -> Message:
    body = event(
        "refund", event_id, at, customer_id=customer, order_id=order, amount=amount, currency="EUR"
    )
    return ("purchases", customer, body)


def click(event_id: str, at: str, visitor: str, channel: str, cost: str, currency: str) -> Message:
    body = event(
        "ad_click", event_id, at, visitor_id=visitor, channel=channel, cost=cost, currency=currency
    )
    return ("ad-clicks", visitor, body)


def spend(event_id: str, at: str, amount: str, currency: str, day: str) -> Message:
    body = event(
        "ad_spend",
        event_id,
        at,
        channel="search",
        amount=amount,
        currency=currency,
        category="media",
        period_start=day,
        period_end=day,
    )
    return ("ad-spend", "search", body)


def referral(event_id: str, at: str, visitor: str, reward: str, currency: str) -> Message:
    body = event(
        "referral",
        event_id,
        at,
        referrer_customer_id="c9",
        referred_visitor_id=visitor,
        reward_cost=reward,
        currency=currency,
    )
    return ("referrals", visitor, body)


# On the topic: GBP from 1 March; EUR 1.15 from 10 March (the topic wins for that date);
# and a rate for the reporting currency, which is bad input.
RATES = [
    fx_rate("r1", "GBP", "1.25", "2026-03-01"),
    fx_rate("r2", "EUR", "1.15", "2026-03-10"),
    fx_rate("r3", "USD", "1", "2026-03-10"),
]
EVENTS = [
    # 100.00 EUR on 5 March at the file's 1.10: 110.00 USD
    spend("s1", "2026-03-05T09:00:00Z", "100.00", "EUR", "2026-03-05"),
    # 2.00 GBP at the topic's 1.25: 2.50 USD
    click("k1", "2026-03-05T10:00:00Z", "v1", "search", "2.00", "GBP"),
    # 23:30 at UTC-1 on 28 February is 1 March in UTC: 5.00 GBP x 1.25 = 6.25 USD
    referral("f1", "2026-02-28T23:30:00-01:00", "v3", "5.00", "GBP"),
    # on 12 March EUR is 1.15 (topic), not 1.20 (file): 230.00 USD, cost 92.00, profit 138.00
    purchase(
        "p1", "2026-03-12T10:00:00Z", "c1", "200.00", "EUR", cost_of_goods="80.00", visitor_id="v1"
    ),
    # a quarter of it back: revenue -57.50, profit -34.50
    refund("rf1", "2026-03-12T11:00:00Z", "c1", "o-p1", "50.00"),
    purchase("p3", "2026-03-12T10:00:00Z", "c3", "10.00", "USD"),
]
UNCONVERTIBLE = [
    (
        purchase("p2", "2026-03-12T10:00:00Z", "c2", "1000", "JPY"),
        "unknown_currency",
        "no rate at all for currency JPY into USD (event date 2026-03-12)",
    ),
    (
        click("k2", "2026-03-05T10:00:00Z", "v2", "social", "1.00", "CHF"),
        "unknown_currency",
        "no rate at all for currency CHF into USD (event date 2026-03-05)",
    ),
    (
        spend("s2", "2026-02-20T12:00:00Z", "50.00", "EUR", "2026-02-20"),
        "missing_rate",
        "no EUR rate in force on 2026-02-20: its first rate is from 2026-03-01",
    ),
    (  # 00:30 at UTC+1 on 1 March is still 28 February in UTC
        referral("f2", "2026-03-01T00:30:00+01:00", "v4", "5.00", "GBP"),
        "missing_rate",
        "no GBP rate in force on 2026-02-28: its first rate is from 2026-03-01",
    ),
]


@pytest.fixture
async def worker(stack: StackEndpoints, tmp_path: Path) -> AsyncIterator[Deployment]:
    rates = tmp_path / "rates.csv"
    rates.write_text(RATES_FILE)
    # the events span six weeks and arrive out of order: none is too late here
    env = {"LTVCAC_FX_RATES_FILE": str(rates), "LTVCAC_ALLOWED_LATENESS_SECONDS": "5184000"}
    deployed = Deployment(stack, tmp_path, env)
    await asyncio.to_thread(deployed.worker.start)
    try:
        yield deployed
    finally:
        await asyncio.to_thread(deployed.cleanup)


def counts(deployment: Deployment, name: str, label: str) -> dict[str, int]:
    return {dict(labels)[label]: int(v) for labels, v in deployment.gauges(name).items()}


async def test_amounts_are_converted_at_the_rate_of_their_day(worker: Deployment) -> None:
    await worker.publish(wire(RATES))

    def rates_read() -> bool:
        events = worker.gauges("ltvcac_events_total")
        return (
            events.get(label_set(topic="fx-rates", outcome="applied")) == 2
            and events.get(label_set(topic="fx-rates", outcome="rejected")) == 1
        )

    await wait_until(rates_read, what="the rates of the topic")  # before the events need them
    await worker.publish(wire(EVENTS + [message for message, _, _ in UNCONVERTIBLE]))

    def spend(channel: str) -> float | None:
        return worker.gauges("ltvcac_spend").get(label_set(channel=channel, window="lifetime"))

    def ltv(channel: str) -> float | None:
        values = worker.gauges("ltvcac_lifetime_value")
        return values.get(label_set(channel=channel, model="last_touch", method="historical"))

    def settled() -> bool:
        letters = counts(worker, "ltvcac_dead_letters_total", "reason")
        return (
            spend("all") == pytest.approx(118.75)
            and ltv("all") == pytest.approx(53.25)
            and letters.get("unknown_currency") == 2
            and letters.get("missing_rate") == 2
        )

    await wait_until(settled, timeout=30, what="every event converted or dead-lettered")
    assert spend("search") == pytest.approx(110.00 + 2.50)
    assert spend("referral") == pytest.approx(6.25)
    assert spend("social") is None  # its only click had no rate
    # c1: 230.00 - 57.50 revenue, 138.00 - 34.50 profit, acquired through v1's click
    assert ltv("search") == pytest.approx(103.50)
    assert ltv("direct") == pytest.approx(3.00)  # c3: 10.00 USD at the default 30%
    assert counts(worker, "ltvcac_dead_letters_total", "reason") == {
        "unknown_currency": 2,
        "missing_rate": 2,
        "invalid_event": 1,
    }
    letters = await worker.read_topic("dead-letters", 5, timeout=10)
    by_key = {letter.key.decode(): json.loads(letter.value) for letter in letters}
    for (topic, key, body), reason, detail in UNCONVERTIBLE:
        assert by_key[key]["reason"] == reason
        assert by_key[key]["detail"] == detail
        assert (by_key[key]["topic"], by_key[key]["value_text"]) == (topic, encode(body).decode())
    assert by_key["USD"]["detail"] == (
        "currency: USD is the reporting currency; it always converts at 1"
    )

    expected_c1 = {"revenue": "172.50", "gross_profit": "103.50", "orders": "1", "refunds": "1"}

    def projected() -> bool:
        customer = worker.redis_hash("customer:c1")
        return {name: customer.get(name) for name in expected_c1} == expected_c1

    await wait_until(projected, timeout=10, what="c1 in Redis")
