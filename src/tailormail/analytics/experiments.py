"""Experiment statistics: lift, confidence intervals, tests, power and verdicts.

Pure functions of per-arm observations; the same code analyses journey splits,
campaign A/B tests and any exported experiment table.  Methods, chosen to
match what analysts check against (scipy, statsmodels):

- proportions: difference with an unpooled Wald interval, relative lift with a
  log-ratio (Katz) interval, a pooled two-proportion z-test, and a chi-square
  test of independence across all arms when there are more than two;
- means (revenue per recipient): Welch's t-test and a Welch-Satterthwaite
  interval for the difference, a delta-method interval for the relative lift;
- Bayesian probability to beat control: Beta(1, 1) priors for proportions
  (exact by numerical integration), a normal approximation for means;
- sample-ratio mismatch: chi-square goodness of fit of arm sizes against the
  planned weights, flagged below p = 0.001;
- sample size per arm: Cohen's h for proportions (statsmodels' NormalIndPower),
  Cohen's d for means, two-sided.

With more than two arms each comparison with control uses a Bonferroni-
corrected alpha, so declaring any winner keeps the family-wise error at alpha.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import integrate, stats

SRM_THRESHOLD = 0.001
"""p-value below which arm sizes are called a sample-ratio mismatch (a broken split)."""


@dataclass(frozen=True)
class Plan:
    """What the experiment was designed to detect."""

    alpha: float = 0.05
    power: float = 0.8
    mde: float = 0.10
    """Minimum detectable effect, relative to control (0.10 = a 10 % lift)."""
    planned_n: int | None = None
    """Recipients per arm the test was planned for; computed from the MDE when None."""


@dataclass(frozen=True)
class ArmComparison:
    """One arm against control on one metric."""

    arm: str
    n: int
    value: float
    difference: float
    difference_ci: tuple[float, float]
    lift: float
    lift_ci: tuple[float, float]
    p_value: float
    probability_to_beat_control: float
    significant: bool


@dataclass(frozen=True)
class MetricResult:
    """The analysis of one metric across all arms."""

    metric: str
    kind: str
    control: str
    control_n: int
    control_value: float
    comparisons: list[ArmComparison]
    omnibus_p_value: float | None
    alpha_per_comparison: float
    planned_n: int | None
    """None: cannot be planned (the control's rate or mean is 0, so a relative lift means nothing)."""
    underpowered: bool
    winner: str | None
    verdict: str


@dataclass(frozen=True)
class SampleRatio:
    """Whether arm sizes match the planned split."""

    counts: dict[str, int]
    expected_share: dict[str, float]
    p_value: float
    mismatch: bool


@dataclass
class ExperimentResult:
    """The full analysis: the split's health and every metric."""

    arms: list[str]
    control: str
    sample_ratio: SampleRatio
    metrics: list[MetricResult] = field(default_factory=list)


def is_proportion(values: Sequence[float]) -> bool:
    """A metric whose every value is 0 or 1 is a proportion; any other is a mean."""
    return all(v in (0, 1) for v in values)


def sample_ratio(counts: dict[str, int], weights: dict[str, float] | None = None) -> SampleRatio:
    """Chi-square goodness of fit of arm sizes against planned weights (equal by default)."""
    names = list(counts)
    raw = [weights.get(n, 0.0) if weights else 1.0 for n in names]
    total_weight = sum(raw)
    share = {n: w / total_weight for n, w in zip(names, raw, strict=True)}
    total = sum(counts.values())
    if len(names) < 2 or total == 0:
        return SampleRatio(dict(counts), share, 1.0, False)
    observed = [counts[n] for n in names]
    expected = [share[n] * total for n in names]
    p = float(stats.chisquare(observed, expected).pvalue)
    return SampleRatio(dict(counts), share, p, p < SRM_THRESHOLD)


def sample_size_proportion(baseline: float, mde: float, alpha: float = 0.05, power: float = 0.8) -> int | None:
    """Recipients per arm to detect a relative lift ``mde`` on rate ``baseline`` (Cohen's h); None if it is 0."""
    if baseline <= 0:
        return None
    target = min(max(baseline * (1 + mde), 1e-9), 1 - 1e-9)
    base = min(max(baseline, 1e-9), 1 - 1e-9)
    h = abs(2 * math.asin(math.sqrt(target)) - 2 * math.asin(math.sqrt(base)))
    if h == 0:
        return None
    # Two independent arms of n each: the difference's standard error is sqrt(2 / n).
    return math.ceil(2 * ((stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)) / h) ** 2)


def sample_size_mean(mean: float, sd: float, mde: float, alpha: float = 0.05, power: float = 0.8) -> int | None:
    """Recipients per arm to detect a relative change ``mde`` of a mean (Cohen's d); None when it is undefined."""
    delta = abs(mean * mde)
    if delta == 0:
        return None
    if sd == 0:
        return 2  # no spread at all: any change shows at once
    d = delta / sd
    return math.ceil(2 * ((stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)) / d) ** 2)


