"""Tests of the BG/NBD and Gamma-Gamma models (``stream.domain.clv``).

Reference values come from the papers, from numerical integration and Monte Carlo simulations of
the models' generative processes written here, or from published closed forms written out here.
The discounting tests alone build on clv.expected_purchases, to check the sum over periods.
Abbreviations (FHL05a, FH13, ...) are the references listed in clv.py.
"""

import csv
import math
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from scipy.integrate import quad
from scipy.special import hyp2f1

from stream.domain import clv

CDNOW_SUMMARY = Path(__file__).parent.parent / "data" / "cdnow_summary.csv"

# FHL05a's BG/NBD estimates on CDNOW (weeks); FH13's Gamma-Gamma ones for its 946 repeat buyers.
PUBLISHED_BG = clv.BgNbdParams(r=0.243, alpha=4.414, a=0.793, b=2.426)
PUBLISHED_GG = clv.GammaGammaParams(p=6.25, q=3.74, v=15.44)


def load_cdnow() -> dict[str, npt.NDArray[np.float64]]:
    with CDNOW_SUMMARY.open(newline="") as f:
        rows = list(csv.DictReader(f))
    columns = ("frequency", "recency", "T", "monetary_value")
    return {name: np.array([float(row[name]) for row in rows]) for name in columns}


@pytest.fixture(scope="module")
def cdnow() -> dict[str, npt.NDArray[np.float64]]:
    return load_cdnow()


# ---------------------------------------------------------------------------------------------
# Literature
# ---------------------------------------------------------------------------------------------


def test_cdnow_file_is_the_papers_sample(cdnow: dict[str, npt.NDArray[np.float64]]) -> None:
    assert len(cdnow["frequency"]) == 2357
    assert int((cdnow["frequency"] > 0).sum()) == 946
    assert cdnow["T"].max() <= 39.0  # 39-week calibration period


def test_bg_nbd_fit_reproduces_fhl05a(cdnow: dict[str, npt.NDArray[np.float64]]) -> None:
    params, log_likelihood = clv.fit_bg_nbd(cdnow["frequency"], cdnow["recency"], cdnow["T"])
    assert params.r == pytest.approx(0.243, rel=0.02)
    assert params.alpha == pytest.approx(4.414, rel=0.02)
    assert params.a == pytest.approx(0.793, rel=0.02)
    assert params.b == pytest.approx(2.426, rel=0.02)
    assert log_likelihood == pytest.approx(-9582.4, abs=0.1)


def test_bg_nbd_log_likelihood_at_published_estimates(
    cdnow: dict[str, npt.NDArray[np.float64]],
) -> None:
    per_customer = clv.bg_nbd_log_likelihood(
        PUBLISHED_BG, cdnow["frequency"], cdnow["recency"], cdnow["T"]
    )
    assert per_customer.shape == (2357,)
    assert per_customer.sum() == pytest.approx(-9582.4, abs=0.1)


def test_bg_nbd_fit_is_unit_free(cdnow: dict[str, npt.NDArray[np.float64]]) -> None:
    in_weeks, log_likelihood_weeks = clv.fit_bg_nbd(
        cdnow["frequency"], cdnow["recency"], cdnow["T"]
    )
    in_days, log_likelihood_days = clv.fit_bg_nbd(
        cdnow["frequency"], 7 * cdnow["recency"], 7 * cdnow["T"]
    )
    assert in_days.alpha == pytest.approx(7 * in_weeks.alpha, rel=1e-4)
    for name in ("r", "a", "b"):
        assert getattr(in_days, name) == pytest.approx(getattr(in_weeks, name), rel=1e-4)
    # Purchase-time densities are per day instead of per week: one factor 1/7 per repeat purchase.
    shift = -cdnow["frequency"].sum() * math.log(7)
    assert log_likelihood_days == pytest.approx(log_likelihood_weeks + shift, abs=1e-4)


