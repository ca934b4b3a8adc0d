"""A started worker keeps what it started with out of the collector's full scans and
collects its young generation less often than the interpreter's default."""

from __future__ import annotations

import gc

import faust
import pytest

from stream.app import ServiceWorker


async def test_a_started_worker_freezes_its_objects_and_collects_young_ones_less_often(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def faust_startup_finished(_self: object) -> None:
        pass

    monkeypatch.setattr(faust.Worker, "on_startup_finished", faust_startup_finished)
    threshold = gc.get_threshold()
    gc.unfreeze()
    try:
        await ServiceWorker.on_startup_finished(object.__new__(ServiceWorker))
        assert gc.get_freeze_count() > 10_000  # the modules and the app, at least
        assert gc.get_threshold() == (20_000, *threshold[1:])
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)
