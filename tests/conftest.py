"""One embedded broker and Redis for the whole session, shared by the integration and the
end-to-end tests (each test has its own topics, consumer group and Redis keys)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from stream.devstack import DevStack, StackEndpoints


@pytest.fixture(scope="session")
def stack() -> Iterator[StackEndpoints]:
    redis_url = os.environ.get("LTVCAC_REDIS_URL") or os.environ.get("REDIS_URL")
    with DevStack(redis_url=redis_url) as endpoints:
        yield endpoints
