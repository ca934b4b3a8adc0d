"""The worker runs on the event loop its setting names (``LTVCAC_EVENT_LOOP``)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from stream.devstack import StackEndpoints
from tests.integration.conftest import running, wait_until


@pytest.mark.parametrize(
    ("setting", "loop_class"),
    [("uvloop", "uvloop.Loop"), ("asyncio", "asyncio.unix_events._UnixSelectorEventLoop")],
)
async def test_the_worker_runs_on_the_event_loop_of_its_setting(
    stack: StackEndpoints, tmp_path: Path, setting: str, loop_class: str
) -> None:
    log_path = tmp_path / "worker.log"

    def loops() -> list[str]:
        return re.findall(r"worker started event_loop=(\S+)", log_path.read_text())

    async with running(stack, tmp_path, {"LTVCAC_EVENT_LOOP": setting}):
        await wait_until(lambda: bool(loops()), what="the worker's line naming its loop")
    assert loops() == [loop_class]
