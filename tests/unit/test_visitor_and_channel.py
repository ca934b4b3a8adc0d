"""Visitors (touches, conversions) and channel records (deltas, spend), by hand."""

import datetime as dt
import json
from decimal import Decimal

from schemas.events import AdSpend
from stream.domain.channel import Bucket, ChannelDelta, ChannelRecord, Source
from stream.domain.fx import FxRates
from stream.domain.outcome import APPLIED, DUPLICATE, REDELIVERED, REJECTED
from stream.domain.spend import handle_ad_spend, spread_over_days
from stream.domain.timeline import day_of_date
from stream.domain.visitor import (
    VisitorRecord,
    VisitorRules,
    handle_conversion,
    handle_identify,
    handle_touch,
)
from tests.unit.events import event

RULES = VisitorRules(FxRates("USD"), 30)
USD_ONLY = FxRates("USD")
DAY1 = day_of_date(dt.date(2026, 3, 1))
T = int(dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC).timestamp())


def click(channel: str, hour: int, cost: str = "1.25", **extra: object) -> object:
    return event(
        "ad_click",
        f"2026-03-01T{hour:02d}:00:00Z",
        visitor_id="v1",
        channel=channel,
        cost=cost,
        currency="USD",
        **extra,
    )


def test_click_cost_is_spend_of_its_channel_and_of_all() -> None:
    record = VisitorRecord("v1")
    outcome = handle_touch(record, click("search", 9), Source("ad-clicks", 0, 3), RULES)  # type: ignore[arg-type]
    assert outcome.status == APPLIED
    assert {d.channel: d.buckets for d in outcome.deltas} == {
        "search": {DAY1: Bucket(spend_cents=125)},
        "all": {DAY1: Bucket(spend_cents=125)},
    }


def test_duplicate_click_and_redelivered_click() -> None:
    record = VisitorRecord("v1")
    first = click("search", 9, event_id="k1")
    sent = handle_touch(record, first, Source("ad-clicks", 0, 3), RULES)  # type: ignore[arg-type]
    dup = handle_touch(record, first, Source("ad-clicks", 0, 4), RULES)  # type: ignore[arg-type]
    assert (dup.status, dup.deltas) == (DUPLICATE, [])
    again = handle_touch(record, first, Source("ad-clicks", 0, 3), RULES)  # type: ignore[arg-type]
    assert (again.status, again.deltas) == (REDELIVERED, sent.deltas)
    assert len(record.touches) == 1


def test_conversion_attributes_to_the_last_touch_and_answers_repeats_identically() -> None:
    record = VisitorRecord("v1")
    handle_touch(record, click("search", 8), Source("ad-clicks", 0, 1), RULES)  # type: ignore[arg-type]
    handle_touch(record, click("social", 10), Source("ad-clicks", 0, 2), RULES)  # type: ignore[arg-type]
    handle_touch(record, click("display", 14), Source("ad-clicks", 0, 3), RULES)  # after purchase
    outcome = handle_conversion(record, "c1", T, Source("visitor-updates", 0, 0), RULES)
    [message] = outcome.messages
    assert message.value == {
        "type": "attribution",
        "customer_id": "c1",
        "visitor_id": "v1",
        "converted_at": T,
        "weights": {"social": 1_000_000},
    }
    repeat = handle_conversion(record, "c1", T, Source("visitor-updates", 0, 1), RULES)
    assert (repeat.status, repeat.messages) == (DUPLICATE, outcome.messages)


def test_a_touch_arriving_after_the_conversion_attributes_it_again() -> None:
    record = VisitorRecord("v1")
    handle_touch(record, click("search", 8), Source("ad-clicks", 0, 1), RULES)  # type: ignore[arg-type]
    handle_conversion(record, "c1", T, Source("visitor-updates", 0, 0), RULES)
    late = handle_touch(record, click("social", 11), Source("ad-clicks", 0, 2), RULES)  # type: ignore[arg-type]
    [message] = late.messages
    assert message.value["weights"] == {"social": 1_000_000}
    # a touch after the conversion, or one that does not change the winner, sends nothing
    after = handle_touch(record, click("display", 13), Source("ad-clicks", 0, 3), RULES)  # type: ignore[arg-type]
    before = handle_touch(record, click("email", 9), Source("ad-clicks", 0, 4), RULES)  # type: ignore[arg-type]
    assert (after.messages, before.messages) == ([], [])
    # redelivered, the late touch sends its spend and the current attribution again
    again = handle_touch(record, click("social", 11), Source("ad-clicks", 0, 2), RULES)  # type: ignore[arg-type]
    assert (again.status, again.messages) == (REDELIVERED, late.messages)


