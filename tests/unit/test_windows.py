"""Every window at its boundaries, from event times to the exported spend.

Windows end on the event-time "today": the day of the watermark less the allowed
lateness, here 30 June 2026 (watermark 1 July 00:30, lateness one hour). A window ``Nd``
holds the N days up to today: a click in the first second of its first day and one in
the last second of its last day count, a click in the last second of the day just
before does not. ``lifetime`` holds every day.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from stream.domain.channel import ChannelRecord, Source
from stream.domain.figures import LtvParams, channel_figures
from stream.domain.lateness import event_today
from stream.domain.timeline import WINDOW_DAYS, day_of_date, epoch_seconds, in_window
from stream.domain.visitor import VisitorRecord, VisitorRules, handle_touch
from tests.unit.events import event

WATERMARK = epoch_seconds(dt.datetime(2026, 7, 1, 0, 30, tzinfo=dt.UTC))
LATENESS = 3600
TODAY = dt.date(2026, 6, 30)
PARAMS = LtvParams(Decimal(3), Decimal(0), 30)
ONE_SECOND = dt.timedelta(seconds=1)


def midnight(date: dt.date) -> dt.datetime:
    return dt.datetime(date.year, date.month, date.day, tzinfo=dt.UTC)


def with_clicks(clicks: list[tuple[dt.datetime, str]]) -> ChannelRecord:
    """The ``search`` channel after one click of each (time, cost), each by a new visitor."""
    record = ChannelRecord("search")
    for offset, (at, cost) in enumerate(clicks):
        click = event(
            "ad_click",
            at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            visitor_id=f"v{offset}",
            channel="search",
            cost=cost,
            currency="USD",
        )
        outcome = handle_touch(
            VisitorRecord(f"v{offset}"), click, Source("ad-clicks", 0, offset), VisitorRules()
        )
        (own,) = [delta for delta in outcome.deltas if delta.channel == "search"]
        assert record.apply(own)
    return record


def test_today_is_the_day_of_the_watermark_less_the_lateness() -> None:
    assert event_today(WATERMARK, LATENESS) == day_of_date(TODAY)


@pytest.mark.parametrize("window", [w for w, days in WINDOW_DAYS.items() if days is not None])
def test_a_window_holds_its_first_and_last_day_and_not_the_day_before(window: str) -> None:
    days = WINDOW_DAYS[window]
    assert days is not None
    first = TODAY - dt.timedelta(days=days - 1)
    record = with_clicks(
        [
            (midnight(first) - ONE_SECOND, "100.00"),  # last second of the day before
            (midnight(first), "1.00"),  # first second of the first day
            (midnight(TODAY + dt.timedelta(days=1)) - ONE_SECOND, "10.00"),  # last of today
        ]
    )
    today = event_today(WATERMARK, LATENESS)
    figures = channel_figures(record, today, [window, "lifetime"], ["historical"], PARAMS)
    assert figures.windows[window].spend == pytest.approx(11.0)
    assert figures.windows["lifetime"].spend == pytest.approx(111.0)
    assert in_window(day_of_date(first), today, window)
    assert in_window(day_of_date(TODAY), today, window)
    assert not in_window(day_of_date(first) - 1, today, window)


def test_lifetime_holds_every_day_from_the_first_possible_one() -> None:
    record = with_clicks(
        [
            (dt.datetime(2000, 1, 1, tzinfo=dt.UTC), "1.00"),  # the earliest event time
            (midnight(TODAY + dt.timedelta(days=1)) - ONE_SECOND, "10.00"),
        ]
    )
    today = event_today(WATERMARK, LATENESS)
    figures = channel_figures(record, today, ["lifetime"], ["historical"], PARAMS)
    assert figures.windows["lifetime"].spend == pytest.approx(11.0)
    assert in_window(0, today, "lifetime")


@pytest.mark.parametrize("window", list(WINDOW_DAYS))
def test_an_event_inside_the_lateness_counts_in_every_window(window: str) -> None:
    # 23:30 on 30 June is the watermark less the lateness: the oldest event not too late
    oldest_accepted = dt.datetime(2026, 6, 30, 23, 30, tzinfo=dt.UTC)
    newest = dt.datetime(2026, 7, 1, 0, 30, tzinfo=dt.UTC)  # the watermark, tomorrow
    record = with_clicks([(oldest_accepted, "1.00"), (newest, "10.00")])
    assert record.watermark == WATERMARK
    today = event_today(record.watermark, LATENESS)
    figures = channel_figures(record, today, [window], ["historical"], PARAMS)
    assert figures.windows[window].spend == pytest.approx(11.0)
