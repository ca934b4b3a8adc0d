"""Customer records: acquisition, purchases, refunds, duplicates and redelivery."""

import datetime as dt
import json
from decimal import Decimal

from schemas.events import Purchase, Refund
from stream.domain.channel import Bucket, ChannelDelta, Source
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
DAY1 = day_of_date(dt.date(2026, 3, 1))
AT1 = int(dt.datetime(2026, 3, 1, 10, tzinfo=dt.UTC).timestamp())  # purchase(day=1) time


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


def test_first_purchase_without_visitor_is_a_direct_acquisition() -> None:
    record = CustomerRecord("c1")
    outcome = handle_purchase(record, purchase("o1", "100.00", cost_of_goods="40"), src(5), RULES)
    assert outcome.status == APPLIED
    expected = {DAY1: Bucket(customers=M, gross_profit=6000 * M, orders=M)}
    assert by_channel(outcome.deltas) == {"direct": expected, "all": expected}
    assert (record.revenue_cents, record.gross_profit_cents, record.orders) == (10000, 6000, 1)


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


def test_attribution_sends_acquisition_and_backlog_split_by_weight() -> None:
    record = CustomerRecord("c1")
    handle_purchase(record, purchase("o1", "100.00", visitor_id="v1"), src(5), RULES)
    handle_purchase(record, purchase("o2", "50.00", day=2, margin="0.5"), src(6), RULES)
    weights = {"search": 750_000, "social": 250_000}
    outcome = handle_attribution(record, "v1", AT1, weights, src(0, "customer-updates"))
    assert outcome.status == APPLIED
    deltas = by_channel(outcome.deltas)
    # search: 3/4 customer, 3/4 of 30.00 on day 1 and 3/4 of 25.00 on day 2
    assert deltas["search"] == {
        DAY1: Bucket(customers=750_000, gross_profit=3000 * 750_000, orders=750_000),
        DAY1 + 1: Bucket(gross_profit=2500 * 750_000, orders=750_000),
    }
    assert deltas["all"][DAY1] == Bucket(customers=M, gross_profit=3000 * M, orders=M)
    # later purchases send their own deltas
    third = handle_purchase(record, purchase("o3", "10.00", day=3), src(7), RULES)
    assert by_channel(third.deltas)["social"] == {
        DAY1 + 2: Bucket(gross_profit=300 * 250_000, orders=250_000)
    }


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
    assert by_channel(outcome.deltas)["direct"] == {DAY1 + 1: Bucket(gross_profit=-1200 * M)}
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
    expected = {DAY1: Bucket(customers=M, gross_profit=6600 * M, orders=M)}
    assert by_channel(outcome.deltas) == {"direct": expected, "all": expected}
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
    assert by_channel(outcome.deltas)["direct"] == {DAY1 + 9: Bucket(gross_profit=-3300 * M)}
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
    handle_attribution(record, "v1", AT1, {"search": M}, src(0, "customer-updates"))
    handle_purchase(record, purchase("o2", "20.00", day=2), src(6), RULES)
    assert CustomerRecord.from_json(json.loads(json.dumps(record.to_json()))) == record


def attributed(weights: dict[str, int]) -> CustomerRecord:
    """c1 with o1 on day 1 (profit 30.00) through visitor v1, attributed ``weights``."""
    record = CustomerRecord("c1")
    handle_purchase(record, purchase("o1", "100.00", visitor_id="v1"), src(5), RULES)
    handle_attribution(record, "v1", AT1, weights, src(0, "customer-updates"))
    return record


def test_new_weights_retract_the_old_channel_and_leave_all_unchanged() -> None:
    record = attributed({"social": M})
    handle_purchase(record, purchase("o2", "10.00", day=2), src(6), RULES)  # profit 3.00
    outcome = handle_attribution(
        record, "v1", AT1, {"search": 500_000, "social": 500_000}, src(1, "customer-updates")
    )
    assert outcome.status == APPLIED
    half = 500_000
    # social gave back half of everything it had; search got that half; all: no delta
    assert by_channel(outcome.deltas) == {
        "search": {
            DAY1: Bucket(customers=half, gross_profit=3000 * half, orders=half),
            DAY1 + 1: Bucket(gross_profit=300 * half, orders=half),
        },
        "social": {
            DAY1: Bucket(customers=-half, gross_profit=-3000 * half, orders=-half),
            DAY1 + 1: Bucket(gross_profit=-300 * half, orders=-half),
        },
    }
    assert record.acquisition_channel == "search"  # tie: alphabetical


def test_the_same_weights_again_or_for_another_acquisition_change_nothing() -> None:
    record = attributed({"social": M})
    same = handle_attribution(record, "v1", AT1, {"social": M}, src(1, "customer-updates"))
    assert (same.status, same.deltas) == (DUPLICATE, [])
    stale = handle_attribution(record, "v2", AT1, {"search": M}, src(2, "customer-updates"))
    assert (stale.status, stale.deltas, record.weights) == (DUPLICATE, [], {"social": M})


def test_an_earlier_order_arriving_late_becomes_the_acquisition() -> None:
    record = attributed({"social": M})
    earlier = purchase("o0", "10.00", day=1, visitor_id="v2")
    earlier = earlier.model_copy(update={"occurred_at": dt.datetime(2026, 2, 27, tzinfo=dt.UTC)})
    outcome = handle_purchase(record, earlier, src(6), RULES)
    feb27 = DAY1 - 2
    # the customer moves to 27 February, still on the old weights until v2 answers
    moved = {
        DAY1: Bucket(customers=-M),
        feb27: Bucket(customers=M, gross_profit=300 * M, orders=M),
    }
    assert by_channel(outcome.deltas) == {"all": moved, "social": moved}
    [conversion] = outcome.messages
    assert (conversion.key, conversion.value["converted_at"]) == ("v2", AT1 - 2 * 86400 - 36000)
    assert record.first_order_id == "o0"
    # v1's answer about the old acquisition is now stale; v2's applies
    stale = handle_attribution(record, "v1", AT1, {"search": M}, src(1, "customer-updates"))
    assert stale.deltas == []
    fresh = handle_attribution(
        record, "v2", AT1 - 2 * 86400 - 36000, {"display": M}, src(2, "customer-updates")
    )
    assert sorted(by_channel(fresh.deltas)) == ["display", "social"]


def test_a_redelivered_attribution_sends_its_deltas_again_identically() -> None:
    record = attributed({"social": M})
    update = src(1, "customer-updates")
    first = handle_attribution(record, "v1", AT1, {"search": M}, update)
    handle_purchase(record, purchase("o2", "10.00", day=2), src(6), RULES)
    again = handle_attribution(record, "v1", AT1, {"search": M}, update)
    assert (again.status, again.deltas) == (REDELIVERED, first.deltas)
