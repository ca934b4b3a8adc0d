"""Event contracts shared with producers: models, topics, exported JSON Schema."""

from schemas.events import (
    EVENT_MODELS,
    SCHEMA_VERSION,
    AdClick,
    AdSpend,
    Event,
    FxRate,
    Identify,
    Purchase,
    Referral,
    Refund,
    parse_event,
)
from schemas.topics import DEAD_LETTERS, SOURCE_TOPICS, TopicContract, topic_for

__all__ = [
    "DEAD_LETTERS",
    "EVENT_MODELS",
    "SCHEMA_VERSION",
    "SOURCE_TOPICS",
    "AdClick",
    "AdSpend",
    "Event",
    "FxRate",
    "Identify",
    "Purchase",
    "Referral",
    "Refund",
    "TopicContract",
    "parse_event",
    "topic_for",
]
