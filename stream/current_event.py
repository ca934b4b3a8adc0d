"""Faust's current event, for the table operations of a batch of events.

Faust's stores take a key's partition from the current event: RocksDB keeps a database
per partition and reads and writes only the current event's. A batch's events are
iterated in the background (``Stream.take_events``), so nothing sets it to the event
a batch handles or to the one whose change it writes: these do.
"""

from __future__ import annotations

import weakref
from types import SimpleNamespace
from typing import Any

import faust.streams as faust_streams


def current_event(event: Any) -> CurrentEvent:
    """``event`` is Faust's current event inside a ``with`` block (in this task only)."""
    return CurrentEvent(event)


def in_partition(partition: int) -> CurrentEvent:
    """Inside the block the current event is one of ``partition``: what a store asks
    of it to write a key."""
    return CurrentEvent(EventOfPartition(partition))


class CurrentEvent:
    """A plain context manager, entered for every event and every record written, where
    a ``contextlib`` generator costs several times as much."""

    __slots__ = ("_event", "_token")

    def __init__(self, event: Any) -> None:
        self._event = event  # held here: Faust keeps only a weak reference to it

    def __enter__(self) -> None:
        self._token = faust_streams._current_event.set(weakref.ref(self._event))

    def __exit__(self, *_exc: object) -> None:
        faust_streams._current_event.reset(self._token)


class EventOfPartition:
    """What a store asks of the current event: its message's partition."""

    def __init__(self, partition: int) -> None:
        self.message = SimpleNamespace(partition=partition)