def compare_proportions(
    x_arm: int, n_arm: int, x_ctl: int, n_ctl: int, alpha: float = 0.05
) -> tuple[float, tuple[float, float], float, tuple[float, float], float]:
    """(difference, its CI, relative lift, its CI, two-sided p) of arm vs control."""
    p1, p0 = x_arm / n_arm, x_ctl / n_ctl
    z = stats.norm.ppf(1 - alpha / 2)
    diff = p1 - p0
    se = math.sqrt(p1 * (1 - p1) / n_arm + p0 * (1 - p0) / n_ctl)
    pooled = (x_arm + x_ctl) / (n_arm + n_ctl)
    se0 = math.sqrt(pooled * (1 - pooled) * (1 / n_arm + 1 / n_ctl))
    p_value = float(2 * stats.norm.sf(abs(diff / se0))) if se0 > 0 else 1.0
    lift, lift_ci = _ratio_lift(p1, p0, _log_ratio_se(x_arm, n_arm, x_ctl, n_ctl), z)
    return diff, (diff - z * se, diff + z * se), lift, lift_ci, p_value


def compare_means(
    arm: Sequence[float], control: Sequence[float], alpha: float = 0.05
) -> tuple[float, tuple[float, float], float, tuple[float, float], float]:
    """(difference, its CI, relative lift, its CI, two-sided p) by Welch's t-test."""
    a, c = np.asarray(arm, dtype=float), np.asarray(control, dtype=float)
    m1, m0 = float(a.mean()), float(c.mean())
    v1, v0 = float(a.var(ddof=1)) / len(a), float(c.var(ddof=1)) / len(c)
    se = math.sqrt(v1 + v0)
    diff = m1 - m0
    if se == 0:
        return diff, (diff, diff), _safe_lift(m1, m0), (_safe_lift(m1, m0),) * 2, 1.0 if diff == 0 else 0.0
    df = (v1 + v0) ** 2 / (v1**2 / (len(a) - 1) + v0**2 / (len(c) - 1))
    t = stats.t.ppf(1 - alpha / 2, df)
    p_value = float(stats.ttest_ind(a, c, equal_var=False).pvalue)
    log_se = math.sqrt(v1 / m1**2 + v0 / m0**2) if m1 > 0 and m0 > 0 else math.nan
    lift, lift_ci = _ratio_lift(m1, m0, log_se, stats.norm.ppf(1 - alpha / 2))
    return diff, (diff - t * se, diff + t * se), lift, lift_ci, p_value


def probability_to_beat_proportion(x_arm: int, n_arm: int, x_ctl: int, n_ctl: int) -> float:
    """P(arm rate > control rate) under Beta(1, 1) priors, by numerical integration."""
    arm = stats.beta(1 + x_arm, 1 + n_arm - x_arm)
    ctl = stats.beta(1 + x_ctl, 1 + n_ctl - x_ctl)
    lo = min(arm.ppf(1e-9), ctl.ppf(1e-9))
    hi = max(arm.ppf(1 - 1e-9), ctl.ppf(1 - 1e-9))
    value, _ = integrate.quad(lambda p: arm.pdf(p) * ctl.cdf(p), lo, hi, limit=200)
    return float(min(max(value, 0.0), 1.0))


def probability_to_beat_mean(arm: Sequence[float], control: Sequence[float]) -> float:
    """P(arm mean > control mean), normal approximation of both posteriors."""
    a, c = np.asarray(arm, dtype=float), np.asarray(control, dtype=float)
    se = math.sqrt(a.var(ddof=1) / len(a) + c.var(ddof=1) / len(c))
    diff = float(a.mean() - c.mean())
    if se == 0:
        return 0.5 if diff == 0 else float(diff > 0)
    return float(stats.norm.cdf(diff / se))


def chi_square_across_arms(successes: Sequence[int], totals: Sequence[int]) -> float:
    """p-value of a chi-square test of independence of arm and outcome."""
    table = np.array([[x, n - x] for x, n in zip(successes, totals, strict=True)])
    if (table.sum(axis=0) == 0).any():
        return 1.0
    return float(stats.chi2_contingency(table, correction=False).pvalue)


def _ratio_lift(v1: float, v0: float, log_se: float, z: float) -> tuple[float, tuple[float, float]]:
    lift = _safe_lift(v1, v0)
    if v1 <= 0 or v0 <= 0 or math.isnan(log_se):
        return lift, (math.nan, math.nan)
    log_ratio = math.log(v1 / v0)
    return lift, (math.exp(log_ratio - z * log_se) - 1, math.exp(log_ratio + z * log_se) - 1)


def _log_ratio_se(x1: int, n1: int, x0: int, n0: int) -> float:
    if x1 == 0 or x0 == 0:
        return math.nan
    return math.sqrt(1 / x1 - 1 / n1 + 1 / x0 - 1 / n0)


def _safe_lift(v1: float, v0: float) -> float:
    return v1 / v0 - 1 if v0 else math.nan
