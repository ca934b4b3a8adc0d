"""The benchmark workload: a shop's realistic event mix, and publishing it with aiokafka.

The mix of the source topics a shop publishes, by share of all events: ad clicks about
70%, purchases about 20% (refunds about 3% of the purchases among them), ad spend about
4% (per channel and campaign, daily periods), referrals about 3% and identify events
the rest. Visitors click on several channels; some convert, and their first purchase
carries the visitor id, so the conversion runs through the visitor and attribution
stages. Referred visitors buy with the referrer's code. Event time spans ``span_days``
ending now, and the messages are in event-time order, as a live shop would produce
them. Every event passes the worker's own contract check (schema, topic and key) here,
so the benchmark measures the pipeline, never the dead-letter path.
"""

from __future__ import annotations

import asyncio
import bisect
import datetime as dt
import json
import math
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from aiokafka import AIOKafkaProducer

from bench.common import BenchError, StageResult
from schemas.events import SCHEMA_VERSION
from schemas.topics import topic_for
from stream.domain.ingest import Rejection, validate

CENT = Decimal("0.01")
MINUTE, HOUR, DAY = 60, 3_600, 86_400
CURRENCY = "USD"
MEDIAN_ORDER_USD = 60.0

# Shares of all events; ad clicks get what is left (about 70%).
PURCHASE_SHARE = 0.20  # purchases and refunds together
REFUND_PER_PURCHASE = 0.03
SPEND_SHARE = 0.04
REFERRAL_SHARE = 0.03
IDENTIFY_SHARE = 0.03

CLICK_ACQUIRED = 0.6  # customers whose first purchase follows their clicks
REFERRAL_CONVERSION = 0.5  # referred visitors who buy
MAX_CLICK_TO_PURCHASE_DAYS = 20  # inside the worker's 30-day attribution lookback
FULL_REFUND = 0.4  # the rest are partial

# Paid channels: (name, share of clicks, mean cost per click). Not ``referral`` or
# ``direct``: the worker credits those itself (referral touches, no touches).
CHANNELS: tuple[tuple[str, float, float], ...] = (
    ("search", 0.35, 1.20),
    ("social", 0.25, 0.40),
    ("display", 0.20, 0.80),
    ("email", 0.10, 0.05),
    ("affiliate", 0.10, 0.90),
)
CAMPAIGNS = ("brand", "generic", "retarget")
OVERHEAD_CATEGORIES = ("agency", "tools", "salaries", "other")  # spend without a campaign


@dataclass(frozen=True)
class Message:
    """One message to publish: its topic, its contract key and its JSON value."""

    topic: str
    key: bytes
    value: bytes


@dataclass(frozen=True)
class Workload:
    """Messages ready to send, in event-time order, and what they contain."""

    messages: list[Message]
    people: dict[str, int]  # customers, visitors, ... (see ``_Shop.people``)
    span_days: int

    def per_topic(self) -> dict[str, int]:
        """Messages per source topic (logical name)."""
        return dict(sorted(Counter(m.topic for m in self.messages).items()))

    def per_type(self) -> dict[str, int]:
        """Events per event type."""
        types = Counter(json.loads(m.value)["type"] for m in self.messages)
        return dict(types.most_common())

    def describe(self) -> dict[str, Any]:
        return {
            "events": len(self.messages),
            "by_type": self.per_type(),
            "by_topic": self.per_topic(),
            **self.people,
            "span_days": self.span_days,
            "mean_value_bytes": round(
                sum(len(m.value) for m in self.messages) / len(self.messages)
            ),
        }


@dataclass(frozen=True)
class Budget:
    """How many events of each type a workload of ``events`` holds."""

    purchases: int
    refunds: int
    spend: int
    referrals: int
    identifies: int
    clicks: int

    @classmethod
    def of(cls, events: int) -> Budget:
        sales = round(events * PURCHASE_SHARE)
        purchases = max(1, round(sales / (1 + REFUND_PER_PURCHASE)))
        refunds = max(0, sales - purchases)
        spend = round(events * SPEND_SHARE)
        referrals = round(events * REFERRAL_SHARE)
        identifies = round(events * IDENTIFY_SHARE)
        clicks = events - purchases - refunds - spend - referrals - identifies
        if clicks < 1:
            raise ValueError(f"{events} events are too few for the mix; use at least 10")
        return cls(purchases, refunds, spend, referrals, identifies, clicks)


