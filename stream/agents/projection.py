"""Writes changed state to Redis on a timer; after every rebalance, rewrites the customers
of the partitions this worker gained once their recovery is complete.

A customer applied by a worker that crashed before its next write may never have
reached Redis, and the new owner does not see a redelivered event as a change, so the
new owner rewrites every customer of a partition it takes over. Channels are written
from ``runtime.figures()``: only those this worker exports.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from redis.exceptions import RedisError

from stream.domain.customer import CustomerRecord

if TYPE_CHECKING:
    from stream.app import Runtime

log = logging.getLogger(__name__)


def register(runtime: Runtime) -> None:
    runtime.projection.stored = lambda customer_id: stored_customer(runtime, customer_id)

    @runtime.app.timer(runtime.settings.projection_interval_seconds)
    async def project() -> None:
        rebuild_gained(runtime)
        try:  # while Redis is down the stream goes on; changes wait in the projection
            await runtime.projection.flush(
                runtime.figures(),
                everything=runtime.customers.owned_keys,
                retry_max_seconds=runtime.settings.retry_max_seconds,
                retired=runtime.retired_channels(),
            )
        except (RedisError, OSError) as error:
            runtime.counters.projection_errors.inc()
            log.warning(
                "redis projection failed, retrying pending=%d attempt=%d retry_in=%.1fs error=%s",
                runtime.projection.pending,
                runtime.projection.failures,
                runtime.projection.retry_in,
                error,
            )


def rebuild_gained(runtime: Runtime) -> None:
    """Queue every customer of the partitions recovered here since the last call."""
    gained = runtime.customers.take_gained()
    if not gained:
        return
    customers = runtime.customers.owned_keys(gained)
    for customer_id in customers:
        runtime.projection.customer_stale(customer_id)
    count = len(customers)
    log.info("redis rebuild partitions=%s customers=%d", sorted(gained), count)


def stored_customer(runtime: Runtime, customer_id: str) -> CustomerRecord | None:
    """The customer's record as the table holds it now, or None. Ownership was checked
    when the id was queued: a partition that is only between a revoke and its recovery
    (a rebalance that leaves it here) must not lose the write."""
    value = runtime.customers.get_json(customer_id)
    return None if value is None else CustomerRecord.from_json(value)