def test_gamma_gamma_fit_reproduces_published_estimates(
    cdnow: dict[str, npt.NDArray[np.float64]],
) -> None:
    params, log_likelihood = clv.fit_gamma_gamma(cdnow["frequency"], cdnow["monetary_value"])
    assert params.p == pytest.approx(6.25, rel=0.02)
    assert params.q == pytest.approx(3.74, rel=0.02)
    assert params.v == pytest.approx(15.44, rel=0.02)
    repeat = cdnow["frequency"] > 0
    per_customer = clv.gamma_gamma_log_likelihood(
        params, cdnow["frequency"][repeat], cdnow["monetary_value"][repeat]
    )
    assert per_customer.shape == (946,)
    assert log_likelihood == pytest.approx(per_customer.sum())


def test_published_conditional_expectation() -> None:
    # FHL05a section 5: customer 1 of the sample expects 1.226 purchases in the next 39 weeks.
    expected = clv.expected_purchases(PUBLISHED_BG, x=2, t_x=30.43, T=38.86, t=39.0)
    assert expected == pytest.approx(1.226, abs=5e-4)


# ---------------------------------------------------------------------------------------------
# Closed forms against numerical integration over the posterior
# ---------------------------------------------------------------------------------------------


def bg_nbd_posterior_by_quadrature(
    params: clv.BgNbdParams, x: int, t_x: float, T: float, t: float
) -> tuple[float, float]:
    """(E[purchases in (T, T+t]], P(alive at T)) given x, t_x, T, by integrating over p.

    Given (lambda, p) the likelihood is (1-p)^x lambda^x e^(-lambda T) if alive at T, plus
    p (1-p)^(x-1) lambda^x e^(-lambda t_x) if x > 0 and the customer dropped out after the last
    purchase (FHL05a section 3). An alive customer buys (1 - e^(-lambda p t)) / p in expectation
    over the next t. lambda is integrated against its Gamma(r, alpha) prior in closed form
    (a Gamma integral), p numerically against its Beta(a, b) prior (quad's algebraic weight).
    Common factors, including (alpha+T)^-(r+x), are dropped.
    """
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    n = r + x

    def alive(p: float) -> float:
        return float((1 - p) ** x)

    def dropped(p: float) -> float:
        return p * (1 - p) ** (x - 1) * ((alpha + T) / (alpha + t_x)) ** n if x > 0 else 0.0

    def alive_times_future(p: float) -> float:
        # (1 - ((alpha+T)/(alpha+T+p t))^n) / p, written to stay accurate as p -> 0
        if p == 0:
            return n * t / (alpha + T)
        return float((1 - p) ** x * -math.expm1(-n * math.log1p(p * t / (alpha + T))) / p)

    def integrate(f: Callable[[float], float]) -> float:
        value, _ = quad(
            f, 0, 1, weight="alg", wvar=(a - 1, b - 1), epsabs=0, epsrel=1e-11, limit=200
        )
        return float(value)

    evidence = integrate(alive) + integrate(dropped)
    return integrate(alive_times_future) / evidence, integrate(alive) / evidence


QUADRATURE_CASES = [
    # (x, t_x, T, t)
    (2, 30.43, 38.86, 39.0),  # FHL05a's customer 1
    (0, 0.0, 38.86, 39.0),  # no repeat purchase
    (0, 0.0, 0.0, 10.0),  # brand-new customer
    (1, 0.0, 20.0, 52.0),  # t_x == 0 with a repeat purchase
    (5, 38.86, 38.86, 13.0),  # t_x == T: bought just now
    (7, 10.0, 38.86, 39.0),  # many purchases, long silent
    (30, 35.0, 38.86, 200.0),  # heavy buyer, long horizon
    (3, 20.0, 38.86, 0.5),  # short horizon
    (10_000, 38.0, 38.86, 39.0),  # very large x, P(alive) ~ 1e-84
    (10_000, 38.86, 38.86, 39.0),  # very large x, just bought
]


QUADRATURE_PARAMS = [
    PUBLISHED_BG,
    clv.BgNbdParams(r=1.3, alpha=2.0, a=2.5, b=4.0),  # a > 1
    clv.BgNbdParams(r=0.5, alpha=10.0, a=0.3, b=0.4),  # a + b < 1
]