@dataclass
class _Customer:
    customer_id: str
    first_at: int  # epoch seconds of the first purchase (the acquisition)
    visitor_id: str | None = None  # the visitor the first purchase names
    referral_code: str | None = None
    identified: bool = False


@dataclass
class _Shop:
    """Builds the events; everything random comes from one seeded RNG."""

    rng: random.Random
    start: int
    end: int
    rows: list[tuple[int, int, dict[str, Any]]] = field(default_factory=list)
    visitors: int = 0
    counters: Counter[str] = field(default_factory=Counter)

    def new_id(self, kind: str) -> str:
        self.counters[kind] += 1
        return f"{kind}-{self.counters[kind]:08d}"

    def new_visitor(self) -> str:
        self.visitors += 1
        return self.new_id("v")

    def add(self, event_type: str, at: int, **fields: Any) -> dict[str, Any]:
        event = {
            "type": event_type,
            "event_id": self.new_id("e"),
            "occurred_at": _timestamp(at),
            "schema_version": SCHEMA_VERSION,
            **fields,
        }
        self.rows.append((at, len(self.rows), event))  # ties keep the order of creation
        return event

    def uniform_time(self, low: int, high: int) -> int:
        return self.rng.randint(low, max(low, high))


def generate(events: int, customers: int, seed: int, span_days: int = 90) -> Workload:
    """About ``events`` events of ``customers`` customers (fewer customers if there are
    fewer purchases), deterministic for a given seed apart from the end date."""
    if events < 1 or customers < 1:
        raise ValueError(f"events and customers must be >= 1, got {events} and {customers}")
    budget = Budget.of(events)
    end = int(dt.datetime.now(dt.UTC).timestamp())
    shop = _Shop(random.Random(seed), end - span_days * DAY, end)
    people = _customers(shop, budget, min(customers, budget.purchases))
    _repeat_orders(shop, people, budget.purchases - len(people))
    _refunds(shop, budget.refunds)
    bouncing = _non_converting_clicks(shop, budget.clicks - shop.counters["ad_click"])
    _identifies(shop, people, budget.identifies)
    _spend(shop, budget.spend)
    return Workload(
        _messages(shop.rows),
        {
            "customers": len(people),
            "customers_from_clicks": sum(c.visitor_id is not None for c in people)
            - sum(c.referral_code is not None for c in people),
            "customers_referred": sum(c.referral_code is not None for c in people),
            "visitors": shop.visitors,
            "visitors_not_converting": bouncing,
        },
        span_days,
    )


