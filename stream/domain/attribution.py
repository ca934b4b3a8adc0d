"""Attribution: a visitor's touches before a purchase -> channel weights summing to 1.

A model maps the qualifying touches (oldest first) to raw shares; ``attribute``
filters by the lookback, falls back to ``direct`` and turns shares into integer
millionths that sum exactly to ``WEIGHT_SCALE``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from stream.domain.money import WEIGHT_SCALE
from stream.domain.timeline import SECONDS_PER_DAY

DIRECT = "direct"
Weights = dict[str, int]


@dataclass(frozen=True)
class Touch:
    """A marketing contact of a visitor: an ad click or a referral."""

    event_id: str
    occurred_at: int
    channel: str
    campaign: str | None = None


AttributionModel = Callable[[Sequence[Touch]], dict[str, float]]


def last_touch(touches: Sequence[Touch]) -> dict[str, float]:
    """All credit to the most recent touch."""
    return {touches[-1].channel: 1.0}


MODELS: dict[str, AttributionModel] = {"last_touch": last_touch}


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
    model: AttributionModel = last_touch,
) -> Weights:
    """Channel weights in millionths; no qualifying touch means ``direct``."""
    qualifying = qualifying_touches(touches, converted_at, lookback_days)
    if not qualifying:
        return {DIRECT: WEIGHT_SCALE}
    return to_millionths(model(qualifying))


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
