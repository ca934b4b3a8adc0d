"""Topic names and message keys: part of the contract with producers."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TopicContract:
    """A source topic, the event types it carries and the field its key must equal."""

    name: str
    event_keys: dict[str, str]  # event type -> field whose value is the message key


PURCHASES = TopicContract("purchases", {"purchase": "customer_id", "refund": "customer_id"})
AD_CLICKS = TopicContract("ad-clicks", {"ad_click": "visitor_id"})
REFERRALS = TopicContract("referrals", {"referral": "referred_visitor_id"})
AD_SPEND = TopicContract("ad-spend", {"ad_spend": "channel"})
IDENTITIES = TopicContract("identities", {"identify": "visitor_id"})
FX_RATES = TopicContract("fx-rates", {"fx_rate": "currency"})
DEAD_LETTERS = "dead-letters"

SOURCE_TOPICS: tuple[TopicContract, ...] = (
    PURCHASES,
    AD_CLICKS,
    REFERRALS,
    AD_SPEND,
    IDENTITIES,
    FX_RATES,
)


def topic_for(event_type: str) -> TopicContract:
    """The topic an event type is published to."""
    for contract in SOURCE_TOPICS:
        if event_type in contract.event_keys:
            return contract
    raise KeyError(event_type)
