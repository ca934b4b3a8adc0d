"""Topic set-up: every topic the worker reads or writes exists with the configured partitions.

Co-partitioning is what lets each agent read its table without a repartition, so a
topic with another partition count is a configuration error, reported clearly.
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from schemas.topics import DEAD_LETTERS, SOURCE_TOPICS
from stream.config import Settings
from stream.errors import ConfigurationError

log = logging.getLogger(__name__)
# logical name -> topic name of the topics between the agents
INTERNAL_TOPICS = {
    "visitor-updates": "ltvcac-visitor-updates",
    "customer-updates": "ltvcac-customer-updates",
    "channel-deltas": "ltvcac-channel-deltas",
}
INTERNAL_TOPIC_NAMES = tuple(INTERNAL_TOPICS.values())


def topic_names(settings: Settings) -> list[str]:
    """Physical names of all topics the worker uses, except Faust's changelogs."""
    names = [c.name for c in SOURCE_TOPICS] + [DEAD_LETTERS, *INTERNAL_TOPIC_NAMES]
    return [settings.topic_prefix + name for name in names]


async def connect_admin(settings: Settings, max_backoff: float = 30.0) -> AIOKafkaAdminClient:
    """Connect, retrying with capped exponential backoff while the broker is not up yet."""
    backoff = 0.5
    while True:
        admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
        try:
            await admin.start()
            return admin
        except KafkaError as error:
            await admin.close()
            log.warning(
                "kafka not reachable, retrying bootstrap=%s retry_in=%.1fs error=%s",
                settings.kafka_bootstrap_servers,
                backoff,
                error,
            )
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, max_backoff)


async def ensure_topics(settings: Settings) -> None:
    """Create missing topics; fail on an existing topic with another partition count."""
    admin = await connect_admin(settings)
    try:
        wanted = topic_names(settings)
        existing = set(await admin.list_topics())
        missing = [name for name in wanted if name not in existing]
        if missing:
            log.info("creating topics names=%s partitions=%d", missing, settings.topic_partitions)
            await admin.create_topics(
                [NewTopic(name, settings.topic_partitions, 1) for name in missing]
            )
        present = [name for name in wanted if name in existing]
        if present:
            for description in await admin.describe_topics(present):
                count = len(description["partitions"])
                if count != settings.topic_partitions:
                    raise ConfigurationError(
                        f"topic {description['topic']} has {count} partitions, but "
                        f"LTVCAC_TOPIC_PARTITIONS={settings.topic_partitions}; all topics "
                        "must have the same partition count"
                    )
    finally:
        await admin.close()
