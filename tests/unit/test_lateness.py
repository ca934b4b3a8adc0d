"""Allowed lateness: which source events are too late, and that a redelivery never is."""

from __future__ import annotations

import datetime as dt

import pytest

from schemas.events import AdSpend, Purchase
from stream.domain.channel import ChannelRecord, Source
from stream.domain.customer import CustomerRecord, CustomerRules, handle_purchase
from stream.domain.fx import FxRates
from stream.domain.lateness import TOO_LATE, event_today, too_late
from stream.domain.outcome import APPLIED, REDELIVERED
from stream.domain.spend import handle_ad_spend
from stream.domain.timeline import SECONDS_PER_DAY, day_of_date, epoch_seconds
from tests.unit.events import event

HOUR = 3600
WATERMARK = epoch_seconds(dt.datetime(2026, 3, 5, 12, tzinfo=dt.UTC))
SOURCE = Source("purchases", 0, 7)


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


@pytest.mark.parametrize(
    ("occurred_at", "lateness", "late"),
    [
        ("2026-03-05T11:00:00+00:00", HOUR, False),  # exactly the lateness behind
        ("2026-03-05T10:59:59+00:00", HOUR, True),  # a second more
        ("2026-03-05T12:00:00+00:00", 0, False),  # no lateness: the watermark itself
        ("2026-03-05T11:59:59+00:00", 0, True),
        ("2026-03-05T13:00:00+01:00", 0, False),  # offsets count: 12:00 UTC
        ("2026-03-09T00:00:00+00:00", HOUR, False),  # newer than the watermark
        ("2026-02-01T00:00:00+00:00", 40 * SECONDS_PER_DAY, False),
    ],
)
def test_an_event_older_than_the_watermark_less_the_lateness_is_too_late(
    occurred_at: str, lateness: int, late: bool
) -> None:
    rejection = too_late(CustomerRecord("c1"), SOURCE, at(occurred_at), WATERMARK, lateness)
    assert (rejection is not None) is late


def test_the_dead_letter_names_the_event_time_the_watermark_and_the_lateness() -> None:
    rejection = too_late(
        CustomerRecord("c1"), SOURCE, at("2026-03-01T08:00:00+00:00"), WATERMARK, HOUR
    )
    assert rejection is not None
    assert rejection.reason == TOO_LATE == "too_late"
    assert rejection.detail == (
        "occurred_at 2026-03-01T08:00:00Z is more than the allowed lateness of 3600s"
        " before the watermark 2026-03-05T12:00:00Z"
    )


def test_nothing_is_too_late_before_any_event_time_is_known() -> None:
    oldest = at("2000-01-01T00:00:00+00:00")
    assert too_late(CustomerRecord("c1"), SOURCE, oldest, 0, 0) is None


def purchase(order: str, occurred_at: str) -> Purchase:
    body = {"customer_id": "c1", "order_id": order, "amount": "10.00", "currency": "USD"}
    parsed = event("purchase", occurred_at, **body)
    assert isinstance(parsed, Purchase)
    return parsed


def test_a_purchase_applied_before_is_answered_from_state_however_late_it_is_now() -> None:
    record = CustomerRecord("c1")
    old = purchase("o1", "2026-03-01T08:00:00Z")
    first = handle_purchase(record, old, SOURCE, CustomerRules())
    assert first.status == APPLIED and first.deltas

    # after a crash the purchase is read again; meanwhile the watermark moved far on
    assert too_late(record, SOURCE, old.occurred_at, WATERMARK, HOUR) is None
    again = handle_purchase(record, old, SOURCE, CustomerRules())
    assert (again.status, again.deltas) == (REDELIVERED, first.deltas)

    # a new event of the same partition, as old, is judged
    later_offset = Source("purchases", 0, 8)
    rejection = too_late(record, later_offset, at("2026-03-01T09:00:00+00:00"), WATERMARK, HOUR)
    assert rejection is not None and rejection.reason == TOO_LATE


def test_ad_spend_applied_before_is_answered_from_state_however_late_it_is_now() -> None:
    record = ChannelRecord("search")
    spend = event(
        "ad_spend",
        "2026-03-01T08:00:00Z",
        channel="search",
        amount="70.00",
        currency="USD",
        category="agency",
        period_start="2026-02-23",
        period_end="2026-03-01",
    )
    assert isinstance(spend, AdSpend)
    source = Source("ad-spend", 1, 3)
    first = handle_ad_spend(record, spend, source, FxRates("USD"))
    assert first.status == APPLIED

    assert too_late(record, source, spend.occurred_at, WATERMARK, HOUR) is None
    again = handle_ad_spend(record, spend, source, FxRates("USD"))
    assert (again.status, again.deltas) == (REDELIVERED, first.deltas)
    rejection = too_late(record, Source("ad-spend", 1, 4), spend.occurred_at, WATERMARK, HOUR)
    assert rejection is not None


@pytest.mark.parametrize(
    ("watermark", "lateness", "today"),
    [
        ("2026-03-05T12:00:00+00:00", HOUR, dt.date(2026, 3, 5)),
        ("2026-03-05T00:59:59+00:00", HOUR, dt.date(2026, 3, 4)),
        ("2026-03-05T01:00:00+00:00", HOUR, dt.date(2026, 3, 5)),  # 00:00 is the 5th
        ("2026-03-05T12:00:00+00:00", 5 * SECONDS_PER_DAY, dt.date(2026, 2, 28)),
        ("1970-01-01T00:30:00+00:00", HOUR, dt.date(1970, 1, 1)),  # never before the epoch
    ],
)
def test_today_is_the_day_of_the_watermark_less_the_lateness(
    watermark: str, lateness: int, today: dt.date
) -> None:
    assert event_today(epoch_seconds(at(watermark)), lateness) == day_of_date(today)