def _customers(shop: _Shop, budget: Budget, count: int) -> list[_Customer]:
    """Every customer with a first purchase: referred ones, click-acquired ones (whose
    clicks come first), the rest direct; plus the referrals that did not convert."""
    referred = min(round(budget.referrals * REFERRAL_CONVERSION), count // 5)
    from_clicks = min(round((count - referred) * CLICK_ACQUIRED), budget.clicks)
    people = []
    for number in range(count - referred):
        first_at = shop.uniform_time(shop.start + DAY, shop.end - HOUR)
        customer = _Customer(f"c-{number:07d}", first_at)
        if number < from_clicks:
            customer.visitor_id = shop.new_visitor()
            _clicks_before(shop, customer.visitor_id, first_at)
        people.append(customer)
    people.extend(_referrals(shop, people, budget.referrals, referred))
    for customer in people:
        _purchase(shop, customer, customer.first_at, first=True)
    return people


def _clicks_before(shop: _Shop, visitor_id: str, first_at: int) -> None:
    """One to five clicks, often on several channels, in the days before buying."""
    earliest = max(shop.start, first_at - MAX_CLICK_TO_PURCHASE_DAYS * DAY)
    for _ in range(1 + min(4, int(shop.rng.expovariate(0.7)))):
        _click(shop, visitor_id, shop.uniform_time(earliest, first_at - 10 * MINUTE))


def _non_converting_clicks(shop: _Shop, clicks: int) -> int:
    """Visitors who click once or a few times within a few days and never buy."""
    visitors = 0
    while clicks > 0:
        visitor_id, visitors = shop.new_visitor(), visitors + 1
        first = shop.uniform_time(shop.start, shop.end)
        for _ in range(min(clicks, 1 + int(shop.rng.expovariate(0.9)))):
            _click(shop, visitor_id, shop.uniform_time(first, min(shop.end, first + 3 * DAY)))
            clicks -= 1
    return visitors


def _click(shop: _Shop, visitor_id: str, at: int) -> None:
    names, shares, costs = zip(*CHANNELS, strict=True)
    index = shop.rng.choices(range(len(names)), shares)[0]
    cost = (Decimal(costs[index]) * Decimal(shop.rng.uniform(0.5, 1.5))).quantize(CENT)
    campaign = f"{names[index]}-{shop.rng.choice(CAMPAIGNS)}"
    shop.counters["ad_click"] += 1
    shop.add(
        "ad_click",
        at,
        visitor_id=visitor_id,
        channel=names[index],
        campaign=campaign,
        cost=str(cost),
        currency=CURRENCY,
    )


def _referrals(
    shop: _Shop, referrers: list[_Customer], referrals: int, converting: int
) -> list[_Customer]:
    """``referrals`` referrals by customers who bought before; the first ``converting``
    referred visitors buy later with the referrer's code."""
    if not referrers:
        return []
    by_first = sorted(referrers, key=lambda c: c.first_at)
    firsts = [c.first_at for c in by_first]
    referred = []
    for number in range(referrals):
        at = shop.uniform_time(firsts[0] + HOUR, shop.end - 2 * HOUR)
        # Anyone who had bought an hour before can refer.
        referrer = by_first[shop.rng.randrange(max(1, bisect.bisect(firsts, at - HOUR)))]
        visitor_id = shop.new_visitor()
        reward = Decimal(shop.rng.choice(("5.00", "10.00", "15.00")))
        shop.add(
            "referral",
            at,
            referrer_customer_id=referrer.customer_id,
            referred_visitor_id=visitor_id,
            reward_cost=str(reward),
            currency=CURRENCY,
        )
        if number < converting:
            delay = HOUR + int(shop.rng.expovariate(1 / (2 * DAY)))
            customer = _Customer(f"c-r{number:06d}", min(shop.end - MINUTE, at + delay))
            customer.visitor_id = visitor_id
            customer.referral_code = f"ref-{referrer.customer_id}"
            referred.append(customer)
    return referred


def _repeat_orders(shop: _Shop, people: list[_Customer], orders: int) -> None:
    """The remaining orders, spread with a long tail (a few customers buy often)."""
    if not people or orders <= 0:
        return
    weights = [shop.rng.paretovariate(1.3) for _ in people]
    for customer in shop.rng.choices(people, weights, k=orders):
        _purchase(shop, customer, shop.uniform_time(customer.first_at + MINUTE, shop.end))


def _purchase(shop: _Shop, customer: _Customer, at: int, first: bool = False) -> None:
    amount = max(Decimal(1), Decimal(shop.rng.lognormvariate(math.log(MEDIAN_ORDER_USD), 0.7)))
    amount = amount.quantize(CENT)
    fields: dict[str, Any] = {
        "customer_id": customer.customer_id,
        "order_id": shop.new_id("o"),
        "amount": str(amount),
        "currency": CURRENCY,
    }
    # Mix the three ways a shop states profit: cost of goods, a margin, or nothing.
    basis = shop.rng.random()
    if basis < 0.4:
        fields["cost_of_goods"] = str((amount * Decimal(shop.rng.uniform(0.3, 0.8))).quantize(CENT))
    elif basis < 0.7:
        fields["margin"] = str(Decimal(shop.rng.uniform(0.15, 0.6)).quantize(CENT))
    if first and customer.visitor_id is not None:
        fields["visitor_id"] = customer.visitor_id
    if first and customer.referral_code is not None:
        fields["referral_code"] = customer.referral_code
    shop.add("purchase", at, **fields)


def _refunds(shop: _Shop, refunds: int) -> None:
    """At most one refund per order, one to fourteen days after it (none after now)."""
    orders = [(at, event) for at, _, event in shop.rows if event["type"] == "purchase"]
    candidates = [(at, event) for at, event in orders if at + DAY < shop.end]
    for at, order in shop.rng.sample(candidates, min(refunds, len(candidates))):
        amount = Decimal(order["amount"])
        if shop.rng.random() >= FULL_REFUND:
            amount = max(CENT, (amount * Decimal(shop.rng.uniform(0.1, 0.6))).quantize(CENT))
        shop.add(
            "refund",
            shop.uniform_time(at + DAY, min(shop.end, at + 14 * DAY)),
            customer_id=order["customer_id"],
            order_id=order["order_id"],
            amount=str(amount),
            currency=CURRENCY,
        )


def _identifies(shop: _Shop, people: list[_Customer], identifies: int) -> None:
    """Sign-ups just before a converting visitor's first purchase, and log-ins of
    customers from a new device (a new visitor) some time after their first purchase."""
    for _ in range(identifies if people else 0):
        customer = shop.rng.choice(people)
        if customer.visitor_id is not None and not customer.identified:
            customer.identified = True
            visitor_id = customer.visitor_id
            at = max(shop.start, customer.first_at - shop.rng.randint(MINUTE, 30 * MINUTE))
        else:
            visitor_id = shop.new_visitor()
            at = shop.uniform_time(customer.first_at, shop.end)
        shop.add("identify", at, visitor_id=visitor_id, customer_id=customer.customer_id)


def _spend(shop: _Shop, spend: int) -> None:
    """Daily invoices, sent early the next day: media spend per channel and campaign,
    overheads per channel. More invoices than (day, channel, line) cells: several
    invoices for the same cell (several ad networks or suppliers)."""
    days = [d for d in range(shop.start // DAY, shop.end // DAY) if (d + 1) * DAY + HOUR < shop.end]
    cells = [
        (day, channel, line)
        for day in days
        for channel, _, _ in CHANNELS
        for line in (*CAMPAIGNS, None)
    ]
    if not cells:
        return
    chosen = cells * (spend // len(cells)) + shop.rng.sample(cells, spend % len(cells))
    for day, channel, line in chosen:
        period = dt.date.fromordinal(dt.date(1970, 1, 1).toordinal() + day).isoformat()
        fields: dict[str, Any] = {"category": shop.rng.choice(OVERHEAD_CATEGORIES)}
        if line is not None:
            fields = {"category": "media", "campaign": f"{channel}-{line}"}
        amount = Decimal(shop.rng.uniform(5, 120)).quantize(CENT)
        invoiced = (day + 1) * DAY + shop.rng.randint(MINUTE, HOUR)
        shop.add(
            "ad_spend",
            invoiced,
            channel=channel,
            amount=str(amount),
            currency=CURRENCY,
            period_start=period,
            period_end=period,
            **fields,
        )


def _messages(rows: list[tuple[int, int, dict[str, Any]]]) -> list[Message]:
    """The events in event-time order, each encoded and keyed as its topic's contract says."""
    return [_encode(event) for _, _, event in sorted(rows, key=lambda row: row[:2])]


def _encode(event: dict[str, Any]) -> Message:
    contract = topic_for(event["type"])
    key = str(event[contract.event_keys[event["type"]]]).encode()
    value = json.dumps(event, separators=(",", ":")).encode()
    # A rejected event would measure the dead-letter path instead; fail here instead.
    checked = validate(contract, key, value)
    if isinstance(checked, Rejection):
        raise BenchError(f"workload bug: {checked.reason}: {checked.detail}: {value!r}")
    return Message(contract.name, key, value)


def _timestamp(at: int) -> str:
    return dt.datetime.fromtimestamp(at, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def publish(
    bootstrap: str, prefix: str, workload: Workload, linger_ms: int = 5
) -> StageResult:
    """Send every message with one producer to ``prefix`` + its topic; time from the first
    send to the last ack.

    Unbounded: callers put a deadline on it (``bench.common.run_async``).
    """
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=linger_ms)
    began = time.monotonic()
    try:  # start() inside: a deadline may cancel it halfway
        await producer.start()
        first = time.monotonic()
        await _send_all(producer, prefix, workload.messages)
        seconds = time.monotonic() - first
    finally:
        await producer.stop()
    return StageResult(
        "publish (aiokafka producer)",
        len(workload.messages),
        seconds,
        first_after=first - began,
        details={"linger_ms": linger_ms, "acks": 1, "topics": workload.per_topic()},
    )


async def _send_all(producer: AIOKafkaProducer, prefix: str, messages: list[Message]) -> None:
    # send() only waits when the producer's buffer is full, so this pipelines batches.
    acks = [
        await producer.send(prefix + message.topic, value=message.value, key=message.key)
        for message in messages
    ]
    await asyncio.gather(*acks)