@pytest.mark.parametrize("params", QUADRATURE_PARAMS)
@pytest.mark.parametrize(("x", "t_x", "T", "t"), QUADRATURE_CASES)
def test_scoring_matches_quadrature(
    params: clv.BgNbdParams, x: int, t_x: float, T: float, t: float
) -> None:
    expected_reference, alive_reference = bg_nbd_posterior_by_quadrature(params, x, t_x, T, t)
    assert clv.expected_purchases(params, x, t_x, T, t) == pytest.approx(
        expected_reference, rel=1e-9
    )
    assert clv.probability_alive(params, x, t_x, T) == pytest.approx(alive_reference, rel=1e-9)


CONCENTRATED = clv.BgNbdParams(r=0.5664, alpha=36.73, a=2450.0, b=6612.0)  # a fit seen (days)


def posterior_with_concentrated_dropout(
    params: clv.BgNbdParams, x: int, t_x: float, T: float, t: float
) -> tuple[float, float]:
    """As ``bg_nbd_posterior_by_quadrature``, for a Beta(a, b) so narrow that quad's
    algebraic weight fails: the density is evaluated in logs and integrated over +-12
    standard deviations around its mean, where all of its mass is."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    n = r + x
    mean = a / (a + b)
    spread = 12 * math.sqrt(a * b / ((a + b) ** 2 * (a + b + 1)))
    log_beta = math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)

    def density(p: float) -> float:
        return math.exp((a - 1) * math.log(p) + (b - 1) * math.log1p(-p) - log_beta)

    def integrate(f: Callable[[float], float]) -> float:
        low, high = max(mean - spread, 1e-12), min(mean + spread, 1 - 1e-12)
        value, _ = quad(lambda p: f(p) * density(p), low, high, epsabs=0, epsrel=1e-11, limit=200)
        return float(value)

    def alive(p: float) -> float:
        return float((1 - p) ** x)

    def dropped(p: float) -> float:
        return p * (1 - p) ** (x - 1) * ((alpha + T) / (alpha + t_x)) ** n if x > 0 else 0.0

    def alive_times_future(p: float) -> float:
        return float((1 - p) ** x * -math.expm1(-n * math.log1p(p * t / (alpha + T))) / p)

    evidence = integrate(alive) + integrate(dropped)
    return integrate(alive_times_future) / evidence, integrate(alive) / evidence


@pytest.mark.parametrize(
    ("x", "t_x", "T", "t"),
    [
        (0, 0.0, 0.0, 1096.0),
        (0, 0.0, 50.0, 365.0),
        (2, 30.0, 60.0, 1096.0),
        (5, 100.0, 120.0, 1096.0),
    ],
)
def test_scoring_with_concentrated_dropout_matches_quadrature(
    x: int, t_x: float, T: float, t: float
) -> None:
    """Large a and b overflow the transformed eq. 10; the untransformed one takes over."""
    expected_reference, alive_reference = posterior_with_concentrated_dropout(
        CONCENTRATED, x, t_x, T, t
    )
    assert clv.expected_purchases(CONCENTRATED, x, t_x, T, t) == pytest.approx(
        expected_reference, rel=1e-7
    )
    assert clv.probability_alive(CONCENTRATED, x, t_x, T) == pytest.approx(
        alive_reference, rel=1e-7
    )


# ---------------------------------------------------------------------------------------------
# Closed forms against Monte Carlo simulation of the generative processes
# ---------------------------------------------------------------------------------------------
#
# Each simulated customer gets hidden traits, an observed history and a realised future. For any
# group of customers chosen by their observed history, the mean of the realised quantity must
# equal the mean of the conditional expectations computed from the history alone, up to Monte
# Carlo error. This conditions on the exact (x, t_x, T) of every customer without rejection.

MC_CUSTOMERS = 100_000
MC_HORIZON = 39.0  # weeks
MC_PERIODS = 3
MC_DISCOUNT = 0.05  # per period


class SimulatedPopulation:
    """BG/NBD purchases (FHL05a section 3) and Gamma-Gamma values (FH13) for many customers."""

    def __init__(self, rng: np.random.Generator, bg: clv.BgNbdParams, gg: clv.GammaGammaParams):
        n = MC_CUSTOMERS
        self.T = rng.uniform(27.0, 39.0, n)  # CDNOW's customers joined over 12 weeks
        purchase_rate = rng.gamma(shape=bg.r, scale=1 / bg.alpha, size=n)
        dropout_probability = rng.beta(bg.a, bg.b, size=n)

        self.x = np.zeros(n, dtype=int)
        self.t_x = np.zeros(n)
        self.alive_at_T = np.ones(n, dtype=bool)
        self.future_purchases_per_period = np.zeros((n, MC_PERIODS), dtype=int)
        period_length = MC_HORIZON / MC_PERIODS
        clock = np.zeros(n)  # time of the latest purchase; the first purchase is at 0
        buying = np.ones(n, dtype=bool)  # not dropped out and not past the forecast horizon
        while buying.any():
            active = np.flatnonzero(buying)
            clock[active] += rng.exponential(1 / purchase_rate[active])
            past_horizon = clock[active] > self.T[active] + MC_HORIZON
            buying[active[past_horizon]] = False
            active = active[~past_horizon]

            observed = active[clock[active] <= self.T[active]]
            self.x[observed] += 1
            self.t_x[observed] = clock[observed]
            future = active[clock[active] > self.T[active]]
            period = ((clock[future] - self.T[future]) // period_length).astype(int)
            np.add.at(self.future_purchases_per_period, (future, period), 1)

            # After each repeat purchase the customer drops out with probability p.
            drops = active[rng.random(active.size) < dropout_probability[active]]
            buying[drops] = False
            self.alive_at_T[drops[clock[drops] <= self.T[drops]]] = False

        # Transaction values ~ Gamma(p, rate nu); a sum of x of them is Gamma(p x, rate nu).
        nu = rng.gamma(shape=gg.q, scale=1 / gg.v, size=n)
        self.mean_value = np.zeros(n)
        repeat = self.x > 0
        self.mean_value[repeat] = (
            rng.gamma(shape=gg.p * self.x[repeat], scale=1 / nu[repeat]) / self.x[repeat]
        )
        self.expected_value = gg.p / nu  # the customer's true mean transaction value


@pytest.fixture(scope="module")
def population() -> SimulatedPopulation:
    return SimulatedPopulation(np.random.default_rng(20240601), PUBLISHED_BG, PUBLISHED_GG)


def observed_groups(population: SimulatedPopulation) -> dict[str, npt.NDArray[np.bool_]]:
    x, recency_share = population.x, population.t_x / population.T
    return {
        "x = 0": x == 0,
        "x = 1": x == 1,
        "x = 2": x == 2,
        "3 <= x <= 5": (x >= 3) & (x <= 5),
        "x >= 6": x >= 6,
        "x >= 1, last purchase early": (x >= 1) & (recency_share < 0.5),
        "x >= 1, last purchase late": (x >= 1) & (recency_share >= 0.5),
        "everyone": np.ones_like(x, dtype=bool),
    }


def assert_calibrated(
    realised: npt.NDArray[np.float64],
    predicted: npt.NDArray[np.float64],
    groups: dict[str, npt.NDArray[np.bool_]],
) -> None:
    for name, members in groups.items():
        residual = realised[members] - predicted[members]
        assert members.sum() >= 500, name
        standard_error = residual.std(ddof=1) / math.sqrt(residual.size)
        assert abs(residual.mean()) <= 4 * standard_error, (
            f"{name}: realised {realised[members].mean():.4f} vs predicted "
            f"{predicted[members].mean():.4f} (standard error {standard_error:.4f})"
        )


def test_expected_purchases_match_simulation(population: SimulatedPopulation) -> None:
    predicted = np.array(
        [
            clv.expected_purchases(PUBLISHED_BG, int(x), t_x, T, MC_HORIZON)
            for x, t_x, T in zip(population.x, population.t_x, population.T, strict=True)
        ]
    )
    realised = population.future_purchases_per_period.sum(axis=1).astype(float)
    assert_calibrated(realised, predicted, observed_groups(population))


def test_probability_alive_matches_simulation(population: SimulatedPopulation) -> None:
    predicted = np.array(
        [
            clv.probability_alive(PUBLISHED_BG, int(x), t_x, T)
            for x, t_x, T in zip(population.x, population.t_x, population.T, strict=True)
        ]
    )
    assert_calibrated(population.alive_at_T.astype(float), predicted, observed_groups(population))


def test_expected_average_value_matches_simulation(population: SimulatedPopulation) -> None:
    predicted = np.array(
        [
            clv.expected_average_value(PUBLISHED_GG, int(x), mean_value)
            for x, mean_value in zip(population.x, population.mean_value, strict=True)
        ]
    )
    groups = observed_groups(population)
    repeat = population.x > 0
    median_value = np.median(population.mean_value[repeat])
    groups["x >= 1, low mean value"] = repeat & (population.mean_value < median_value)
    groups["x >= 1, high mean value"] = repeat & (population.mean_value >= median_value)
    assert_calibrated(population.expected_value, predicted, groups)


def test_discounted_clv_matches_simulation(population: SimulatedPopulation) -> None:
    predicted = np.array(
        [
            clv.discounted_clv(
                PUBLISHED_BG,
                PUBLISHED_GG,
                int(x),
                t_x,
                T,
                mean_value,
                horizon=MC_HORIZON,
                discount_rate_per_period=MC_DISCOUNT,
                periods=MC_PERIODS,
            )
            for x, t_x, T, mean_value in zip(
                population.x, population.t_x, population.T, population.mean_value, strict=True
            )
        ]
    )
    discount = (1 + MC_DISCOUNT) ** -np.arange(1, MC_PERIODS + 1)
    realised = population.future_purchases_per_period @ discount * population.expected_value
    assert_calibrated(realised, predicted, observed_groups(population))


# ---------------------------------------------------------------------------------------------
# Edge cases
# ---------------------------------------------------------------------------------------------


def test_new_customer_expects_the_population_mean_fhl05a_eq_9() -> None:
    # E[X(t)] = (a+b-1)/(a-1) [1 - (alpha/(alpha+t))^r 2F1(r, b; a+b-1; t/(alpha+t))]
    r, alpha, a, b = PUBLISHED_BG.r, PUBLISHED_BG.alpha, PUBLISHED_BG.a, PUBLISHED_BG.b
    for t in (1.0, 39.0, 78.0):
        population_mean = (
            (a + b - 1)
            / (a - 1)
            * (1 - (alpha / (alpha + t)) ** r * hyp2f1(r, b, a + b - 1, t / (alpha + t)))
        )
        assert clv.expected_purchases(PUBLISHED_BG, 0, 0.0, 0.0, t) == pytest.approx(
            population_mean, rel=1e-12
        )


def test_no_repeat_purchase_means_alive() -> None:
    assert clv.probability_alive(PUBLISHED_BG, 0, 0.0, 38.86) == 1.0
    # ...but a longer silence still lowers the purchase rate the customer is believed to have.
    assert clv.expected_purchases(PUBLISHED_BG, 0, 0.0, 50.0, 39.0) < clv.expected_purchases(
        PUBLISHED_BG, 0, 0.0, 10.0, 39.0
    )


def test_purchase_just_now_leaves_only_the_dropout_chance() -> None:
    # With t_x == T the likelihood ratio is a / (b + x - 1), so P(alive) = (b+x-1) / (a+b+x-1).
    a, b, x = PUBLISHED_BG.a, PUBLISHED_BG.b, 4
    assert clv.probability_alive(PUBLISHED_BG, x, 20.0, 20.0) == pytest.approx(
        (b + x - 1) / (a + b + x - 1), rel=1e-14
    )


def test_zero_forecast_length_expects_nothing() -> None:
    assert clv.expected_purchases(PUBLISHED_BG, 3, 20.0, 38.86, 0.0) == 0.0


def test_huge_x_stays_finite() -> None:
    r, alpha, T, t = PUBLISHED_BG.r, PUBLISHED_BG.alpha, 38.86, 39.0
    x = 100_000  # ((alpha+T)/(alpha+t_x))^(r+x) and the textbook 2F1 overflow long before this
    silent_for_a_while = (
        clv.probability_alive(PUBLISHED_BG, x, 38.0, T),
        clv.expected_purchases(PUBLISHED_BG, x, 38.0, T, t),
    )
    assert silent_for_a_while == (0.0, 0.0)  # P(alive) ~ e^-2000 underflows to 0
    # Bought just now: almost surely alive, and at most the posterior mean rate times t.
    assert clv.probability_alive(PUBLISHED_BG, x, T, T) == pytest.approx(1.0, abs=1e-4)
    purchases = clv.expected_purchases(PUBLISHED_BG, x, T, T, t)
    assert 0.5 * (r + x) / (alpha + T) * t < purchases < (r + x) / (alpha + T) * t


def test_expected_average_value_of_a_customer_without_repeat_purchases() -> None:
    p, q, v = PUBLISHED_GG.p, PUBLISHED_GG.q, PUBLISHED_GG.v
    assert clv.expected_average_value(PUBLISHED_GG, 0, 0.0) == pytest.approx(p * v / (q - 1))


def test_expected_average_value_weights_customer_mean_by_purchases() -> None:
    p, q, v = PUBLISHED_GG.p, PUBLISHED_GG.q, PUBLISHED_GG.v
    population_mean, customer_mean, x = p * v / (q - 1), 100.0, 3
    weight = p * x / (p * x + q - 1)  # FH13 eq. 5
    assert clv.expected_average_value(PUBLISHED_GG, x, customer_mean) == pytest.approx(
        (1 - weight) * population_mean + weight * customer_mean
    )


def customer_1_clv(horizon: float, discount_rate_per_period: float, periods: int) -> float:
    """discounted_clv of FHL05a's customer 1: x = 2, t_x = 30.43, T = 38.86, mean value 22.35."""
    return clv.discounted_clv(
        PUBLISHED_BG,
        PUBLISHED_GG,
        2,
        30.43,
        38.86,
        22.35,
        horizon,
        discount_rate_per_period,
        periods,
    )


