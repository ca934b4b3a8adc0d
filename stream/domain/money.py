"""Money in integer minor units, and attribution-weighted amounts.

State never holds floats. A weighted amount is ``cents * weight`` where a weight is
an integer in millionths (``WEIGHT_SCALE`` means "all of it"), so splitting a
customer across channels stays exact.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

WEIGHT_SCALE = 1_000_000
_CENT = Decimal("0.01")


def to_cents(amount: Decimal) -> int:
    """Decimal currency units -> integer cents (banker's rounding below a cent)."""
    return int((amount / _CENT).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def gross_profit_cents(
    amount_cents: int,
    cost_of_goods_cents: int | None,
    margin: Decimal | None,
    default_margin: Decimal,
) -> int:
    """Amount less cost of goods, or amount times the margin when the cost is unknown."""
    if cost_of_goods_cents is not None:
        return amount_cents - cost_of_goods_cents
    rate = default_margin if margin is None else margin
    return int((Decimal(amount_cents) * rate).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def share_cents(total_cents: int, part_cents: int, whole_cents: int) -> int:
    """``total * part / whole`` rounded half-even, in integers (e.g. profit of a partial refund)."""
    if whole_cents == 0:
        return 0
    scaled = Decimal(total_cents) * part_cents / whole_cents
    return int(scaled.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def units(cents: int) -> float:
    """Cents -> currency units as float, for Prometheus and display only."""
    return cents / 100


def weighted_units(weighted_cents: int) -> float:
    """Weighted cents -> currency units as float, for Prometheus and display only."""
    return weighted_cents / 100 / WEIGHT_SCALE


def split_evenly(total: int, parts: int) -> list[int]:
    """Split an integer into ``parts`` integers that differ by at most one and sum to it."""
    base, remainder = divmod(total, parts)
    return [base + (1 if index < remainder else 0) for index in range(parts)]
