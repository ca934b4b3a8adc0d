"""The worker's logging: below the configured level, Faust and aiokafka make no records."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import faust
import pytest

from stream.app import ServiceWorker


@pytest.fixture
def restored_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield
    root.setLevel(level)
    root.handlers[:] = handlers
    logging.getLogger("aiokafka").manager._clear_cache()  # type: ignore[attr-defined]


@pytest.mark.parametrize("level", ["INFO", "WARNING", "ERROR"])
@pytest.mark.usefixtures("restored_root_logger")
def test_the_worker_keeps_the_root_logger_at_its_level(level: str) -> None:
    app = faust.App("test-worker-logging", autodiscover=False)
    worker = ServiceWorker(app, loglevel=level, quiet=True)
    worker._setup_logging()  # what the worker does when it starts
    assert logging.getLogger().level == logging.getLevelName(level)
    for name in ("aiokafka.producer.producer", "faust.topics", "stream.agents.common"):
        assert not logging.getLogger(name).isEnabledFor(logging.DEBUG), name
    assert logging.getLogger("faust.topics").isEnabledFor(logging.ERROR)