def test_discounted_clv_without_discounting_telescopes() -> None:
    purchases = clv.expected_purchases(PUBLISHED_BG, 2, 30.43, 38.86, 52.0)
    value = clv.expected_average_value(PUBLISHED_GG, 2, 22.35)
    assert customer_1_clv(52.0, 0.0, 12) == pytest.approx(purchases * value, rel=1e-12)


def test_discounted_clv_by_hand() -> None:
    d, horizon, periods = 0.01, 52.0, 4
    value = clv.expected_average_value(PUBLISHED_GG, 2, 22.35)
    cumulative = [
        clv.expected_purchases(PUBLISHED_BG, 2, 30.43, 38.86, horizon * k / periods)
        for k in range(periods + 1)
    ]
    by_hand = sum(
        (cumulative[k] - cumulative[k - 1]) * value / (1 + d) ** k for k in range(1, periods + 1)
    )
    assert customer_1_clv(horizon, d, periods) == pytest.approx(by_hand, rel=1e-12)


def test_discounted_clv_of_customer_without_repeat_purchases_uses_population_value() -> None:
    p, q, v = PUBLISHED_GG.p, PUBLISHED_GG.q, PUBLISHED_GG.v
    purchases = clv.expected_purchases(PUBLISHED_BG, 0, 0.0, 38.86, 39.0)
    clv_without_repeat = clv.discounted_clv(
        PUBLISHED_BG, PUBLISHED_GG, 0, 0.0, 38.86, 0.0, 39.0, 0.0, 3
    )
    assert clv_without_repeat == pytest.approx(purchases * p * v / (q - 1), rel=1e-12)


