"""Attribution of a conversion to channels, against hand-computed weights."""

from stream.domain.attribution import DIRECT, Touch, attribute, to_millionths

DAY = 86_400
CONVERTED = 100 * DAY


def touch(event_id: str, days_before: float, channel: str) -> Touch:
    return Touch(event_id, int(CONVERTED - days_before * DAY), channel)


def test_last_touch_takes_the_most_recent_touch() -> None:
    touches = [touch("a", 10, "search"), touch("b", 2, "social"), touch("c", 5, "display")]
    assert attribute(touches, CONVERTED, 30) == {"social": 1_000_000}


def test_single_touch() -> None:
    assert attribute([touch("a", 1, "search")], CONVERTED, 30) == {"search": 1_000_000}


def test_no_touch_is_direct() -> None:
    assert attribute([], CONVERTED, 30) == {DIRECT: 1_000_000}


def test_touches_outside_the_lookback_do_not_count() -> None:
    assert attribute([touch("a", 31, "search")], CONVERTED, 30) == {DIRECT: 1_000_000}
    assert attribute([touch("a", 30, "search")], CONVERTED, 30) == {"search": 1_000_000}


def test_touches_after_the_conversion_do_not_count() -> None:
    touches = [touch("a", 3, "search"), touch("b", -0.5, "social")]
    assert attribute(touches, CONVERTED, 30) == {"search": 1_000_000}


def test_ties_in_time_go_to_the_touch_that_arrived_last() -> None:
    touches = [touch("a", 1, "search"), touch("b", 1, "social")]
    assert attribute(touches, CONVERTED, 30) == {"social": 1_000_000}


def test_millionths_sum_exactly_to_one() -> None:
    weights = to_millionths({"a": 1.0, "b": 1.0, "c": 1.0})
    assert weights == {"a": 333_334, "b": 333_333, "c": 333_333}
    assert to_millionths({"a": 0.4, "b": 0.2, "c": 0.4}) == {
        "a": 400_000,
        "b": 200_000,
        "c": 400_000,
    }
