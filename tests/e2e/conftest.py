"""One shop published to one worker, shared by the end-to-end tests (the broker and Redis
are the session's, ``tests/conftest.py``)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from stream.devstack import StackEndpoints
from stream.worker_process import label_set
from tests.e2e import shop as shop_module
from tests.integration.conftest import Deployment, wait_until

FIT_INTERVAL_SECONDS = 2  # the predictive fit series (and their panels) appear at once
BUCKET_SECONDS = 3 * 86_400  # published at a time: well inside the worker's lateness


@dataclass(frozen=True)
class PublishedShop:
    deployment: Deployment
    shop: shop_module.Shop

    @property
    def worker_address(self) -> str:
        """host:port of the worker's /metrics, as Prometheus scrapes it."""
        return f"127.0.0.1:{self.deployment.env['LTVCAC_WEB_PORT']}"


def headline_ratios(deployment: Deployment) -> dict[str, float]:
    return {
        dict(labels)["channel"]: value
        for labels, value in deployment.gauges("ltvcac_headline_ltv_cac_ratio").items()
        if dict(labels)["window"] == "90d"
    }


def settled(deployment: Deployment, shop: shop_module.Shop) -> bool:
    """Every channel's headline ratio is the shop's, and a predictive fit is in use."""
    expected = {c: shop.ratio(c) for c in shop.spend if shop.ratio(c) is not None}
    found = headline_ratios(deployment)
    fitted = deployment.worker.samples().get(("ltvcac_predictive_fit_version", frozenset()))
    return (
        fitted is not None
        and found.keys() == expected.keys()
        and all(found[c] == pytest.approx(expected[c]) for c in expected)
    )


@pytest.fixture(scope="session")
async def published_shop(
    stack: StackEndpoints, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[PublishedShop]:
    """A worker that has applied `tests.e2e.shop`, one dead letter and a predictive fit."""
    deployment = Deployment(
        stack,
        tmp_path_factory.mktemp("shop-worker"),
        extra_env={
            "LTVCAC_PREDICTIVE_FIT_INTERVAL_SECONDS": str(FIT_INTERVAL_SECONDS),
            "LTVCAC_PREDICTIVE_MIN_CUSTOMERS": "10",
        },
    )
    await asyncio.to_thread(deployment.worker.start)
    try:
        shop = shop_module.build(dt.datetime.now(dt.UTC))
        for bucket in _buckets(shop.wire()):
            await deployment.publish_paced(bucket, chunk=len(bucket))
        await deployment.publish([shop_module.BAD_MESSAGE])
        try:
            await wait_until(lambda: settled(deployment, shop), timeout=120, what="the shop")
        except pytest.fail.Exception:
            expected = {c: shop.ratio(c) for c in shop.spend}
            pytest.fail(
                f"the worker did not settle on the shop's headline LTV:CAC (90d) {expected} "
                f"with a predictive fit; it shows {headline_ratios(deployment)}\n"
                f"{deployment.worker.log_tail()}"
            )
        flag = deployment.gauges("ltvcac_headline_ltv_cac_ratio_defined")
        assert flag[label_set(channel="direct", window="90d", reason="no_spend")] == 0
        yield PublishedShop(deployment, shop)
    finally:
        await asyncio.to_thread(deployment.cleanup)


def _buckets(
    messages: list[tuple[str, str | None, bytes]],
) -> list[list[tuple[str, str | None, bytes]]]:
    """Consecutive messages (in event-time order) by 3-day bucket of event time."""
    buckets: dict[int, list[tuple[str, str | None, bytes]]] = {}
    for message in messages:
        at = dt.datetime.fromisoformat(json.loads(message[2])["occurred_at"])
        buckets.setdefault(int(at.timestamp()) // BUCKET_SECONDS, []).append(message)
    return [buckets[key] for key in sorted(buckets)]
