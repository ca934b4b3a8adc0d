"""Writes changed state to Redis on a timer; rebuilds it all once tables are recovered."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError

from stream.domain.customer import CustomerRecord

if TYPE_CHECKING:
    from stream.app import Runtime

log = logging.getLogger(__name__)


def register(runtime: Runtime) -> None:
    rebuilt = False

    @runtime.app.timer(runtime.settings.projection_interval_seconds)
    async def project() -> None:
        nonlocal rebuilt
        if not rebuilt and _recovered(runtime):
            for value in runtime.customers.values():
                runtime.projection.customer_changed(CustomerRecord.from_json(value))
            rebuilt = True
        try:  # while Redis is down the stream goes on; changes wait in the projection
            await runtime.projection.flush(
                runtime.figures(),
                everything=lambda: map(CustomerRecord.from_json, runtime.customers.values()),
                retry_max_seconds=runtime.settings.retry_max_seconds,
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


def _recovered(runtime: Runtime) -> bool:
    tables: Any = runtime.app.tables
    return bool(tables.recovery.completed.is_set())
