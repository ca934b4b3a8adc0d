"""Source events as a shop publishes them: (topic, key, JSON body) and their bytes."""

from __future__ import annotations

from typing import Any

from tests.integration.conftest import encode

Message = tuple[str, str, dict[str, Any]]


def event(kind: str, event_id: str, at: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "event_id": event_id, "occurred_at": at, "schema_version": 1, **fields}


def click(event_id: str, at: str, visitor: str, channel: str, cost: str, **extra: Any) -> Message:
    body = event(
        "ad_click",
        event_id,
        at,
        visitor_id=visitor,
        channel=channel,
        cost=cost,
        currency="USD",
        **extra,
    )
    return ("ad-clicks", visitor, body)


def purchase(
    event_id: str, at: str, customer: str, order: str, amount: str, **extra: Any
) -> Message:
    body = event(
        "purchase",
        event_id,
        at,
        customer_id=customer,
        order_id=order,
        amount=amount,
        currency="USD",
        **extra,
    )
    return ("purchases", customer, body)


def refund(event_id: str, at: str, customer: str, order: str, amount: str) -> Message:
    body = event(
        "refund", event_id, at, customer_id=customer, order_id=order, amount=amount, currency="USD"
    )
    return ("purchases", customer, body)


def spend(
    event_id: str, at: str, channel: str, amount: str, category: str, start: str, end: str
) -> Message:
    body = event(
        "ad_spend",
        event_id,
        at,
        channel=channel,
        amount=amount,
        currency="USD",
        category=category,
        period_start=start,
        period_end=end,
    )
    return ("ad-spend", channel, body)


def referral(event_id: str, at: str, referrer: str, visitor: str, reward: str) -> Message:
    body = event(
        "referral",
        event_id,
        at,
        referrer_customer_id=referrer,
        referred_visitor_id=visitor,
        reward_cost=reward,
        currency="USD",
    )
    return ("referrals", visitor, body)


def wire(batch: list[Message]) -> list[tuple[str, str | None, bytes]]:
    """The messages as a Kafka client sends them."""
    return [(topic, key, encode(body)) for topic, key, body in batch]
