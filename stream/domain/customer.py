"""Per-customer state and what purchases, refunds and attributions do to it.

A customer's contribution to the channels is a function of the record: its orders and
refunds by day, its acquisition (the earliest order) and its attribution weights. Every
input that changes the record gets the next ``version``; the deltas it sends are the
contribution at that version minus the contribution just before it. That makes the
result independent of arrival order (an earlier order or a better attribution arriving
late retracts what was sent and sends the right thing) and lets a redelivered input
send exactly the deltas it sent the first time.

Rules under at-least-once delivery (ARCHITECTURE section 4):

- a duplicate (same order_id / refund event_id at another offset) changes nothing;
- an input at or below the record's offset for its partition was applied already:
  it changes nothing, but its deltas are produced again, identically, because they
  may have been lost in a crash (channels ignore what they have);
- until the first attribution comes back nothing is sent; it then sends the backlog.

Referrals (``referral.py``): the attribution names the referrer, if any; an input that
changes who referred the customer or when it was acquired tells the referrers concerned,
computed from the versions like the deltas. A customer's contribution to ``all`` carries
what the referral figures need, so one record answers them: ``referred_{counter}`` (the
share of each weighted counter that the model credits to the ``referral`` channel),
``referred`` (1 on the acquisition day of a customer with a referrer) and ``referrers``
(1 on the latest acquisition day of the customers it referred, while there are any).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from decimal import Decimal
from operator import attrgetter
from typing import Any

from schemas.events import Purchase, Refund
from stream.domain.attribution import (
    DIRECT,
    MODELS,
    REFERRAL,
    CampaignWeights,
    ModelWeights,
    Weights,
)
from stream.domain.channel import (
    ALL_CHANNELS,
    PAID_CHANNELS,
    REFERRED,
    REFERRERS,
    AppliedOffsets,
    Bucket,
    ChannelDelta,
    Source,
    campaign_customers_key,
    customer_keys,
    customers_key,
    referred_key,
)
from stream.domain.cohort import month_of, month_profit_key, profit_by_month
from stream.domain.fx import FxRates, Unconvertible, converted_cents
from stream.domain.money import WEIGHT_SCALE, gross_profit_cents, share_cents, to_cents
from stream.domain.outcome import APPLIED, DUPLICATE, REDELIVERED, Message, Outcome
from stream.domain.referral import Referrals, ReferralState, referral_messages
from stream.domain.timeline import day_of, epoch_seconds

VISITOR_UPDATES = "visitor-updates"
MAX_LINKED_VISITORS = 5
# Older attributions are only needed to re-send the deltas of a redelivered input.
MAX_ATTRIBUTIONS = 20
Contribution = dict[str, dict[int, Bucket]]  # channel -> day (or month) -> weighted bucket
DayTotals = dict[int, list[int]]  # day -> [acquired, gross profit cents, orders, last orders]


@dataclass(frozen=True)
class CustomerRules:
    fx: FxRates = field(default_factory=FxRates)
    default_margin: Decimal = Decimal("0.30")


@dataclass
class Order:
    at: int  # event time, seconds since the epoch
    amount_cents: int  # in the reporting currency, at the rate of the order's day
    profit_cents: int
    currency: str  # what the customer paid in; refunds are checked in it, rate-free
    paid: int  # hundredths of ``currency`` paid
    refunded: int  # hundredths of ``currency`` refunded so far
    visitor: str | None  # the visitor to attribute to if this order is the acquisition
    offset: int  # offset of the purchase that applied it
    version: int


@dataclass
class RefundEntry:
    at: int
    amount_cents: int
    profit_cents: int  # the profit it takes back
    offset: int
    version: int


@dataclass
class Attribution:
    """Weights of every model in force from ``version`` on; ``offset`` of the message
    that set them, or -1 when the record set them itself (acquired without a visitor);
    the customer who referred this one, if the primary model credits a referral."""

    version: int
    weights: ModelWeights
    offset: int
    campaigns: CampaignWeights = field(default_factory=dict)  # primary model's
    referrer: str | None = None  # who referred the customer, by the primary model


# A record is encoded at every change: attrgetter, not dataclasses.astuple, which copies
# every field deeply.
_order_fields = attrgetter(*(f.name for f in fields(Order)))
_refund_fields = attrgetter(*(f.name for f in fields(RefundEntry)))

DIRECT_WEIGHTS: ModelWeights = {model: {DIRECT: WEIGHT_SCALE} for model in MODELS}


@dataclass
class CustomerRecord(AppliedOffsets):
    customer_id: str
    revenue_cents: int = 0
    gross_profit_cents: int = 0
    orders: int = 0
    refunds: int = 0
    version: int = 0
    order_book: dict[str, Order] = field(default_factory=dict)
    refund_book: dict[str, RefundEntry] = field(default_factory=dict)
    attributions: list[Attribution] = field(default_factory=list)
    linked_visitors: list[str] = field(default_factory=list)
    offsets: dict[str, int] = field(default_factory=dict)
    referrals: Referrals = field(default_factory=Referrals)  # the customers it referred

    @property
    def first_order_id(self) -> str | None:
        """The acquisition: the earliest order in event time (ties: smallest order_id)."""
        return _first_order(self.order_book.items())

    @property
    def first_order_at(self) -> int | None:
        first = self.first_order_id
        return None if first is None else self.order_book[first].at

    @property
    def last_order_at(self) -> int | None:
        return max((order.at for order in self.order_book.values()), default=None)

    @property
    def converting_visitor(self) -> str | None:
        first = self.first_order_id
        return None if first is None else self.order_book[first].visitor

    @property
    def model_weights(self) -> ModelWeights | None:
        """The weights of every attribution model, once the acquisition is attributed."""
        return self.attributions[-1].weights if self.attributions else None

    @property
    def referred_by(self) -> str | None:
        """The customer who referred this one (primary model), once attributed."""
        return self.attributions[-1].referrer if self.attributions else None

    def weights(self, model: str) -> Weights | None:
        weights = self.model_weights
        return None if weights is None else weights[model]

    def acquisition_channel(self, model: str) -> str | None:
        """The channel with the largest weight in ``model`` (ties: alphabetical)."""
        weights = self.weights(model)
        if not weights:
            return None
        return max(sorted(weights), key=lambda channel: weights[channel])

    def to_json(self) -> dict[str, Any]:
        return {
            "customer_id": self.customer_id,
            "revenue_cents": self.revenue_cents,
            "gross_profit_cents": self.gross_profit_cents,
            "orders": self.orders,
            "refunds": self.refunds,
            "version": self.version,
            "order_book": {oid: list(_order_fields(o)) for oid, o in self.order_book.items()},
            "refund_book": {eid: list(_refund_fields(r)) for eid, r in self.refund_book.items()},
            "attributions": [
                [a.version, a.weights, a.offset, a.campaigns, a.referrer] for a in self.attributions
            ],
            "linked_visitors": self.linked_visitors,
            "offsets": self.offsets,
            "referrals": self.referrals.to_json(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CustomerRecord:
        return cls(
            customer_id=data["customer_id"],
            revenue_cents=data["revenue_cents"],
            gross_profit_cents=data["gross_profit_cents"],
            orders=data["orders"],
            refunds=data["refunds"],
            version=data["version"],
            order_book={oid: Order(*v) for oid, v in data["order_book"].items()},
            refund_book={eid: RefundEntry(*v) for eid, v in data["refund_book"].items()},
            attributions=[Attribution(*a) for a in data["attributions"]],
            linked_visitors=list(data["linked_visitors"]),
            offsets=dict(data["offsets"]),
            referrals=Referrals.from_json(data.get("referrals")),
        )


def _first_order(orders: Iterable[tuple[str, Order]]) -> str | None:
    return min(orders, key=lambda item: (item[1].at, item[0]), default=(None,))[0]


def handle_purchase(
    record: CustomerRecord, event: Purchase, source: Source, rules: CustomerRules
) -> Outcome:
    """Apply a purchase; the earliest one acquires the customer.

    A redelivered purchase is answered from the record, before any conversion: rates
    that arrived since do not change whether it was applied, nor what it sends.
    """
    if record.seen(source):
        return Outcome(REDELIVERED, *_purchase_outputs(record, event.order_id, source))
    if event.order_id in record.order_book:
        record.mark(source)
        return Outcome(DUPLICATE)

    at = epoch_seconds(event.occurred_at)
    rate = rules.fx.rate(event.currency, day_of(at))
    if isinstance(rate, Unconvertible):
        return Outcome.rejected(rate.reason, rate.detail)
    amount = converted_cents(event.amount, rate)
    cost = None if event.cost_of_goods is None else converted_cents(event.cost_of_goods, rate)
    profit = gross_profit_cents(amount, cost, event.margin, rules.default_margin)
    linked = record.linked_visitors[-1] if record.linked_visitors else None
    visitor = event.visitor_id or linked
    acquisition_before = record.first_order_id
    record.version += 1
    paid = to_cents(event.amount)  # in the purchase's currency
    record.order_book[event.order_id] = Order(
        at, amount, profit, event.currency, paid, 0, visitor, source.offset, record.version
    )
    record.revenue_cents += amount
    record.gross_profit_cents += profit
    record.orders += 1
    acquired_now = record.first_order_id != acquisition_before
    if acquired_now and visitor is None and record.model_weights != DIRECT_WEIGHTS:
        # Acquired without a visitor: direct, known at once.
        record.attributions.append(Attribution(record.version, DIRECT_WEIGHTS, -1))
        del record.attributions[:-MAX_ATTRIBUTIONS]
    record.mark(source)
    return Outcome(APPLIED, *_purchase_outputs(record, event.order_id, source))


def _purchase_outputs(
    record: CustomerRecord, order_id: str, source: Source
) -> tuple[list[ChannelDelta], list[Message]]:
    """Deltas and messages of the purchase that applied ``order_id`` at ``source``."""
    order = record.order_book.get(order_id)
    if order is None or order.offset != source.offset:
        return [], []  # not the event that applied this order: a duplicate
    messages = []
    if order_id == record.first_order_id and order.visitor is not None:
        conversion = {
            "type": "conversion",
            "customer_id": record.customer_id,
            "visitor_id": order.visitor,
            "converted_at": order.at,
        }
        messages.append(Message(VISITOR_UPDATES, order.visitor, conversion))
    deltas, referrals = _outputs(record, order.version, source)
    return deltas, messages + referrals


def handle_refund(
    record: CustomerRecord, event: Refund, source: Source, rules: CustomerRules
) -> Outcome:
    """Apply a refund: revenue falls by the amount at the rate of the refund's day,
    profit by the order's share of it (the refunded part of what was paid)."""
    if record.seen(source):
        return Outcome(REDELIVERED, _refund_deltas(record, event.event_id, source))
    if event.event_id in record.refund_book:
        record.mark(source)
        return Outcome(DUPLICATE)
    order = record.order_book.get(event.order_id)
    if order is None:
        return Outcome.rejected("unknown_order", f"no purchase with order_id {event.order_id}")
    if event.currency != order.currency:
        return Outcome.rejected(
            "currency_mismatch",
            f"refund in {event.currency} of order {event.order_id} paid in {order.currency}",
        )
    # Checked in the order's currency: a full refund fits whatever the rates did since.
    refunded = to_cents(event.amount)
    if refunded > order.paid - order.refunded:
        return Outcome.rejected(
            "refund_exceeds_order",
            f"refund of {_units(refunded)} {order.currency} exceeds the"
            f" {_units(order.paid - order.refunded)} {order.currency} not yet refunded",
        )
    at = epoch_seconds(event.occurred_at)
    amount = rules.fx.to_cents(event.amount, event.currency, day_of(at))
    if isinstance(amount, Unconvertible):
        return Outcome.rejected(amount.reason, amount.detail)
    reduction = share_cents(order.profit_cents, refunded, order.paid)
    record.version += 1
    order.refunded += refunded
    record.revenue_cents -= amount
    record.gross_profit_cents -= reduction
    record.refunds += 1
    record.refund_book[event.event_id] = RefundEntry(
        at, amount, reduction, source.offset, record.version
    )
    record.mark(source)
    return Outcome(APPLIED, _refund_deltas(record, event.event_id, source))


