"""Visitors by visitor_id: touches (clicks, referrals), identities and conversions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from schemas.events import AdClick, Identify, Referral
from schemas.topics import AD_CLICKS, IDENTITIES, REFERRALS
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
from stream.domain.ingest import Rejection, validate
from stream.domain.outcome import Outcome
from stream.domain.visitor import (
    VisitorRecord,
    handle_conversion,
    handle_identify,
    handle_touch,
)

if TYPE_CHECKING:
    from stream.app import Runtime

CONTRACTS = {contract.name: contract for contract in (AD_CLICKS, REFERRALS, IDENTITIES)}


def register(runtime: Runtime) -> None:
    register_agent(runtime, "visitors-in", "visitors", handle, lambda: records(runtime))


def records(runtime: Runtime) -> Records[VisitorRecord]:
    return Records(runtime.visitors, VisitorRecord, VisitorRecord.from_json, VisitorRecord.to_json)


async def handle(runtime: Runtime, message: Any, visitors: Records[VisitorRecord]) -> None:
    source = source_of(message)
    contract = CONTRACTS.get(logical_topic(runtime, message.topic))
    outcome: Outcome
    if contract is not None:
        event = validate(contract, message.key, message.value)
        if isinstance(event, Rejection):
            return reject(runtime, message, event, visitors)
        if isinstance(event, AdClick | Referral):
            visitor_id = (
                event.visitor_id if isinstance(event, AdClick) else event.referred_visitor_id
            )
            record = visitors.get(visitor_id)
            if late := too_late(runtime, record, source, event.occurred_at):
                return reject(runtime, message, late, visitors)
            outcome = handle_touch(record, event, source, runtime.visitor_rules)
        else:
            assert isinstance(event, Identify)  # no money and no day: never too late
            record = visitors.get(event.visitor_id)
            outcome = handle_identify(record, event, source)
    else:
        update = internal_json(message)
        if isinstance(update, Rejection):
            return reject(runtime, message, update, visitors)
        try:
            record = visitors.get(update["visitor_id"])
            outcome = handle_conversion(
                record, update["customer_id"], update["converted_at"], source, runtime.visitor_rules
            )
        except INTERNAL_ERRORS as error:
            return reject(runtime, message, Rejection("invalid_internal", repr(error)), visitors)
    if outcome.changed_state:
        visitors.changed(record.visitor_id, message)
    publish(runtime, message, outcome, visitors)
