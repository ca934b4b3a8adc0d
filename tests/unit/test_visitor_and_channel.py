"""Visitors (touches, conversions) and channel records (deltas, spend), by hand."""

import datetime as dt
import json
from decimal import Decimal

from schemas.events import AdClick, AdSpend
from stream.domain.channel import (
    Bucket,
    ChannelDelta,
    ChannelRecord,
    Source,
)
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

RULES = VisitorRules(FxRates("USD"), 30, half_life_days=1 / 24)  # 1 hour: simple decay fractions
USD_ONLY = FxRates("USD")
M = 1_000_000
DAY1 = day_of_date(dt.date(2026, 3, 1))
T = int(dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC).timestamp())


def click(channel: str, hour: int, cost: str = "1.25", **extra: object) -> AdClick:
    c: AdClick = event(
        "ad_click",
        f"2026-03-01T{hour:02d}:00:00Z",
        visitor_id="v1",
        channel=channel,
        cost=cost,
        currency="USD",
        **extra,
    )
    return c


def test_click_cost_is_media_spend_of_its_channel_of_all_and_of_paid() -> None:
    record = VisitorRecord("v1")
    outcome = handle_touch(record, click("search", 9), Source("ad-clicks", 0, 3), RULES)
    assert outcome.status == APPLIED
    media = {DAY1: Bucket({"spend:media": 125})}
    # the channel's own delta first
    assert [(d.channel, d.buckets) for d in outcome.deltas] == [
        ("search", media),
        ("all", media),
        ("paid", media),
    ]
    assert media[DAY1].spend_cents == 125


def test_a_click_on_direct_is_not_paid_spend() -> None:
    record = VisitorRecord("v1")
    outcome = handle_touch(record, click("direct", 9), Source("ad-clicks", 0, 3), RULES)
    media = {DAY1: Bucket({"spend:media": 125})}
    assert [(d.channel, d.buckets) for d in outcome.deltas] == [("direct", media), ("all", media)]


def test_duplicate_click_and_redelivered_click() -> None:
    record = VisitorRecord("v1")
    first = click("search", 9, event_id="k1")
    sent = handle_touch(record, first, Source("ad-clicks", 0, 3), RULES)
    dup = handle_touch(record, first, Source("ad-clicks", 0, 4), RULES)
    assert (dup.status, dup.deltas) == (DUPLICATE, [])
    again = handle_touch(record, first, Source("ad-clicks", 0, 3), RULES)
    assert (again.status, again.deltas) == (REDELIVERED, sent.deltas)
    assert [d.channel for d in again.deltas] == ["search", "all", "paid"]
    assert len(record.touches) == 1


def test_conversion_attributes_by_every_model_and_answers_repeats_identically() -> None:
    record = VisitorRecord("v1")
    handle_touch(record, click("search", 8), Source("ad-clicks", 0, 1), RULES)
    handle_touch(record, click("social", 10, campaign="spring"), Source("ad-clicks", 0, 2), RULES)
    handle_touch(record, click("display", 14), Source("ad-clicks", 0, 3), RULES)  # after purchase
    outcome = handle_conversion(record, "c1", T, Source("visitor-updates", 0, 0), RULES)
    [message] = outcome.messages
    assert message.value == {
        "type": "attribution",
        "customer_id": "c1",
        "visitor_id": "v1",
        "converted_at": T,
        "weights": {
            "first_touch": {"search": M},
            "last_touch": {"social": M},
            "linear": {"search": 500_000, "social": 500_000},
            "position_based": {"search": 500_000, "social": 500_000},  # two touches
            # 4 and 2 hours before the purchase: 1/16 : 1/4 = 1/5 : 4/5
            "time_decay": {"search": 200_000, "social": 800_000},
        },
        # the primary model (last touch) credits the social click of campaign spring
        "campaigns": {"social": {"spring": M}},
        "referrer": None,  # no referral touch
    }
    repeat = handle_conversion(record, "c1", T, Source("visitor-updates", 0, 1), RULES)
    assert (repeat.status, repeat.messages) == (DUPLICATE, outcome.messages)


def test_a_conversion_without_touches_is_direct_in_every_model() -> None:
    record = VisitorRecord("v1")
    # a click 31 days before the purchase is outside the 30-day lookback
    old = event(
        "ad_click",
        "2026-01-29T12:00:00Z",
        visitor_id="v1",
        channel="search",
        cost="1.00",
        currency="USD",
    )
    handle_touch(record, old, Source("ad-clicks", 0, 1), RULES)
    outcome = handle_conversion(record, "c1", T, Source("visitor-updates", 0, 0), RULES)
    assert outcome.messages[0].value["weights"] == {
        model: {"direct": M}
        for model in ("first_touch", "last_touch", "linear", "time_decay", "position_based")
    }


