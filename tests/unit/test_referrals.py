"""Referrals by hand: who referred whom (chosen by the primary model), how a
re-attribution moves the referrer's credit, a referrer counted once however many it
referred, and the referral figures of ``all`` (share, viral coefficient, LTV of
referred and other customers), their gauges and their Redis fields."""

import datetime as dt
from decimal import Decimal

import pytest
from prometheus_client import CollectorRegistry

from schemas.events import AdClick, Purchase, Referral
from stream.domain import referral
from stream.domain.channel import Bucket, ChannelRecord, Source
from stream.domain.customer import (
    CustomerRecord,
    CustomerRules,
    handle_attribution,
    handle_purchase,
    handle_referred,
)
from stream.domain.figures import LtvParams, channel_figures
from stream.domain.outcome import APPLIED, DUPLICATE, REDELIVERED, Outcome
from stream.domain.timeline import day_of_date
from stream.domain.visitor import VisitorRecord, VisitorRules, handle_conversion, handle_touch
from stream.metrics import ChannelFiguresCollector
from stream.serving.projection import channel_fields, customer_fields
from tests.unit.events import event
from tests.unit.test_visitor_and_channel import click

M = 1_000_000
MODELS = ("first_touch", "last_touch", "linear", "time_decay", "position_based")
DAY1 = day_of_date(dt.date(2026, 3, 1))
T = int(dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC).timestamp())  # the conversion
CUSTOMER_RULES = CustomerRules(default_margin=Decimal("0.30"))


def rules(primary: str) -> VisitorRules:
    return VisitorRules(lookback_days=30, half_life_days=1 / 24, primary_model=primary)


def referral_touch(referrer: str, hour: int, visitor: str = "v1") -> Referral:
    r: Referral = event(
        "referral",
        f"2026-03-01T{hour:02d}:00:00Z",
        referrer_customer_id=referrer,
        referred_visitor_id=visitor,
        reward_cost="5.00",
        currency="USD",
    )
    return r


def visitor_with(*touches: Referral | AdClick) -> VisitorRecord:
    record = VisitorRecord("v1")
    for offset, touch in enumerate(touches):
        handle_touch(record, touch, Source("touches", 0, offset), rules("last_touch"))
    return record


def referrer_by(record: VisitorRecord, primary: str) -> str | None:
    outcome = handle_conversion(record, "x1", T, Source("visitor-updates", 0, 99), rules(primary))
    referrer: str | None = outcome.messages[0].value["referrer"]
    return referrer


# -- who referred whom: the visitor's choice --------------------------------------------


def test_the_primary_model_picks_the_referral_it_credits_most_ties_to_the_latest() -> None:
    # a refers at 8:00, a search click at 9:00, b refers at 10:00; the purchase at 12:00
    touches = (referral_touch("a", 8), click("search", 9), referral_touch("b", 10))
    assert referrer_by(visitor_with(*touches), "first_touch") == "a"
    assert referrer_by(visitor_with(*touches), "last_touch") == "b"
    assert referrer_by(visitor_with(*touches), "time_decay") == "b"  # 1 against a's 1/4
    # linear gives a and b a third each, position based 40% each: the later one
    assert referrer_by(visitor_with(*touches), "linear") == "b"
    assert referrer_by(visitor_with(*touches), "position_based") == "b"
    # position based, four touches: a 40%, b and c 10% each, search 40%: a, not the latest
    four = (
        referral_touch("a", 7),
        referral_touch("b", 8),
        referral_touch("c", 9),
        click("search", 10),
    )
    assert referrer_by(visitor_with(*four), "position_based") == "a"


def test_no_referrer_when_the_primary_model_credits_no_referral() -> None:
    record = visitor_with(referral_touch("a", 8), click("search", 10))
    outcome = handle_conversion(
        record, "x1", T, Source("visitor-updates", 0, 0), rules("last_touch")
    )
    value = outcome.messages[0].value
    assert value["referrer"] is None
    assert value["weights"]["first_touch"] == {"referral": M}  # other models may credit it


