"""The Faust app: topics, tables, agents, timers and web pages (wiring only)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import faust
from prometheus_client import CollectorRegistry

from schemas import topics as contract
from stream.config import Settings
from stream.domain.channel import ChannelRecord
from stream.domain.customer import CustomerRules
from stream.domain.figures import ChannelFigures, LtvParams, channel_figures, now_day
from stream.domain.visitor import VisitorRules
from stream.kafka_admin import INTERNAL_TOPICS
from stream.metrics import ChannelFiguresCollector, PipelineCounters
from stream.serving.projection import RedisProjection
from stream.transport import Transport

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    """Everything the agents share: the app, its topics and tables, and the outputs."""

    settings: Settings
    app: faust.App
    topics: dict[str, Any]  # logical name -> faust topic
    customers: Any
    visitors: Any
    channels: Any
    registry: CollectorRegistry
    counters: PipelineCounters
    projection: RedisProjection
    customer_rules: CustomerRules
    visitor_rules: VisitorRules
    ltv_params: LtvParams

    def channel_records(self) -> list[ChannelRecord]:
        return [ChannelRecord.from_json(value) for value in self.channels.values()]

    def figures(self) -> list[ChannelFigures]:
        records = self.channel_records()
        today = now_day(records, self.settings.allowed_lateness_seconds)
        return [
            channel_figures(
                record, today, self.settings.windows, self.settings.ltv_methods, self.ltv_params
            )
            for record in sorted(records, key=lambda r: r.channel)
        ]

    async def send(self, logical_topic: str, key: str, value: dict[str, Any]) -> None:
        await self.topics[logical_topic].send(key=key.encode(), value=json.dumps(value).encode())


def _broker_credentials(settings: Settings) -> Any:
    if settings.kafka_sasl_mechanism:
        return faust.SASLCredentials(
            username=settings.kafka_sasl_username,
            password=settings.kafka_sasl_password,
            mechanism=settings.kafka_sasl_mechanism,
            ssl_context=_ssl_context(settings),
        )
    if settings.kafka_security_protocol == "SSL":
        return _ssl_context(settings)
    return None


def _ssl_context(settings: Settings) -> Any:
    if settings.kafka_security_protocol not in ("SSL", "SASL_SSL"):
        return None
    import ssl

    return ssl.create_default_context(cafile=settings.kafka_ssl_cafile)


def create_runtime(settings: Settings) -> Runtime:
    """Build the app and register the agents; nothing connects until the worker starts."""
    app = faust.App(
        settings.app_id,
        broker=[f"kafka://{server}" for server in settings.kafka_bootstrap_servers.split(",")],
        broker_credentials=_broker_credentials(settings),
        store=settings.store,
        datadir=settings.data_dir,
        topic_partitions=settings.topic_partitions,
        web_host=settings.web_host,
        web_bind=settings.web_host,
        web_port=settings.web_port,
        web_enabled=True,
        broker_session_timeout=settings.session_timeout_seconds,
        broker_heartbeat_interval=min(3.0, settings.session_timeout_seconds / 3),
        consumer_auto_offset_reset="earliest",
        table_standby_replicas=0,
        topic_allow_declare=True,
        autodiscover=False,
    )
    app.transport = Transport(app.conf.broker_consumer, app)

    def raw_topic(*names: str) -> Any:
        return app.topic(
            *[settings.topic_prefix + name for name in names],
            key_serializer="raw",
            value_serializer="raw",
            partitions=settings.topic_partitions,
        )

    topics = {
        "customers-in": raw_topic(contract.PURCHASES.name, INTERNAL_TOPICS["customer-updates"]),
        "visitors-in": raw_topic(
            contract.AD_CLICKS.name,
            contract.REFERRALS.name,
            contract.IDENTITIES.name,
            INTERNAL_TOPICS["visitor-updates"],
        ),
        "channels-in": raw_topic(contract.AD_SPEND.name, INTERNAL_TOPICS["channel-deltas"]),
        "visitor-updates": raw_topic(INTERNAL_TOPICS["visitor-updates"]),
        "customer-updates": raw_topic(INTERNAL_TOPICS["customer-updates"]),
        "channel-deltas": raw_topic(INTERNAL_TOPICS["channel-deltas"]),
        contract.DEAD_LETTERS: raw_topic(contract.DEAD_LETTERS),
    }

    def table(name: str) -> Any:
        return app.Table(
            name,
            default=None,
            partitions=settings.topic_partitions,
            key_type=str,
        )

    registry = CollectorRegistry()
    runtime = Runtime(
        settings=settings,
        app=app,
        topics=topics,
        customers=table("customers"),
        visitors=table("visitors"),
        channels=table("channels"),
        registry=registry,
        counters=PipelineCounters(registry),
        projection=RedisProjection(settings.redis_url, settings.redis_key_prefix),
        customer_rules=CustomerRules(settings.reporting_currency, settings.default_margin),
        visitor_rules=VisitorRules(settings.reporting_currency, settings.attribution_lookback_days),
        ltv_params=LtvParams(
            settings.expected_lifetime_years,
            settings.yearly_retention_cost,
            settings.min_tenure_days,
        ),
    )
    registry.register(ChannelFiguresCollector(runtime.figures))

    from stream.agents import register_all

    register_all(runtime)
    return runtime
