"""Customer records: acquisition, purchases, refunds, duplicates and redelivery.

Every attribution model is sent side by side: a bucket holds ``customers:{model}``,
``profit:{model}`` (cents) and ``orders:{model}``, each weighted in millionths by that
model's weights. ``all`` gets every customer whole; ``paid`` gets the share of every
channel but ``direct``.
"""

import datetime as dt
import json
from decimal import Decimal

from schemas.events import Purchase, Refund
from stream.domain.channel import Bucket, ChannelDelta, ChannelRecord, Source
from stream.domain.customer import (
    CustomerRecord,
    CustomerRules,
    handle_attribution,
    handle_link,
    handle_purchase,
    handle_refund,
)
from stream.domain.fx import FxRates
from stream.domain.outcome import APPLIED, DUPLICATE, REDELIVERED, REJECTED
from stream.domain.timeline import day_of_date
from tests.unit.events import event

RULES = CustomerRules(FxRates("USD"), Decimal("0.30"))
M = 1_000_000  # weight scale: one whole customer/order/cent
H = M // 2
DAY1 = day_of_date(dt.date(2026, 3, 1))
AT1 = int(dt.datetime(2026, 3, 1, 10, tzinfo=dt.UTC).timestamp())  # purchase(day=1) time
MODELS = ("first_touch", "last_touch", "linear", "time_decay", "position_based")

# Two touches, search then social: each model's weights as worked out by hand.
SPLIT = {
    "first_touch": {"search": M},
    "last_touch": {"social": M},
    "linear": {"search": H, "social": H},
    "position_based": {"search": H, "social": H},  # two touches share equally
    "time_decay": {"search": 250_000, "social": 750_000},
}


def purchase(order: str, amount: str, day: int = 1, **extra: object) -> Purchase:
    p: Purchase = event(
        "purchase",
        f"2026-03-{day:02d}T10:00:00Z",
        customer_id="c1",
        order_id=order,
        amount=amount,
        currency="USD",
        **extra,
    )
    return p


def src(offset: int, topic: str = "purchases") -> Source:
    return Source(topic, 0, offset)


def by_channel(deltas: list[ChannelDelta]) -> dict[str, dict[int, Bucket]]:
    return {d.channel: d.buckets for d in deltas}


def every_model(weights: dict[str, int]) -> dict[str, dict[str, int]]:
    """The same weights in every model (a single touch, or none: direct)."""
    return {model: dict(weights) for model in MODELS}


def counters(
    weights: dict[str, int], customers: int = 0, profit: int = 0, orders: int = 0, last: int = 0
) -> Bucket:
    """One day's counters of whole ``customers``, ``profit`` cents, ``orders`` and
    customers whose ``last`` order it was, each model weighted by ``weights[model]``
    millionths; zero counters are absent."""
    counts = {}
    for model, weight in weights.items():
        for name, value in (
            ("customers", customers),
            ("profit", profit),
            ("orders", orders),
            ("last_orders", last),
        ):
            if value * weight:
                counts[f"{name}:{model}"] = value * weight
    return Bucket(counts)


def acquired(
    customers: int = 0, profit: int = 0, orders: int = 0, weight: int = M, last: int = 0
) -> Bucket:
    """The counters of every model when all models give the channel the same ``weight``."""
    return counters(dict.fromkeys(MODELS, weight), customers, profit, orders, last)


def test_first_purchase_without_visitor_is_a_direct_acquisition() -> None:
    record = CustomerRecord("c1")
    outcome = handle_purchase(record, purchase("o1", "100.00", cost_of_goods="40"), src(5), RULES)
    assert outcome.status == APPLIED
    expected = {DAY1: acquired(customers=1, profit=6000, orders=1, last=1)}
    assert expected[DAY1].get("profit:linear") == 6_000_000_000
    # direct is not paid: no delta for ``paid``
    assert by_channel(outcome.deltas) == {"direct": expected, "all": expected}
    assert (record.revenue_cents, record.gross_profit_cents, record.orders) == (10000, 6000, 1)
    assert record.model_weights == every_model({"direct": M})
    assert [record.acquisition_channel(model) for model in MODELS] == ["direct"] * 5


