"""Redis projection of customer and channel state, written in pipelined batches.

Layout (prefix from ``LTVCAC_REDIS_KEY_PREFIX``):

- ``{prefix}customer:{id}`` hash: revenue, gross_profit (decimal strings, reporting
  currency), orders, refunds, first_order_at, last_order_at (RFC 3339),
  acquisition_channel and attribution (JSON channel -> weight) of the primary model,
  attribution_models (JSON model -> channel -> weight), referred_by (the customer who
  referred it, primary model; empty if none), referred_customers (how many customers it
  referred: exact).
- ``{prefix}referrals:{id}`` set: the customers it referred, written with its hash (at
  most the 1,000 acquired most recently: ``referral.MAX_LISTED``); absent when none.
- ``{prefix}channel:{name}`` hash: ``spend:{window}``, ``spend:{window}:{category}``,
  ``new_customers:{window}:{model}``, ``cac:{window}:{model}:{cost}``,
  ``payback_months:{window}:{model}``, ``payback_basis:{window}:{model}`` (``cohort`` or
  ``rate``), ``ltv:{model}:{method}``, ``ltv_cac:{window}:{model}:{method}``; an
  undefined figure is absent. The hash of ``all`` also holds the referral figures:
  ``referral_share:{window}:{model}``, ``referred_customers:{window}``,
  ``referrers:{window}``, ``viral_coefficient:{window}``, ``ltv_referred:{model}:{method}``
  and ``ltv_not_referred:{model}:{method}``.
- ``{prefix}campaigns:{channel}`` hash: ``spend:{window}:{campaign}``,
  ``new_customers:{window}:{campaign}`` (primary model), ``cac:{window}:{campaign}``
  for every campaign of the channel (no top-N guard here).
- ``{prefix}channels`` set: channel names present. A channel whose every attribution
  was retracted by a later re-attribution loses its hash and its set member.
- ``{prefix}cohort:{channel}:{YYYY-MM}`` hash, one per acquisition month with customers
  under the primary model: ``customers`` (weighted), ``complete_months`` (n),
  ``gp_per_customer:{k}`` for k = 0 .. n - 1 (cumulative gross profit per customer to
  the end of month k since acquisition, complete months only) and
  ``gp_per_customer_to_date`` (cumulative, the current month too).
- ``{prefix}cohorts:{channel}`` set: the channel's cohort months (``YYYY-MM``). A month
  that no longer has customers loses its hash and its member (a Lua script run in the
  same transaction compares the set with the months written).
- ``{prefix}top:{method}`` and ``{prefix}top:{method}:{channel}`` sorted sets: customers by
  gross profit to date (``historical``) or predicted CLV (``predictive``), overall and by
  the primary model's acquisition channel (a Lua script moves a re-attributed customer).
- ``{prefix}layout_version`` string: ``reader.LAYOUT_VERSION``.
- ``{prefix}projection:writer:{id}`` string with a one-hour expiry, one per running
  worker: set by each write, so that a worker notices when Redis lost what it wrote.

While Redis is down, changes wait in memory (the stream goes on) and each failed write
is followed by a wait before the next one (0.5 s doubling up to
``LTVCAC_RETRY_MAX_SECONDS``). A Redis that comes back may have lost everything (a
restart without persistence, a flush, a failover to an empty replica): a worker whose
marker key is gone writes every customer it holds again, not only what changed.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from stream.config import next_retry_delay
from stream.domain.cohort import CohortRow, month_name
from stream.domain.customer import CustomerRecord
from stream.domain.figures import ChannelFigures, ReferralFigures
from stream.domain.money import WEIGHT_SCALE
from stream.serving.reader import LAYOUT_VERSION

log = logging.getLogger(__name__)
RedisHash = dict[Any, str]  # field -> value; redis-py types its keys loosely
# The writer marker outlives any pause between two writes of a running worker.
_MARKER_TTL_SECONDS = 3600
# KEYS[1]: the set of channels; ARGV: the prefix of the top sets, a customer id, its
# acquisition channel ("" if none yet), then (method, score) pairs. Puts the customer in
# each method's overall set and its channel's set, and out of every other channel's.
_PLACE_IN_TOP = """
local prefix, customer, channel = ARGV[1], ARGV[2], ARGV[3]
local channels = redis.call('SMEMBERS', KEYS[1])
for i = 4, #ARGV, 2 do
  local top = prefix .. ARGV[i]
  redis.call('ZADD', top, ARGV[i + 1], customer)
  for _, other in ipairs(channels) do
    if other ~= channel then redis.call('ZREM', top .. ':' .. other, customer) end
  end
  if channel ~= '' then redis.call('ZADD', top .. ':' .. channel, ARGV[i + 1], customer) end
