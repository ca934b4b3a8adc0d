"""Per-visitor state: marketing touches, identity, and attribution of conversions.

A conversion is attributed from the touches known when it arrives; a touch that
arrives later but happened inside a conversion's lookback attributes it again, and the
customer gets the new weights. So the weights never depend on arrival order.

A customer whose acquisition the primary model credits to a referral touch was referred:
its referrer is the ``referrer_customer_id`` of the referral touch that model credits
most (ties: the latest). It travels with the weights and changes with them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from operator import attrgetter
from typing import Any

from schemas.events import AdClick, Identify, Referral
from stream.domain.attribution import (
    REFERRAL,
    CampaignWeights,
    ModelWeights,
    Touch,
    attribute,
    campaign_weights,
    most_credited,
)
from stream.domain.channel import MEDIA, AppliedOffsets, ChannelDelta, Source
from stream.domain.fx import FxRates, Unconvertible
from stream.domain.outcome import APPLIED, DUPLICATE, REDELIVERED, Message, Outcome, spend_deltas
from stream.domain.timeline import SECONDS_PER_DAY, day_of, epoch_seconds

CUSTOMER_UPDATES = "customer-updates"
REFERRAL_CHANNEL = REFERRAL
MAX_TOUCHES = 100


@dataclass(frozen=True)
class VisitorRules:
    fx: FxRates = field(default_factory=FxRates)
    lookback_days: int = 30
    half_life_days: float = 7.0  # of the time-decay model
    primary_model: str = "last_touch"  # credits campaigns, decides who referred a customer


@dataclass
class StoredTouch:
    touch: Touch
    cost_cents: int
    offset: int  # offset of the event that applied it


_touch_fields = attrgetter(*(f.name for f in fields(Touch)))  # not astuple: no deep copies


@dataclass
class Conversion:
    converted_at: int
    weights: ModelWeights
    campaigns: CampaignWeights = field(default_factory=dict)  # of the primary model
    referrer: str | None = None  # of the referral touch the primary model credits most


@dataclass
class VisitorRecord(AppliedOffsets):
    visitor_id: str
    touches: list[StoredTouch] = field(default_factory=list)
    conversions: dict[str, Conversion] = field(default_factory=dict)  # by customer_id
    customer_id: str | None = None
    offsets: dict[str, int] = field(default_factory=dict)
    referrers: dict[str, str] = field(default_factory=dict)  # referral touch id -> referrer

    def to_json(self) -> dict[str, Any]:
        return {
            "visitor_id": self.visitor_id,
            "touches": [[*_touch_fields(s.touch), s.cost_cents, s.offset] for s in self.touches],
            "conversions": {
                c: [v.converted_at, v.weights, v.campaigns, v.referrer]
                for c, v in self.conversions.items()
            },
            "customer_id": self.customer_id,
            "offsets": self.offsets,
            "referrers": self.referrers,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> VisitorRecord:
        return cls(
            visitor_id=data["visitor_id"],
            touches=[StoredTouch(Touch(*t[:4]), t[4], t[5]) for t in data["touches"]],
            conversions={c: Conversion(*v) for c, v in data["conversions"].items()},
            customer_id=data["customer_id"],
            offsets=dict(data["offsets"]),
            referrers=dict(data.get("referrers", {})),
        )


def handle_touch(
    record: VisitorRecord, event: AdClick | Referral, source: Source, rules: VisitorRules
) -> Outcome:
    """An ad click or a referral: a touch for attribution, its cost is channel spend.

    A redelivered touch is answered from the record: the spend it sends again is the
    cost it was applied with, never converted again (one not kept, because pruned or
    never applied, sends none).
    """
    touch = _touch_of(event)
    stored = next((s for s in record.touches if s.touch.event_id == touch.event_id), None)
    if record.seen(source):
        if stored is not None and stored.offset != source.offset:
            return Outcome(REDELIVERED)  # this offset carried a duplicate
        spend = [] if stored is None else _spend_deltas(touch, stored.cost_cents, source)
        messages = _attributions(record, _affected(record, touch, rules))
        return Outcome(REDELIVERED, spend, messages)
    if stored is not None:
        record.mark(source)
        return Outcome(DUPLICATE)
    cost_in_currency = event.cost if isinstance(event, AdClick) else event.reward_cost
    cost = rules.fx.to_cents(cost_in_currency, event.currency, day_of(touch.occurred_at))
    if isinstance(cost, Unconvertible):
        return Outcome.rejected(cost.reason, cost.detail)
    spend = _spend_deltas(touch, cost, source)
    record.touches = _pruned([*record.touches, StoredTouch(touch, cost, source.offset)], rules)
    if isinstance(event, Referral):
        record.referrers[touch.event_id] = event.referrer_customer_id
    kept = {stored.touch.event_id for stored in record.touches}
    record.referrers = {t: r for t, r in record.referrers.items() if t in kept}
    record.mark(source)
    changed = []
    for customer_id in _affected(record, touch, rules):
        conversion = record.conversions[customer_id]
        attributed = _attributed(record, conversion.converted_at, rules)
        if attributed != conversion:
            record.conversions[customer_id] = attributed
            changed.append(customer_id)
    return Outcome(APPLIED, spend, _attributions(record, changed))


def _touch_of(event: AdClick | Referral) -> Touch:
    at = epoch_seconds(event.occurred_at)
    if isinstance(event, AdClick):
        return Touch(event.event_id, at, event.channel, event.campaign)
    return Touch(event.event_id, at, REFERRAL_CHANNEL)


def _spend_deltas(touch: Touch, cost_cents: int, source: Source) -> list[ChannelDelta]:
    if cost_cents == 0:
        return []
    at = touch.occurred_at
    return spend_deltas(touch.channel, MEDIA, source, at, {day_of(at): cost_cents}, touch.campaign)


def _affected(record: VisitorRecord, touch: Touch, rules: VisitorRules) -> list[str]:
    """Customers whose conversion ``touch`` can be credited for."""
    lookback = rules.lookback_days * SECONDS_PER_DAY
    return sorted(
        customer_id
        for customer_id, conversion in record.conversions.items()
        if conversion.converted_at - lookback <= touch.occurred_at <= conversion.converted_at
    )


def _attributed(record: VisitorRecord, converted_at: int, rules: VisitorRules) -> Conversion:
    """The conversion at ``converted_at`` attributed from the touches known now: the
    weights of every model, the primary model's campaigns and the referrer."""
    touches = [stored.touch for stored in record.touches]
    days, half_life, primary = rules.lookback_days, rules.half_life_days, rules.primary_model
    weights = attribute(touches, converted_at, days, half_life)
    referrer = None
    if REFERRAL in weights[primary]:
        credited = most_credited(touches, converted_at, days, half_life, primary, REFERRAL)
        referrer = None if credited is None else record.referrers.get(credited.event_id)
    return Conversion(
        converted_at,
        weights,
        campaign_weights(touches, converted_at, days, half_life, primary),
        referrer,
    )