def _units(hundredths: int) -> Decimal:
    return Decimal(hundredths).scaleb(-2)


def _refund_deltas(record: CustomerRecord, event_id: str, source: Source) -> list[ChannelDelta]:
    entry = record.refund_book.get(event_id)
    if entry is None or entry.offset != source.offset:
        return []
    return _deltas(record, entry.version, source)


def handle_attribution(
    record: CustomerRecord,
    visitor_id: str,
    converted_at: int,
    weights: ModelWeights,
    source: Source,
    campaigns: CampaignWeights | None = None,
    referrer: str | None = None,
) -> Outcome:
    """The visitor's attribution of this customer's acquisition came back (or changed).

    An answer about an acquisition that is no longer the customer's (an earlier order
    arrived since) is stale and changes nothing but the offsets.
    """
    if record.seen(source):
        for attribution in record.attributions:
            if attribution.offset == source.offset:
                return Outcome(REDELIVERED, *_outputs(record, attribution.version, source))
        return Outcome(REDELIVERED)
    current = (record.converting_visitor, record.first_order_at)
    record.mark(source)
    attribution = Attribution(record.version + 1, weights, source.offset, campaigns or {}, referrer)
    latest = record.attributions[-1] if record.attributions else None
    unchanged = latest is not None and (latest.weights, latest.campaigns, latest.referrer) == (
        attribution.weights,
        attribution.campaigns,
        attribution.referrer,
    )
    if current != (visitor_id, converted_at) or unchanged:
        return Outcome(DUPLICATE)
    record.version += 1
    record.attributions.append(attribution)
    del record.attributions[:-MAX_ATTRIBUTIONS]
    return Outcome(APPLIED, *_outputs(record, record.version, source))


