"""BG/NBD and Gamma-Gamma customer-lifetime-value models: maximum-likelihood fits and scoring.

Per customer, with every time in one unit of the caller's choosing (weeks, days, ...):

- ``x``: number of repeat purchases (purchases after the first one),
- ``t_x``: time of the last repeat purchase, measured from the first purchase (0 when x == 0),
- ``T``: the customer's age, the time from the first purchase to the end of observation,
- ``mean_value``: mean value of the repeat purchases (Gamma-Gamma only).

Fitted parameters carry that unit (``alpha`` is a time scale), so score with times in the unit the
model was fitted in.

References:

- FHL05a: Fader, Hardie & Lee (2005), "'Counting Your Customers' the Easy Way: An Alternative to
  the Pareto/NBD Model", Marketing Science 24(2), 275-284.
- FHL05b: Fader, Hardie & Lee (2005), "RFM and CLV: Using Iso-Value Curves for Customer Base
  Analysis", Journal of Marketing Research 42(4), 415-430.
- CJ99: Colombo & Jiang (1999), "A Stochastic RFM Model", J. Interactive Marketing 13(3), 2-12.
- FH13: Fader & Hardie (2013), "The Gamma-Gamma Model of Monetary Value", note 025 on
  brucehardie.com.
"""

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import numpy.typing as npt
from scipy.optimize import minimize
from scipy.special import betaln, gammaln, hyp2f1

FloatArray = npt.NDArray[np.float64]
TimeOrTimes = TypeVar("TimeOrTimes", float, FloatArray)


@dataclass(frozen=True, slots=True)
class BgNbdParams:
    """BG/NBD parameters (FHL05a): purchase rate lambda ~ Gamma(shape r, rate alpha), dropout
    probability after each repeat purchase p ~ Beta(a, b)."""

    r: float
    alpha: float
    a: float
    b: float

    def __post_init__(self) -> None:
        _check_positive_params(r=self.r, alpha=self.alpha, a=self.a, b=self.b)


@dataclass(frozen=True, slots=True)
class GammaGammaParams:
    """Gamma-Gamma parameters (CJ99, FHL05b, FH13): a transaction's value ~ Gamma(shape p,
    rate nu) with nu ~ Gamma(shape q, rate v) across customers (v is the papers' gamma)."""

    p: float
    q: float
    v: float

    def __post_init__(self) -> None:
        _check_positive_params(p=self.p, q=self.q, v=self.v)


def _check_positive_params(**params: float) -> None:
    for name, value in params.items():
        if not 0.0 < value < math.inf:
            raise ValueError(f"parameter {name} must be finite and > 0, got {value!r}")


# ---------------------------------------------------------------------------------------------
# Fitting (vectorised over customers)
# ---------------------------------------------------------------------------------------------


def bg_nbd_log_likelihood(
    params: BgNbdParams, x: npt.ArrayLike, t_x: npt.ArrayLike, T: npt.ArrayLike
) -> FloatArray:
    """Per-customer BG/NBD log-likelihood ln L(r, alpha, a, b | x, t_x, T), FHL05a eq. 6."""
    x_arr, t_x_arr, T_arr = _customer_arrays(x, t_x, T)
    return _bg_nbd_log_likelihood(params.r, params.alpha, params.a, params.b, x_arr, t_x_arr, T_arr)


def _bg_nbd_log_likelihood(
    r: float, alpha: float, a: float, b: float, x: FloatArray, t_x: FloatArray, T: FloatArray
) -> FloatArray:
    # FHL05a eq. 6 in logs: a "still alive at T" term plus, once x > 0, a "dropped out right
    # after the last purchase" term, added with logaddexp so neither can underflow.
    log_common = gammaln(r + x) - gammaln(r) + r * np.log(alpha) - betaln(a, b)
    log_alive = betaln(a, b + x) - (r + x) * np.log(alpha + T)
    # np.maximum keeps betaln's argument positive where x == 0; that branch is masked anyway.
    log_dropped = betaln(a + 1, b + np.maximum(x, 1) - 1) - (r + x) * np.log(alpha + t_x)
    log_dropped = np.where(x > 0, log_dropped, -np.inf)
    result: FloatArray = log_common + np.logaddexp(log_alive, log_dropped)
    return result