def test_whole_float_counts_are_accepted() -> None:
    count_from_a_float_column: float = 2.0
    assert clv.probability_alive(
        PUBLISHED_BG,
        count_from_a_float_column,  # type: ignore[arg-type]
        30.43,
        38.86,
    ) == clv.probability_alive(PUBLISHED_BG, 2, 30.43, 38.86)


# ---------------------------------------------------------------------------------------------
# Invalid input
# ---------------------------------------------------------------------------------------------

NAN = float("nan")


def exactly(message: str) -> str:
    return f"^{re.escape(message)}$"


@pytest.mark.parametrize(
    ("x", "t_x", "T", "message"),
    [
        (-1, 0.0, 10.0, "x must be a non-negative whole number, got -1"),
        (1.5, 1.0, 10.0, "x must be a non-negative whole number, got 1.5"),
        (NAN, 0.0, 10.0, "x must be a non-negative whole number, got nan"),
        (1, 1.0, -10.0, "T must be finite and >= 0, got -10.0"),
        (1, 1.0, NAN, "T must be finite and >= 0, got nan"),
        (1, 1.0, math.inf, "T must be finite and >= 0, got inf"),
        (1, -1.0, 10.0, "t_x must satisfy 0 <= t_x <= T, got t_x=-1.0, T=10.0"),
        (1, NAN, 10.0, "t_x must satisfy 0 <= t_x <= T, got t_x=nan, T=10.0"),
        (1, 11.0, 10.0, "t_x must satisfy 0 <= t_x <= T, got t_x=11.0, T=10.0"),
        (0, 5.0, 10.0, "t_x must be 0 when x == 0 (no repeat purchases), got t_x=5.0"),
    ],
)
def test_invalid_customer_is_rejected(x: int, t_x: float, T: float, message: str) -> None:
    with pytest.raises(ValueError, match=exactly(message)):
        clv.probability_alive(PUBLISHED_BG, x, t_x, T)
    with pytest.raises(ValueError, match=exactly(message)):
        clv.expected_purchases(PUBLISHED_BG, x, t_x, T, 1.0)
    with pytest.raises(ValueError, match=exactly(message)):
        clv.discounted_clv(PUBLISHED_BG, PUBLISHED_GG, x, t_x, T, 10.0, 10.0, 0.01, 2)