end
return 0
"""
# KEYS[1]: a channel's set of cohort months; ARGV[1]: the key prefix of its cohort
# hashes; ARGV[2..]: the months it has now. Deletes the hashes of the months it lost and
# makes the set the months it has. It names the hashes it deletes itself (not in KEYS):
# fine on a single Redis, as is the transaction across keys that runs it.
_REPLACE_COHORT_MONTHS = """
local keep = {}
for i = 2, #ARGV do keep[ARGV[i]] = true end
for _, month in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if not keep[month] then redis.call('DEL', ARGV[1] .. month) end
end
redis.call('DEL', KEYS[1])
for i = 2, #ARGV do redis.call('SADD', KEYS[1], ARGV[i]) end
return #ARGV - 1
"""


def _money(cents: int) -> str:
    return f"{Decimal(cents) / 100:.2f}"


def _time(seconds: int | None) -> str:
    if seconds is None:
        return ""
    return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat().replace("+00:00", "Z")


def customer_fields(record: CustomerRecord, primary_model: str) -> RedisHash:
    """The Redis hash of one customer; the acquisition follows the primary model."""
    models = record.model_weights or {}
    scaled = {
        model: {c: w / WEIGHT_SCALE for c, w in weights.items()}
        for model, weights in models.items()
    }
    return {
        "revenue": _money(record.revenue_cents),
        "gross_profit": _money(record.gross_profit_cents),
        "orders": str(record.orders),
        "refunds": str(record.refunds),
        "first_order_at": _time(record.first_order_at),
        "last_order_at": _time(record.last_order_at),
        "acquisition_channel": record.acquisition_channel(primary_model) or "",
        "attribution": json.dumps(scaled.get(primary_model, {}), sort_keys=True),
        "attribution_models": json.dumps(scaled, sort_keys=True),
        "referred_by": record.referred_by or "",
        "referred_customers": str(record.referrals.count),
    }


def campaign_fields(figures: ChannelFigures) -> RedisHash:
    """The Redis hash of a channel's campaigns: every campaign, exact."""
    fields: RedisHash = {}
    for campaign, by_window in figures.campaigns.items():
        for window, campaign_figures in by_window.items():
            fields[f"spend:{window}:{campaign}"] = repr(campaign_figures.spend)
            fields[f"new_customers:{window}:{campaign}"] = repr(campaign_figures.new_customers)
            if campaign_figures.cac.value is not None:
                fields[f"cac:{window}:{campaign}"] = repr(campaign_figures.cac.value)
    return fields


def channel_fields(figures: ChannelFigures) -> RedisHash:
    """The Redis hash of one channel: every defined figure."""
    fields: RedisHash = {}
    for window, per_window in figures.windows.items():
        fields[f"spend:{window}"] = repr(per_window.spend)
        for category, spend in per_window.spend_by_category.items():
            fields[f"spend:{window}:{category}"] = repr(spend)
        for model, customers in per_window.new_customers.items():
            fields[f"new_customers:{window}:{model}"] = repr(customers)
        for (model, cost), cac in per_window.cac.items():
            if cac.value is not None:
                fields[f"cac:{window}:{model}:{cost}"] = repr(cac.value)
        for model, payback in per_window.payback_months.items():
            if payback.value is not None:
                fields[f"payback_months:{window}:{model}"] = repr(payback.value)
                fields[f"payback_basis:{window}:{model}"] = payback.basis
    for (model, method), ltv in figures.ltv.items():
        if ltv.value is not None:
            fields[f"ltv:{model}:{method}"] = repr(ltv.value)
    for (window, model, method), ratio in figures.ratio.items():
        if ratio.value is not None:
            fields[f"ltv_cac:{window}:{model}:{method}"] = repr(ratio.value)
    if figures.referrals is not None:
        fields.update(referral_fields(figures.referrals))
    return fields