def handle_referred(
    record: CustomerRecord,
    referred_id: str,
    changes: dict[int, int],
    origin: Source,
    source: Source,
) -> Outcome:
    """A customer this one referred changed: ``changes`` (acquisition day -> +1 or -1)
    to the customers it referred, sent by that customer's input ``origin``.

    A change re-sent by a redelivered input (its origin applied already) is a duplicate.
    """
    if record.seen(source):
        note = record.referrals.note_at(source.offset)
        if note is None:
            return Outcome(REDELIVERED)
        return Outcome(REDELIVERED, _deltas(record, note.version, source))
    record.mark(source)
    if record.referrals.applied(origin):
        return Outcome(DUPLICATE)
    record.version += 1
    record.referrals.apply(referred_id, changes, origin, record.version, source.offset)
    return Outcome(APPLIED, _deltas(record, record.version, source))


def handle_link(record: CustomerRecord, visitor_id: str, source: Source) -> Outcome:
    """A visitor identified as this customer: remembered for later attribution."""
    if record.seen(source):
        return Outcome(REDELIVERED)
    if visitor_id not in record.linked_visitors:
        record.linked_visitors = [*record.linked_visitors, visitor_id][-MAX_LINKED_VISITORS:]
    record.mark(source)
    return Outcome(APPLIED)


