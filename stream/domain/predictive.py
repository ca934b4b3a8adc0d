"""Predictive CLV: what a customer record says in BG/NBD and Gamma-Gamma terms, the fit of
both models over many customers, and each customer's score with a fit.

Time is counted in whole UTC days (the fit's parameters carry that unit). A customer's
purchases are its days with orders:

- frequency x: days with orders after the first one (repeat purchases);
- recency t_x: days from the first to the last of them (0 without a repeat purchase);
- age T: days from the first purchase to "today": the day of the newest event time known
  (the watermark, without the allowed lateness: every purchase seen counts already);
- mean profit: the average gross profit of the repeat purchase days, each day's orders net
  of what was refunded of them (the Gamma-Gamma input; the first purchase is left out as
  in the papers, because it is often unlike the repeat ones).

Gamma-Gamma models positive values only: a customer whose repeat purchases made no profit
(everything refunded) is left out of its fit and scored with a mean of one cent, which pulls
its expected profit per purchase below the population's.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from stream.domain import clv
from stream.domain.customer import CustomerRecord
from stream.domain.money import share_cents
from stream.domain.timeline import day_of

BG_NBD = "bg_nbd"
GAMMA_GAMMA = "gamma_gamma"
CURRENT_FIT = "current"  # the key of the latest fit in the table every worker reads
DAYS_PER_YEAR = 365.25
_SMALLEST_MEAN = 0.01  # currency units: the mean profit scored for a repeat customer without one


@dataclass(frozen=True)
class Summary:
    """One customer in the models' terms (see the module docstring)."""

    frequency: int
    recency: int
    age: int
    mean_profit: float  # currency units; 0 without a repeat purchase


def summary_of(record: CustomerRecord, today: int) -> Summary | None:
    """The customer's summary on event-time day ``today``; None without an order."""
    profit_by_day: dict[int, int] = {}
    for order in record.order_book.values():
        net = order.profit_cents - share_cents(order.profit_cents, order.refunded, order.paid)
        day = day_of(order.at)
        profit_by_day[day] = profit_by_day.get(day, 0) + net
    if not profit_by_day:
        return None
    days = sorted(profit_by_day)
    first, last = days[0], days[-1]
    repeat = [profit_by_day[day] for day in days[1:]]
    mean = sum(repeat) / len(repeat) / 100 if repeat else 0.0
    return Summary(len(repeat), last - first, max(today - first, last - first), mean)


@dataclass(frozen=True)
class Fit:
    """Both models fitted on ``customers`` summaries (``repeat_customers`` of them for
    Gamma-Gamma), published to every worker; ``version`` counts the fits."""

    version: int
    bg_nbd: clv.BgNbdParams
    gamma_gamma: clv.GammaGammaParams
    customers: int
    repeat_customers: int
    bg_nbd_log_likelihood: float
    gamma_gamma_log_likelihood: float
    fitted_at: float  # wall clock, seconds since the epoch
    today: int  # the event-time day the customers' ages were measured to (the watermark's)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["bg_nbd"], data["gamma_gamma"] = asdict(self.bg_nbd), asdict(self.gamma_gamma)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Fit:
        return cls(
            **{
                **data,
                "bg_nbd": clv.BgNbdParams(**data["bg_nbd"]),
                "gamma_gamma": clv.GammaGammaParams(**data["gamma_gamma"]),
            }
        )


class NotFitted(Exception):
    """The summaries cannot be fitted: too few customers, or no usable optimum."""


def fit(
    summaries: list[Summary], min_customers: int, version: int, fitted_at: float, today: int
) -> Fit:
    """Fit BG/NBD on every summary and Gamma-Gamma on the repeat customers with profit.

    Raises ``NotFitted`` with the reason when there are fewer than ``min_customers`` of
    either, or when the fitted models could not score (a = 1 exactly, or q <= 1: an
    infinite expected profit per purchase).
    """
    repeat = [s for s in summaries if s.frequency > 0 and s.mean_profit > 0]
    if len(summaries) < min_customers or len(repeat) < min_customers:
        raise NotFitted(
            f"{len(summaries)} customers, {len(repeat)} with repeat purchases and profit;"
            f" at least {min_customers} of each are needed"
        )
    x = np.array([s.frequency for s in summaries], dtype=np.float64)
    t_x = np.array([s.recency for s in summaries], dtype=np.float64)
    age = np.array([s.age for s in summaries], dtype=np.float64)
    bg, bg_ll = clv.fit_bg_nbd(x, t_x, age)
    gg, gg_ll = clv.fit_gamma_gamma(
        np.array([s.frequency for s in repeat], dtype=np.float64),
        np.array([s.mean_profit for s in repeat], dtype=np.float64),
    )
    if bg.a == 1 or gg.q <= 1:
        raise NotFitted(f"the fitted models cannot score: a={bg.a}, q={gg.q}")
    return Fit(version, bg, gg, len(summaries), len(repeat), bg_ll, gg_ll, fitted_at, today)


@dataclass(frozen=True)
class Horizon:
    """How far ahead a customer is valued, and how the future is discounted."""

    years: float = 3.0
    yearly_discount_rate: float = 0.10

    @property
    def days(self) -> float:
        return self.years * DAYS_PER_YEAR

    @property
    def months(self) -> int:
        return max(round(self.years * 12), 1)

    @property
    def monthly_discount_rate(self) -> float:
        return float((1 + self.yearly_discount_rate) ** (1 / 12)) - 1


@dataclass(frozen=True)
class Score:
    """A customer's predicted value over the horizon (currency units), the probability
    that it is still a customer, and its expected purchases over the horizon."""

    clv: float
    probability_alive: float
    expected_purchases: float


def score(model: Fit, summary: Summary, horizon: Horizon) -> Score:
    """The customer's score with ``model``: closed forms, no optimisation."""
    x, t_x, age = summary.frequency, float(summary.recency), float(summary.age)
    mean = max(summary.mean_profit, _SMALLEST_MEAN) if x > 0 else 0.0
    value = clv.discounted_clv(
        model.bg_nbd,
        model.gamma_gamma,
        x,
        t_x,
        age,
        mean,
        horizon.days,
        horizon.monthly_discount_rate,
        horizon.months,
    )
    purchases = clv.expected_purchases(model.bg_nbd, x, t_x, age, horizon.days)
    alive = clv.probability_alive(model.bg_nbd, x, t_x, age)
    if not all(math.isfinite(v) for v in (value, purchases, alive)):
        raise ValueError(f"non-finite score for {summary}: {value}, {purchases}, {alive}")
    return Score(value, alive, purchases)