def test_first_purchase_with_visitor_asks_for_attribution_and_waits() -> None:
    record = CustomerRecord("c1")
    outcome = handle_purchase(record, purchase("o1", "100.00", visitor_id="v1"), src(5), RULES)
    assert outcome.deltas == []
    [message] = outcome.messages
    assert (message.topic, message.key) == ("visitor-updates", "v1")
    assert message.value["customer_id"] == "c1"
    # a second purchase before the attribution returns also waits
    second = handle_purchase(record, purchase("o2", "50.00", day=2, margin="0.5"), src(6), RULES)
    assert (second.deltas, second.messages) == ([], [])
    assert (record.revenue_cents, record.gross_profit_cents, record.orders) == (15000, 5500, 2)
    assert (record.model_weights, record.weights("linear")) == (None, None)
    assert record.acquisition_channel("linear") is None


def test_attribution_sends_acquisition_and_backlog_split_by_weight() -> None:
    record = CustomerRecord("c1")
    handle_purchase(record, purchase("o1", "100.00", visitor_id="v1"), src(5), RULES)
    handle_purchase(record, purchase("o2", "50.00", day=2, margin="0.5"), src(6), RULES)
    outcome = handle_attribution(record, "v1", AT1, SPLIT, src(0, "customer-updates"))
    assert outcome.status == APPLIED
    deltas = by_channel(outcome.deltas)
    assert sorted(deltas) == ["all", "paid", "search", "social"]
    # search: 30.00 of profit on day 1 and 25.00 on day 2; last touch gives it nothing
    assert deltas["search"] == {
        DAY1: Bucket(
            {
                "customers:first_touch": 1_000_000,
                "customers:linear": 500_000,
                "customers:position_based": 500_000,
                "customers:time_decay": 250_000,
                "profit:first_touch": 3_000_000_000,
                "profit:linear": 1_500_000_000,
                "profit:position_based": 1_500_000_000,
                "profit:time_decay": 750_000_000,
                "orders:first_touch": 1_000_000,
                "orders:linear": 500_000,
                "orders:position_based": 500_000,
                "orders:time_decay": 250_000,
            }
        ),
        DAY1 + 1: Bucket(
            {
                "profit:first_touch": 2_500_000_000,
                "profit:linear": 1_250_000_000,
                "profit:position_based": 1_250_000_000,
                "profit:time_decay": 625_000_000,
                "orders:first_touch": 1_000_000,
                "orders:linear": 500_000,
                "orders:position_based": 500_000,
                "orders:time_decay": 250_000,
                # the last order is o2's: the customer counts as ordering last on day 2
                "last_orders:first_touch": 1_000_000,
                "last_orders:linear": 500_000,
                "last_orders:position_based": 500_000,
                "last_orders:time_decay": 250_000,
            }
        ),
    }
    social = {"last_touch": M, "linear": H, "position_based": H, "time_decay": 750_000}
    assert deltas["social"] == {
        DAY1: counters(social, customers=1, profit=3000, orders=1),
        DAY1 + 1: counters(social, profit=2500, orders=1, last=1),
    }
    # linear: half of the 30.00 to each channel, the whole of it to all
    assert deltas["social"][DAY1].get("profit:linear") == 1_500_000_000
    assert deltas["all"][DAY1].get("profit:linear") == 3_000_000_000
    # all and paid (no direct share) count the customer whole in every model
    whole = {DAY1: acquired(1, 3000, 1), DAY1 + 1: acquired(0, 2500, 1, last=1)}
    assert deltas["all"] == deltas["paid"] == whole
    assert [record.acquisition_channel(model) for model in MODELS] == [
        "search",  # first touch
        "social",  # last touch
        "search",  # linear: a tie, alphabetical
        "social",  # time decay
        "search",  # position based: a tie
    ]
    # later purchases send their own deltas (10.00 at the default margin: 3.00)
    third = by_channel(
        handle_purchase(record, purchase("o3", "10.00", day=3), src(7), RULES).deltas
    )
    assert sorted(third) == ["all", "paid", "search", "social"]
    # and the last order moves from day 2 to day 3
    assert third["social"] == {
        DAY1 + 1: counters(social, last=-1),
        DAY1 + 2: Bucket(
            {
                "profit:last_touch": 300_000_000,
                "profit:linear": 150_000_000,
                "profit:position_based": 150_000_000,
                "profit:time_decay": 225_000_000,
                "orders:last_touch": 1_000_000,
                "orders:linear": 500_000,
                "orders:position_based": 500_000,
                "orders:time_decay": 750_000,
                "last_orders:last_touch": 1_000_000,
                "last_orders:linear": 500_000,
                "last_orders:position_based": 500_000,
                "last_orders:time_decay": 750_000,
            }
        ),
    }