@pytest.mark.parametrize("t", [-1.0, NAN, math.inf])
def test_invalid_forecast_length_is_rejected(t: float) -> None:
    with pytest.raises(ValueError, match=exactly(f"t must be finite and >= 0, got {t!r}")):
        clv.expected_purchases(PUBLISHED_BG, 1, 1.0, 10.0, t)


@pytest.mark.parametrize(
    ("horizon", "rate", "periods", "message"),
    [
        (0.0, 0.01, 4, "horizon must be finite and > 0, got 0.0"),
        (NAN, 0.01, 4, "horizon must be finite and > 0, got nan"),
        (52.0, -0.01, 4, "discount_rate_per_period must be finite and >= 0, got -0.01"),
        (52.0, NAN, 4, "discount_rate_per_period must be finite and >= 0, got nan"),
        (52.0, 0.01, 0, "periods must be an int >= 1, got 0"),
        (52.0, 0.01, 2.0, "periods must be an int >= 1, got 2.0"),
    ],
)
def test_invalid_clv_settings_are_rejected(
    horizon: float, rate: float, periods: int, message: str
) -> None:
    with pytest.raises(ValueError, match=exactly(message)):
        clv.discounted_clv(PUBLISHED_BG, PUBLISHED_GG, 1, 1.0, 10.0, 10.0, horizon, rate, periods)