def _outputs(
    record: CustomerRecord, version: int, source: Source
) -> tuple[list[ChannelDelta], list[Message]]:
    """The deltas and the referrers' messages of the input that made ``version``."""
    before, after = _at_version(record, version - 1), _at_version(record, version)
    messages = referral_messages(
        record.customer_id, _referral_state(before), _referral_state(after), source
    )
    return _deltas_between(record, before, after, source), messages


@dataclass(frozen=True)
class _AtVersion:
    """The record's inputs up to ``version``, looked up once for all that follows."""

    version: int
    orders: list[Order]
    refunds: list[RefundEntry]
    first: Order | None  # the acquisition
    attribution: Attribution | None


def _at_version(record: CustomerRecord, version: int) -> _AtVersion:
    orders = [(oid, o) for oid, o in record.order_book.items() if o.version <= version]
    first = _first_order(orders)
    return _AtVersion(
        version,
        [order for _, order in orders],
        [r for r in record.refund_book.values() if r.version <= version],
        None if first is None else record.order_book[first],
        _attribution_at(record, version),
    )


def _attribution_at(record: CustomerRecord, version: int) -> Attribution | None:
    return next((a for a in reversed(record.attributions) if a.version <= version), None)


def _referral_state(at: _AtVersion) -> ReferralState:
    """(referrer, acquisition day), or None when nobody referred the customer."""
    if at.attribution is None or at.attribution.referrer is None or at.first is None:
        return None
    return at.attribution.referrer, day_of(at.first.at)