def test_a_touch_arriving_after_the_conversion_attributes_it_again() -> None:
    record = VisitorRecord("v1")
    handle_touch(record, click("search", 8), Source("ad-clicks", 0, 1), RULES)
    handle_conversion(record, "c1", T, Source("visitor-updates", 0, 0), RULES)
    # a touch after the conversion, or one that changes no model's weights, sends nothing
    after = handle_touch(record, click("display", 13), Source("ad-clicks", 0, 2), RULES)
    same = handle_touch(record, click("search", 9), Source("ad-clicks", 0, 3), RULES)
    assert (after.messages, same.messages) == ([], [])
    social = click("social", 11)
    late = handle_touch(record, social, Source("ad-clicks", 0, 4), RULES)
    [message] = late.messages
    # touches: search 8:00, search 9:00, social 11:00; purchase at 12:00
    assert message.value["weights"] == {
        "first_touch": {"search": M},
        "last_touch": {"social": M},
        "linear": {"search": 666_667, "social": 333_333},
        "position_based": {"search": 600_000, "social": 400_000},  # 40 + 20 : 40
        # 1/16 + 1/8 : 1/2 = 3/11 : 8/11
        "time_decay": {"search": 272_727, "social": 727_273},
    }
    # redelivered, the late touch sends its spend and the current attribution again
    again = handle_touch(record, social, Source("ad-clicks", 0, 4), RULES)
    assert (again.status, again.messages) == (REDELIVERED, late.messages)
    assert again.deltas == late.deltas
    assert [d.channel for d in again.deltas] == ["social", "all", "paid"]


def test_touches_at_the_same_time_are_ordered_by_event_id_not_arrival() -> None:
    def converted(order: list[tuple[str, str]]) -> object:
        record = VisitorRecord("v1")
        for offset, (event_id, channel) in enumerate(order):
            tie = click(channel, 9, event_id=event_id)
            handle_touch(record, tie, Source("ad-clicks", 0, offset), RULES)
        outcome = handle_conversion(record, "c1", T, Source("visitor-updates", 0, 0), RULES)
        return outcome.messages[0].value["weights"]

    # k1 is the first touch and k2 the last, whatever arrived last; the others share
    tied = {
        "first_touch": {"search": M},
        "last_touch": {"social": M},
        "linear": {"search": 500_000, "social": 500_000},
        "position_based": {"search": 500_000, "social": 500_000},
        "time_decay": {"search": 500_000, "social": 500_000},
    }
    assert converted([("k1", "search"), ("k2", "social")]) == tied
    assert converted([("k2", "social"), ("k1", "search")]) == tied


def test_identify_links_the_visitor_to_the_customer() -> None:
    record = VisitorRecord("v1")
    ident = event("identify", visitor_id="v1", customer_id="c7")
    outcome = handle_identify(record, ident, Source("identities", 0, 0))
    assert outcome.messages[0].value == {"type": "link", "customer_id": "c7", "visitor_id": "v1"}
    assert outcome.messages[0].key == "c7"


def test_visitor_survives_a_json_round_trip() -> None:
    record = VisitorRecord("v1")
    handle_touch(record, click("search", 8), Source("ad-clicks", 0, 1), RULES)
    handle_conversion(record, "c1", T, Source("visitor-updates", 0, 0), RULES)
    assert VisitorRecord.from_json(json.loads(json.dumps(record.to_json()))) == record


def test_channel_applies_each_source_position_once() -> None:
    def delta(partition: int, offset: int, seq: int, counts: dict[str, int]) -> ChannelDelta:
        return ChannelDelta(
            "search", Source("purchases", partition, offset, seq), T, {DAY1: Bucket(counts)}
        )

    record = ChannelRecord("search")
    first = delta(2, 10, 0, {"orders:linear": 5, "spend:media": 100})
    assert record.apply(first) is True
    assert record.apply(first) is False  # redelivered
    assert record.apply(delta(2, 9, 0, {"orders:linear": 5})) is False  # older
    assert record.apply(delta(3, 1, 0, {"orders:linear": 1})) is True  # other partition
    assert record.apply(delta(2, 10, 1, {"orders:linear": 1, "customers:linear": 3})) is True
    assert record.buckets == {
        DAY1: Bucket({"orders:linear": 7, "spend:media": 100, "customers:linear": 3})
    }
    assert record.buckets[DAY1].get("orders:last_touch") == 0
    assert record.watermark == T
    assert ChannelRecord.from_json(json.loads(json.dumps(record.to_json()))) == record
    # a counter taken back to zero disappears, and so does a day with no counter left
    assert record.apply(delta(2, 11, 0, {"orders:linear": -7, "customers:linear": -3}))
    assert record.buckets == {DAY1: Bucket({"spend:media": 100})}
    assert record.apply(delta(2, 12, 0, {"spend:media": -100}))
    assert record.buckets == {}