@pytest.mark.parametrize(
    ("x", "mean_value", "message"),
    [
        (1, 0.0, "mean_value must be > 0 when x > 0"),
        (1, -5.0, "mean_value must be finite and >= 0, got -5.0"),
        (0, NAN, "mean_value must be finite and >= 0, got nan"),
        (-1, 5.0, "x must be a non-negative whole number, got -1"),
    ],
)
def test_invalid_value_input_is_rejected(x: int, mean_value: float, message: str) -> None:
    with pytest.raises(ValueError, match=exactly(message)):
        clv.expected_average_value(PUBLISHED_GG, x, mean_value)


def test_infinite_expected_value_is_rejected() -> None:
    heavy_tailed = clv.GammaGammaParams(p=0.1, q=0.5, v=1.0)
    message = "the expected value is infinite unless p*x + q > 1 (q > 1 when x == 0); "
    with pytest.raises(ValueError, match=exactly(message + "got p=0.1, q=0.5, x=0")):
        clv.expected_average_value(heavy_tailed, 0, 0.0)
    # Six purchases (p*x + q = 1.1) are enough evidence to make the expected value finite.
    assert math.isfinite(clv.expected_average_value(heavy_tailed, 6, 10.0))


@pytest.mark.parametrize("name", ["r", "alpha", "a", "b"])
@pytest.mark.parametrize("bad", [0.0, -1.0, NAN, math.inf])
def test_invalid_bg_nbd_parameters_are_rejected(name: str, bad: float) -> None:
    values = {"r": 1.0, "alpha": 1.0, "a": 1.0, "b": 1.0} | {name: bad}
    with pytest.raises(
        ValueError, match=exactly(f"parameter {name} must be finite and > 0, got {bad!r}")
    ):
        clv.BgNbdParams(**values)


