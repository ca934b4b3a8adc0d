"""Per-visitor state: marketing touches, identity, and attribution of conversions."""

from __future__ import annotations

from dataclasses import astuple, dataclass, field
from typing import Any

from schemas.events import AdClick, Identify, Referral
from stream.domain.attribution import AttributionModel, Touch, attribute, last_touch
from stream.domain.channel import AppliedOffsets, Source
from stream.domain.money import to_cents
from stream.domain.outcome import (
    APPLIED,
    DUPLICATE,
    REDELIVERED,
    Message,
    Outcome,
    spend_deltas,
    unsupported_currency,
)
from stream.domain.timeline import SECONDS_PER_DAY, day_of, epoch_seconds

CUSTOMER_UPDATES = "customer-updates"
REFERRAL_CHANNEL = "referral"
MAX_TOUCHES = 100


@dataclass(frozen=True)
class VisitorRules:
    reporting_currency: str = "USD"
    lookback_days: int = 30
    model: AttributionModel = last_touch


@dataclass
class StoredTouch:
    touch: Touch
    cost_cents: int
    offset: int  # offset of the event that applied it


@dataclass
class VisitorRecord(AppliedOffsets):
    visitor_id: str
    touches: list[StoredTouch] = field(default_factory=list)
    conversions: dict[str, dict[str, int]] = field(default_factory=dict)  # customer -> weights
    customer_id: str | None = None
    offsets: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "visitor_id": self.visitor_id,
            "touches": [[*astuple(s.touch), s.cost_cents, s.offset] for s in self.touches],
            "conversions": self.conversions,
            "customer_id": self.customer_id,
            "offsets": self.offsets,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> VisitorRecord:
        return cls(
            visitor_id=data["visitor_id"],
            touches=[StoredTouch(Touch(*t[:4]), t[4], t[5]) for t in data["touches"]],
            conversions=dict(data["conversions"]),
            customer_id=data["customer_id"],
            offsets=dict(data["offsets"]),
        )


def handle_touch(
    record: VisitorRecord, event: AdClick | Referral, source: Source, rules: VisitorRules
) -> Outcome:
    """An ad click or a referral: a touch for attribution, its cost is channel spend."""
    if error := unsupported_currency(event.currency, rules.reporting_currency):
        return error
    if record.seen(source):
        return Outcome(REDELIVERED, _touch_deltas(record, event.event_id, source))
    if any(stored.touch.event_id == event.event_id for stored in record.touches):
        record.mark(source)
        return Outcome(DUPLICATE)
    if isinstance(event, AdClick):
        touch = Touch(
            event.event_id, epoch_seconds(event.occurred_at), event.channel, event.campaign
        )
        cost = to_cents(event.cost)
    else:
        touch = Touch(event.event_id, epoch_seconds(event.occurred_at), REFERRAL_CHANNEL)
        cost = to_cents(event.reward_cost)
    record.touches = _pruned([*record.touches, StoredTouch(touch, cost, source.offset)], rules)
    record.mark(source)
    return Outcome(APPLIED, _touch_deltas(record, event.event_id, source))


def _touch_deltas(record: VisitorRecord, event_id: str, source: Source) -> list[Any]:
    for stored in record.touches:
        if stored.touch.event_id == event_id and stored.offset == source.offset:
            if stored.cost_cents == 0:
                return []
            at = stored.touch.occurred_at
            return spend_deltas(stored.touch.channel, source, at, {day_of(at): stored.cost_cents})
    return []


def _pruned(touches: list[StoredTouch], rules: VisitorRules) -> list[StoredTouch]:
    """Drop touches too old to qualify for any conversion that can still arrive."""
    newest = max(stored.touch.occurred_at for stored in touches)
    # one extra lookback of margin for purchases that arrive late
    horizon = newest - 2 * rules.lookback_days * SECONDS_PER_DAY
    kept = [stored for stored in touches if stored.touch.occurred_at >= horizon]
    return kept[-MAX_TOUCHES:]


def handle_identify(record: VisitorRecord, event: Identify, source: Source) -> Outcome:
    """The visitor is a known customer: tell the customer record about the visitor."""
    link = {"type": "link", "customer_id": event.customer_id, "visitor_id": record.visitor_id}
    message = Message(CUSTOMER_UPDATES, event.customer_id, link)
    if record.seen(source):
        return Outcome(REDELIVERED, messages=[message])
    record.customer_id = event.customer_id
    record.mark(source)
    return Outcome(APPLIED, messages=[message])


def handle_conversion(
    record: VisitorRecord, customer_id: str, converted_at: int, source: Source, rules: VisitorRules
) -> Outcome:
    """A customer's first purchase came through this visitor: attribute it.

    The weights are remembered, so a repeated conversion returns the same answer.
    """
    status = DUPLICATE if customer_id in record.conversions else APPLIED
    if record.seen(source):
        status = REDELIVERED
    elif status == APPLIED:
        touches = [stored.touch for stored in record.touches]
        record.conversions[customer_id] = attribute(
            touches, converted_at, rules.lookback_days, rules.model
        )
    record.mark(source)
    weights = record.conversions.get(customer_id)
    if weights is None:
        return Outcome(status)
    attribution = {"type": "attribution", "customer_id": customer_id, "weights": weights}
    return Outcome(status, messages=[Message(CUSTOMER_UPDATES, customer_id, attribution)])
