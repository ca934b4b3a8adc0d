"""A live shop's input for the latency benchmark: a steady mix of events at a fixed rate,
stamped with the wall-clock time they are due to be published, and the probe events
whose effect on one gauge is known in advance.

The background mix, per event: 72 % ad clicks (a few paid channels, a handful of
campaigns each), 26 % purchases (three in five by customers who bought before, the rest
by new customers, half of whom clicked an ad first so that their acquisition goes
through the visitor and attribution stages), 2 % ad spend of any category. Probe events
only ever touch channels named ``probe-*``, which the background never uses.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from aiokafka.partitioner import murmur2

from schemas.events import SCHEMA_VERSION
from schemas.topics import AD_CLICKS, AD_SPEND, PURCHASES, TopicContract
from stream.domain.ingest import Rejection, validate

CENT = Decimal("0.01")
PAID_CHANNELS = ("google", "meta", "tiktok", "bing", "affiliate")
CHANNEL_WEIGHTS = (40, 30, 15, 10, 5)
CAMPAIGNS_PER_CHANNEL = 4
SPEND_CATEGORIES = ("media", "media", "media", "salaries", "tools", "agency", "other")
CLICK_SHARE = 0.72
PURCHASE_SHARE = 0.26  # the rest is ad spend
REPEAT_SHARE = 0.6  # of purchases: by a customer who bought before
CLICKED_SHARE = 0.5  # of new customers: arrive with the visitor id of an earlier click
RECENT_VISITORS = 5_000  # clicked visitors a new customer's visitor id is drawn from


@dataclass(frozen=True)
class Outgoing:
    """One message to publish ``due`` seconds after the step starts."""

    due: float
    contract: TopicContract
    key: bytes
    value: bytes


def timestamp(at: dt.datetime) -> str:
    """RFC 3339 with milliseconds and ``Z``, as the contracts require."""
    return at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def encoded(contract: TopicContract, key: str, event: dict[str, Any], due: float) -> Outgoing:
    """The message, checked against its contract the way the worker will check it: an
    event the worker rejected would measure the dead-letter path instead."""
    key_bytes, value = key.encode(), json.dumps(event, separators=(",", ":")).encode()
    checked = validate(contract, key_bytes, value)
    if isinstance(checked, Rejection):
        raise ValueError(f"generated an invalid {event['type']}: {checked.reason} {checked.detail}")
    return Outgoing(due, contract, key_bytes, value)


def _base(kind: str, event_id: str, at: dt.datetime) -> dict[str, Any]:
    return {
        "type": kind,
        "event_id": event_id,
        "occurred_at": timestamp(at),
        "schema_version": SCHEMA_VERSION,
    }


def click(
    event_id: str, visitor: str, channel: str, campaign: str, cost: Decimal, at: dt.datetime
) -> dict[str, Any]:
    return {
        **_base("ad_click", event_id, at),
        "visitor_id": visitor,
        "channel": channel,
        "campaign": campaign,
        "cost": str(cost),
        "currency": "USD",
    }


def purchase(
    event_id: str,
    customer: str,
    order: str,
    amount: Decimal,
    at: dt.datetime,
    cost_of_goods: Decimal | None = None,
    visitor: str | None = None,
) -> dict[str, Any]:
    event = {
        **_base("purchase", event_id, at),
        "customer_id": customer,
        "order_id": order,
        "amount": str(amount),
        "currency": "USD",
    }
    if cost_of_goods is not None:
        event["cost_of_goods"] = str(cost_of_goods)
    if visitor is not None:
        event["visitor_id"] = visitor
    return event


def spend(
    event_id: str, channel: str, category: str, amount: Decimal, at: dt.datetime
) -> dict[str, Any]:
    day = at.astimezone(dt.UTC).date().isoformat()
    return {
        **_base("ad_spend", event_id, at),
        "channel": channel,
        "amount": str(amount),
        "currency": "USD",
        "category": category,
        "period_start": day,
        "period_end": day,
    }


def partition_of(key: str, partitions: int) -> int:
    """The partition Kafka's default partitioner (and Faust's) gives ``key``."""
    hashed: int = murmur2(key.encode())
    return (hashed & 0x7FFFFFFF) % partitions


def ids_in_partition(stem: str, count: int, partitions: int, partition: int = 0) -> list[str]:
    """``count`` ids ``stem-N`` that all hash to ``partition``: events keyed by them are
    read in the order they were published, at every stage."""
    found: list[str] = []
    number = 0
    while len(found) < count:
        candidate = f"{stem}-{number}"
        if partition_of(candidate, partitions) == partition:
            found.append(candidate)
        number += 1
    return found


@dataclass
class BackgroundMix:
    """Draws the background events; remembers customers and clicked visitors across
    steps, so later steps have repeat buyers from the earlier ones."""

    seed: int
    rng: random.Random = field(init=False)
    customers: list[str] = field(default_factory=list)
    visitors: list[str] = field(default_factory=list)
    serial: int = 0

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def events(self, rate: int, seconds: float, start: dt.datetime) -> Iterator[Outgoing]:
        """``rate`` x ``seconds`` events evenly spaced, stamped with their due time."""
        for index in range(round(rate * seconds)):
            due = index / rate
            yield self._next(due, start + dt.timedelta(seconds=due))

    def _id(self, kind: str) -> str:
        self.serial += 1
        return f"{kind}-{self.seed}-{self.serial:09d}"

    def _next(self, due: float, at: dt.datetime) -> Outgoing:
        draw = self.rng.random()
        if draw < CLICK_SHARE:
            return self._click(due, at)
        if draw < CLICK_SHARE + PURCHASE_SHARE:
            return self._purchase(due, at)
        return self._spend(due, at)

    def _click(self, due: float, at: dt.datetime) -> Outgoing:
        rng = self.rng
        visitor = self._id("v")
        self.visitors.append(visitor)
        del self.visitors[:-RECENT_VISITORS]
        channel = rng.choices(PAID_CHANNELS, CHANNEL_WEIGHTS)[0]
        campaign = f"{channel}-campaign-{rng.randrange(CAMPAIGNS_PER_CHANNEL)}"
        cost = Decimal(rng.uniform(0.2, 3.0)).quantize(CENT)
        event = click(self._id("e"), visitor, channel, campaign, cost, at)
        return encoded(AD_CLICKS, visitor, event, due)

    def _purchase(self, due: float, at: dt.datetime) -> Outgoing:
        rng = self.rng
        visitor = None
        if self.customers and rng.random() < REPEAT_SHARE:
            customer = rng.choice(self.customers)
        else:
            customer = self._id("c")
            self.customers.append(customer)
            if self.visitors and rng.random() < CLICKED_SHARE:
                # each clicked visitor becomes at most one customer
                visitor = self.visitors.pop(rng.randrange(len(self.visitors)))
        amount = max(Decimal(1), Decimal(rng.lognormvariate(math.log(60), 0.7))).quantize(CENT)
        goods = (amount * Decimal(rng.uniform(0.3, 0.8))).quantize(CENT)
        event = purchase(self._id("e"), customer, self._id("o"), amount, at, goods, visitor)
        return encoded(PURCHASES, customer, event, due)

    def _spend(self, due: float, at: dt.datetime) -> Outgoing:
        rng = self.rng
        channel = rng.choices(PAID_CHANNELS, CHANNEL_WEIGHTS)[0]
        amount = Decimal(rng.uniform(20, 500)).quantize(CENT)
        event = spend(self._id("e"), channel, rng.choice(SPEND_CATEGORIES), amount, at)
        return encoded(AD_SPEND, channel, event, due)
