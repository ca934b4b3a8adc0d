"""Faust's current event, for the table operations of a batch of events.

Faust's stores take a key's partition from the current event: RocksDB keeps a database
per partition and reads and writes only the current event's. A batch's events are
iterated in the background (``Stream.take_events``), so nothing sets it to the event
a batch handles or to the one whose change it writes: these do.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import faust.streams as faust_streams


@contextlib.contextmanager
def current_event(event: Any) -> Iterator[None]:
    """``event`` is Faust's current event inside this block (in this task only)."""
    token = faust_streams._current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        faust_streams._current_event.reset(token)


class EventOfPartition:
    """What a store asks of the current event: its message's partition."""

    def __init__(self, partition: int) -> None:
        self.message = SimpleNamespace(partition=partition)


def store_set(store: Any, key: Any, value: Any, partition: int) -> None:
    """``store[key] = value`` as while handling an event of ``partition``."""
    event: Any = EventOfPartition(partition)  # held: the store's reference is weak
    token = faust_streams._current_event.set(weakref.ref(event))
    try:
        store[key] = value
    finally:
        faust_streams._current_event.reset(token)