def test_touches_at_the_same_time_are_ordered_by_event_id_not_arrival() -> None:
    def converted(order: list[str]) -> object:
        record = VisitorRecord("v1")
        for offset, (event_id, channel) in enumerate(order):
            tie = click(channel, 9, event_id=event_id)
            handle_touch(record, tie, Source("ad-clicks", 0, offset), RULES)  # type: ignore[arg-type]
        outcome = handle_conversion(record, "c1", T, Source("visitor-updates", 0, 0), RULES)
        return outcome.messages[0].value["weights"]

    # last touch: the larger event_id wins the tie, whatever arrived last
    assert converted([("k1", "search"), ("k2", "social")]) == {"social": 1_000_000}
    assert converted([("k2", "social"), ("k1", "search")]) == {"social": 1_000_000}


def test_identify_links_the_visitor_to_the_customer() -> None:
    record = VisitorRecord("v1")
    ident = event("identify", visitor_id="v1", customer_id="c7")
    outcome = handle_identify(record, ident, Source("identities", 0, 0))
    assert outcome.messages[0].value == {"type": "link", "customer_id": "c7", "visitor_id": "v1"}
    assert outcome.messages[0].key == "c7"


def test_visitor_survives_a_json_round_trip() -> None:
    record = VisitorRecord("v1")
    handle_touch(record, click("search", 8), Source("ad-clicks", 0, 1), RULES)  # type: ignore[arg-type]
    handle_conversion(record, "c1", T, Source("visitor-updates", 0, 0), RULES)
    assert VisitorRecord.from_json(json.loads(json.dumps(record.to_json()))) == record


def test_channel_applies_each_source_position_once() -> None:
    record = ChannelRecord("search")
    delta = ChannelDelta("search", Source("purchases", 2, 10), T, {DAY1: Bucket(orders=5)})
    assert record.apply(delta) is True
    assert record.apply(delta) is False  # redelivered
    older = ChannelDelta("search", Source("purchases", 2, 9), T, {DAY1: Bucket(orders=5)})
    assert record.apply(older) is False
    other_partition = ChannelDelta("search", Source("purchases", 3, 1), T, {DAY1: Bucket(orders=1)})
    assert record.apply(other_partition) is True
    second_output = ChannelDelta(
        "search", Source("purchases", 2, 10, 1), T, {DAY1: Bucket(orders=1)}
    )
    assert record.apply(second_output) is True
    assert record.buckets == {DAY1: Bucket(orders=7)}
    assert record.watermark == T
    assert ChannelRecord.from_json(json.loads(json.dumps(record.to_json()))) == record


def spend(amount: str, start: str, end: str, event_id: str = "s1") -> AdSpend:
    s: AdSpend = event(
        "ad_spend",
        event_id=event_id,
        channel="search",
        amount=amount,
        currency="USD",
        category="agency",
        period_start=start,
        period_end=end,
    )
    return s


def test_spend_is_spread_over_the_days_of_its_period() -> None:
    assert spread_over_days(spend("70.00", "2026-03-01", "2026-03-07"), 7000) == {
        DAY1 + i: 1000 for i in range(7)
    }
    assert spread_over_days(spend("0.10", "2026-03-01", "2026-03-03"), 10) == {
        DAY1: 4,
        DAY1 + 1: 3,
        DAY1 + 2: 3,
    }


def test_ad_spend_applies_once_and_forwards_to_all() -> None:
    record = ChannelRecord("search")
    ev = spend("30.00", "2026-03-01", "2026-03-03")
    outcome = handle_ad_spend(record, ev, Source("ad-spend", 0, 4), USD_ONLY)
    assert outcome.status == APPLIED
    [to_all] = outcome.deltas
    assert to_all.channel == "all"
    assert record.buckets == {DAY1 + i: Bucket(spend_cents=1000) for i in range(3)}
    assert handle_ad_spend(record, ev, Source("ad-spend", 0, 5), USD_ONLY).status == DUPLICATE
    redelivered = handle_ad_spend(record, ev, Source("ad-spend", 0, 4), USD_ONLY)
    assert (redelivered.status, redelivered.deltas) == (REDELIVERED, [to_all])
    assert sum(b.spend_cents for b in record.buckets.values()) == 3000