def test_paid_counts_every_channel_but_direct() -> None:
    record = CustomerRecord("c1")
    handle_purchase(record, purchase("o1", "100.00", visitor_id="v1"), src(5), RULES)
    weights = every_model({"direct": 250_000, "search": 750_000})
    outcome = handle_attribution(record, "v1", AT1, weights, src(0, "customer-updates"))
    assert by_channel(outcome.deltas) == {
        "all": {DAY1: acquired(1, 3000, 1, last=1)},
        "direct": {DAY1: acquired(1, 3000, 1, weight=250_000, last=1)},
        "paid": {DAY1: acquired(1, 3000, 1, weight=750_000, last=1)},
        "search": {DAY1: acquired(1, 3000, 1, weight=750_000, last=1)},
    }
    assert by_channel(outcome.deltas)["paid"][DAY1].get("profit:time_decay") == 2_250_000_000


def test_duplicate_order_changes_nothing() -> None:
    record = CustomerRecord("c1")
    handle_purchase(record, purchase("o1", "100.00"), src(5), RULES)
    again = handle_purchase(record, purchase("o1", "100.00"), src(9), RULES)
    assert again.status == DUPLICATE and again.deltas == []
    assert (record.revenue_cents, record.orders) == (10000, 1)


def test_redelivered_purchase_is_not_applied_but_its_deltas_are_sent_again() -> None:
    record = CustomerRecord("c1")
    first = handle_purchase(record, purchase("o1", "100.00"), src(5), RULES)
    handle_purchase(record, purchase("o2", "20.00", day=2), src(6), RULES)
    replay = handle_purchase(record, purchase("o1", "100.00"), src(5), RULES)
    assert replay.status == REDELIVERED
    assert replay.deltas == first.deltas
    assert record.orders == 2


def test_redelivered_purchase_of_a_split_customer_sends_the_same_deltas() -> None:
    record = CustomerRecord("c1")
    handle_purchase(record, purchase("o1", "100.00", visitor_id="v1"), src(5), RULES)
    handle_attribution(record, "v1", AT1, SPLIT, src(0, "customer-updates"))
    first = handle_purchase(record, purchase("o2", "20.00", day=2), src(6), RULES)
    handle_purchase(record, purchase("o3", "30.00", day=3), src(7), RULES)
    replay = handle_purchase(record, purchase("o2", "20.00", day=2), src(6), RULES)
    assert (replay.status, replay.deltas) == (REDELIVERED, first.deltas)
    # 20.00 at 30%: 6.00, half of it to search under linear
    assert by_channel(replay.deltas)["search"][DAY1 + 1].get("profit:linear") == 300_000_000


