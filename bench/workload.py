"""The benchmark workload: realistic purchase events, and publishing them with aiokafka.

About a quarter as many customers as events, with a long-tailed number of repeat
orders each; event time spread over ``span_days`` and published in event-time order,
as a live shop would produce them. About half the customers carry a visitor id that
has no clicks, so their acquisition goes the whole way through the visitor and
attribution stages and ends as ``direct``; the others are ``direct`` at once.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import math
import random
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from aiokafka import AIOKafkaProducer

from bench.common import StageResult
from schemas.events import SCHEMA_VERSION, Purchase

CENT = Decimal("0.01")
MEDIAN_ORDER_USD = 60.0


@dataclass(frozen=True)
class Workload:
    """Messages ready to send, in event-time order, and what they contain."""

    messages: list[tuple[bytes, bytes]]  # (key = customer_id, JSON value)
    customers: int
    customers_with_visitor: int
    span_days: int

    def describe(self) -> dict[str, Any]:
        return {
            "events": len(self.messages),
            "customers": self.customers,
            "customers_with_visitor": self.customers_with_visitor,
            "span_days": self.span_days,
            "mean_value_bytes": round(sum(len(v) for _, v in self.messages) / len(self.messages)),
        }


def generate(events: int, seed: int, span_days: int = 90) -> Workload:
    """``events`` purchases, deterministic for a given seed (apart from the end date)."""
    if events < 1:
        raise ValueError(f"events must be >= 1, got {events}")
    rng = random.Random(seed)
    end = dt.datetime.now(dt.UTC).replace(microsecond=0)
    start = end - dt.timedelta(days=span_days)
    counts = _orders_per_customer(rng, events, max(1, events // 4))
    rows: list[tuple[dt.datetime, dict[str, Any]]] = []
    with_visitor = 0
    for number, orders in enumerate(counts):
        customer_id = f"c-{number:07d}"
        visitor_id = f"v-{number:07d}" if rng.random() < 0.5 else None
        with_visitor += visitor_id is not None
        for at in _order_times(rng, orders, start, end):
            rows.append((at, _purchase(rng, customer_id, visitor_id, at)))
    rows.sort(key=lambda row: row[0])
    messages = []
    for index, (_, event) in enumerate(rows):
        event["order_id"] = f"o-{index:08d}"
        messages.append((event["customer_id"].encode(), _encode(event)))
    return Workload(messages, len(counts), with_visitor, span_days)


def _orders_per_customer(rng: random.Random, events: int, customers: int) -> list[int]:
    """One order each, the rest spread with a long tail (a few customers buy often)."""
    counts = [1] * customers
    weights = [rng.paretovariate(1.3) for _ in range(customers)]
    for index in rng.choices(range(customers), weights, k=events - customers):
        counts[index] += 1
    return counts


def _order_times(
    rng: random.Random, orders: int, start: dt.datetime, end: dt.datetime
) -> list[dt.datetime]:
    span = (end - start).total_seconds()
    first = rng.uniform(0, span)
    offsets = [first] + [rng.uniform(first, span) for _ in range(orders - 1)]
    return sorted(start + dt.timedelta(seconds=int(offset)) for offset in offsets)


def _purchase(
    rng: random.Random, customer_id: str, visitor_id: str | None, at: dt.datetime
) -> dict[str, Any]:
    amount = max(Decimal(1), Decimal(rng.lognormvariate(math.log(MEDIAN_ORDER_USD), 0.7)))
    amount = amount.quantize(CENT)
    event: dict[str, Any] = {
        "type": "purchase",
        "event_id": f"e-{rng.getrandbits(64):016x}",
        "occurred_at": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "schema_version": SCHEMA_VERSION,
        "customer_id": customer_id,
        "order_id": "",  # numbered once all events are in time order
        "amount": str(amount),
        "currency": "USD",
    }
    # Mix the three ways a shop states profit: cost of goods, a margin, or nothing.
    basis = rng.random()
    if basis < 0.4:
        event["cost_of_goods"] = str((amount * Decimal(rng.uniform(0.3, 0.8))).quantize(CENT))
    elif basis < 0.7:
        event["margin"] = str(Decimal(rng.uniform(0.15, 0.6)).quantize(CENT))
    if visitor_id is not None:
        event["visitor_id"] = visitor_id
    return event


def _encode(event: dict[str, Any]) -> bytes:
    value = json.dumps(event, separators=(",", ":")).encode()
    # A rejected event would measure the dead-letter path instead; fail here instead.
    Purchase.model_validate_json(value)
    return value


async def publish(
    bootstrap: str, topic: str, workload: Workload, linger_ms: int = 5
) -> StageResult:
    """Send every message with one producer; time from the first send to the last ack.

    Unbounded: callers put a deadline on it (``bench.common.run_async``).
    """
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=linger_ms)
    began = time.monotonic()
    try:  # start() inside: a deadline may cancel it halfway
        await producer.start()
        first = time.monotonic()
        await _send_all(producer, topic, workload.messages)
        seconds = time.monotonic() - first
    finally:
        await producer.stop()
    return StageResult(
        "publish (aiokafka producer)",
        len(workload.messages),
        seconds,
        first_after=first - began,
        details={"linger_ms": linger_ms, "acks": 1},
    )


async def _send_all(
    producer: AIOKafkaProducer, topic: str, messages: list[tuple[bytes, bytes]]
) -> None:
    # send() only waits when the producer's buffer is full, so this pipelines batches.
    acks = [await producer.send(topic, value=value, key=key) for key, value in messages]
    await asyncio.gather(*acks)
