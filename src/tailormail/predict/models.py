"""The predictive models: a scikit-learn pipeline, stored as plain JSON parameters."""

from __future__ import annotations

from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler


def classifier() -> Pipeline:
    """Standardised features into a class-balanced logistic regression."""
    return Pipeline(
        [
            ("scale", StandardScaler()),
            ("logit", LogisticRegression(class_weight="balanced", max_iter=1000)),
        ]
    )