def test_refund_takes_back_revenue_and_the_orders_share_of_profit() -> None:
    record = CustomerRecord("c1")
    handle_purchase(record, purchase("o1", "100.00", cost_of_goods="40"), src(5), RULES)
    refund: Refund = event(
        "refund",
        "2026-03-02T10:00:00Z",
        customer_id="c1",
        order_id="o1",
        amount="20",
        currency="USD",
    )
    outcome = handle_refund(record, refund, src(6), RULES)
    assert outcome.status == APPLIED
    assert (record.revenue_cents, record.gross_profit_cents, record.refunds) == (8000, 4800, 1)
    # a fifth of the 60.00 of profit, on the refund's day; orders and customers stay
    taken_back = {DAY1 + 1: acquired(profit=-1200)}
    assert taken_back[DAY1 + 1].get("profit:first_touch") == -1_200_000_000
    assert by_channel(outcome.deltas) == {"all": taken_back, "direct": taken_back}
    assert handle_refund(record, refund, src(7), RULES).status == DUPLICATE


def test_refund_of_unknown_order_or_more_than_paid_is_rejected() -> None:
    record = CustomerRecord("c1")
    handle_purchase(record, purchase("o1", "10.00"), src(5), RULES)
    unknown = event("refund", customer_id="c1", order_id="nope", amount="1", currency="USD")
    assert handle_refund(record, unknown, src(6), RULES).reason == "unknown_order"
    too_much = event("refund", customer_id="c1", order_id="o1", amount="10.01", currency="USD")
    outcome = handle_refund(record, too_much, src(7), RULES)
    assert (outcome.status, outcome.reason) == (REJECTED, "refund_exceeds_order")
    assert record.revenue_cents == 1000


# EUR is worth 1.10 USD from 1 March 2026 and 1.20 USD from 10 March.
EUR_RATES = {"EUR": [(DAY1, Decimal("1.10")), (DAY1 + 9, Decimal("1.20"))]}
FX_RULES = CustomerRules(FxRates("USD", EUR_RATES), Decimal("0.30"))


def euro_purchase(order: str, amount: str, day: int = 1, **extra: object) -> Purchase:
    return purchase(order, amount, day, **extra).model_copy(update={"currency": "EUR"})


def euro_refund(order: str, amount: str, day: int) -> Refund:
    refund: Refund = event(
        "refund",
        f"2026-03-{day:02d}T10:00:00Z",
        customer_id="c1",
        order_id=order,
        amount=amount,
        currency="EUR",
    )
    return refund


def test_a_purchase_in_another_currency_counts_at_the_rate_of_its_day() -> None:
    record = CustomerRecord("c1")
    euros = euro_purchase("o1", "100.00", cost_of_goods="40.00")
    outcome = handle_purchase(record, euros, src(5), FX_RULES)
    assert outcome.status == APPLIED
    # 100.00 EUR x 1.10 = 110.00 USD; cost 40.00 EUR x 1.10 = 44.00 USD; profit 66.00 USD
    assert (record.revenue_cents, record.gross_profit_cents) == (11000, 6600)
    expected = {DAY1: acquired(customers=1, profit=6600, orders=1, last=1)}
    assert by_channel(outcome.deltas) == {"direct": expected, "all": expected}  # no paid
    # on 10 March the new rate: 10.00 EUR x 1.20 = 12.00 USD, profit 30% = 3.60 USD
    handle_purchase(record, euro_purchase("o2", "10.00", day=10), src(6), FX_RULES)
    assert (record.revenue_cents, record.gross_profit_cents) == (11000 + 1200, 6600 + 360)


def test_a_refund_counts_at_the_rate_of_its_own_day_and_fits_in_the_orders_currency() -> None:
    record = CustomerRecord("c1")
    handle_purchase(record, euro_purchase("o1", "100.00"), src(5), FX_RULES)  # 110.00 USD
    assert (record.revenue_cents, record.gross_profit_cents) == (11000, 3300)
    # the full 100.00 EUR back on 10 March is 120.00 USD: more than was booked, still allowed
    outcome = handle_refund(record, euro_refund("o1", "100.00", day=10), src(6), FX_RULES)
    assert outcome.status == APPLIED
    assert (record.revenue_cents, record.gross_profit_cents) == (11000 - 12000, 0)
    assert by_channel(outcome.deltas)["direct"] == {DAY1 + 9: acquired(profit=-3300)}
    more = handle_refund(record, euro_refund("o1", "0.01", day=10), src(7), FX_RULES)
    assert (more.status, more.reason) == (REJECTED, "refund_exceeds_order")
    assert more.detail == "refund of 0.01 EUR exceeds the 0.00 EUR not yet refunded"