@pytest.mark.parametrize("name", ["p", "q", "v"])
def test_invalid_gamma_gamma_parameters_are_rejected(name: str) -> None:
    values = {"p": 1.0, "q": 2.0, "v": 1.0} | {name: -1.0}
    with pytest.raises(
        ValueError, match=exactly(f"parameter {name} must be finite and > 0, got -1.0")
    ):
        clv.GammaGammaParams(**values)


def test_singular_a_is_rejected() -> None:
    at_singularity = clv.BgNbdParams(r=1.0, alpha=1.0, a=1.0, b=2.0)
    message = exactly("FHL05a eq. 10 is 0/0 at a == 1 exactly; refit or perturb a slightly")
    with pytest.raises(ValueError, match=message):
        clv.expected_purchases(at_singularity, 1, 1.0, 10.0, 5.0)
    with pytest.raises(ValueError, match=message):
        clv.discounted_clv(at_singularity, PUBLISHED_GG, 1, 1.0, 10.0, 10.0, 10.0, 0.0, 2)
    assert 0.0 < clv.probability_alive(at_singularity, 1, 1.0, 10.0) < 1.0


@pytest.mark.parametrize(
    ("x", "t_x", "T", "message"),
    [
        (
            [1, -1],
            [1.0, 0.0],
            [5.0, 5.0],
            "x must hold non-negative whole numbers; customer at index 1 has -1.0",
        ),
        (
            [1, 2.5],
            [1.0, 1.0],
            [5.0, 5.0],
            "x must hold non-negative whole numbers; customer at index 1 has 2.5",
        ),
        (
            [1, 2],
            [1.0, 6.0],
            [5.0, 5.0],
            "t_x must satisfy 0 <= t_x <= T; customer at index 1 has 6.0",
        ),
        ([0, 2], [1.0, 1.0], [5.0, 5.0], "t_x must be 0 when x == 0; customer at index 0 has 1.0"),
        ([1, 2], [1.0, 1.0], [5.0, NAN], "T must be finite and >= 0; customer at index 1 has nan"),
        (
            [1, 2],
            [1.0, 1.0],
            [5.0],
            "inputs must be non-empty 1-D arrays of one length, got x(2,), t_x(2,), T(1,)",
        ),
        (
            [],
            [],
            [],
            "inputs must be non-empty 1-D arrays of one length, got x(0,), t_x(0,), T(0,)",
        ),
    ],
)
def test_invalid_fit_input_is_rejected(
    x: list[float], t_x: list[float], T: list[float], message: str
) -> None:
    with pytest.raises(ValueError, match=exactly(message)):
        clv.fit_bg_nbd(x, t_x, T)


def test_invalid_gamma_gamma_fit_input_is_rejected() -> None:
    with pytest.raises(
        ValueError, match=exactly("fit_gamma_gamma needs at least one customer with x > 0")
    ):
        clv.fit_gamma_gamma([0, 0], [0.0, 0.0])
    with pytest.raises(
        ValueError, match=exactly("mean_value must be > 0 when x > 0; customer at index 1 has 0.0")
    ):
        clv.fit_gamma_gamma([0, 3], [0.0, 0.0])
    with pytest.raises(
        ValueError,
        match=exactly("the Gamma-Gamma likelihood needs x >= 1; customer at index 0 has 0.0"),
    ):
        clv.gamma_gamma_log_likelihood(PUBLISHED_GG, [0, 3], [0.0, 10.0])