def referral_fields(figures: ReferralFigures) -> RedisHash:
    """The referral figures in the hash of ``all``: every defined one."""
    fields: RedisHash = {}
    for (window, model), share in figures.share.items():
        if share.value is not None:
            fields[f"referral_share:{window}:{model}"] = repr(share.value)
    for window, viral in figures.viral.items():
        fields[f"referred_customers:{window}"] = repr(figures.referred[window])
        fields[f"referrers:{window}"] = repr(figures.referrers[window])
        if viral.value is not None:
            fields[f"viral_coefficient:{window}"] = repr(viral.value)
    for (referred, model, method), ltv in figures.ltv.items():
        if ltv.value is not None:
            kind = "referred" if referred else "not_referred"
            fields[f"ltv_{kind}:{model}:{method}"] = repr(ltv.value)
    return fields


def _top_scores(fields: RedisHash) -> list[str]:
    """The acquisition channel, then (method, score) pairs for the top sets: the gross
    profit to date, and the predicted CLV once the customer has one."""
    scores = [fields["acquisition_channel"], "historical", fields["gross_profit"]]
    if "predicted_clv" in fields:
        scores += ["predictive", fields["predicted_clv"]]
    return scores


def cohort_fields(row: CohortRow) -> RedisHash:
    """The Redis hash of one acquisition month of a channel."""
    fields: RedisHash = {
        "customers": repr(row.customers),
        "complete_months": str(len(row.gp_per_customer)),
        "gp_per_customer_to_date": repr(row.gp_per_customer_to_date),
    }
    for since, value in enumerate(row.gp_per_customer):
        fields[f"gp_per_customer:{since}"] = repr(value)
    return fields


# Customers written per Redis transaction: a rebuild after recovery queues every
# customer of a partition, and one transaction for all of them would hold the commands
# of a million customers in memory and block Redis while it runs.
CUSTOMERS_PER_WRITE = 2_000