def fit_bg_nbd(x: npt.ArrayLike, t_x: npt.ArrayLike, T: npt.ArrayLike) -> tuple[BgNbdParams, float]:
    """Maximum-likelihood BG/NBD fit: maximises FHL05a eq. 6 summed over customers.

    Returns the parameters and the maximised total log-likelihood. ``alpha`` comes out in the
    time unit of ``t_x`` and ``T``.
    """
    x_arr, t_x_arr, T_arr = _customer_arrays(x, t_x, T)
    # Fit in time units of the mean age so one set of starting points suits days and weeks alike.
    time_scale = float(T_arr.mean()) or 1.0  # all ages 0: nothing to scale
    t_x_scaled, T_scaled = t_x_arr / time_scale, T_arr / time_scale

    def negative_mean_log_likelihood(log_params: FloatArray) -> float:
        r, alpha, a, b = np.exp(log_params)
        log_likelihood = _bg_nbd_log_likelihood(r, alpha, a, b, x_arr, t_x_scaled, T_scaled)
        return -float(log_likelihood.mean())

    # Three spread-out starts (r, alpha, a, b); the likelihood is flat near its top, so the
    # best of several local searches is kept.
    starts = [(1.0, 1.0, 1.0, 1.0), (0.5, 0.5, 1.0, 3.0), (2.0, 2.0, 0.5, 2.0)]
    log_params = _minimise_from_starts(negative_mean_log_likelihood, starts)
    r, alpha, a, b = np.exp(log_params)
    params = BgNbdParams(r=float(r), alpha=float(alpha) * time_scale, a=float(a), b=float(b))
    return params, float(bg_nbd_log_likelihood(params, x_arr, t_x_arr, T_arr).sum())


def gamma_gamma_log_likelihood(
    params: GammaGammaParams, x: npt.ArrayLike, mean_value: npt.ArrayLike
) -> FloatArray:
    """Per-customer log density of the mean repeat-purchase value given x >= 1 purchases,
    ln f(mean_value | p, q, v; x), with nu integrated out (CJ99; FHL05b; FH13)."""
    x_arr, value_arr = _value_arrays(x, mean_value)
    _check_all(x_arr >= 1, x_arr, "the Gamma-Gamma likelihood needs x >= 1")
    return _gamma_gamma_log_likelihood(params.p, params.q, params.v, x_arr, value_arr)


def _gamma_gamma_log_likelihood(
    p: float, q: float, v: float, x: FloatArray, mean_value: FloatArray
) -> FloatArray:
    px = p * x
    result: FloatArray = (
        gammaln(px + q)
        - gammaln(px)
        - gammaln(q)
        + q * np.log(v)
        + (px - 1) * np.log(mean_value)
        + px * np.log(x)
        - (px + q) * np.log(v + x * mean_value)
    )
    return result


def fit_gamma_gamma(x: npt.ArrayLike, mean_value: npt.ArrayLike) -> tuple[GammaGammaParams, float]:
    """Maximum-likelihood Gamma-Gamma fit over the customers with x > 0 (FH13).

    Customers with x == 0 carry no repeat-purchase values and are skipped. Returns the parameters
    and the maximised total log-likelihood of the repeat customers' mean values.
    """
    x_arr, value_arr = _value_arrays(x, mean_value)
    repeat = x_arr > 0
    if not repeat.any():
        raise ValueError("fit_gamma_gamma needs at least one customer with x > 0")
    x_arr, value_arr = x_arr[repeat], value_arr[repeat]
    # Fit in units of the mean value so the starting points do not depend on the currency.
    value_scale = float(value_arr.mean())
    value_scaled = value_arr / value_scale

    def negative_mean_log_likelihood(log_params: FloatArray) -> float:
        p, q, v = np.exp(log_params)
        return -float(_gamma_gamma_log_likelihood(p, q, v, x_arr, value_scaled).mean())

    starts = [(1.0, 1.0, 1.0), (5.0, 3.0, 1.0), (0.5, 5.0, 5.0)]
    log_params = _minimise_from_starts(negative_mean_log_likelihood, starts)
    p, q, v = np.exp(log_params)
    params = GammaGammaParams(p=float(p), q=float(q), v=float(v) * value_scale)
    return params, float(gamma_gamma_log_likelihood(params, x_arr, value_arr).sum())