def test_two_half_refunds_fit_although_their_conversions_round_up() -> None:
    rules = CustomerRules(FxRates("USD", {"EUR": [(DAY1, Decimal("1.08333"))]}))
    record = CustomerRecord("c1")
    handle_purchase(record, euro_purchase("o1", "100.00"), src(5), rules)
    assert record.revenue_cents == 10833  # 108.333 USD
    for offset in (6, 7):  # 50.00 EUR = 54.1665 USD -> 54.17 each, 108.34 together
        refund = euro_refund("o1", "50.00", day=2).model_copy(update={"event_id": f"r{offset}"})
        assert handle_refund(record, refund, src(offset), rules).status == APPLIED
    assert (record.revenue_cents, record.refunds) == (10833 - 2 * 5417, 2)


def test_a_refund_in_another_currency_than_its_order_is_rejected() -> None:
    record = CustomerRecord("c1")
    handle_purchase(record, purchase("o1", "100.00"), src(5), FX_RULES)
    outcome = handle_refund(record, euro_refund("o1", "10.00", day=2), src(6), FX_RULES)
    assert (outcome.status, outcome.reason) == (REJECTED, "currency_mismatch")
    assert outcome.detail == "refund in EUR of order o1 paid in USD"
    assert (record.revenue_cents, record.refunds) == (10000, 0)


def test_a_currency_without_a_rate_is_rejected_never_counted_one_to_one() -> None:
    record = CustomerRecord("c1")
    pounds = purchase("o1", "5.00").model_copy(update={"currency": "GBP"})
    unknown = handle_purchase(record, pounds, src(1), FX_RULES)
    assert (unknown.status, unknown.reason) == (REJECTED, "unknown_currency")
    assert unknown.detail == "no rate at all for currency GBP into USD (event date 2026-03-01)"
    too_early = euro_purchase("o1", "5.00").model_copy(
        update={"occurred_at": dt.datetime(2026, 2, 28, 23, 59, 59, tzinfo=dt.UTC)}
    )
    missing = handle_purchase(record, too_early, src(2), FX_RULES)
    assert (missing.status, missing.reason) == (REJECTED, "missing_rate")
    assert missing.detail == "no EUR rate in force on 2026-02-28: its first rate is from 2026-03-01"
    assert (record.orders, record.offsets) == (0, {})
    # a refund that cannot be converted changes nothing either
    handle_purchase(record, euro_purchase("o2", "5.00"), src(3), FX_RULES)
    refund = euro_refund("o2", "5.00", day=2)
    rejected = handle_refund(record, refund, src(4), CustomerRules(FxRates("USD")))
    assert (rejected.reason, record.refunds, record.revenue_cents) == ("unknown_currency", 0, 550)


def test_a_redelivered_purchase_is_answered_from_the_record_whatever_the_rates_now() -> None:
    record = CustomerRecord("c1")
    first = handle_purchase(record, euro_purchase("o1", "100.00"), src(5), FX_RULES)
    # rejected for want of a rate, then a later purchase of the partition is applied
    early = euro_purchase("o0", "20.00").model_copy(
        update={"occurred_at": dt.datetime(2026, 2, 1, tzinfo=dt.UTC)}
    )
    assert handle_purchase(record, early, src(6), FX_RULES).reason == "missing_rate"
    handle_purchase(record, euro_purchase("o2", "10.00", day=2), src(7), FX_RULES)
    # redelivered after the rates changed: the same deltas, and the rejected one stays out
    no_rates = CustomerRules(FxRates("USD"))
    again = handle_purchase(record, euro_purchase("o1", "100.00"), src(5), no_rates)
    assert (again.status, again.deltas) == (REDELIVERED, first.deltas)
    every_day = CustomerRules(FxRates("USD", {"EUR": [(0, Decimal("1.00"))]}))
    late = handle_purchase(record, early, src(6), every_day)
    assert (late.status, late.deltas, late.messages) == (REDELIVERED, [], [])
    assert (record.orders, record.revenue_cents) == (2, 11000 + 1100)


