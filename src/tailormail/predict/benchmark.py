"""BG/NBD against our logistic regression on the real CDNOW purchases.

Both models see only the calibration period (1997-01-01..1997-09-30) and
predict the holdout (1997-10-01..1998-06-30).  BG/NBD is fitted on the whole
calibration history.  The logistic regression needs labels, so it is trained
time-split *inside* calibration: features as of 1997-06-30, label "bought
again in 1997-07-01..1997-09-30"; then the fitted model is applied to features
as of 1997-09-30.  For purchase counts a companion Poisson regression on the
same features (log1p) and split predicts purchase days in those 13 weeks, scaled to the
39-week holdout (a stated assumption: a constant rate per customer; class
weighting makes the classifier's probabilities unusable as counts).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
from sklearn.linear_model import PoissonRegressor
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from tailormail.predict import bgnbd, cdnow
from tailormail.predict.models import classifier

TRAIN_CUTOFF = date(1997, 6, 30)
"""Where the logistic regression's training features stop inside calibration."""

CDNOW_FEATURES = (
    "frequency",
    "recency_days",
    "tenure_days",
    "monetary",
    "aov",
    "purchases_30d",
    "purchases_90d",
)
"""The purchase-only subset of the shop features that CDNOW's data allows."""


@dataclass(frozen=True)
class ModelResult:
    """How one model did on the holdout."""

    model: str
    auc: float
    predicted_purchases: float
    actual_purchases: float


@dataclass(frozen=True)
class CdnowBenchmark:
    """The side-by-side result on one CDNOW file."""

    dataset: str
    customers: int
    fit: bgnbd.BgNbdFit
    results: list[ModelResult]

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready dict."""
        return {
            "dataset": self.dataset,
            "customers": self.customers,
            "bgnbd": self.fit.as_dict(),
            "results": [asdict(r) for r in self.results],
        }


def purchase_features(data: cdnow.Purchases, customers: np.ndarray, cutoff: date) -> np.ndarray:
    """CDNOW_FEATURES as of the end of ``cutoff`` for each customer (vectorised)."""
    customer, day, dollars = cdnow.purchase_days(data, cdnow.CALIBRATION[0], cutoff)
    end = cdnow.day_number(cutoff) + 1  # features describe the state at the end of that day
    n = len(customers)
    index = np.searchsorted(customers, customer)
    count = np.bincount(index, minlength=n).astype(float)
    first = np.full(n, float(end))
    np.minimum.at(first, index, day)
    last = np.full(n, float(end))
    last[count > 0] = -np.inf
    np.maximum.at(last, index, day)
    money = np.bincount(index, weights=dollars, minlength=n)
    windows = [np.bincount(index[day >= end - w], minlength=n) for w in (30, 90)]
    aov = money / np.maximum(count, 1)
    return np.stack([count, end - last, end - first, money, aov, *windows], axis=1).astype(float)


def bought_between(data: cdnow.Purchases, customers: np.ndarray, start: date, end: date) -> np.ndarray:
    """Purchase days per customer in [start, end]."""
    customer, _, _ = cdnow.purchase_days(data, start, end)
    return np.bincount(np.searchsorted(customers, customer), minlength=len(customers)).astype(float)


def run(path: Path, name: str | None = None) -> CdnowBenchmark:
    """Fit both models on calibration, score the holdout, compare."""
    data = cdnow.load(path)
    summary = cdnow.summarise(data, cdnow.CALIBRATION, cdnow.HOLDOUT[1])
    holdout_weeks = ((cdnow.HOLDOUT[1] - cdnow.HOLDOUT[0]).days + 1) / 7
    bought = summary.holdout > 0
    actual = float(summary.holdout.sum())

    fit = bgnbd.fit(summary.x, summary.t_x, summary.T)
    args = (fit, holdout_weeks, summary.x, summary.t_x, summary.T)
    expected = bgnbd.expected_purchases(*args)
    results = [ModelResult("BG/NBD", _auc(bought, bgnbd.p_buys_again(*args)), float(expected.sum()), actual)]

    customers = summary.customer
    train_x = purchase_features(data, customers, TRAIN_CUTOFF)
    known = train_x[:, 0] > 0  # customers who had made their first purchase by then
    label_start, label_end = TRAIN_CUTOFF + timedelta(days=1), cdnow.CALIBRATION[1]
    train_counts = bought_between(data, customers, label_start, label_end)
    score_x = purchase_features(data, customers, cdnow.CALIBRATION[1])

    model = classifier().fit(train_x[known], train_counts[known] > 0)
    # log1p: with a log link, log counts give rates that grow like powers, not exponentials, of the history.
    counts = make_pipeline(FunctionTransformer(np.log1p), StandardScaler(), PoissonRegressor(alpha=1e-4, max_iter=1000))
    counts.fit(train_x[known], train_counts[known])
    scale = holdout_weeks / (((label_end - label_start).days + 1) / 7)
    predicted = counts.predict(score_x) * scale
    results.append(
        ModelResult(
            "logistic regression", _auc(bought, model.predict_proba(score_x)[:, 1]), float(predicted.sum()), actual
        )
    )
    return CdnowBenchmark(name or path.name, len(customers), fit, results)


def _auc(labels: np.ndarray, scores: np.ndarray) -> float:
    return float(roc_auc_score(labels, scores))