_LOG_PARAM_BOUND = 20.0  # fitted parameters (in the rescaled units) lie within e^-20 .. e^20


def _minimise_from_starts(
    objective: Callable[[FloatArray], float], starts: Sequence[Sequence[float]]
) -> FloatArray:
    """Minimise ``objective`` over log-parameters from each start; return the best optimum."""
    best_value, best_log_params = math.inf, None
    for start in starts:
        # Bounds keep exp() finite; tight tolerances because the likelihoods are flat near the top.
        bounds = [(-_LOG_PARAM_BOUND, _LOG_PARAM_BOUND)] * len(start)
        result = minimize(
            objective,
            np.log(start),
            method="L-BFGS-B",
            bounds=bounds,
            options={"ftol": 1e-13, "gtol": 1e-9},
        )
        value = float(result.fun)
        if math.isfinite(value) and value < best_value:
            best_value, best_log_params = value, np.asarray(result.x, dtype=np.float64)
    if best_log_params is None:
        raise RuntimeError("maximum-likelihood fit failed: the log-likelihood was never finite")
    return best_log_params


def _customer_arrays(
    x: npt.ArrayLike, t_x: npt.ArrayLike, T: npt.ArrayLike
) -> tuple[FloatArray, FloatArray, FloatArray]:
    x_arr, t_x_arr, T_arr = _same_shape_arrays(x=x, t_x=t_x, T=T)
    _check_whole_counts(x_arr)
    _check_all(np.isfinite(T_arr) & (T_arr >= 0), T_arr, "T must be finite and >= 0")
    _check_all((t_x_arr >= 0) & (t_x_arr <= T_arr), t_x_arr, "t_x must satisfy 0 <= t_x <= T")
    _check_all((x_arr > 0) | (t_x_arr == 0), t_x_arr, "t_x must be 0 when x == 0")
    return x_arr, t_x_arr, T_arr