def test_linked_visitor_is_used_for_attribution() -> None:
    record = CustomerRecord("c1")
    handle_link(record, "v9", src(0, "customer-updates"))
    outcome = handle_purchase(record, purchase("o1", "10.00"), src(1), RULES)
    assert outcome.messages[0].key == "v9"


def test_record_survives_a_json_round_trip() -> None:
    record = CustomerRecord("c1")
    handle_purchase(record, purchase("o1", "100.00", visitor_id="v1"), src(5), RULES)
    handle_attribution(record, "v1", AT1, SPLIT, src(0, "customer-updates"))
    handle_purchase(record, purchase("o2", "20.00", day=2), src(6), RULES)
    assert CustomerRecord.from_json(json.loads(json.dumps(record.to_json()))) == record


def attributed(weights: dict[str, dict[str, int]]) -> CustomerRecord:
    """c1 with o1 on day 1 (profit 30.00) through visitor v1, attributed ``weights``."""
    record = CustomerRecord("c1")
    handle_purchase(record, purchase("o1", "100.00", visitor_id="v1"), src(5), RULES)
    handle_attribution(record, "v1", AT1, weights, src(0, "customer-updates"))
    return record


def test_new_weights_retract_the_old_channel_and_leave_all_unchanged() -> None:
    record = attributed(every_model({"social": M}))
    handle_purchase(record, purchase("o2", "10.00", day=2), src(6), RULES)  # profit 3.00
    # a search touch came to light; first touch still credits social alone
    revised = {
        "first_touch": {"social": M},
        "last_touch": {"search": M},
        "linear": {"search": H, "social": H},
        "position_based": {"search": H, "social": H},
        "time_decay": {"search": 400_000, "social": 600_000},
    }
    outcome = handle_attribution(record, "v1", AT1, revised, src(1, "customer-updates"))
    assert outcome.status == APPLIED
    moved = {"last_touch": M, "linear": H, "position_based": H, "time_decay": 400_000}
    gained = {DAY1: counters(moved, 1, 3000, 1), DAY1 + 1: counters(moved, 0, 300, 1, last=1)}
    given_back = {
        DAY1: counters(moved, -1, -3000, -1),
        DAY1 + 1: counters(moved, 0, -300, -1, last=-1),
    }
    # social gave back what search got, model by model (no first_touch counter moves);
    # all and paid: no delta
    assert by_channel(outcome.deltas) == {"search": gained, "social": given_back}
    assert gained[DAY1].get("profit:linear") == 1_500_000_000
    assert given_back[DAY1 + 1].get("profit:time_decay") == -120_000_000
    assert given_back[DAY1].get("profit:first_touch") == 0
    assert [record.acquisition_channel(model) for model in MODELS] == [
        "social",
        "search",
        "search",  # tie: alphabetical
        "social",
        "search",
    ]


