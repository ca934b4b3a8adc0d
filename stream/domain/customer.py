"""Per-customer state and what purchases, refunds and attributions do to it.

Rules under at-least-once delivery (ARCHITECTURE section 4):

- a duplicate (same order_id / refund event_id at another offset) changes nothing;
- an event at or below the record's offset for its partition was applied already:
  it changes nothing, but the deltas it caused are produced again, identically,
  because they may have been lost in a crash (channels ignore what they have);
- until attribution comes back, profit waits in ``pending`` by day; the
  attribution sends the backlog, later events send their own deltas.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from schemas.events import Purchase, Refund
from stream.domain.attribution import DIRECT, Weights
from stream.domain.channel import AppliedOffsets, Bucket, Source
from stream.domain.money import WEIGHT_SCALE, gross_profit_cents, share_cents, to_cents
from stream.domain.outcome import (
    APPLIED,
    DUPLICATE,
    REDELIVERED,
    Message,
    Outcome,
    split_deltas,
    unsupported_currency,
)
from stream.domain.timeline import day_of, epoch_seconds

VISITOR_UPDATES = "visitor-updates"
MAX_LINKED_VISITORS = 5


@dataclass(frozen=True)
class CustomerRules:
    reporting_currency: str = "USD"
    default_margin: Decimal = Decimal("0.30")


@dataclass
class Order:
    amount_cents: int
    profit_cents: int
    refunded_cents: int
    offset: int  # offset of the purchase that applied it


@dataclass
class CustomerRecord(AppliedOffsets):
    customer_id: str
    revenue_cents: int = 0
    gross_profit_cents: int = 0
    orders: int = 0
    refunds: int = 0
    first_order_at: int | None = None
    last_order_at: int | None = None
    first_order_id: str | None = None
    converting_visitor: str | None = None
    weights: Weights | None = None
    attributed_at_offset: int = -1  # purchases above it send their own deltas
    attribution_source: tuple[str, int] | None = None
    pending: dict[int, tuple[int, int]] = field(default_factory=dict)  # day -> profit, orders
    order_book: dict[str, Order] = field(default_factory=dict)
    refund_book: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    linked_visitors: list[str] = field(default_factory=list)
    offsets: dict[str, int] = field(default_factory=dict)

    @property
    def acquisition_channel(self) -> str | None:
        """The channel with the largest weight (ties: alphabetical)."""
        if not self.weights:
            return None
        return max(sorted(self.weights), key=lambda channel: self.weights[channel])  # type: ignore[index]

    def to_json(self) -> dict[str, Any]:
        return {
            "customer_id": self.customer_id,
            "revenue_cents": self.revenue_cents,
            "gross_profit_cents": self.gross_profit_cents,
            "orders": self.orders,
            "refunds": self.refunds,
            "first_order_at": self.first_order_at,
            "last_order_at": self.last_order_at,
            "first_order_id": self.first_order_id,
            "converting_visitor": self.converting_visitor,
            "weights": self.weights,
            "attributed_at_offset": self.attributed_at_offset,
            "attribution_source": self.attribution_source,
            "pending": {str(day): list(v) for day, v in self.pending.items()},
            "order_book": {
                oid: [o.amount_cents, o.profit_cents, o.refunded_cents, o.offset]
                for oid, o in self.order_book.items()
            },
            "refund_book": {eid: list(v) for eid, v in self.refund_book.items()},
            "linked_visitors": self.linked_visitors,
            "offsets": self.offsets,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CustomerRecord:
        source = data["attribution_source"]
        return cls(
            customer_id=data["customer_id"],
            revenue_cents=data["revenue_cents"],
            gross_profit_cents=data["gross_profit_cents"],
            orders=data["orders"],
            refunds=data["refunds"],
            first_order_at=data["first_order_at"],
            last_order_at=data["last_order_at"],
            first_order_id=data["first_order_id"],
            converting_visitor=data["converting_visitor"],
            weights=data["weights"],
            attributed_at_offset=data["attributed_at_offset"],
            attribution_source=None if source is None else (source[0], source[1]),
            pending={int(day): (v[0], v[1]) for day, v in data["pending"].items()},
            order_book={oid: Order(*v) for oid, v in data["order_book"].items()},
            refund_book={eid: (v[0], v[1], v[2]) for eid, v in data["refund_book"].items()},
            linked_visitors=list(data["linked_visitors"]),
            offsets=dict(data["offsets"]),
        )


def handle_purchase(
    record: CustomerRecord, event: Purchase, source: Source, rules: CustomerRules
) -> Outcome:
    """Apply a purchase; the first one acquires the customer."""
    if error := unsupported_currency(event.currency, rules.reporting_currency):
        return error
    if record.seen(source):
        return Outcome(REDELIVERED, *_purchase_outputs(record, event, source))
    if event.order_id in record.order_book:
        record.mark(source)
        return Outcome(DUPLICATE)

    amount = to_cents(event.amount)
    cost = None if event.cost_of_goods is None else to_cents(event.cost_of_goods)
    profit = gross_profit_cents(amount, cost, event.margin, rules.default_margin)
    at = epoch_seconds(event.occurred_at)
    record.order_book[event.order_id] = Order(amount, profit, 0, source.offset)
    record.revenue_cents += amount
    record.gross_profit_cents += profit
    record.orders += 1
    record.last_order_at = at if record.last_order_at is None else max(record.last_order_at, at)
    if record.first_order_id is None:
        record.first_order_id = event.order_id
        record.first_order_at = at
        linked = record.linked_visitors[-1] if record.linked_visitors else None
        visitor = event.visitor_id or linked
        if visitor is None:
            record.weights = {DIRECT: WEIGHT_SCALE}
            record.attributed_at_offset = source.offset - 1
        else:
            record.converting_visitor = visitor
    if record.weights is None:
        profit_so_far, orders_so_far = record.pending.get(day_of(at), (0, 0))
        record.pending[day_of(at)] = (profit_so_far + profit, orders_so_far + 1)
    record.mark(source)
    return Outcome(APPLIED, *_purchase_outputs(record, event, source))


def _purchase_outputs(
    record: CustomerRecord, event: Purchase, source: Source
) -> tuple[list[Any], list[Message]]:
    """Deltas and messages of an applied purchase; a pure function of the record."""
    order = record.order_book.get(event.order_id)
    if order is None or order.offset != source.offset:
        return [], []  # not the event that applied this order: a duplicate
    at = epoch_seconds(event.occurred_at)
    if event.order_id == record.first_order_id and record.converting_visitor is not None:
        conversion = {
            "type": "conversion",
            "customer_id": record.customer_id,
            "visitor_id": record.converting_visitor,
            "converted_at": record.first_order_at,
        }
        return [], [Message(VISITOR_UPDATES, record.converting_visitor, conversion)]
    if record.weights is None or source.offset <= record.attributed_at_offset:
        return [], []  # waits in the backlog that the attribution sends
    acquired = 1 if event.order_id == record.first_order_id else 0  # a direct acquisition
    bucket = Bucket(customers=acquired, gross_profit=order.profit_cents, orders=1)
    return split_deltas(record.weights, source, at, {day_of(at): bucket}), []


def handle_refund(
    record: CustomerRecord, event: Refund, source: Source, rules: CustomerRules
) -> Outcome:
    """Apply a refund: revenue falls by the amount, profit by the order's share of it."""
    if error := unsupported_currency(event.currency, rules.reporting_currency):
        return error
    if record.seen(source):
        return Outcome(REDELIVERED, _refund_deltas(record, event, source))
    if event.event_id in record.refund_book:
        record.mark(source)
        return Outcome(DUPLICATE)
    order = record.order_book.get(event.order_id)
    if order is None:
        return Outcome.rejected("unknown_order", f"no purchase with order_id {event.order_id}")
    amount = to_cents(event.amount)
    if amount > order.amount_cents - order.refunded_cents:
        return Outcome.rejected(
            "refund_exceeds_order",
            f"refund of {amount} cents exceeds the {order.amount_cents - order.refunded_cents}"
            " cents not yet refunded",
        )
    reduction = share_cents(order.profit_cents, amount, order.amount_cents)
    at = epoch_seconds(event.occurred_at)
    order.refunded_cents += amount
    record.revenue_cents -= amount
    record.gross_profit_cents -= reduction
    record.refunds += 1
    record.refund_book[event.event_id] = (amount, reduction, source.offset)
    if record.weights is None:
        profit_so_far, orders_so_far = record.pending.get(day_of(at), (0, 0))
        record.pending[day_of(at)] = (profit_so_far - reduction, orders_so_far)
    record.mark(source)
    return Outcome(APPLIED, _refund_deltas(record, event, source))