def _deltas(record: CustomerRecord, version: int, source: Source) -> list[ChannelDelta]:
    """What the input that made ``version`` changed in the channels."""
    before, after = _at_version(record, version - 1), _at_version(record, version)
    return _deltas_between(record, before, after, source)


def _deltas_between(
    record: CustomerRecord, before: _AtVersion, after: _AtVersion, source: Source
) -> list[ChannelDelta]:
    """What the input that made ``after`` from ``before`` changed in the channels."""
    totals_before, totals_after = _day_totals(before), _day_totals(after)
    days = _changed_days(record, before, after, totals_before, totals_after)
    contribution_after = _contribution(record, after, totals_after, days)
    contribution_before = _contribution(record, before, totals_before, days)
    latest = _latest_input_at(after)
    cohorts_after, cohorts_before = _cohorts(after), _cohorts(before)
    deltas = []
    channels = (
        contribution_after.keys()
        | contribution_before.keys()
        | cohorts_after.keys()
        | cohorts_before.keys()
    )
    for channel in sorted(channels):
        change = _difference(
            contribution_before.get(channel, {}), contribution_after.get(channel, {})
        )
        cohorts = _difference(cohorts_before.get(channel, {}), cohorts_after.get(channel, {}))
        if change or cohorts:
            deltas.append(ChannelDelta(channel, source, latest, change, cohorts))
    return deltas


def _difference(old: dict[int, Bucket], new: dict[int, Bucket]) -> dict[int, Bucket]:
    """new - old by key (day or month), without the keys that did not change."""
    change = {}
    for key in sorted(old.keys() | new.keys()):
        bucket = Bucket(dict(new[key].counts)) if key in new else Bucket()
        if key in old:
            bucket.add(old[key], sign=-1)
        if bucket:
            change[key] = bucket
    return change


def channel_shares(weights: Weights) -> list[tuple[str, int]]:
    """The channels a customer counts in, with their weights: its attributed channels,
    ``all`` whole and ``paid`` for every channel but direct."""
    paid = WEIGHT_SCALE - weights.get(DIRECT, 0)
    return [*weights.items(), (ALL_CHANNELS, WEIGHT_SCALE), (PAID_CHANNELS, paid)]


def _day_totals(at: _AtVersion) -> DayTotals:
    """The customer's inputs by day: [customers acquired, gross profit cents, orders,
    customers whose last order]."""
    days: DayTotals = {}
    if at.first is None:
        return days
    for order in at.orders:
        totals = days.setdefault(day_of(order.at), [0, 0, 0, 0])
        totals[1] += order.profit_cents
        totals[2] += 1
    for refund in at.refunds:
        days.setdefault(day_of(refund.at), [0, 0, 0, 0])[1] -= refund.profit_cents
    days.setdefault(day_of(at.first.at), [0, 0, 0, 0])[0] += 1
    days[day_of(max(order.at for order in at.orders))][3] += 1
    return days


def _changed_days(
    record: CustomerRecord,
    before: _AtVersion,
    after: _AtVersion,
    totals_before: DayTotals,
    totals_after: DayTotals,
) -> set[int] | None:
    """The days whose buckets the input that made ``after`` can have changed, or None
    when it may have changed any (it changed the attribution). A customer's buckets on a
    day follow from that day's totals, its weights and its referral days only, so the
    deltas need the contribution on these days alone: a repeat purchase costs a few
    days' buckets instead of the customer's whole history in every model and channel."""
    if after.attribution is not before.attribution:
        return None
    days = {
        day
        for day in totals_before.keys() | totals_after.keys()
        if totals_before.get(day) != totals_after.get(day)
    }
    for at in (before, after):
        if (day := record.referrals.latest_day(at.version)) is not None:
            days.add(day)
    return days


