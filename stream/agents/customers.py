"""Customers by customer_id: purchases, refunds, attributions and identity links."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from schemas.events import Purchase, Refund
from schemas.topics import PURCHASES
from stream.agents.common import (
    INTERNAL_ERRORS,
    Records,
    internal_json,
    logical_topic,
    publish,
    register_agent,
    reject,
    source_of,
    too_late,
)
from stream.domain.attribution import campaign_weights_from_json, model_weights_from_json
from stream.domain.customer import (
    CustomerRecord,
    handle_attribution,
    handle_link,
    handle_purchase,
    handle_referred,
    handle_refund,
)
from stream.domain.ingest import Rejection, validate
from stream.domain.referral import days_from_json, origin_from_json

if TYPE_CHECKING:
    from stream.app import Runtime


def register(runtime: Runtime) -> None:
    register_agent(runtime, "customers-in", "customers", handle, lambda: records(runtime))


def records(runtime: Runtime) -> Records[CustomerRecord]:
    # Redis hears of a change once the table holds it: a rebuild that reads the table in
    # between cannot then leave an older record in Redis after the newer one.
    return Records(
        runtime.customers,
        CustomerRecord,
        CustomerRecord.from_json,
        CustomerRecord.to_json,
        written=runtime.projection.customer_changed,
    )


async def handle(runtime: Runtime, message: Any, customers: Records[CustomerRecord]) -> None:
    source = source_of(message)
    if logical_topic(runtime, message.topic) == PURCHASES.name:
        event = validate(PURCHASES, message.key, message.value)
        if isinstance(event, Rejection):
            return reject(runtime, message, event, customers)
        assert isinstance(event, Purchase | Refund)  # the purchases contract carries only these
        record = customers.get(event.customer_id)
        if late := too_late(runtime, record, source, event.occurred_at):
            return reject(runtime, message, late, customers)
        if isinstance(event, Purchase):
            outcome = handle_purchase(record, event, source, runtime.customer_rules)
        else:
            outcome = handle_refund(record, event, source, runtime.customer_rules)
    else:
        update = internal_json(message)
        if isinstance(update, Rejection):
            return reject(runtime, message, update, customers)
        try:
            record = customers.get(update["customer_id"])
            if update["type"] == "attribution":
                outcome = handle_attribution(
                    record,
                    update["visitor_id"],
                    update["converted_at"],
                    model_weights_from_json(update["weights"]),
                    source,
                    campaign_weights_from_json(update.get("campaigns", {})),
                    _referrer(update.get("referrer")),
                )
            elif update["type"] == "referred":
                outcome = handle_referred(
                    record,
                    _customer_id(update["referred_id"]),
                    days_from_json(update["days"]),
                    origin_from_json(update["origin"]),
                    source,
                )
            else:
                outcome = handle_link(record, update["visitor_id"], source)
        except INTERNAL_ERRORS as error:
            return reject(runtime, message, Rejection("invalid_internal", repr(error)), customers)
    if outcome.changed_state:
        customers.changed(record.customer_id, message)
    publish(runtime, message, outcome, customers)


def _referrer(value: object) -> str | None:
    return None if value is None else _customer_id(value)


def _customer_id(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError("a customer id must be a string")
    return value
