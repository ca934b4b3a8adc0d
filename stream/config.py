"""One settings object. Every setting is an environment variable ``LTVCAC_<NAME>``.

The README's settings table documents each one; a test keeps the two in step.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

WindowName = Literal["7d", "30d", "90d", "365d", "lifetime"]
LtvMethod = Literal["historical", "formula", "churn", "predictive"]
AttributionModelName = Literal[
    "first_touch", "last_touch", "linear", "time_decay", "position_based"
]
DEFAULT_WINDOWS: tuple[WindowName, ...] = ("30d", "90d", "lifetime")
DEFAULT_METHODS: tuple[LtvMethod, ...] = ("historical", "formula", "churn", "predictive")


class Settings(BaseSettings):
    """Worker settings, read from ``LTVCAC_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="LTVCAC_", frozen=True, extra="ignore")

    # Connections
    kafka_bootstrap_servers: str = Field(
        "127.0.0.1:9092", description="Kafka bootstrap servers, comma separated."
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="Kafka security protocol."
    )
    kafka_sasl_mechanism: str | None = Field(
        None, description="SASL mechanism (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)."
    )
    kafka_sasl_username: str | None = Field(None, description="SASL user name.")
    kafka_sasl_password: str | None = Field(None, description="SASL password.")
    kafka_ssl_cafile: str | None = Field(None, description="CA bundle for TLS to Kafka.")
    redis_url: str = Field("redis://127.0.0.1:6379/0", description="Redis URL for projections.")
    redis_key_prefix: str = Field("ltvcac:", description="Prefix of every Redis key written.")

    # Worker
    app_id: str = Field("ltvcac", description="Faust application id (consumer group, changelogs).")
    topic_prefix: str = Field("", description="Prefix added to every topic name.")
    topic_partitions: int = Field(
        8, ge=1, description="Partitions of every topic; all topics must have this count."
    )
    store: str = Field("memory://", description="Faust table store: memory:// or rocksdb://.")
    data_dir: str = Field(".ltvcac-data", description="Directory for the table store.")
    web_host: str = Field("127.0.0.1", description="Address the HTTP server (/metrics) binds.")
    web_port: int = Field(6066, ge=1, le=65535, description="Port of the HTTP server.")
    session_timeout_seconds: float = Field(
        30.0, gt=0, description="Consumer group session timeout."
    )
    projection_interval_seconds: float = Field(
        0.5, gt=0, description="How often changed state is written to Redis."
    )
    log_level: str = Field("info", description="Log level: debug, info, warning, error.")
    fetch_max_wait_ms: int = Field(
        100,
        ge=1,
        le=30_000,
        description="Longest wait of the worker's fetches when no records are ready, in ms.",
    )
    batch_window_seconds: float = Field(
        0.01,
        gt=0,
        le=1.0,
        description="How long an agent waits for more events before it handles a batch;"
        " longer makes larger batches: more throughput, more latency per stage.",
    )
    bulk_recovery_seconds: float = Field(
        45.0,
        ge=0,
        lt=90,
        description="Longest a table recovery reads changelogs in bulk before Faust's"
        " record-by-record recovery reads the rest; 0 leaves it all to Faust.",
    )
    max_message_bytes: int = Field(
        1_048_576,
        ge=524_288,  # a dead letter takes up to about 350 KiB (stream.domain.ingest)
        le=64 * 1_048_576,
        description="Largest message the worker sends, in bytes: a table record is one"
        " message, so a record that outgrows it stops the worker; raise it together with"
        " the broker's message.max.bytes.",
    )
    event_loop: Literal["uvloop", "asyncio"] = Field(
        "uvloop", description="The worker's event loop: uvloop (faster) or Python's asyncio."
    )

    # Metric definitions
    reporting_currency: str = Field(
        "USD", pattern=r"^[A-Z]{3}$", description="Currency of all reported money."
    )
    fx_rates_file: str | None = Field(
        None,
        description="CSV of exchange rates into the reporting currency (date,currency,rate),"
        " read at start; the fx-rates topic adds to it.",
    )
    default_margin: Decimal = Field(
        Decimal("0.30"),
        ge=0,
        le=1,
        description="Gross margin assumed for a purchase without cost_of_goods or margin.",
    )
    attribution_lookback_days: int = Field(
        30, ge=1, le=365, description="Touches older than this before the purchase do not count."
    )
    attribution_model: AttributionModelName = Field(
        "last_touch",
        description="Primary attribution model: names each customer's acquisition channel"
        " (every model is exported side by side with a model label).",
    )
    campaign_top_n: int = Field(
        10,
        ge=0,
        description="Campaigns per channel with their own name in gauges (by lifetime spend);"
        " the rest are summed as `other`. Redis keeps every campaign.",
    )
    time_decay_half_life_days: float = Field(
        7.0, gt=0, le=365, description="Half-life of the time-decay attribution model, days."
    )
    allowed_lateness_seconds: int = Field(
        3600,
        ge=0,
        description="Event-time lateness tolerated; windows end this far behind the newest event.",
    )
    windows: list[WindowName] = Field(
        default_factory=lambda: list(DEFAULT_WINDOWS),
        description="Event-time windows exported, JSON list.",
    )
    ltv_methods: list[LtvMethod] = Field(
        default_factory=lambda: list(DEFAULT_METHODS),
        description="LTV methods exported, JSON list.",
    )
    expected_lifetime_years: Decimal = Field(
        Decimal(3), gt=0, description="Customer lifetime assumed by the formula LTV."
    )
    yearly_retention_cost: Decimal = Field(
        Decimal(0), ge=0, description="Yearly cost of keeping a customer, formula LTV."
    )
    min_tenure_days: int = Field(
        30,
        ge=1,
        le=365,
        description="Each customer counts as observed at least this long in purchase rates.",
    )
    churn_inactive_days: int = Field(
        90,
        ge=1,
        le=3650,
        description="A customer whose last order is this many days old or older has churned"
        " (churn LTV).",
    )
    headline_ltv_method: LtvMethod = Field(
        "historical",
        description="LTV method of ltvcac_headline_ltv_cac_ratio (primary attribution model),"
        " the series the alert rules watch.",
    )

    # Predictive LTV (BG/NBD and Gamma-Gamma)
    predictive_horizon_years: Decimal = Field(
        Decimal(3), gt=0, le=20, description="Horizon of the predictive CLV, years."
    )
    yearly_discount_rate: Decimal = Field(
        Decimal("0.10"),
        ge=0,
        le=1,
        description="Yearly discount rate of the predictive CLV (applied monthly).",
    )
    predictive_fit_interval_seconds: float = Field(
        3600.0, gt=0, description="How often the predictive models are fitted again."
    )
    predictive_min_customers: int = Field(
        200,
        ge=10,
        description="Fewest customers (and repeat customers for Gamma-Gamma) to fit with;"
        " until then no predictive value is exported.",
    )

    # HTTP API
    api_tokens: list[str] = Field(
        default_factory=list,
        description="Bearer tokens accepted by the /v1 API, JSON list; none: customer-level"
        " endpoints answer 401.",
    )
    api_public_aggregates: bool = Field(
        False,
        description="Serve the aggregate /v1 endpoints (channels, cohorts) without a token.",
    )

    # Outages of Kafka and Redis
    retry_max_seconds: float = Field(
        30.0,
        gt=0,
        description="Longest wait between two attempts to reach Kafka or Redis while it is "
        "down; the wait starts at 0.5 s and doubles up to this.",
    )


RETRY_INITIAL_SECONDS = 0.5  # first wait after a failed attempt to reach Kafka or Redis


def next_retry_delay(previous: float, maximum: float) -> float:
    """The wait before the next attempt: 0.5 s after the first failure, then doubling,
    never more than ``maximum`` (``LTVCAC_RETRY_MAX_SECONDS``)."""
    return min(max(previous * 2, RETRY_INITIAL_SECONDS), maximum)
