"""What a shop backend asks, answered from the Redis projection (``projection.py`` lays it
out): a customer, a channel, all channels, top customers, cohorts. The HTTP API and the
``ltvcac customer | channels | top`` commands both answer through here, so they agree.

Money stays a decimal string (as stored), ratios and counts become numbers, undefined
figures are ``None``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from stream.domain.attribution import MODELS
from stream.domain.channel import SPEND_CATEGORIES

LAYOUT_VERSION = "1"  # of the Redis keys below; readers check it
TOP_METHODS = ("historical", "predictive")  # a customer's gross profit, or predicted CLV
COSTS = ("media", "fully_loaded")


class QueryError(ValueError):
    """A parameter of a query is not one the service knows (the message says which)."""


def customer_json(customer_id: str, fields: Mapping[str, str]) -> dict[str, Any]:
    """A customer's hash as JSON: money as strings, counts as numbers."""
    result: dict[str, Any] = {
        "customer_id": customer_id,
        "revenue": fields.get("revenue"),
        "gross_profit": fields.get("gross_profit"),
        "orders": int(fields.get("orders", 0)),
        "refunds": int(fields.get("refunds", 0)),
        "first_order_at": fields.get("first_order_at") or None,
        "last_order_at": fields.get("last_order_at") or None,
        "acquisition_channel": fields.get("acquisition_channel") or None,
        "attribution": json.loads(fields.get("attribution", "{}")),
        "attribution_models": json.loads(fields.get("attribution_models", "{}")),
        "referred_by": fields.get("referred_by") or None,
        "referred_customers": int(fields.get("referred_customers", 0)),
    }
    if "predicted_clv" in fields:
        result["predictive"] = {
            "clv": fields["predicted_clv"],
            "probability_alive": float(fields["probability_alive"]),
            "expected_purchases": float(fields["expected_purchases"]),
            "model_version": int(fields["model_version"]),
        }
    return result


@dataclass(frozen=True)
class ChannelQuery:
    """Which figures of a channel: a window, an attribution model, an LTV method."""

    window: str
    model: str
    method: str

    @classmethod
    def parse(
        cls,
        windows: list[str],
        methods: list[str],
        primary_model: str,
        window: str | None,
        model: str | None,
        method: str | None,
    ) -> ChannelQuery:
        """The query with defaults filled in (90d or the first window, the primary model,
        historical); QueryError for a value the deployment does not export."""
        window = window or ("90d" if "90d" in windows else windows[0])
        model = model or primary_model
        method = method or "historical"
        for name, value, known in (
            ("window", window, windows),
            ("model", model, list(MODELS)),
            ("method", method, methods),
        ):
            if value not in known:
                raise QueryError(f"unknown {name} {value!r}; one of {', '.join(known)}")
        return cls(window, model, method)


def channel_json(channel: str, fields: Mapping[str, str], query: ChannelQuery) -> dict[str, Any]:
    """One channel's figures for ``query`` from its hash; undefined ones are None."""
    w, m = query.window, query.model

    def number(key: str) -> float | None:
        value = fields.get(key)
        return None if value is None else float(value)

    return {
        "channel": channel,
        "window": w,
        "model": m,
        "method": query.method,
        "spend": number(f"spend:{w}"),
        "spend_by_category": {c: number(f"spend:{w}:{c}") for c in SPEND_CATEGORIES},
        "new_customers": number(f"new_customers:{w}:{m}"),
        "cac": {cost: number(f"cac:{w}:{m}:{cost}") for cost in COSTS},
        "ltv": number(f"ltv:{m}:{query.method}"),
        "ltv_cac": number(f"ltv_cac:{w}:{m}:{query.method}"),
        "payback_months": number(f"payback_months:{w}:{m}"),
        "payback_basis": fields.get(f"payback_basis:{w}:{m}"),
    }


def cohort_json(month: str, fields: Mapping[str, str]) -> dict[str, Any]:
    complete = int(fields.get("complete_months", 0))
    return {
        "month": month,
        "customers": float(fields.get("customers", 0)),
        "gp_per_customer": [float(fields[f"gp_per_customer:{k}"]) for k in range(complete)],
        "gp_per_customer_to_date": float(fields.get("gp_per_customer_to_date", 0)),
    }


class Reader:
    """Queries over the projection of one key prefix (``redis.asyncio`` client given)."""

    def __init__(self, redis: Any, prefix: str) -> None:
        self._redis = redis
        self._prefix = prefix

    async def layout_version(self) -> str | None:
        value = await self._redis.get(f"{self._prefix}layout_version")
        return None if value is None else _text(value)

    async def customer(self, customer_id: str) -> dict[str, Any] | None:
        fields = await self._hash(f"customer:{customer_id}")
        return customer_json(customer_id, fields) if fields else None

    async def channel(self, channel: str, query: ChannelQuery) -> dict[str, Any] | None:
        fields = await self._hash(f"channel:{channel}")
        return channel_json(channel, fields, query) if fields else None

    async def channels(self, query: ChannelQuery) -> list[dict[str, Any]]:
        names = sorted(_text(n) for n in await self._redis.smembers(f"{self._prefix}channels"))
        found = [await self.channel(name, query) for name in names]
        return [channel for channel in found if channel is not None]

    async def top(self, channel: str | None, limit: int, method: str) -> list[dict[str, Any]]:
        """The customers with the most value (``method``: gross profit or predicted CLV),
        overall or of one acquisition channel, best first."""
        if method not in TOP_METHODS:
            raise QueryError(f"unknown method {method!r}; one of {', '.join(TOP_METHODS)}")
        if not 1 <= limit <= 1000:
            raise QueryError(f"limit {limit} is not between 1 and 1000")
        key = f"{self._prefix}top:{method}" + ("" if channel is None else f":{channel}")
        ranked = await self._redis.zrevrange(key, 0, limit - 1, withscores=True)
        return [{"customer_id": _text(cid), "value": f"{score:.2f}"} for cid, score in ranked]

    async def cohorts(self, channel: str) -> list[dict[str, Any]]:
        months = sorted(_text(m) for m in await self._redis.smembers(self._key_cohorts(channel)))
        return [
            cohort_json(month, await self._hash(f"cohort:{channel}:{month}")) for month in months
        ]

    def _key_cohorts(self, channel: str) -> str:
        return f"{self._prefix}cohorts:{channel}"

    async def _hash(self, key: str) -> dict[str, str]:
        stored = await self._redis.hgetall(self._prefix + key)
        return {_text(k): _text(v) for k, v in stored.items()}


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