def _value_arrays(x: npt.ArrayLike, mean_value: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    x_arr, value_arr = _same_shape_arrays(x=x, mean_value=mean_value)
    _check_whole_counts(x_arr)
    _check_all(
        np.isfinite(value_arr) & (value_arr >= 0), value_arr, "mean_value must be finite and >= 0"
    )
    _check_all((x_arr == 0) | (value_arr > 0), value_arr, "mean_value must be > 0 when x > 0")
    return x_arr, value_arr


def _same_shape_arrays(**arrays: npt.ArrayLike) -> list[FloatArray]:
    converted = [np.asarray(a, dtype=np.float64) for a in arrays.values()]
    shapes = {a.shape for a in converted}
    if len(shapes) != 1 or converted[0].ndim != 1 or converted[0].size == 0:
        described = ", ".join(f"{n}{a.shape}" for n, a in zip(arrays, converted, strict=True))
        raise ValueError(f"inputs must be non-empty 1-D arrays of one length, got {described}")
    return converted


def _check_whole_counts(x: FloatArray) -> None:
    _check_all((x >= 0) & (x == np.floor(x)), x, "x must hold non-negative whole numbers")


def _check_all(ok: npt.NDArray[np.bool_], values: FloatArray, requirement: str) -> None:
    if not ok.all():
        index = int(np.argmin(ok))
        raise ValueError(f"{requirement}; customer at index {index} has {float(values[index])!r}")


# ---------------------------------------------------------------------------------------------
# Scoring one customer (plain floats: called once per event in the stream)
# ---------------------------------------------------------------------------------------------


def probability_alive(params: BgNbdParams, x: int, t_x: float, T: float) -> float:
    """P(customer still alive at T | x, t_x, T): the reciprocal of the denominator of FHL05a
    eq. 10 (Fader, Hardie & Lee 2008, "Computing P(alive) Using the BG/NBD Model")."""
    _check_customer(x, t_x, T)
    return _probability_alive(params, x, t_x, T)


def _probability_alive(params: BgNbdParams, x: int, t_x: float, T: float) -> float:
    if x == 0:
        return 1.0  # BG/NBD customers can only drop out right after a repeat purchase
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    # Log of the odds "dropped out" : "alive", in logs because ((alpha+T)/(alpha+t_x))^(r+x)
    # overflows for large x. log1p keeps precision when t_x is close to T.
    log_odds_dropped = math.log(a / (b + x - 1)) + (r + x) * math.log1p((T - t_x) / (alpha + t_x))
    if log_odds_dropped > 0:
        odds_alive = math.exp(-log_odds_dropped)
        return odds_alive / (1.0 + odds_alive)
    return 1.0 / (1.0 + math.exp(log_odds_dropped))


def expected_purchases(params: BgNbdParams, x: int, t_x: float, T: float, t: float) -> float:
    """Expected number of purchases in (T, T + t] given x, t_x, T: FHL05a eq. 10."""
    _check_customer(x, t_x, T)
    _check_time("t", t)
    _check_a_not_one(params)
    scale = _expected_purchases_scale(params, x, t_x, T)
    return float(scale * (1.0 - _hypergeometric_term(params, x, T, t)))


def _expected_purchases_scale(params: BgNbdParams, x: int, t_x: float, T: float) -> float:
    # Eq. 10 is scale * (1 - hypergeometric term); scale holds the factors that do not depend on t.
    a, b = params.a, params.b
    return (a + b + x - 1) / (a - 1) * _probability_alive(params, x, t_x, T)


def _hypergeometric_term(params: BgNbdParams, x: int, T: float, t: TimeOrTimes) -> TimeOrTimes:
    """((alpha+T)/(alpha+T+t))^(r+x) * 2F1(r+x, b+x; a+b+x-1; z), z = t/(alpha+T+t), of eq. 10,
    for one forecast length t or an array of them.

    Evaluated after Euler's transformation 2F1(A, B; C; z) = (1-z)^(C-A-B) 2F1(C-A, C-B; C; z),
    which gives (1-z)^(a-1) * 2F1(a+b-1-r, a-1; a+b+x-1; z): the first two hypergeometric
    parameters no longer grow with x, so the series stays short and cannot overflow; where
    that overflows instead (large a and b), the untransformed term. ValueError when neither
    is finite.
    """
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    z = t / (alpha + T + t)
    with np.errstate(invalid="ignore", over="ignore"):
        term = (1.0 - z) ** (a - 1) * hyp2f1(a + b - 1 - r, a - 1, a + b + x - 1, z)
        if not np.all(np.isfinite(term)):
            # With a and b large (dropout probabilities concentrated around a/(a+b)) the
            # transformed factors overflow and cancel: 0 x inf. The untransformed term
            # of eq. 10 is fine there, its parameters being large anyway.
            untransformed = (1.0 - z) ** (r + x) * hyp2f1(r + x, b + x, a + b + x - 1, z)
            term = np.where(np.isfinite(term), term, untransformed)
    if not np.all(np.isfinite(term)):
        raise ValueError(f"eq. 10 cannot be evaluated for x={x}, T={T} with {params}")
    result: TimeOrTimes = term if isinstance(t, np.ndarray) else float(term)
    return result


def expected_average_value(params: GammaGammaParams, x: int, mean_value: float) -> float:
    """E[mean transaction value | x, mean_value] = p (v + x mean_value) / (p x + q - 1) (FH13
    eq. 5; FHL05b): a weighted average of the customer's mean and the population mean p v / (q-1),
    which is what x == 0 returns (mean_value is then unused)."""
    _check_count(x)
    if not 0.0 <= mean_value < math.inf:
        raise ValueError(f"mean_value must be finite and >= 0, got {mean_value!r}")
    if x > 0 and mean_value == 0:
        raise ValueError("mean_value must be > 0 when x > 0")
    p, q, v = params.p, params.q, params.v
    denominator = p * x + q - 1
    if denominator <= 0:
        raise ValueError(
            f"the expected value is infinite unless p*x + q > 1 (q > 1 when x == 0); "
            f"got p={p!r}, q={q!r}, x={x!r}"
        )
    return p * (v + x * mean_value) / denominator


def discounted_clv(
    bg: BgNbdParams,
    gg: GammaGammaParams,
    x: int,
    t_x: float,
    T: float,
    mean_value: float,
    horizon: float,
    discount_rate_per_period: float,
    periods: int,
) -> float:
    """Expected discounted value of the customer's purchases in (T, T + horizon].

    The horizon is cut into ``periods`` equal periods (``horizon`` in the time unit of the fit,
    e.g. horizon = 52 weeks with periods = 12 for monthly discounting), and

        CLV = sum_{k=1..periods} (E[Y(t_k)] - E[Y(t_{k-1})]) * E[value] / (1 + d)^k,

    with t_k = k * horizon / periods, E[Y] from FHL05a eq. 10, E[value] from
    :func:`expected_average_value` and d = ``discount_rate_per_period``: the discrete
    approximation of lifetimes' and pymc-marketing's ``customer_lifetime_value``.
    """
    _check_customer(x, t_x, T)
    if not 0.0 < horizon < math.inf:
        raise ValueError(f"horizon must be finite and > 0, got {horizon!r}")
    if not 0.0 <= discount_rate_per_period < math.inf:
        raise ValueError(
            f"discount_rate_per_period must be finite and >= 0, got {discount_rate_per_period!r}"
        )
    if isinstance(periods, bool) or not isinstance(periods, int) or periods < 1:
        raise ValueError(f"periods must be an int >= 1, got {periods!r}")
    _check_a_not_one(bg)
    value = expected_average_value(gg, x, mean_value)

    period_length = horizon / periods
    period_ends = np.array([k * period_length for k in range(periods + 1)])  # t_0 = 0 .. horizon
    # One vectorised hyp2f1 call: scipy's per-call overhead exceeds the cost of the series.
    terms = _hypergeometric_term(bg, x, T, period_ends).tolist()
    # Eq. 10 is scale * (1 - term), so E[Y(t_k)] - E[Y(t_{k-1})] = scale * (term_{k-1} - term_k).
    discounted_term_drops, discount_factor = 0.0, 1.0
    for previous_term, term in itertools.pairwise(terms):
        discount_factor /= 1.0 + discount_rate_per_period
        discounted_term_drops += (previous_term - term) * discount_factor
    return value * _expected_purchases_scale(bg, x, t_x, T) * discounted_term_drops


def _check_customer(x: int, t_x: float, T: float) -> None:
    _check_count(x)
    _check_time("T", T)
    if not 0.0 <= t_x <= T:
        raise ValueError(f"t_x must satisfy 0 <= t_x <= T, got t_x={t_x!r}, T={T!r}")
    if x == 0 and t_x != 0:
        raise ValueError(f"t_x must be 0 when x == 0 (no repeat purchases), got t_x={t_x!r}")


def _check_count(x: int) -> None:
    # Accepts whole floats such as 2.0 too, so counts read from float columns work.
    if not (x >= 0 and float(x).is_integer()):
        raise ValueError(f"x must be a non-negative whole number, got {x!r}")


def _check_time(name: str, value: float) -> None:
    if not 0.0 <= value < math.inf:
        raise ValueError(f"{name} must be finite and >= 0, got {value!r}")


def _check_a_not_one(params: BgNbdParams) -> None:
    if params.a == 1:
        raise ValueError("FHL05a eq. 10 is 0/0 at a == 1 exactly; refit or perturb a slightly")
