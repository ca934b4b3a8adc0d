"""Customers by customer_id: purchases, refunds, attributions and identity links."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from schemas.events import Purchase
from schemas.topics import PURCHASES
from stream.agents.common import (
    INTERNAL_ERRORS,
    internal_json,
    logical_topic,
    publish,
    register_agent,
    reject,
    source_of,
)
from stream.domain.customer import (
    CustomerRecord,
    handle_attribution,
    handle_link,
    handle_purchase,
    handle_refund,
)
from stream.domain.ingest import Rejection, validate
from stream.domain.outcome import APPLIED, DUPLICATE

if TYPE_CHECKING:
    from stream.app import Runtime


def register(runtime: Runtime) -> None:
    register_agent(runtime, "customers-in", "customers", handle)


async def handle(runtime: Runtime, message: Any) -> None:
    source = source_of(message)
    if logical_topic(runtime, message.topic) == PURCHASES.name:
        event = validate(PURCHASES, message.key, message.value)
        if isinstance(event, Rejection):
            return await reject(runtime, message, event)
        assert not isinstance(event, Rejection)
        record = _load(runtime, event.customer_id)  # type: ignore[union-attr]
        handler = handle_purchase if isinstance(event, Purchase) else handle_refund
        outcome = handler(record, event, source, runtime.customer_rules)  # type: ignore[arg-type]
    else:
        update = internal_json(message)
        if isinstance(update, Rejection):
            return await reject(runtime, message, update)
        try:
            record = _load(runtime, update["customer_id"])
            if update["type"] == "attribution":
                outcome = handle_attribution(record, update["weights"], source)
            else:
                outcome = handle_link(record, update["visitor_id"], source)
        except INTERNAL_ERRORS as error:
            return await reject(runtime, message, Rejection("invalid_internal", repr(error)))
    if outcome.status in (APPLIED, DUPLICATE):
        runtime.customers[record.customer_id] = record.to_json()
        runtime.projection.customer_changed(record)
    await publish(runtime, message, outcome)


def _load(runtime: Runtime, customer_id: str) -> CustomerRecord:
    stored = runtime.customers.get(customer_id)
    return CustomerRecord(customer_id) if stored is None else CustomerRecord.from_json(stored)
