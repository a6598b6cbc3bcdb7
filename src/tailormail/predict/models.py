"""The three models: who they cover, what they predict, and their JSON-stored parameters.

A model is a scikit-learn pipeline (StandardScaler, then a class-balanced
LogisticRegression).  Class balancing trains as if both outcomes were equally
common, which inflates the odds of the rare one; the stored intercept is
corrected back by the training prior (King and Zeng's prior correction) so the
scores read as probabilities.  Parameters are stored as plain JSON, never
pickles, and scoring is a numpy dot product.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from tailormail.errors import ValidationError
from tailormail.predict.features import FEATURES, FeatureMatrix


def classifier() -> Pipeline:
    """Standardised features into a class-balanced logistic regression."""
    return Pipeline(
        [
            ("scale", StandardScaler()),
            ("logit", LogisticRegression(class_weight="balanced", max_iter=1000)),
        ]
    )


@dataclass(frozen=True)
class ModelSpec:
    """One predictive model: its name, target and horizon."""

    name: str
    target: str
    """purchase, churn or high_value."""
    horizon_days: int
    top_share: float = 0.2
    """high_value only: the share of spenders that counts as high value."""

    @property
    def outcome(self) -> str:
        """The predicted outcome in words, for the coefficient sentences."""
        if self.target == "purchase":
            return f"of buying in the next {self.horizon_days} days"
        if self.target == "churn":
            return f"of not buying in the next {self.horizon_days} days"
        return f"of being a top {self.top_share:.0%} spender in the next {self.horizon_days} days"

    def population(self, features: FeatureMatrix) -> np.ndarray:
        """Which profiles the model is about (churn: past buyers only)."""
        if self.target == "churn":
            return features.column("frequency") > 0
        return np.ones(len(features.profile_ids), dtype=bool)

    def labels(self, revenue_next: np.ndarray, purchases_next: np.ndarray) -> np.ndarray:
        """The outcome per profile from what they bought in the horizon after the cut-off."""
        if self.target == "purchase":
            return purchases_next > 0
        if self.target == "churn":
            return purchases_next == 0
        spenders = revenue_next[revenue_next > 0]
        if spenders.size == 0:
            return np.zeros(len(revenue_next), dtype=bool)
        threshold = np.quantile(spenders, 1.0 - self.top_share)
        return (revenue_next > 0) & (revenue_next >= threshold)


def default_specs(
    purchase_days: int = 30, churn_days: int = 90, value_days: int = 90, top: float = 0.2
) -> list[ModelSpec]:
    """purchase_30d, churn_90d and high_value_90d (names stay; horizons may be configured)."""
    return [
        ModelSpec("purchase_30d", "purchase", purchase_days),
        ModelSpec("churn_90d", "churn", churn_days),
        ModelSpec("high_value_90d", "high_value", value_days, top),
    ]


def fit(x: np.ndarray, y: np.ndarray, model: str) -> dict[str, Any]:
    """Fit the pipeline; return its parameters as a JSON-ready dict."""
    positives = int(y.sum())
    if positives == 0 or positives == len(y):
        raise ValidationError(
            f"cannot train {model}: {len(y)} profiles and {positives} positive outcomes",
            field=model,
            hint="both outcomes must occur; ingest more history or shorten the horizon in [predict]",
        )
    pipeline = classifier().fit(x, y)
    scaler, logit = pipeline.named_steps["scale"], pipeline.named_steps["logit"]
    prior = positives / len(y)
    return {
        "features": list(FEATURES),
        "mean": scaler.mean_.tolist(),
        "scale": scaler.scale_.tolist(),  # 1 where a feature was constant (sklearn's convention)
        "std": np.sqrt(scaler.var_).tolist(),
        "coef": logit.coef_[0].tolist(),
        # Balanced weights act as a 50/50 prior; shift the intercept back to the real one.
        "intercept": float(logit.intercept_[0] + np.log(prior / (1.0 - prior))),
        "prior": prior,
    }


def predict(params: dict[str, Any], x: np.ndarray) -> np.ndarray:
    """Probabilities from stored parameters (no scikit-learn needed)."""
    if params["features"] != list(FEATURES):
        raise ValidationError(
            "stored model was trained on other features", field="features", hint="retrain: tailormail predict train"
        )
    mean, scale, coef = (np.asarray(params[key]) for key in ("mean", "scale", "coef"))
    linear = np.empty(len(x))
    # In blocks of rows: the same arithmetic per row, without two full-size temporaries
    # (touching fresh memory is slow on a busy machine).
    for start in range(0, len(x), PREDICT_BLOCK):
        block = slice(start, start + PREDICT_BLOCK)
        linear[block] = ((x[block] - mean) / scale) @ coef
    return 1.0 / (1.0 + np.exp(-(linear + params["intercept"])))


PREDICT_BLOCK = 65_536
"""Rows standardised at a time by ``predict``."""