def test_a_direct_customer_whose_touch_comes_to_light_moves_to_paid() -> None:
    record = CustomerRecord("c1")
    channels = {name: ChannelRecord(name) for name in ("all", "direct", "paid", "search")}
    outcomes = [
        handle_purchase(record, purchase("o1", "100.00", visitor_id="v1"), src(5), RULES),
        # v1 had no touch yet: direct
        handle_attribution(
            record, "v1", AT1, every_model({"direct": M}), src(0, "customer-updates")
        ),
    ]
    assert by_channel(outcomes[-1].deltas) == {
        "all": {DAY1: acquired(1, 3000, 1, last=1)},
        "direct": {DAY1: acquired(1, 3000, 1, last=1)},
    }
    # a search click before the purchase arrives late: every model moves to search
    outcomes.append(
        handle_attribution(
            record, "v1", AT1, every_model({"search": M}), src(1, "customer-updates")
        )
    )
    assert by_channel(outcomes[-1].deltas) == {
        "direct": {DAY1: acquired(-1, -3000, -1, last=-1)},
        "paid": {DAY1: acquired(1, 3000, 1, last=1)},
        "search": {DAY1: acquired(1, 3000, 1, last=1)},
    }
    for outcome in outcomes:
        for delta in outcome.deltas:
            channels[delta.channel].apply(delta)
    # direct is as if it never had the customer
    assert channels["direct"].buckets == {}
    whole = {DAY1: acquired(1, 3000, 1, last=1)}
    assert channels["all"].buckets == channels["paid"].buckets == channels["search"].buckets
    assert channels["search"].buckets == whole


def test_the_same_weights_again_or_for_another_acquisition_change_nothing() -> None:
    record = attributed(every_model({"social": M}))
    update = src(1, "customer-updates")
    same = handle_attribution(record, "v1", AT1, every_model({"social": M}), update)
    assert (same.status, same.deltas) == (DUPLICATE, [])
    stale = handle_attribution(
        record, "v2", AT1, every_model({"search": M}), src(2, "customer-updates")
    )
    assert (stale.status, stale.deltas) == (DUPLICATE, [])
    assert record.model_weights == every_model({"social": M})
    assert record.weights("linear") == {"social": M}


def test_an_earlier_order_arriving_late_becomes_the_acquisition() -> None:
    record = attributed(every_model({"social": M}))
    earlier = purchase("o0", "10.00", day=1, visitor_id="v2")
    earlier = earlier.model_copy(update={"occurred_at": dt.datetime(2026, 2, 27, tzinfo=dt.UTC)})
    outcome = handle_purchase(record, earlier, src(6), RULES)
    feb27 = DAY1 - 2
    # the customer moves to 27 February, still on the old weights until v2 answers; o1
    # stays an order of 1 March
    moved = {DAY1: acquired(customers=-1), feb27: acquired(1, 300, 1)}  # o1 stays the last
    assert moved[DAY1] == Bucket({f"customers:{model}": -M for model in MODELS})
    assert by_channel(outcome.deltas) == {"all": moved, "paid": moved, "social": moved}
    [conversion] = outcome.messages
    assert (conversion.key, conversion.value["converted_at"]) == ("v2", AT1 - 2 * 86400 - 36000)
    assert record.first_order_id == "o0"
    # v1's answer about the old acquisition is now stale; v2's applies
    stale = handle_attribution(
        record, "v1", AT1, every_model({"search": M}), src(1, "customer-updates")
    )
    assert stale.deltas == []
    fresh = handle_attribution(
        record,
        "v2",
        AT1 - 2 * 86400 - 36000,
        every_model({"display": M}),
        src(2, "customer-updates"),
    )
    # the whole customer (both orders: 3.00 + 30.00) moves from social to display
    customer = {feb27: acquired(1, 300, 1), DAY1: acquired(0, 3000, 1, last=1)}
    assert by_channel(fresh.deltas) == {
        "display": customer,
        "social": {feb27: acquired(-1, -300, -1), DAY1: acquired(0, -3000, -1, last=-1)},
    }
    assert record.acquisition_channel("first_touch") == "display"


def test_a_redelivered_attribution_sends_its_deltas_again_identically() -> None:
    record = attributed(every_model({"social": M}))
    update = src(1, "customer-updates")
    first = handle_attribution(record, "v1", AT1, SPLIT, update)
    handle_purchase(record, purchase("o2", "10.00", day=2), src(6), RULES)
    again = handle_attribution(record, "v1", AT1, SPLIT, update)
    assert (again.status, again.deltas) == (REDELIVERED, first.deltas)
    # linear: half of the 30.00 moved from social to search
    assert by_channel(first.deltas)["search"][DAY1].get("profit:linear") == 1_500_000_000