class RedisProjection:
    """Collects changed customers and writes them, with all channels, in pipelines of
    at most :data:`CUSTOMERS_PER_WRITE` customers."""

    def __init__(self, url: str, prefix: str, primary_model: str = "last_touch") -> None:
        # One quick retry on a fresh connection (a pooled one may be stale after a Redis
        # restart); waiting out an outage is done by flush(), not inside the client.
        self._redis = aioredis.from_url(
            url, retry=Retry(NoBackoff(), 1), socket_connect_timeout=5.0, socket_timeout=10.0
        )
        self._prefix = prefix
        self._primary_model = primary_model
        # customer id -> its record, or None: read it with ``stored`` when writing
        self._dirty: dict[str, CustomerRecord | None] = {}
        # more fields of a customer's hash (its predictive scores), set by the worker
        self.scorer: Callable[[CustomerRecord], RedisHash] = lambda _record: {}
        # a customer's record as its table holds it now (None if it holds none), set by
        # the worker
        self.stored: Callable[[str], CustomerRecord | None] = lambda _customer_id: None
        self._marker = f"{prefix}projection:writer:{uuid.uuid4().hex}"
        self._marker_written = False
        self._replace_cohort_months = self._redis.register_script(_REPLACE_COHORT_MONTHS)
        self._place_in_top = self._redis.register_script(_PLACE_IN_TOP)
        self._failures = 0
        self._failing_since = 0.0
        self._retry_in = 0.0
        self._retry_at = 0.0

    @property
    def client(self) -> Any:
        """The Redis client (``redis.asyncio``), for readers of the projection."""
        return self._redis

    def customer_changed(self, record: CustomerRecord) -> None:
        self._dirty[record.customer_id] = record

    def customer_stale(self, customer_id: str) -> None:
        """Write the customer as its table holds it at the next write: a rebuild queues
        every customer of a partition, and queues their ids, not their records."""
        self._dirty.setdefault(customer_id, None)

    @property
    def pending(self) -> int:
        return len(self._dirty)

    @property
    def failures(self) -> int:
        """Failed writes since the last successful one."""
        return self._failures

    @property
    def retry_in(self) -> float:
        """Seconds flush() waits after the last failed write before it tries again."""
        return self._retry_in

    async def flush(
        self,
        channels: Iterable[ChannelFigures],
        everything: Callable[[], Iterable[str]] | None = None,
        retry_max_seconds: float = 30.0,
        retired: Iterable[str] = (),
    ) -> None:
        """Write what changed; on a Redis error keep it for the next attempt and re-raise.

        After a failure, calls return without writing until ``retry_in`` has passed.
        When Redis no longer has this writer's marker, every customer ``everything``
        yields (by id) is queued for the next write.
        """
        if time.monotonic() < self._retry_at:
            return  # waiting before the next attempt
        batch, self._dirty = self._dirty, {}
        ids = list(batch)
        marker_found = True
        try:
            for start in range(0, max(len(ids), 1), CUSTOMERS_PER_WRITE):
                chunk = {i: batch[i] for i in ids[start : start + CUSTOMERS_PER_WRITE]}
                # the channels go with the first customers; each write checks the marker
                first = start == 0
                written = await self._write(
                    chunk, channels if first else (), retired if first else ()
                )
                marker_found = marker_found and written
                for customer_id in chunk:
                    del batch[customer_id]
        except (RedisError, OSError):
            self._dirty = {**batch, **self._dirty}
            if not self._failures:
                self._failing_since = time.monotonic()
            self._failures += 1
            self._retry_in = next_retry_delay(self._retry_in, retry_max_seconds)
            self._retry_at = time.monotonic() + self._retry_in
            raise
        if self._failures:
            log.info(
                "redis projection recovered attempts=%d down_for=%.1fs written=%d",
                self._failures + 1,
                time.monotonic() - self._failing_since,
                len(ids),
            )
            self._failures, self._retry_in, self._retry_at = 0, 0.0, 0.0
        if self._marker_written and not marker_found and everything is not None:
            count = 0
            for customer_id in everything():
                self.customer_stale(customer_id)
                count += 1
            log.warning(
                "redis projection keys missing (redis restarted empty or was flushed), "
                "rewriting every customer customers=%d",
                count,
            )
        self._marker_written = True

    async def _write(
        self,
        batch: dict[str, CustomerRecord | None],
        channels: Iterable[ChannelFigures],
        retired: Iterable[str],
    ) -> bool:
        """One transaction; True if this writer's marker was still in Redis."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.exists(self._marker)
            for customer_id, queued in batch.items():
                record = queued if queued is not None else self.stored(customer_id)
                if record is None:
                    continue  # no longer in the table
                fields = customer_fields(record, self._primary_model) | self.scorer(record)
                pipe.hset(f"{self._prefix}customer:{customer_id}", mapping=fields)
                await self._place_in_top(
                    keys=[f"{self._prefix}channels"],
                    args=[f"{self._prefix}top:", customer_id, *_top_scores(fields)],
                    client=pipe,
                )
                if record.referrals.origins:  # it has referred someone, now or before
                    referrals = f"{self._prefix}referrals:{customer_id}"
                    pipe.delete(referrals)
                    if referred := record.referrals.customers():
                        pipe.sadd(referrals, *referred)
            for figures in channels:
                key = f"{self._prefix}channel:{figures.channel}"
                pipe.delete(key)
                pipe.hset(key, mapping=channel_fields(figures))
                pipe.sadd(f"{self._prefix}channels", figures.channel)
                campaigns = f"{self._prefix}campaigns:{figures.channel}"
                pipe.delete(campaigns)
                if fields := campaign_fields(figures):
                    pipe.hset(campaigns, mapping=fields)
                await self._write_cohorts(pipe, figures.channel, figures.cohorts)
            for channel in retired:
                pipe.delete(f"{self._prefix}channel:{channel}")
                pipe.delete(f"{self._prefix}campaigns:{channel}")
                pipe.srem(f"{self._prefix}channels", channel)
                await self._write_cohorts(pipe, channel, {})
            pipe.set(f"{self._prefix}layout_version", LAYOUT_VERSION)
            pipe.set(self._marker, "1", ex=_MARKER_TTL_SECONDS)
            results = await pipe.execute()
        return bool(results[0])

    async def _write_cohorts(
        self, pipe: Any, channel: str, cohorts: dict[str, list[CohortRow]]
    ) -> None:
        """Queue the channel's cohort hashes (primary model) and its set of months."""
        rows = {month_name(row.month): row for row in cohorts.get(self._primary_model, [])}
        prefix = f"{self._prefix}cohort:{channel}:"
        await self._replace_cohort_months(
            keys=[f"{self._prefix}cohorts:{channel}"], args=[prefix, *rows], client=pipe
        )
        for month, row in rows.items():
            pipe.delete(prefix + month)
            pipe.hset(prefix + month, mapping=cohort_fields(row))

    async def close(self) -> None:
        await self._redis.aclose()