# EUR is worth 1.10 USD from 1 March 2026.
EURO = FxRates("USD", {"EUR": [(DAY1, Decimal("1.10"))]})


def test_click_and_referral_costs_in_another_currency_are_spend_at_the_rate_of_their_day() -> None:
    record = VisitorRecord("v1")
    rules = VisitorRules(EURO, 30)
    euro_click = click("search", 9, cost="1.25").model_copy(update={"currency": "EUR"})  # type: ignore[attr-defined]
    outcome = handle_touch(record, euro_click, Source("ad-clicks", 0, 3), rules)
    # 1.25 EUR x 1.10 = 1.375 USD: half-even to 1.38
    assert {d.channel: d.buckets for d in outcome.deltas} == {
        "search": {DAY1: Bucket(spend_cents=138)},
        "all": {DAY1: Bucket(spend_cents=138)},
    }
    referral = event(
        "referral",
        "2026-03-01T11:00:00Z",
        referrer_customer_id="c0",
        referred_visitor_id="v1",
        reward_cost="5.00",
        currency="EUR",
    )
    rewarded = handle_touch(record, referral, Source("referrals", 0, 4), rules)
    assert rewarded.deltas[0].buckets == {DAY1: Bucket(spend_cents=550)}
    assert [s.cost_cents for s in record.touches] == [138, 550]


def test_a_touch_without_a_rate_is_rejected_and_a_redelivered_one_keeps_its_cost() -> None:
    record = VisitorRecord("v1")
    pounds = click("search", 9).model_copy(update={"currency": "GBP"})  # type: ignore[attr-defined]
    rejected = handle_touch(record, pounds, Source("ad-clicks", 0, 1), VisitorRules(EURO))
    assert (rejected.status, rejected.reason) == (REJECTED, "unknown_currency")
    assert "GBP" in rejected.detail and "2026-03-01" in rejected.detail
    euros = click("social", 10, cost="2.00").model_copy(update={"currency": "EUR"})  # type: ignore[attr-defined]
    applied = handle_touch(record, euros, Source("ad-clicks", 0, 2), VisitorRules(EURO))
    assert applied.deltas[0].buckets == {DAY1: Bucket(spend_cents=220)}
    # redelivered with the rates gone: the stored cost, and nothing for the rejected one
    again = handle_touch(record, euros, Source("ad-clicks", 0, 2), VisitorRules(FxRates("USD")))
    assert (again.status, again.deltas) == (REDELIVERED, applied.deltas)
    late = handle_touch(record, pounds, Source("ad-clicks", 0, 1), RULES)
    assert (late.status, late.deltas) == (REDELIVERED, [])
    assert [s.touch.channel for s in record.touches] == ["social"]


def test_spend_in_another_currency_is_converted_at_its_day_then_spread() -> None:
    record = ChannelRecord("search")
    euros = spend("10.00", "2026-03-01", "2026-03-03").model_copy(update={"currency": "EUR"})
    outcome = handle_ad_spend(record, euros, Source("ad-spend", 0, 4), EURO)
    assert outcome.status == APPLIED
    # 10.00 EUR x 1.10 = 11.00 USD over three days, the first takes the odd cent
    expected = {DAY1: Bucket(spend_cents=367), DAY1 + 1: Bucket(spend_cents=367)}
    expected[DAY1 + 2] = Bucket(spend_cents=366)
    assert record.buckets == expected
    assert outcome.deltas[0].buckets == expected


def test_spend_without_a_rate_on_its_day_is_rejected_and_changes_nothing() -> None:
    record = ChannelRecord("search")
    early = spend("10.00", "2026-02-01", "2026-02-02").model_copy(
        update={
            "currency": "EUR",
            "occurred_at": dt.datetime(2026, 2, 28, 12, tzinfo=dt.UTC),
        }
    )
    outcome = handle_ad_spend(record, early, Source("ad-spend", 0, 4), EURO)
    assert (outcome.status, outcome.reason) == (REJECTED, "missing_rate")
    assert outcome.detail == "no EUR rate in force on 2026-02-28: its first rate is from 2026-03-01"
    assert record == ChannelRecord("search")
