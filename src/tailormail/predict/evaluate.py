"""How good a model is: ROC AUC, PR AUC, Brier, calibration and lift by decile, coefficients in words."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score, roc_curve

from tailormail.predict.features import UNITS

ROC_POINTS = 101
"""How many points of the ROC curve are kept for charts."""


def metrics(y: np.ndarray, p: np.ndarray) -> dict[str, Any]:
    """Every metric of the report, JSON-ready."""
    y = y.astype(bool)
    fpr, tpr, _ = roc_curve(y, p)
    grid = np.linspace(0.0, 1.0, ROC_POINTS)
    return {
        "n": len(y),
        "positive_rate": float(y.mean()),
        "roc_auc": float(roc_auc_score(y, p)),
        "pr_auc": float(average_precision_score(y, p)),
        "brier": float(brier_score_loss(y, p)),
        "calibration": calibration(y, p),
        "lift": lift(y, p),
        "roc": {"fpr": grid.tolist(), "tpr": np.interp(grid, fpr, tpr).round(4).tolist()},
    }


def _deciles(p: np.ndarray) -> list[np.ndarray]:
    """Indices of ten equal groups, from the highest score to the lowest."""
    return [group for group in np.array_split(np.argsort(-p, kind="stable"), 10) if group.size]


def calibration(y: np.ndarray, p: np.ndarray) -> list[dict[str, float]]:
    """Per score decile (highest first): mean predicted probability vs observed rate."""
    return [
        {"decile": i + 1, "n": int(g.size), "predicted": float(p[g].mean()), "observed": float(y[g].mean())}
        for i, g in enumerate(_deciles(p))
    ]


def lift(y: np.ndarray, p: np.ndarray) -> list[dict[str, float]]:
    """Per score decile (highest first): rate over the base rate, and share of all positives captured so far."""
    base, total = max(float(y.mean()), 1e-12), max(int(y.sum()), 1)
    rows, captured = [], 0
    for i, g in enumerate(_deciles(p)):
        captured += int(y[g].sum())
        rows.append({"decile": i + 1, "lift": float(y[g].mean()) / base, "cumulative_capture": captured / total})
    return rows


def coefficient_words(
    features: list[str], coef: list[float], scale: list[float], outcome: str = ""
) -> list[dict[str, Any]]:
    """Each standardized coefficient with its effect in plain words, strongest first.

    ``scale`` is each feature's standard deviation in training (0: constant).
    """
    rows = []
    for name, weight, spread in zip(features, coef, scale, strict=True):
        per_unit = float(np.exp(weight / spread)) if spread > 0 else 1.0
        rows.append(
            {
                "feature": name,
                "standardized": float(weight),
                "odds_per_unit": per_unit,
                "odds_per_std": float(np.exp(weight)),
                "sentence": sentence(name, per_unit, float(np.exp(weight)), float(spread), outcome),
            }
        )
    return sorted(rows, key=lambda r: -abs(r["standardized"]))


def sentence(name: str, per_unit: float, per_std: float, spread: float, outcome: str = "") -> str:
    """'each extra purchase in the last 90 days raises the odds by 34 %' (and per standard deviation)."""
    unit = UNITS.get(name, f"unit of {name}")
    if spread == 0:
        return f"{unit}: the same for everyone in training, so it has no effect"
    change = (per_unit - 1.0) * 100
    verb = "raises" if change >= 0 else "lowers"
    return (
        f"each extra {unit} {verb} the odds{' ' + outcome if outcome else ''} by {abs(change):.1f} % "
        f"(one standard deviation, {spread:,.3g}: odds x{per_std:.2f})"
    )