def test_a_late_referral_or_click_re_attributes_and_changes_the_referrer() -> None:
    last = rules("last_touch")
    record = VisitorRecord("v1")
    handle_touch(record, referral_touch("a", 8), Source("referrals", 0, 0), last)
    first = handle_conversion(record, "x1", T, Source("visitor-updates", 0, 0), last)
    assert first.messages[0].value["referrer"] == "a"
    # b's referral happened later, before the purchase: same weights, another referrer
    later = handle_touch(record, referral_touch("b", 10), Source("referrals", 0, 1), last)
    assert [(m.value["weights"]["last_touch"], m.value["referrer"]) for m in later.messages] == [
        ({"referral": M}, "b")
    ]
    # a click even later takes the last touch: nobody referred the customer any more
    clicked = handle_touch(record, click("search", 11), Source("ad-clicks", 0, 0), last)
    assert [(m.value["weights"]["last_touch"], m.value["referrer"]) for m in clicked.messages] == [
        ({"search": M}, None)
    ]
    # what the visitor keeps survives its changelog
    assert VisitorRecord.from_json(record.to_json()) == record


# -- the referred customer's record and the referrer's --------------------------------


def purchase(customer: str, order: str, day: int, visitor: str = "v1") -> Purchase:
    p: Purchase = event(
        "purchase",
        f"2026-03-{day:02d}T10:00:00Z",
        customer_id=customer,
        order_id=order,
        amount="100.00",
        currency="USD",
        cost_of_goods="60.00",
        visitor_id=visitor,
    )
    return p


def every_model(weights: dict[str, int]) -> dict[str, dict[str, int]]:
    return {model: dict(weights) for model in MODELS}


def acquired(customer: str = "x1", day: int = 1) -> CustomerRecord:
    record = CustomerRecord(customer)
    handle_purchase(
        record, purchase(customer, "o1", day), Source("purchases", 0, 0), CUSTOMER_RULES
    )
    return record


def attribute(record: CustomerRecord, offset: int, referrer: str | None, day: int = 1) -> Outcome:
    at = int(dt.datetime(2026, 3, day, 10, tzinfo=dt.UTC).timestamp())
    weights = every_model({"referral": M})
    return handle_attribution(
        record, "v1", at, weights, Source("customer-updates", 0, offset), referrer=referrer
    )


def told(outcome: Outcome) -> list[tuple[str, str, dict[str, int]]]:
    """The referrers told by an outcome: (referrer, referred customer, day -> change)."""
    return [
        (m.key, m.value["referred_id"], m.value["days"])
        for m in outcome.messages
        if m.value["type"] == "referred"
    ]


def all_counts(outcome: Outcome) -> dict[int, dict[str, int]]:
    """The counters an outcome's delta to ``all`` changes, by day."""
    return {
        day: bucket.counts
        for delta in outcome.deltas
        if delta.channel == "all"
        for day, bucket in delta.buckets.items()
    }


def test_a_referred_customer_tells_its_referrer_and_counts_in_all() -> None:
    record = acquired()
    outcome = attribute(record, 0, "a")
    assert record.referred_by == "a"
    assert told(outcome) == [("a", "x1", {str(DAY1): 1})]
    # profit 40.00; every model credits referral with all of the customer
    counts = all_counts(outcome)[DAY1]
    for model in MODELS:
        assert counts[f"customers:{model}"] == counts[f"referred_customers:{model}"] == M
        assert counts[f"profit:{model}"] == counts[f"referred_profit:{model}"] == 4000 * M
        assert counts[f"orders:{model}"] == counts[f"referred_orders:{model}"] == M
    assert counts["referred"] == 1
    assert "referrers" not in counts  # counted by the referrer's own record


