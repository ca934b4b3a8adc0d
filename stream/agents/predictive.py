"""Predictive CLV: fit BG/NBD and Gamma-Gamma in a separate process on a timer, publish the
fit to every worker, and score every customer with it.

The worker that owns partition 0 of the customers table fits, on the customers it owns
(with one worker, all of them; with several, a sample of about 1/n, the keys spreading
customers evenly over the partitions). The fit goes to the ``model-fits`` global table, whose
changelog is a compacted topic: every worker loads the latest at start and sees each new one
as it is published. When a worker sees a new fit, it scores the customers of the partitions
it owns, publishes their sums by channel (``predictive-sums``, one key per partition) and
rewrites them to Redis. Customers are scored in slices, so the stream never waits long.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import time
from collections.abc import AsyncIterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import astuple
from typing import TYPE_CHECKING, Any

from stream.domain.customer import CustomerRecord, channel_shares
from stream.domain.money import WEIGHT_SCALE
from stream.domain.predictive import (
    CURRENT_FIT,
    Fit,
    NotFitted,
    Score,
    Summary,
    fit,
    score,
    summary_of,
)

if TYPE_CHECKING:
    from stream.app import Runtime

log = logging.getLogger(__name__)
SLICE = 500  # customers summarised or scored between two yields to the event loop
FIT_PARTITION = 0  # the worker owning this partition of the customers table fits


def register(runtime: Runtime) -> None:
    # spawn, not fork: the worker runs threads (the Kafka consumer's) that fork would copy
    pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
    scored = {"version": 0}  # the fit this worker last scored its customers with
    fitted_on: list[int | None] = [None]  # a hash of what the last fit saw: no refit without news
    settings = runtime.settings

    @runtime.app.timer(settings.predictive_fit_interval_seconds, name="fit_predictive")
    async def fit_models() -> None:
        if FIT_PARTITION not in runtime.customers.ready_partitions:
            return
        today = runtime.watermark_day()
        summaries = [s async for s in _summaries(runtime, today)]
        current = runtime.current_fit()
        seen = hash((today, *sorted(map(astuple, summaries))))
        if current is not None and seen == fitted_on[0]:
            return  # the same customers on the same day: the same fit
        version = (current.version if current else 0) + 1
        started = time.monotonic()
        loop = asyncio.get_running_loop()
        try:
            fitted = await loop.run_in_executor(
                pool, fit, summaries, settings.predictive_min_customers, version, time.time(), today
            )
        except NotFitted as reason:
            log.info("predictive fit skipped reason=%s", reason)
            return
        runtime.model_fits.write(CURRENT_FIT, fitted.to_json())
        fitted_on[0] = seen
        log.info(
            "predictive fit version=%d customers=%d repeat_customers=%d seconds=%.2f"
            " r=%.4g alpha=%.4g a=%.4g b=%.4g p=%.4g q=%.4g v=%.4g",
            fitted.version,
            fitted.customers,
            fitted.repeat_customers,
            time.monotonic() - started,
            fitted.bg_nbd.r,
            fitted.bg_nbd.alpha,
            fitted.bg_nbd.a,
            fitted.bg_nbd.b,
            fitted.gamma_gamma.p,
            fitted.gamma_gamma.q,
            fitted.gamma_gamma.v,
        )

    @runtime.app.timer(settings.projection_interval_seconds, name="score_predictive")
    async def score_customers() -> None:
        current = runtime.current_fit()
        if current is None or current.version == scored["version"]:
            return
        partitions = runtime.customers.ready_partitions
        sums: dict[int, dict[str, dict[str, list[float]]]] = {p: {} for p in partitions}
        today = runtime.watermark_day()
        count = unscored = 0
        for index, (key, value) in enumerate(runtime.customers.owned_items()):
            if index % SLICE == SLICE - 1:
                await asyncio.sleep(0)
            partition = runtime.customers.partition_of(key)
            record = CustomerRecord.from_json(value)
            summary = summary_of(record, today)
            if summary is None or partition not in sums or record.model_weights is None:
                continue
            result = score_or_none(current, summary, runtime)
            if result is None:
                unscored += 1
                continue
            _add(sums[partition], record, result.clv)
            runtime.projection.customer_stale(key)  # its new scores
            count += 1
        for partition, by_channel in sums.items():
            scores = {"version": current.version, "sums": by_channel}
            runtime.predictive_sums.write(str(partition), scores)
        scored["version"] = current.version
        log.info(
            "predictive scores version=%d partitions=%s customers=%d unscored=%d",
            current.version,
            sorted(partitions),
            count,
            unscored,
        )

    runtime.projection.scorer = lambda record: customer_score_fields(runtime, record)

    async def stop_pool(_app: Any, /, *_args: Any, **_kwargs: Any) -> None:
        pool.shutdown(wait=False, cancel_futures=True)

    runtime.app.on_before_shutdown.connect(stop_pool)


async def _summaries(runtime: Runtime, today: int) -> AsyncIterator[Summary]:
    for index, (_, value) in enumerate(runtime.customers.owned_items()):
        if index % SLICE == SLICE - 1:
            await asyncio.sleep(0)
        summary = summary_of(CustomerRecord.from_json(value), today)
        if summary is not None:
            yield summary


def score_or_none(model: Fit, summary: Summary, runtime: Runtime) -> Score | None:
    """The customer's score, or None when the closed forms cannot give a finite one (the
    scoring pass counts those; the customer keeps no predictive value)."""
    try:
        return score(model, summary, runtime.horizon)
    except ValueError as error:
        log.debug("predictive score skipped error=%s", error)
        return None


def _add(sums: dict[str, dict[str, list[float]]], record: CustomerRecord, clv: float) -> None:
    """Add the customer's CLV to each channel it counts in, by its weight in each model."""
    assert record.model_weights is not None
    for model, weights in record.model_weights.items():
        for channel, weight in channel_shares(weights):
            if weight:
                cell = sums.setdefault(channel, {}).setdefault(model, [0.0, 0.0])
                cell[0] += weight / WEIGHT_SCALE * clv
                cell[1] += weight / WEIGHT_SCALE


def customer_score_fields(runtime: Runtime, record: CustomerRecord) -> dict[str, str]:
    """The predictive fields of the customer's Redis hash: none before the first fit."""
    current = runtime.current_fit()
    if current is None:
        return {}
    summary = summary_of(record, runtime.watermark_day())
    result = None if summary is None else score_or_none(current, summary, runtime)
    if result is None:
        return {}
    return {
        "predicted_clv": f"{result.clv:.2f}",
        "probability_alive": f"{result.probability_alive:.4f}",
        "expected_purchases": f"{result.expected_purchases:.4f}",
        "model_version": str(current.version),
    }
