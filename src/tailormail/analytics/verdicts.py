"""Whole-experiment analysis: every arm against control, power, and a plain verdict."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from tailormail.analytics import experiments as ex
from tailormail.errors import ValidationError

Observations = dict[str, dict[str, Sequence[float]]]
"""arm -> metric -> one value per recipient (0/1 for proportions)."""


def analyze(
    observations: Observations,
    control: str,
    metrics: Sequence[str],
    plan: ex.Plan | None = None,
    weights: dict[str, float] | None = None,
) -> ex.ExperimentResult:
    """Analyse every metric of an experiment whose arms are keys of ``observations``."""
    plan = plan or ex.Plan()
    if control not in observations:
        raise ValidationError(
            f"control arm {control!r} has no rows", field="control", hint=f"arms present: {', '.join(observations)}"
        )
    arms = [control, *sorted(a for a in observations if a != control)]
    counts = {a: len(next(iter(observations[a].values()), [])) for a in arms}
    result = ex.ExperimentResult(arms, control, ex.sample_ratio(counts, weights))
    for metric in metrics:
        result.metrics.append(_metric(observations, arms, control, metric, plan))
    return result


def _metric(observations: Observations, arms: list[str], control: str, metric: str, plan: ex.Plan) -> ex.MetricResult:
    values = {a: np.asarray(observations[a][metric], dtype=float) for a in arms}
    proportion = all(ex.is_proportion(v.tolist()) for v in values.values())
    alpha = plan.alpha / max(1, len(arms) - 1)
    ctl = values[control]
    comparisons = [_compare(arm, values[arm], ctl, proportion, alpha) for arm in arms[1:]]
    omnibus = None
    if proportion and len(arms) > 2:
        omnibus = ex.chi_square_across_arms([int(values[a].sum()) for a in arms], [len(values[a]) for a in arms])
    planned = plan.planned_n or _planned_n(ctl, proportion, plan, alpha)
    smallest = min(len(v) for v in values.values())
    underpowered = planned is None or smallest < planned
    winner = _winner(comparisons, underpowered)
    return ex.MetricResult(
        metric=metric,
        kind="proportion" if proportion else "mean",
        control=control,
        control_n=len(ctl),
        control_value=float(ctl.mean()) if len(ctl) else math.nan,
        comparisons=comparisons,
        omnibus_p_value=omnibus,
        alpha_per_comparison=alpha,
        planned_n=planned,
        underpowered=underpowered,
        winner=winner,
        verdict=_verdict(metric, comparisons, underpowered, planned, smallest, winner, plan),
    )


def _compare(arm: str, a: Any, c: Any, proportion: bool, alpha: float) -> ex.ArmComparison:
    if len(a) < 2 or len(c) < 2:
        nan = math.nan
        return ex.ArmComparison(
            arm, len(a), float(a.mean()) if len(a) else nan, nan, (nan, nan), nan, (nan, nan), 1.0, 0.5, False
        )
    if proportion:
        x1, x0 = int(a.sum()), int(c.sum())
        diff, diff_ci, lift, lift_ci, p = ex.compare_proportions(x1, len(a), x0, len(c), alpha)
        beat = ex.probability_to_beat_proportion(x1, len(a), x0, len(c))
    else:
        diff, diff_ci, lift, lift_ci, p = ex.compare_means(a, c, alpha)
        beat = ex.probability_to_beat_mean(a, c)
    return ex.ArmComparison(arm, len(a), float(a.mean()), diff, diff_ci, lift, lift_ci, p, beat, p < alpha)


def _planned_n(control: np.ndarray, proportion: bool, plan: ex.Plan, alpha: float) -> int | None:
    if len(control) < 2:
        return None
    if proportion:
        return ex.sample_size_proportion(float(control.mean()), plan.mde, alpha, plan.power)
    return ex.sample_size_mean(float(control.mean()), float(control.std(ddof=1)), plan.mde, alpha, plan.power)


def _winner(comparisons: list[ex.ArmComparison], underpowered: bool) -> str | None:
    """The best significantly better arm, only once the planned sample is reached."""
    if underpowered:
        return None
    better = [c for c in comparisons if c.significant and c.difference > 0]
    return max(better, key=lambda c: c.value).arm if better else None


def _verdict(
    metric: str,
    comparisons: list[ex.ArmComparison],
    underpowered: bool,
    planned: int | None,
    smallest: int,
    winner: str | None,
    plan: ex.Plan,
) -> str:
    if underpowered:
        ahead = [c for c in comparisons if c.significant]
        note = (
            f" {ahead[0].arm} looks different now (p = {ahead[0].p_value:.3g}), but stopping before the planned"
            " sample inflates false positives."
            if ahead
            else ""
        )
        need = (
            f"To detect a {plan.mde:.0%} lift each arm needs {planned:,} recipients; the smallest has {smallest:,}."
            if planned is not None
            else f"The control has no {metric} yet, so no sample size can be planned (smallest arm: {smallest:,})."
        )
        return f"{metric}: underpowered. {need} No winner can be declared yet.{note}"
    if winner:
        c = next(c for c in comparisons if c.arm == winner)
        return (
            f"{metric}: {winner} beats control by {c.lift:+.1%} (95 % CI {c.lift_ci[0]:+.1%} to {c.lift_ci[1]:+.1%}),"
            f" p = {c.p_value:.3g}."
        )
    worse = [c for c in comparisons if c.significant and c.difference < 0]
    if worse:
        return f"{metric}: control wins; {', '.join(c.arm for c in worse)} did significantly worse."
    return f"{metric}: no significant difference at the planned sample; keep control or the cheaper variant."