def test_a_split_attribution_puts_the_referral_share_in_all() -> None:
    record = acquired()
    weights = every_model({"search": M // 2, "referral": M // 2})
    at = record.first_order_at or 0
    outcome = handle_attribution(
        record, "v1", at, weights, Source("customer-updates", 0, 0), referrer="a"
    )
    counts = all_counts(outcome)[DAY1]
    assert counts["customers:linear"] == M
    assert counts["referred_customers:linear"] == M // 2
    assert counts["referred_profit:linear"] == 4000 * M // 2
    assert counts["referred"] == 1  # the tree counts whole customers


def test_re_attribution_moves_the_referrers_credit() -> None:
    x1 = acquired()
    first = attribute(x1, 0, "a")
    moved = attribute(x1, 1, "b")  # the same weights, another referrer
    assert x1.referred_by == "b"
    assert told(moved) == [("a", "x1", {str(DAY1): -1}), ("b", "x1", {str(DAY1): 1})]
    assert all_counts(moved) == {}  # all still has one referred customer that day

    a, b = CustomerRecord("a"), CustomerRecord("b")
    for record, outcome, offset in ((a, first, 10), (a, moved, 11), (b, moved, 12)):
        [message] = [m for m in outcome.messages if m.key == record.customer_id]
        value = message.value
        changes = {int(day): change for day, change in value["days"].items()}
        result = handle_referred(
            record, "x1", changes, Source(*value["origin"]), Source("customer-updates", 1, offset)
        )
        assert result.status == APPLIED
        expected = 1 if (record is b or offset == 10) else -1
        assert all_counts(result) == {DAY1: {"referrers": expected}}
    assert (a.referrals.count, a.referrals.customers()) == (0, [])
    assert (b.referrals.count, b.referrals.customers()) == (1, ["x1"])
    assert CustomerRecord.from_json(b.to_json()) == b


def test_an_earlier_order_moves_then_retracts_the_referral() -> None:
    x1 = acquired(day=5)
    attribute(x1, 0, "a", day=5)
    # an order of 1 March arrives: the acquisition moves there, still credited to a ...
    earlier = handle_purchase(
        x1, purchase("x1", "o0", 1), Source("purchases", 0, 1), CUSTOMER_RULES
    )
    assert told(earlier) == [("a", "x1", {str(DAY1): 1, str(DAY1 + 4): -1})]
    # ... until the visitor answers that no referral came before 1 March: direct
    at = int(dt.datetime(2026, 3, 1, 10, tzinfo=dt.UTC).timestamp())
    to_direct = every_model({"direct": M})
    direct = handle_attribution(x1, "v1", at, to_direct, Source("customer-updates", 0, 2))
    assert told(direct) == [("a", "x1", {str(DAY1): -1})]
    assert x1.referred_by is None


def referred(
    record: CustomerRecord, customer: str, changes: dict[int, int], offset: int
) -> Outcome:
    origin = Source("purchases", 0, offset)  # the referred customer's input
    return handle_referred(record, customer, changes, origin, Source("customer-updates", 1, offset))


def test_a_referrer_of_two_customers_counts_once_on_the_latest_day() -> None:
    a = CustomerRecord("a")
    first = referred(a, "x1", {DAY1: 1}, 0)
    assert all_counts(first) == {DAY1: {"referrers": 1}}
    second = referred(a, "x2", {DAY1 + 2: 1}, 1)
    assert all_counts(second) == {DAY1: {"referrers": -1}, DAY1 + 2: {"referrers": 1}}
    assert (a.referrals.count, a.referrals.customers()) == (2, ["x1", "x2"])
    # x2 referred by someone else after all: a counts on x1's day again
    retracted = referred(a, "x2", {DAY1 + 2: -1}, 2)
    assert all_counts(retracted) == {DAY1: {"referrers": 1}, DAY1 + 2: {"referrers": -1}}
    assert a.referrals.customers() == ["x1"]


def test_a_redelivered_or_re_sent_referral_change_applies_once() -> None:
    a = CustomerRecord("a")
    origin = Source("purchases", 0, 7)
    sent = handle_referred(a, "x1", {DAY1: 1}, origin, Source("customer-updates", 1, 3))
    again = handle_referred(a, "x1", {DAY1: 1}, origin, Source("customer-updates", 1, 3))
    assert (again.status, again.deltas) == (REDELIVERED, sent.deltas)
    # the referred customer's input was redelivered and sent it again: a duplicate
    resent = handle_referred(a, "x1", {DAY1: 1}, origin, Source("customer-updates", 1, 4))
    assert (resent.status, resent.deltas) == (DUPLICATE, [])
    assert a.referrals.count == 1


def test_the_listed_customers_are_bounded_and_the_counts_stay_exact(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(referral, "MAX_LISTED", 2)
    a = CustomerRecord("a")
    for offset, customer in enumerate(("x1", "x2", "x3")):
        referred(a, customer, {DAY1 + offset: 1}, offset)
    # x1 (the earliest acquired) leaves the list, not the count
    assert (a.referrals.count, a.referrals.customers()) == (3, ["x2", "x3"])
    retract_x3 = referred(a, "x3", {DAY1 + 2: -1}, 3)
    assert all_counts(retract_x3) == {DAY1 + 1: {"referrers": 1}, DAY1 + 2: {"referrers": -1}}
    referred(a, "x1", {DAY1: -1}, 4)  # an unlisted day: only the count changes
    assert (a.referrals.count, a.referrals.customers()) == (1, ["x2"])
    assert a.referrals.latest_day(a.version) == DAY1 + 1


# -- figures of all ---------------------------------------------------------------------

LAST, LINEAR = "last_touch", "linear"
PARAMS = LtvParams(Decimal(3), Decimal(0), 30)


def day_counts(customers: list[tuple[int, float, bool]], referrers: int) -> Bucket:
    """``all``'s counters for customers (profit cents, linear referral weight, has a
    referrer); last touch credits referral with all of a referred customer."""
    counts: dict[str, int] = {"referrers": referrers} if referrers else {}

    def add(key: str, value: float) -> None:
        if value:
            counts[key] = counts.get(key, 0) + round(value)

    for profit, linear, has_referrer in customers:
        last = 1.0 if has_referrer else 0.0
        for model, weight in ((LAST, last), (LINEAR, linear)):
            for name, value in (("customers", M), ("profit", profit * M), ("orders", M)):
                add(f"{name}:{model}", value)
                add(f"referred_{name}:{model}", value * weight)
        add("referred", 1 if has_referrer else 0)
    return Bucket(counts)


def all_record() -> ChannelRecord:
    """Day 50: x (10.00) and y (20.00) referred by a, z (60.00) not referred. Day 90: w
    (30.00) referred by a, u (10.00) by b; so a and b count as referrers on day 90.
    Linear gives referral half of every referred customer."""
    return ChannelRecord(
        "all",
        buckets={
            50: day_counts([(1000, 0.5, True), (2000, 0.5, True), (6000, 0.0, False)], 0),
            90: day_counts([(3000, 0.5, True), (1000, 0.5, True)], 2),
        },
    )


def test_referral_share_viral_coefficient_and_ltv_of_referred_customers() -> None:
    windows = ["7d", "30d", "lifetime"]
    f = channel_figures(
        all_record(), 100, windows, ["historical", "formula"], PARAMS, [LAST, LINEAR]
    )
    r = f.referrals
    assert r is not None
    assert r.share[("lifetime", LAST)].value == pytest.approx(4 / 5)
    assert r.share[("lifetime", LINEAR)].value == pytest.approx(2 / 5)
    assert r.share[("30d", LAST)].value == pytest.approx(1.0)  # days 71-100: w and u
    assert r.share[("7d", LAST)].reason == "no_customers"
    assert (r.referred, r.referrers) == (
        {"7d": 0.0, "30d": 2.0, "lifetime": 4.0},
        {"7d": 0.0, "30d": 2.0, "lifetime": 2.0},
    )
    assert r.viral["lifetime"].value == pytest.approx(2.0)  # x, y, w, u by a and b
    assert r.viral["30d"].value == pytest.approx(1.0)  # w by a, u by b
    assert (r.viral["7d"].value, r.viral["7d"].reason) == (None, "no_referrers")
    # historical: referred 70.00 / 4, the others 60.00 / 1; linear: 35.00 / 2, 95.00 / 3
    assert r.ltv[(True, LAST, "historical")].value == pytest.approx(17.5)
    assert r.ltv[(False, LAST, "historical")].value == pytest.approx(60.0)
    assert r.ltv[(True, LINEAR, "historical")].value == pytest.approx(17.5)
    assert r.ltv[(False, LINEAR, "historical")].value == pytest.approx(95 / 3)
    # formula: 17.50 per order x 4 orders / exposure (2 x 51 + 2 x 30 days) x 3 years
    assert r.ltv[(True, LAST, "formula")].value == pytest.approx(17.5 * 4 / (162 / 365) * 3)
    assert channel_figures(all_record(), 100, windows, [], PARAMS).referrals is not None
    assert channel_figures(ChannelRecord("search"), 100, windows, [], PARAMS).referrals is None


def test_referred_ltv_equals_the_referral_channels_ltv() -> None:
    """The referral channel holds exactly the referred part of every customer."""
    record = all_record()
    channel = ChannelRecord(
        "referral",
        buckets={
            day: Bucket(
                {k.removeprefix("referred_"): v for k, v in b.counts.items() if "referred_" in k}
            )
            for day, b in record.buckets.items()
        },
    )
    methods = ["historical", "formula"]
    f = channel_figures(record, 100, ["lifetime"], methods, PARAMS, [LAST, LINEAR])
    g = channel_figures(channel, 100, ["lifetime"], methods, PARAMS, [LAST, LINEAR])
    assert f.referrals is not None
    for model in (LAST, LINEAR):
        for method in methods:
            assert f.referrals.ltv[(True, model, method)] == g.ltv[(model, method)]


def test_referral_gauges_and_redis_fields() -> None:
    windows = ["7d", "lifetime"]
    figures = channel_figures(all_record(), 100, windows, ["historical"], PARAMS, [LAST, LINEAR])
    registry = CollectorRegistry()
    registry.register(ChannelFiguresCollector(lambda: [figures], LAST, "historical"))

    def sample(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    assert sample("ltvcac_referral_share", window="lifetime", model=LAST) == pytest.approx(0.8)
    assert sample("ltvcac_referred_customers", window="lifetime") == 4.0
    assert sample("ltvcac_referrers", window="lifetime") == 2.0
    assert sample("ltvcac_viral_coefficient", window="lifetime") == pytest.approx(2.0)
    assert sample("ltvcac_viral_coefficient", window="7d") is None
    assert sample("ltvcac_viral_coefficient_defined", window="7d", reason="no_referrers") == 0.0
    assert sample(
        "ltvcac_lifetime_value_by_referral", referred="true", model=LAST, method="historical"
    ) == pytest.approx(17.5)
    assert sample(
        "ltvcac_lifetime_value_by_referral", referred="false", model=LAST, method="historical"
    ) == pytest.approx(60.0)

    fields = channel_fields(figures)
    assert float(fields["referral_share:lifetime:linear"]) == pytest.approx(0.4)
    assert float(fields["viral_coefficient:lifetime"]) == pytest.approx(2.0)
    assert (fields["referrers:7d"], fields["referred_customers:7d"]) == ("0.0", "0.0")
    assert "viral_coefficient:7d" not in fields and "referral_share:7d:last_touch" not in fields
    assert float(fields["ltv_referred:last_touch:historical"]) == pytest.approx(17.5)
    assert float(fields["ltv_not_referred:linear:historical"]) == pytest.approx(95 / 3)


def test_customer_hash_names_the_referrer_and_counts_the_referred() -> None:
    x1 = acquired()
    attribute(x1, 0, "a")
    assert customer_fields(x1, LAST)["referred_by"] == "a"
    assert customer_fields(x1, LAST)["referred_customers"] == "0"
    a = CustomerRecord("a")
    referred(a, "x1", {DAY1: 1}, 0)
    assert (
        customer_fields(a, LAST)["referred_by"],
        customer_fields(a, LAST)["referred_customers"],
    ) == ("", "1")
