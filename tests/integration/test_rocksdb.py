"""The production store: a worker restarted on its RocksDB data directory reads nothing
back from the changelogs, and still exports every channel and serves every customer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from stream.devstack import StackEndpoints
from tests.integration.conftest import Deployment, running, wait_until
from tests.integration.scenario import MESSAGES
from tests.integration.test_serving import ENV, call, settled

pytestmark = pytest.mark.integration


@pytest.fixture
async def on_rocksdb(stack: StackEndpoints, tmp_path: Path) -> AsyncIterator[Deployment]:
    env = {**ENV, "LTVCAC_STORE": "rocksdb://", "LTVCAC_DATA_DIR": str(tmp_path / "tables")}
    async with running(stack, tmp_path, env) as deployed:
        yield deployed


async def test_a_restart_on_the_kept_store_exports_and_serves_everything(
    on_rocksdb: Deployment,
) -> None:
    await on_rocksdb.publish(MESSAGES)
    await wait_until(lambda: settled(on_rocksdb), what="the scenario in the worker and Redis")
    channels = on_rocksdb.worker.channel_samples()
    assert any(("channel", "search") in labels for _, labels in channels)
    _, top = call(on_rocksdb, "/v1/top?limit=10")

    await asyncio.to_thread(on_rocksdb.worker.stop)
    await asyncio.to_thread(on_rocksdb.worker.start)

    await wait_until(
        lambda: on_rocksdb.worker.channel_samples() == channels,
        what="every channel series as before the restart",
    )
    assert call(on_rocksdb, "/v1/top?limit=10") == (200, top)
    assert call(on_rocksdb, "/v1/rebuild", method="POST") == (202, {"customers": 4})
