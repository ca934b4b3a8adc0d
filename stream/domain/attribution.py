"""Attribution: a visitor's touches before a purchase -> channel weights summing to 1.

Every model is computed side by side so that marketers can compare them; one of them
(``LTVCAC_ATTRIBUTION_MODEL``) is primary: it names a customer's acquisition channel.
A model maps the qualifying touches (oldest first) to raw shares per touch;
``attribute`` filters by the lookback, falls back to ``direct``, sums shares by channel
and turns them into integer millionths that sum exactly to ``WEIGHT_SCALE``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from stream.domain.money import WEIGHT_SCALE
from stream.domain.timeline import SECONDS_PER_DAY

DIRECT = "direct"
REFERRAL = "referral"  # the channel of referral touches
Weights = dict[str, int]  # channel -> millionths
ModelWeights = dict[str, Weights]  # model -> its weights
CampaignWeights = dict[str, Weights]  # channel -> campaign -> millionths of the customer
POSITION_ENDS = 0.4  # position based: the first and the last touch each take 40%


@dataclass(frozen=True)
class Touch:
    """A marketing contact of a visitor: an ad click or a referral."""

    event_id: str
    occurred_at: int
    channel: str
    campaign: str | None = None


def first_touch(touches: Sequence[Touch], converted_at: int, half_life_days: float) -> list[float]:
    """All credit to the oldest touch."""
    return [1.0] + [0.0] * (len(touches) - 1)


def last_touch(touches: Sequence[Touch], converted_at: int, half_life_days: float) -> list[float]:
    """All credit to the most recent touch."""
    return [0.0] * (len(touches) - 1) + [1.0]


def linear(touches: Sequence[Touch], converted_at: int, half_life_days: float) -> list[float]:
    """Equal credit to every touch."""
    return [1.0] * len(touches)


def time_decay(touches: Sequence[Touch], converted_at: int, half_life_days: float) -> list[float]:
    """Credit halves for every half-life a touch lies before the conversion.

    Ages count from the newest touch (the same proportions), so the largest share is 1
    and a short half-life never underflows every share to zero.
    """
    half_life = half_life_days * SECONDS_PER_DAY
    newest = touches[-1].occurred_at
    return [0.5 ** ((newest - touch.occurred_at) / half_life) for touch in touches]


def position_based(
    touches: Sequence[Touch], converted_at: int, half_life_days: float
) -> list[float]:
    """40% to the first and to the last touch, 20% shared by those between; one touch
    takes all, two share equally."""
    count = len(touches)
    if count <= 2:
        return [1.0] * count
    middle = (1 - 2 * POSITION_ENDS) / (count - 2)
    return [POSITION_ENDS] + [middle] * (count - 2) + [POSITION_ENDS]


MODELS = {
    "first_touch": first_touch,
    "last_touch": last_touch,
    "linear": linear,
    "time_decay": time_decay,
    "position_based": position_based,
}


def qualifying_touches(
    touches: Sequence[Touch], converted_at: int, lookback_days: int
) -> list[Touch]:
    """Touches inside the lookback and not after the conversion, oldest first.

    Ties in time are ordered by event_id, so the result never depends on arrival order.
    """
    earliest = converted_at - lookback_days * SECONDS_PER_DAY
    inside = [t for t in touches if earliest <= t.occurred_at <= converted_at]
    return sorted(inside, key=lambda t: (t.occurred_at, t.event_id))


def attribute(
    touches: Sequence[Touch],
    converted_at: int,
    lookback_days: int,
    half_life_days: float = 7.0,
) -> ModelWeights:
    """Channel weights in millionths for every model; no qualifying touch means ``direct``."""
    qualifying = qualifying_touches(touches, converted_at, lookback_days)
    if not qualifying:
        return {model: {DIRECT: WEIGHT_SCALE} for model in MODELS}
    result = {}
    for name, model in MODELS.items():
        by_channel: dict[str, float] = {}
        for touch, share in zip(
            qualifying, model(qualifying, converted_at, half_life_days), strict=True
        ):
            by_channel[touch.channel] = by_channel.get(touch.channel, 0.0) + share
        result[name] = to_millionths(by_channel)
    return result


def campaign_weights(
    touches: Sequence[Touch],
    converted_at: int,
    lookback_days: int,
    half_life_days: float,
    model: str,
) -> CampaignWeights:
    """The share of the customer each (channel, campaign) gets in ``model``; touches
    without a campaign take their share too but are not listed."""
    qualifying = qualifying_touches(touches, converted_at, lookback_days)
    if not qualifying:
        return {}
    by_pair: dict[str, float] = {}
    pairs: dict[str, tuple[str, str | None]] = {}
    shares = MODELS[model](qualifying, converted_at, half_life_days)
    for touch, share in zip(qualifying, shares, strict=True):
        key = f"{touch.channel}\x00{touch.campaign or ''}"
        pairs[key] = (touch.channel, touch.campaign)
        by_pair[key] = by_pair.get(key, 0.0) + share
    result: CampaignWeights = {}
    for key, weight in to_millionths(by_pair).items():
        channel, campaign = pairs[key]
        if campaign is not None:
            result.setdefault(channel, {})[campaign] = weight
    return result


def most_credited(
    touches: Sequence[Touch],
    converted_at: int,
    lookback_days: int,
    half_life_days: float,
    model: str,
    channel: str,
) -> Touch | None:
    """The touch of ``channel`` that ``model`` credits most for the conversion (ties: the
    latest), or None when the model credits no touch of that channel."""
    qualifying = qualifying_touches(touches, converted_at, lookback_days)
    if not qualifying:
        return None
    shares = MODELS[model](qualifying, converted_at, half_life_days)
    credited = [
        (share, index)
        for index, (touch, share) in enumerate(zip(qualifying, shares, strict=True))
        if touch.channel == channel and share > 0
    ]
    return qualifying[max(credited)[1]] if credited else None


def to_millionths(shares: dict[str, float]) -> Weights:
    """Normalise shares to integers summing to ``WEIGHT_SCALE`` (largest remainder)."""
    total = sum(shares.values())
    exact = {channel: share / total * WEIGHT_SCALE for channel, share in shares.items()}
    weights = {channel: int(value) for channel, value in exact.items()}
    shortfall = WEIGHT_SCALE - sum(weights.values())
    by_remainder = sorted(exact, key=lambda channel: (weights[channel] - exact[channel], channel))
    for channel in by_remainder[:shortfall]:
        weights[channel] += 1
    return {channel: weight for channel, weight in sorted(weights.items()) if weight > 0}


def model_weights_from_json(value: object) -> ModelWeights:
    """Weights of every model from an internal message; ValueError when malformed."""
    if not isinstance(value, dict) or set(value) != set(MODELS):
        raise ValueError(f"weights must name every model {sorted(MODELS)}")
    for weights in value.values():
        if not isinstance(weights, dict) or not all(
            isinstance(c, str) and isinstance(w, int) and w > 0 for c, w in weights.items()
        ):
            raise ValueError("weights must map channels to positive integers")
        if sum(weights.values()) != WEIGHT_SCALE:
            raise ValueError(f"weights must sum to {WEIGHT_SCALE}")
    return value


def campaign_weights_from_json(value: object) -> CampaignWeights:
    """Campaign weights from an internal message; ValueError when malformed."""
    if not isinstance(value, dict) or not all(
        isinstance(campaigns, dict)
        and all(
            isinstance(c, str) and isinstance(w, int) and 0 < w <= WEIGHT_SCALE
            for c, w in campaigns.items()
        )
        for campaigns in value.values()
    ):
        raise ValueError("campaigns must map channels to campaigns to positive millionths")
    return value
