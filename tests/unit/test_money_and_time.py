"""Money in cents and event-time days, against hand-computed values."""

import datetime as dt
from decimal import Decimal

import pytest

from stream.domain.money import gross_profit_cents, share_cents, split_evenly, to_cents
from stream.domain.timeline import day_of, day_of_date, epoch_seconds, in_window


@pytest.mark.parametrize(
    ("amount", "cents"),
    [("19.99", 1999), ("0.01", 1), ("100", 10000), ("0.005", 0), ("0.015", 2), ("1e3", 100000)],
)
def test_to_cents(amount: str, cents: int) -> None:
    assert to_cents(Decimal(amount)) == cents


@pytest.mark.parametrize(
    ("amount", "cost", "margin", "default", "profit"),
    [
        (10000, 4000, None, Decimal("0.3"), 6000),  # amount - cost of goods
        (10000, None, Decimal("0.5"), Decimal("0.3"), 5000),  # explicit margin
        (10000, None, None, Decimal("0.3"), 3000),  # default margin
        (999, None, None, Decimal("0.3"), 300),  # 299.7 rounds half-even to 300
        (1000, 1500, None, Decimal("0.3"), -500),  # sold below cost
    ],
)
def test_gross_profit(
    amount: int, cost: int | None, margin: Decimal | None, default: Decimal, profit: int
) -> None:
    assert gross_profit_cents(amount, cost, margin, default) == profit


def test_share_of_profit_for_partial_refund() -> None:
    # refund 20.00 of a 100.00 order with 60.00 profit takes 12.00 of profit
    assert share_cents(6000, 2000, 10000) == 1200
    assert share_cents(1000, 1, 3) == 333
    assert share_cents(1000, 1, 0) == 0


def test_split_evenly_keeps_every_cent() -> None:
    assert split_evenly(1000, 3) == [334, 333, 333]
    assert split_evenly(7000, 7) == [1000] * 7
    assert sum(split_evenly(12345, 31)) == 12345


def test_days_are_utc_calendar_days() -> None:
    late_evening = dt.datetime(2026, 3, 1, 23, 30, tzinfo=dt.timezone(dt.timedelta(hours=-5)))
    # 23:30 at UTC-5 is 04:30 UTC on 2 March
    assert day_of(epoch_seconds(late_evening)) == day_of_date(dt.date(2026, 3, 2))
    assert day_of_date(dt.date(1970, 1, 2)) == 1


@pytest.mark.parametrize(
    ("day", "window", "inside"),
    [
        (100, "7d", True),
        (94, "7d", True),  # 7 days: 94..100
        (93, "7d", False),
        (71, "30d", True),
        (70, "30d", False),
        (101, "30d", True),  # within the lateness, ahead of "now"
        (-5000, "lifetime", True),
    ],
)
def test_window_membership_at_boundaries(day: int, window: str, inside: bool) -> None:
    assert in_window(day, 100, window) is inside