def _refund_deltas(record: CustomerRecord, event: Refund, source: Source) -> list[Any]:
    entry = record.refund_book.get(event.event_id)
    if entry is None or entry[2] != source.offset:
        return []
    if record.weights is None or source.offset <= record.attributed_at_offset:
        return []
    at = epoch_seconds(event.occurred_at)
    return split_deltas(record.weights, source, at, {day_of(at): Bucket(gross_profit=-entry[1])})


def handle_attribution(record: CustomerRecord, weights: Weights, source: Source) -> Outcome:
    """Channel weights for the acquisition came back: send the acquisition and the backlog."""
    if record.seen(source):
        return Outcome(REDELIVERED, _acquisition_deltas(record, source))
    if record.weights is not None or record.first_order_at is None:
        record.mark(source)
        return Outcome(DUPLICATE)
    record.weights = dict(weights)
    record.attributed_at_offset = max(
        (offset for stream, offset in record.offsets.items() if stream != source.stream),
        default=-1,
    )
    record.attribution_source = (source.stream, source.offset)
    record.mark(source)
    return Outcome(APPLIED, _acquisition_deltas(record, source))


def _acquisition_deltas(record: CustomerRecord, source: Source) -> list[Any]:
    if record.attribution_source != (source.stream, source.offset):
        return []
    assert record.weights is not None and record.first_order_at is not None
    buckets = {day: Bucket(gross_profit=p, orders=n) for day, (p, n) in record.pending.items()}
    acquisition_day = day_of(record.first_order_at)
    buckets.setdefault(acquisition_day, Bucket()).customers += 1
    return split_deltas(record.weights, source, record.first_order_at, buckets)


def handle_link(record: CustomerRecord, visitor_id: str, source: Source) -> Outcome:
    """A visitor identified as this customer: remembered for later attribution."""
    if record.seen(source):
        return Outcome(REDELIVERED)
    if visitor_id not in record.linked_visitors:
        record.linked_visitors = [*record.linked_visitors, visitor_id][-MAX_LINKED_VISITORS:]
    record.mark(source)
    return Outcome(APPLIED)