def _attributions(record: VisitorRecord, customer_ids: list[str]) -> list[Message]:
    """The current attribution of each customer's conversion, for the customer."""
    messages = []
    for customer_id in customer_ids:
        conversion = record.conversions[customer_id]
        attribution = {
            "type": "attribution",
            "customer_id": customer_id,
            "visitor_id": record.visitor_id,
            "converted_at": conversion.converted_at,
            "weights": conversion.weights,
            "campaigns": conversion.campaigns,
            "referrer": conversion.referrer,
        }
        messages.append(Message(CUSTOMER_UPDATES, customer_id, attribution))
    return messages


def _pruned(touches: list[StoredTouch], rules: VisitorRules) -> list[StoredTouch]:
    """Drop touches too old to qualify for any conversion that can still arrive, and
    beyond ``MAX_TOUCHES`` the oldest, so that the kept set never depends on arrival order."""
    newest = max(stored.touch.occurred_at for stored in touches)
    # one extra lookback of margin for purchases that arrive late
    horizon = newest - 2 * rules.lookback_days * SECONDS_PER_DAY
    kept = [stored for stored in touches if stored.touch.occurred_at >= horizon]
    kept.sort(key=lambda stored: (stored.touch.occurred_at, stored.touch.event_id))
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
    """A customer's acquisition came through this visitor: attribute it.

    The answer is remembered, so a repeated conversion gets the same one, and a later
    touch inside its lookback can revise it.
    """
    if record.seen(source):
        known = customer_id in record.conversions
        return Outcome(REDELIVERED, messages=_attributions(record, [customer_id] if known else []))
    conversion = _attributed(record, converted_at, rules)
    status = DUPLICATE if record.conversions.get(customer_id) == conversion else APPLIED
    record.conversions[customer_id] = conversion
    record.mark(source)
    return Outcome(status, messages=_attributions(record, [customer_id]))