def _contribution(
    record: CustomerRecord, at: _AtVersion, totals: DayTotals, only_days: set[int] | None
) -> Contribution:
    """The weighted buckets this customer puts in each channel (on ``only_days``, or on
    every day). ``totals``: ``_day_totals`` of ``at``."""
    attribution = at.attribution
    if attribution is None or at.first is None:
        return _with_referrals(record, at, {}, only_days)
    days = totals
    if only_days is not None:
        days = {day: totals for day, totals in days.items() if day in only_days}
    contribution: Contribution = {}
    for model, weights in attribution.weights.items():
        keys = customer_keys(model)
        for channel, weight in channel_shares(weights):
            if not weight:
                continue
            buckets = contribution.setdefault(channel, {})
            for day, values in days.items():
                counts = buckets.setdefault(day, Bucket()).counts
                for key, value in zip(keys, values, strict=True):
                    if value:
                        counts[key] = value * weight
    acquired_on = day_of(at.first.at)
    if only_days is None or acquired_on in only_days:
        for channel, campaigns in attribution.campaigns.items():
            counts = contribution.setdefault(channel, {}).setdefault(acquired_on, Bucket()).counts
            for campaign, weight in campaigns.items():
                counts[campaign_customers_key(campaign)] = weight
    return _with_referrals(record, at, contribution, only_days)


def _latest_input_at(at: _AtVersion) -> int:
    """The latest event time among the inputs: the deltas' time, for the channels'
    watermarks."""
    return max([o.at for o in at.orders] + [r.at for r in at.refunds], default=0)


def _cohorts(at: _AtVersion) -> Contribution:
    """The weighted cohort counters this customer puts in each channel: one bucket, at
    its acquisition month, with the customer and the gross profit by month since
    acquisition (``stream.domain.cohort``)."""
    if at.attribution is None or at.first is None:
        return {}
    amounts = [(o.at, o.profit_cents) for o in at.orders]
    amounts += [(r.at, -r.profit_cents) for r in at.refunds]
    profit = profit_by_month(at.first.at, amounts)
    month = month_of(at.first.at)
    cohorts: Contribution = {}
    for model, weights in at.attribution.weights.items():
        customers = customers_key(model)
        profit_keys = [(month_profit_key(model, since), cents) for since, cents in profit.items()]
        for channel, weight in channel_shares(weights):
            if not weight:
                continue
            counts = cohorts.setdefault(channel, {}).setdefault(month, Bucket()).counts
            counts[customers] = weight
            for key, cents in profit_keys:
                counts[key] = cents * weight
    return cohorts


def _with_referrals(
    record: CustomerRecord, at: _AtVersion, contribution: Contribution, only_days: set[int] | None
) -> Contribution:
    """``contribution`` and, in ``all``, what the referral figures need: the ``referral``
    channel's weighted counters as ``referred_{counter}``, ``referred`` on the acquisition
    day of a customer with a referrer, and ``referrers`` on the latest acquisition day of
    the customers this one referred (one per referrer, however many it referred)."""
    extra: dict[int, dict[str, int]] = {}
    for day, bucket in contribution.get(REFERRAL, {}).items():
        for model in MODELS:
            for key in customer_keys(model):
                if value := bucket.get(key):
                    extra.setdefault(day, {})[referred_key(key)] = value
    if (state := _referral_state(at)) is not None:
        extra.setdefault(state[1], {})[REFERRED] = 1
    if (latest_referral := record.referrals.latest_day(at.version)) is not None:
        extra.setdefault(latest_referral, {})[REFERRERS] = 1
    if only_days is not None:
        extra = {day: counts for day, counts in extra.items() if day in only_days}
    buckets = contribution.setdefault(ALL_CHANNELS, {}) if extra else {}
    for day, counts in extra.items():
        buckets.setdefault(day, Bucket()).counts.update(counts)
    return contribution
