"""Waiting for the broker to acknowledge what the worker produced."""

from __future__ import annotations

import asyncio
from typing import Any

from stream.errors import DeliveryFailed


async def delivered(futures: list[Any], what: str) -> None:
    """Wait until the broker has acknowledged every message of ``futures``.

    Raises ``DeliveryFailed`` if it refused one or gave up retrying (after the
    producer's request timeout): what caused the message must then not be acknowledged.
    """
    results = await asyncio.gather(*futures, return_exceptions=True)
    failures = [result for result in results if isinstance(result, BaseException)]
    if failures:
        raise DeliveryFailed(
            f"{len(failures)} of {len(results)} messages ({what}) not delivered: {failures[0]!r}"
        )
