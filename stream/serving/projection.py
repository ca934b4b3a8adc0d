"""Redis projection of customer and channel state, written in pipelined batches.

Layout (prefix from ``LTVCAC_REDIS_KEY_PREFIX``):

- ``{prefix}customer:{id}`` hash: revenue, gross_profit (decimal strings, reporting
  currency), orders, refunds, first_order_at, last_order_at (RFC 3339),
  acquisition_channel, attribution (JSON channel -> weight).
- ``{prefix}channel:{name}`` hash: ``spend:{window}``, ``new_customers:{window}``,
  ``cac:{window}``, ``payback_months:{window}``, ``ltv:{method}``,
  ``ltv_cac:{window}:{method}``; an undefined figure is absent.
- ``{prefix}channels`` set: channel names present.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from stream.domain.customer import CustomerRecord
from stream.domain.figures import ChannelFigures
from stream.domain.money import WEIGHT_SCALE

log = logging.getLogger(__name__)
RedisHash = dict[Any, str]  # field -> value; redis-py types its keys loosely


def _money(cents: int) -> str:
    return f"{Decimal(cents) / 100:.2f}"


def _time(seconds: int | None) -> str:
    if seconds is None:
        return ""
    return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat().replace("+00:00", "Z")


def customer_fields(record: CustomerRecord) -> RedisHash:
    """The Redis hash of one customer."""
    weights = {c: w / WEIGHT_SCALE for c, w in (record.weights or {}).items()}
    return {
        "revenue": _money(record.revenue_cents),
        "gross_profit": _money(record.gross_profit_cents),
        "orders": str(record.orders),
        "refunds": str(record.refunds),
        "first_order_at": _time(record.first_order_at),
        "last_order_at": _time(record.last_order_at),
        "acquisition_channel": record.acquisition_channel or "",
        "attribution": json.dumps(weights, sort_keys=True),
    }


def channel_fields(figures: ChannelFigures) -> RedisHash:
    """The Redis hash of one channel: every defined figure."""
    fields: RedisHash = {}
    for window, per_window in figures.windows.items():
        fields[f"spend:{window}"] = repr(per_window.spend)
        fields[f"new_customers:{window}"] = repr(per_window.new_customers)
        if per_window.cac.value is not None:
            fields[f"cac:{window}"] = repr(per_window.cac.value)
        if per_window.payback_months.value is not None:
            fields[f"payback_months:{window}"] = repr(per_window.payback_months.value)
    for method, ltv in figures.ltv.items():
        if ltv.value is not None:
            fields[f"ltv:{method}"] = repr(ltv.value)
    for (window, method), ratio in figures.ratio.items():
        if ratio.value is not None:
            fields[f"ltv_cac:{window}:{method}"] = repr(ratio.value)
    return fields


class RedisProjection:
    """Collects changed customers and writes them, with all channels, in one pipeline."""

    def __init__(self, url: str, prefix: str) -> None:
        self._redis = aioredis.from_url(url)
        self._prefix = prefix
        self._dirty: dict[str, CustomerRecord] = {}

    def customer_changed(self, record: CustomerRecord) -> None:
        self._dirty[record.customer_id] = record

    @property
    def pending(self) -> int:
        return len(self._dirty)

    async def flush(self, channels: Iterable[ChannelFigures]) -> None:
        """Write what changed; on a Redis error keep it for the next attempt and re-raise."""
        batch, self._dirty = self._dirty, {}
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                for customer_id, record in batch.items():
                    pipe.hset(
                        f"{self._prefix}customer:{customer_id}", mapping=customer_fields(record)
                    )
                for figures in channels:
                    key = f"{self._prefix}channel:{figures.channel}"
                    pipe.delete(key)
                    pipe.hset(key, mapping=channel_fields(figures))
                    pipe.sadd(f"{self._prefix}channels", figures.channel)
                await pipe.execute()
        except (RedisError, OSError):
            self._dirty = {**batch, **self._dirty}
            raise

    async def close(self) -> None:
        await self._redis.aclose()
