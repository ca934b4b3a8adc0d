"""Attribution of a conversion to channels by every model, against hand-computed weights."""

import pytest

from stream.domain.attribution import (
    DIRECT,
    MODELS,
    Touch,
    attribute,
    campaign_weights,
    model_weights_from_json,
    to_millionths,
)

DAY = 86_400
CONVERTED = 100 * DAY
ALL_OF_IT = 1_000_000


def touch(event_id: str, days_before: float, channel: str) -> Touch:
    return Touch(event_id, int(CONVERTED - days_before * DAY), channel)


def every_model(weights: dict[str, int]) -> dict[str, dict[str, int]]:
    return {model: weights for model in MODELS}


def test_three_touches_in_every_model() -> None:
    # oldest first: search 10 days before, display 5 days before, social 2 days before
    touches = [touch("a", 10, "search"), touch("b", 2, "social"), touch("c", 5, "display")]
    assert attribute(touches, CONVERTED, 30, half_life_days=7) == {
        "first_touch": {"search": ALL_OF_IT},
        "last_touch": {"social": ALL_OF_IT},
        # a third each; the odd millionth goes to the first channel by name
        "linear": {"display": 333_334, "search": 333_333, "social": 333_333},
        "position_based": {"search": 400_000, "display": 200_000, "social": 400_000},
        # 2^(-10/7) : 2^(-5/7) : 2^(-2/7) = 0.3715 : 0.6095 : 0.8203, normalised
        "time_decay": {"search": 206_234, "display": 338_363, "social": 455_403},
    }


def test_time_decay_halves_per_half_life() -> None:
    # 14, 7 and 0 days before with a 7-day half-life: 1/4 : 1/2 : 1 = 1/7 : 2/7 : 4/7
    touches = [touch("a", 14, "search"), touch("b", 7, "social"), touch("c", 0, "email")]
    weights = attribute(touches, CONVERTED, 30, half_life_days=7)["time_decay"]
    assert weights == {"search": 142_857, "social": 285_714, "email": 571_429}


def test_position_based_with_two_touches_shares_equally() -> None:
    touches = [touch("a", 3, "search"), touch("b", 1, "social")]
    weights = attribute(touches, CONVERTED, 30)["position_based"]
    assert weights == {"search": 500_000, "social": 500_000}


def test_position_based_middle_touches_share_twenty_percent() -> None:
    touches = [touch(f"t{i}", 5 - i, channel) for i, channel in enumerate("abcab")]
    # a: 40% + 10%/3, b: 20%/3 x 2, c: 20%/3, last b: 40%
    weights = attribute(touches, CONVERTED, 30)["position_based"]
    assert weights == {"a": 466_667, "b": 466_667, "c": 66_666}


def test_touches_of_one_channel_add_up() -> None:
    touches = [touch("a", 3, "search"), touch("b", 2, "search"), touch("c", 1, "social")]
    assert attribute(touches, CONVERTED, 30)["linear"] == {"search": 666_667, "social": 333_333}


def test_a_single_touch_takes_everything_in_every_model() -> None:
    assert attribute([touch("a", 1, "search")], CONVERTED, 30) == every_model({"search": ALL_OF_IT})


def test_no_touch_is_direct_in_every_model() -> None:
    assert attribute([], CONVERTED, 30) == every_model({DIRECT: ALL_OF_IT})


def test_touches_outside_the_lookback_do_not_count() -> None:
    assert attribute([touch("a", 31, "search")], CONVERTED, 30) == every_model({DIRECT: ALL_OF_IT})
    # exactly 30 days before is inside
    assert attribute([touch("a", 30, "search")], CONVERTED, 30) == every_model(
        {"search": ALL_OF_IT}
    )
    touches = [touch("a", 31, "search"), touch("b", 2, "social")]
    assert attribute(touches, CONVERTED, 30)["first_touch"] == {"social": ALL_OF_IT}


def test_touches_after_the_conversion_never_count() -> None:
    touches = [touch("a", 3, "search"), touch("b", -0.5, "social")]
    assert attribute(touches, CONVERTED, 30) == every_model({"search": ALL_OF_IT})
    # a touch at the very moment of the conversion counts
    assert attribute([touch("a", 0, "email")], CONVERTED, 30) == every_model({"email": ALL_OF_IT})


@pytest.mark.parametrize("order", [["a", "b"], ["b", "a"]])
def test_ties_in_time_are_ordered_by_event_id(order: list[str]) -> None:
    channels = {"a": "search", "b": "social"}
    touches = [touch(event_id, 1, channels[event_id]) for event_id in order]
    weights = attribute(touches, CONVERTED, 30)
    assert weights["first_touch"] == {"search": ALL_OF_IT}
    assert weights["last_touch"] == {"social": ALL_OF_IT}
    assert weights["linear"] == {"search": 500_000, "social": 500_000}


def test_millionths_sum_exactly_to_one() -> None:
    weights = to_millionths({"a": 1.0, "b": 1.0, "c": 1.0})
    assert weights == {"a": 333_334, "b": 333_333, "c": 333_333}
    assert to_millionths({"a": 0.4, "b": 0.2, "c": 0.4}) == {
        "a": 400_000,
        "b": 200_000,
        "c": 400_000,
    }


def test_a_tiny_half_life_gives_the_newest_touch_everything() -> None:
    # 30 days with a half-life of 0.01 days: 2^-3000 of a share, far below a millionth
    touches = [touch("a", 30, "search"), touch("b", 0, "social")]
    weights = attribute(touches, CONVERTED, 30, half_life_days=0.01)["time_decay"]
    assert weights == {"social": ALL_OF_IT}


@pytest.mark.parametrize(
    "value",
    [
        {"search": 1_000_000},  # the weights of one model, not of every model
        {model: {"search": 500_000} for model in MODELS},  # not summing to one
        {model: {"search": 1_000_000.0} for model in MODELS},  # not integers
        [],
    ],
)
def test_malformed_model_weights_are_refused(value: object) -> None:
    with pytest.raises(ValueError):
        model_weights_from_json(value)


def test_well_formed_model_weights_are_taken_as_they_are() -> None:
    value = every_model({"search": 400_000, "social": 600_000})
    assert model_weights_from_json(value) == value


def test_campaigns_get_the_share_of_their_touches_in_the_model() -> None:
    touches = [
        Touch("a", CONVERTED - 3 * DAY, "search", "brand"),
        Touch("b", CONVERTED - 2 * DAY, "search", None),  # a share, but no campaign to list
        Touch("c", CONVERTED - 1 * DAY, "social", "spring"),
    ]
    assert campaign_weights(touches, CONVERTED, 30, 7, "linear") == {
        # the odd millionth goes to the first pair by name: search without a campaign
        "search": {"brand": 333_333},
        "social": {"spring": 333_333},
    }
    assert campaign_weights(touches, CONVERTED, 30, 7, "last_touch") == {
        "social": {"spring": ALL_OF_IT}
    }
    assert campaign_weights(touches, CONVERTED, 30, 7, "first_touch") == {
        "search": {"brand": ALL_OF_IT}
    }
    assert campaign_weights([], CONVERTED, 30, 7, "linear") == {}