def test_bucket_spend_is_every_category_and_add_subtracts_with_a_sign() -> None:
    bucket = Bucket({"spend:media": 125, "spend:salaries": 2000, "customers:linear": M})
    assert bucket.spend_cents == 2125
    bucket.add(Bucket({"spend:media": 125, "profit:linear": 50}), sign=-1)
    assert bucket == Bucket({"spend:salaries": 2000, "customers:linear": M, "profit:linear": -50})
    assert not Bucket() and bucket
    bucket.add(Bucket({"orders:linear": 0}))  # an explicit zero changes nothing
    assert "orders:linear" not in bucket.counts


def spend(
    amount: str, start: str, end: str, event_id: str = "s1", channel: str = "search"
) -> AdSpend:
    s: AdSpend = event(
        "ad_spend",
        event_id=event_id,
        channel=channel,
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


def test_ad_spend_applies_once_and_forwards_to_all_and_paid() -> None:
    record = ChannelRecord("search")
    ev = spend("30.00", "2026-03-01", "2026-03-03")
    outcome = handle_ad_spend(record, ev, Source("ad-spend", 0, 4), USD_ONLY)
    assert outcome.status == APPLIED
    agency = {DAY1 + i: Bucket({"spend:agency": 1000}) for i in range(3)}
    assert record.buckets == agency
    assert [(d.channel, d.buckets) for d in outcome.deltas] == [("all", agency), ("paid", agency)]
    assert handle_ad_spend(record, ev, Source("ad-spend", 0, 5), USD_ONLY).status == DUPLICATE
    redelivered = handle_ad_spend(record, ev, Source("ad-spend", 0, 4), USD_ONLY)
    assert (redelivered.status, redelivered.deltas) == (REDELIVERED, outcome.deltas)
    assert sum(b.spend_cents for b in record.buckets.values()) == 3000


def test_spend_on_direct_is_not_paid_spend() -> None:
    record = ChannelRecord("direct")
    ev = spend("30.00", "2026-03-01", "2026-03-03", channel="direct")
    outcome = handle_ad_spend(record, ev, Source("ad-spend", 0, 4), USD_ONLY)
    agency = {DAY1 + i: Bucket({"spend:agency": 1000}) for i in range(3)}
    assert record.buckets == agency
    assert [(d.channel, d.buckets) for d in outcome.deltas] == [("all", agency)]


# EUR is worth 1.10 USD from 1 March 2026.
EURO = FxRates("USD", {"EUR": [(DAY1, Decimal("1.10"))]})


def test_click_and_referral_costs_in_another_currency_are_spend_at_the_rate_of_their_day() -> None:
    record = VisitorRecord("v1")
    rules = VisitorRules(EURO, 30)
    euro_click = click("search", 9, cost="1.25").model_copy(update={"currency": "EUR"})  # type: ignore[attr-defined]
    outcome = handle_touch(record, euro_click, Source("ad-clicks", 0, 3), rules)
    # 1.25 EUR x 1.10 = 1.375 USD: half-even to 1.38
    media = {DAY1: Bucket({"spend:media": 138})}
    assert {d.channel: d.buckets for d in outcome.deltas} == {
        "search": media,
        "all": media,
        "paid": media,
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
    assert rewarded.deltas[0].buckets == {DAY1: Bucket({"spend:media": 550})}
    assert [s.cost_cents for s in record.touches] == [138, 550]


def test_a_touch_without_a_rate_is_rejected_and_a_redelivered_one_keeps_its_cost() -> None:
    record = VisitorRecord("v1")
    pounds = click("search", 9).model_copy(update={"currency": "GBP"})  # type: ignore[attr-defined]
    rejected = handle_touch(record, pounds, Source("ad-clicks", 0, 1), VisitorRules(EURO))
    assert (rejected.status, rejected.reason) == (REJECTED, "unknown_currency")
    assert "GBP" in rejected.detail and "2026-03-01" in rejected.detail
    euros = click("social", 10, cost="2.00").model_copy(update={"currency": "EUR"})  # type: ignore[attr-defined]
    applied = handle_touch(record, euros, Source("ad-clicks", 0, 2), VisitorRules(EURO))
    assert applied.deltas[0].buckets == {DAY1: Bucket({"spend:media": 220})}
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
    expected = {DAY1: Bucket({"spend:agency": 367}), DAY1 + 1: Bucket({"spend:agency": 367})}
    expected[DAY1 + 2] = Bucket({"spend:agency": 366})
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
