"""The Redis projection against a real Redis: customers are written in transactions of
at most CUSTOMERS_PER_WRITE, a queued id is read from the table when written, and a
failure part-way keeps what was not written for the next attempt."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis

from stream.devstack import StackEndpoints
from stream.domain.customer import CustomerRecord
from stream.serving import projection as module
from stream.serving.projection import RedisProjection


def customer(number: int) -> CustomerRecord:
    return CustomerRecord(f"c{number}", revenue_cents=100 * number, orders=number)


@pytest.fixture
async def projection(stack: StackEndpoints) -> AsyncIterator[tuple[RedisProjection, str]]:
    prefix = f"test-{uuid.uuid4().hex[:8]}:"
    writer = RedisProjection(stack.redis_url, prefix)
    yield writer, prefix
    await writer.close()
    client = redis.Redis.from_url(stack.redis_url)
    for key in client.scan_iter(f"{prefix}*"):
        client.delete(key)


def revenues(stack: StackEndpoints, prefix: str) -> dict[str, str]:
    """customer id -> revenue as Redis holds it."""
    client = redis.Redis.from_url(stack.redis_url, decode_responses=True)
    return {
        key.removeprefix(f"{prefix}customer:"): client.hget(key, "revenue")
        for key in client.scan_iter(f"{prefix}customer:*")
    }


async def test_customers_go_in_bounded_transactions_and_queued_ids_are_read_when_written(
    stack: StackEndpoints, projection: tuple[RedisProjection, str], monkeypatch: Any
) -> None:
    writer, prefix = projection
    monkeypatch.setattr(module, "CUSTOMERS_PER_WRITE", 2)
    table = {c.customer_id: c for c in map(customer, (4, 5))}  # c6 is no longer there
    writer.stored = table.get
    writes: list[int] = []
    write = writer._write

    async def counted(batch: dict[str, Any], *args: Any) -> bool:
        writes.append(len(batch))
        return await write(batch, *args)

    monkeypatch.setattr(writer, "_write", counted)
    for number in (1, 2, 3):
        writer.customer_changed(customer(number))
    for customer_id in ("c4", "c5", "c6"):
        writer.customer_stale(customer_id)
    writer.customer_stale("c1")  # queued with its record already: that one is written
    await writer.flush([])
    assert writes == [2, 2, 2]
    assert revenues(stack, prefix) == {
        "c1": "1.00",
        "c2": "2.00",
        "c3": "3.00",
        "c4": "4.00",
        "c5": "5.00",
    }
    assert writer.pending == 0


async def test_a_failed_write_keeps_the_customers_not_yet_written(
    stack: StackEndpoints, projection: tuple[RedisProjection, str], monkeypatch: Any
) -> None:
    writer, prefix = projection
    monkeypatch.setattr(module, "CUSTOMERS_PER_WRITE", 2)
    redis_down = True

    def stored(customer_id: str) -> CustomerRecord | None:
        if redis_down and customer_id == "c3":
            raise OSError("connection reset")  # as the client raises it mid-transaction
        return customer(int(customer_id[1:]))

    writer.stored = stored
    for number in range(1, 6):
        writer.customer_stale(f"c{number}")
    with pytest.raises(OSError):
        await writer.flush([], retry_max_seconds=0.0)
    assert revenues(stack, prefix) == {"c1": "1.00", "c2": "2.00"}
    assert writer.pending == 3
    redis_down = False
    writer._retry_at = 0.0  # the next attempt is due
    await writer.flush([])
    assert revenues(stack, prefix) == {f"c{n}": f"{n}.00" for n in range(1, 6)}
    assert writer.pending == 0
