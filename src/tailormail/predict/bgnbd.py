"""The BG/NBD model of repeat buying (Fader, Hardie and Lee 2005), fitted with scipy.

Each customer is summarised by ``x`` (repeat purchases), ``t_x`` (time of the
last purchase since the first) and ``T`` (time observed since the first
purchase). While alive a customer buys as a Poisson process with rate
lambda ~ Gamma(r, alpha); after each purchase they drop out with probability
p ~ Beta(a, b). Everything here is vectorised over customers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.special import gammaln, hyp2f1

from tailormail.errors import ValidationError


@dataclass(frozen=True)
class BgNbdFit:
    """Fitted BG/NBD parameters and the log-likelihood they reach."""

    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float

    def as_dict(self) -> dict[str, float]:
        """The parameters as a plain dict (for JSON)."""
        return asdict(self)


def log_likelihood(
    params: np.ndarray, x: np.ndarray, t_x: np.ndarray, T: np.ndarray, weight: np.ndarray | None = None
) -> float:
    """Total log-likelihood of (r, alpha, a, b) for the customers (FHL 2005, eq. 6).

    ``weight`` counts how many customers share each (x, t_x, T) row.
    """
    r, alpha, a, b = params
    ln_a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    ln_a2 = gammaln(a + b) + gammaln(b + x) - gammaln(b) - gammaln(a + b + x)
    ln_a3 = -(r + x) * np.log(alpha + T)
    repeat = x > 0
    # A4 only exists for repeat buyers; b + x - 1 > 0 there, and the where keeps logs finite.
    ln_a4 = np.where(
        repeat,
        np.log(a) - np.log(np.where(repeat, b + x - 1, 1.0)) - (r + x) * np.log(alpha + t_x),
        -np.inf,
    )
    each = ln_a1 + ln_a2 + np.logaddexp(ln_a3, ln_a4)
    return float(np.sum(each if weight is None else weight * each))


def fit(x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> BgNbdFit:
    """Maximum-likelihood parameters; optimised on log-parameters so they stay positive."""
    x, t_x, T = _check(x, t_x, T)
    # Customers with the same history contribute the same term: evaluate each once.
    rows, weight = np.unique(np.stack([x, t_x, T], axis=1), axis=0, return_counts=True)
    ux, ut_x, uT = rows.T

    def objective(log_params: np.ndarray) -> float:
        return -log_likelihood(np.exp(log_params), ux, ut_x, uT, weight)

    start = np.log([1.0, max(float(T.mean()), 1e-3), 1.0, 1.0])
    result = minimize(objective, start, method="L-BFGS-B")
    # A Nelder-Mead polish from there: robust to the flat ridges this likelihood has.
    result = minimize(objective, result.x, method="Nelder-Mead", options={"xatol": 1e-8, "fatol": 1e-8})
    r, alpha, a, b = np.exp(result.x)
    return BgNbdFit(float(r), float(alpha), float(a), float(b), -float(result.fun))


def p_alive(fit: BgNbdFit, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
    """P(still alive at T | x, t_x, T) per customer (FHL 2005, eq. 11)."""
    return 1.0 / (1.0 + _death_odds(fit, x, t_x, T))


def expected_purchases(fit: BgNbdFit, t: float, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
    """Expected purchases in (T, T + t] given each customer's history (FHL 2005, eq. 10)."""
    r, alpha, a, b = fit.r, fit.alpha, fit.a, fit.b
    z = t / (alpha + T + t)
    bracket = 1.0 - ((alpha + T) / (alpha + T + t)) ** (r + x) * hyp2f1(r + x, b + x, a + b + x - 1, z)
    return (a + b + x - 1) / (a - 1) * bracket / (1.0 + _death_odds(fit, x, t_x, T))


def p_buys_again(fit: BgNbdFit, t: float, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
    """P(at least one purchase in (T, T + t]): alive, and the Poisson clock ticks at least once.

    Given alive, lambda's posterior is Gamma(r + x, alpha + T), so no purchase in
    ``t`` has probability ((alpha + T) / (alpha + T + t)) ** (r + x).
    """
    silent = ((fit.alpha + T) / (fit.alpha + T + t)) ** (fit.r + x)
    return p_alive(fit, x, t_x, T) * (1.0 - silent)


def _death_odds(fit: BgNbdFit, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
    """a/(b+x-1) * ((alpha+T)/(alpha+t_x))^(r+x) for repeat buyers, 0 for the others."""
    repeat = x > 0
    denominator = np.where(repeat, fit.b + x - 1, 1.0)
    odds = fit.a / denominator * ((fit.alpha + T) / (fit.alpha + t_x)) ** (fit.r + x)
    return np.where(repeat, odds, 0.0)


def _check(x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    arrays = [np.asarray(v, dtype=float) for v in (x, t_x, T)]
    x, t_x, T = arrays
    if not (x.shape == t_x.shape == T.shape) or x.size == 0:
        raise ValidationError("x, t_x and T must be equally long and not empty", field="x")
    if np.any(x < 0) or np.any(t_x < 0) or np.any(t_x > T):
        raise ValidationError("need x >= 0 and 0 <= t_x <= T for every customer", field="t_x")
    return x, t_x, T
