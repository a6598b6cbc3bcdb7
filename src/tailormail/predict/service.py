"""Training, promotion and scoring against the store.

Time split for a model with horizon ``h`` trained at ``now``: training features
are taken as of ``now - 2h`` with labels from ``[now - 2h, now - h)``; the
evaluation features as of ``now - h`` with labels from ``[now - h, now)``.
Training labels therefore end before the evaluation period begins.  The
evaluated model is the one stored and used for scoring, so every reported
number describes exactly the parameters in use.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from tailormail.clock import to_ms
from tailormail.config import EventNames, Settings
from tailormail.errors import NotFound, ValidationError
from tailormail.predict import evaluate, features, models
from tailormail.predict.features import DAY_MS, FeatureMatrix
from tailormail.predict.timing import PhaseTimes
from tailormail.store import Store, predict_scores
from tailormail.store import predict as predict_q

log = logging.getLogger("tailormail.predict")


@dataclass(frozen=True)
class PredictSettings:
    """The ``[predict]`` table of tailormail.toml."""

    purchase_days: int = 30
    churn_days: int = 90
    high_value_days: int = 90
    high_value_share: float = 0.2
    retrain_every_days: int = 7
    max_auc_drop: float = 0.02
    """A retrained model whose AUC is lower than the promoted one's by more than this is not promoted."""

    @classmethod
    def from_settings(cls, settings: Settings) -> PredictSettings:
        """Read and check ``[predict]``."""
        return settings.table(cls, "predict")

    def specs(self) -> list[models.ModelSpec]:
        """The three models with the configured horizons."""
        return models.default_specs(self.purchase_days, self.churn_days, self.high_value_days, self.high_value_share)


@dataclass(frozen=True)
class TrainResult:
    """One trained version and whether it was promoted."""

    model: str
    version: int
    status: str
    roc_auc: float
    previous_auc: float | None
    reason: str | None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return dict(self.__dict__)


class Trainer:
    """Trains models against one store: the events are read once, features reused across models."""

    def __init__(self, store: Store, names: EventNames, config: PredictSettings) -> None:
        self.store, self.names, self.config = store, names, config
        self._history: features.History | None = None
        self._features: dict[int, FeatureMatrix] = {}
        self.times = PhaseTimes()

    def history(self, now_ms: int) -> features.History:
        """The events before ``now_ms``, with categories early enough for every configured model's cut-offs."""
        if self._history is None or self._history.until_ms != now_ms:
            longest = max(spec.horizon_days for spec in self.config.specs())
            since = now_ms - (2 * longest + features.EMAIL_WINDOW) * DAY_MS
            self._history = features.load_history(self.store, self.names, now_ms, since)
            self._features = {}
        return self._history

    def features_at(self, cutoff_ms: int) -> FeatureMatrix:
        """Features as of a cut-off (computed once per cut-off)."""
        if cutoff_ms not in self._features:
            if self._history is None:
                raise RuntimeError("call history(now_ms) before features_at")
            self._features[cutoff_ms] = features.matrix_at(self._history, cutoff_ms)
        return self._features[cutoff_ms]

    def outcomes(self, matrix: FeatureMatrix, days: int) -> tuple[np.ndarray, np.ndarray]:
        """(purchases, revenue) of each profile of ``matrix`` in the ``days`` after its cut-off."""
        history = self._history
        if history is None:
            raise RuntimeError("call history(now_ms) before outcomes")
        start, end = matrix.cutoff_ms, matrix.cutoff_ms + days * DAY_MS
        rows = np.searchsorted(history.profile_ids, matrix.profile_ids)
        return history.counts("purchase", start, end)[rows], history.revenue_between(start, end)[rows]

    def dataset(self, spec: models.ModelSpec, cutoff_ms: int) -> tuple[np.ndarray, np.ndarray]:
        """(X, y) of the model's population as of a cut-off."""
        matrix = self.features_at(cutoff_ms)
        purchases, revenue = self.outcomes(matrix, spec.horizon_days)
        keep = spec.population(matrix)
        return matrix.values[keep], spec.labels(revenue, purchases)[keep]

    def train(self, spec: models.ModelSpec, now: datetime) -> TrainResult:
        """Fit, evaluate on the later period, store a version, promote it unless its AUC fell."""
        now_ms = to_ms(now)
        eval_cutoff = now_ms - spec.horizon_days * DAY_MS
        train_cutoff = eval_cutoff - spec.horizon_days * DAY_MS
        with self.times.phase("features"):
            self.history(now_ms)
            x_train, y_train = self.dataset(spec, train_cutoff)
            x_eval, y_eval = self.dataset(spec, eval_cutoff)
        with self.times.phase("fit"):
            params = models.fit(x_train, y_train, spec.name)
        if y_eval.sum() in (0, len(y_eval)):
            raise ValidationError(
                f"cannot evaluate {spec.name}: the evaluation period has only one outcome",
                field=spec.name,
                hint="ingest more recent history",
            )
        with self.times.phase("evaluate"):
            report = evaluate.metrics(y_eval, models.predict(params, x_eval))
        report["n_train"] = int(y_train.size)
        with self.times.phase("store"):
            return self._store_version(spec, now_ms, train_cutoff, eval_cutoff, params, report)

    def _store_version(
        self,
        spec: models.ModelSpec,
        now_ms: int,
        train_cutoff: int,
        eval_cutoff: int,
        params: dict[str, Any],
        report: dict[str, Any],
    ) -> TrainResult:
        with self.store.begin() as conn:
            previous = predict_q.latest_version(conn, spec.name)
            before = previous["metrics"]["roc_auc"] if previous else None
            status, reason = "promoted", None
            if before is not None and report["roc_auc"] < before - self.config.max_auc_drop:
                status = "rejected"
                reason = f"ROC AUC {report['roc_auc']:.3f} fell more than {self.config.max_auc_drop} below {before:.3f}"
            version = predict_q.save_model_version(
                conn,
                {
                    "model": spec.name,
                    "status": status,
                    "reason": reason,
                    "trained_at": now_ms,
                    "train_cutoff": train_cutoff,
                    "eval_cutoff": eval_cutoff,
                    "horizon_days": spec.horizon_days,
                    "features": params["features"],
                    "params": params,
                    "metrics": report,
                    "coefficients": evaluate.coefficient_words(
                        params["features"], params["coef"], params["std"], spec.outcome
                    ),
                },
            )
        return TrainResult(spec.name, version, status, report["roc_auc"], before, reason)


def select_specs(config: PredictSettings, model: str | None) -> list[models.ModelSpec]:
    """All models, or the one named (NotFound names the known ones)."""
    specs = config.specs()
    if model is None:
        return specs
    chosen = [s for s in specs if s.name == model]
    if not chosen:
        raise NotFound(f"no model {model!r}", hint=f"known models: {', '.join(s.name for s in specs)}")
    return chosen


def train(store: Store, settings: Settings, now: datetime, model: str | None = None) -> list[TrainResult]:
    """Train one model or all three at ``now``."""
    config = PredictSettings.from_settings(settings)
    trainer = Trainer(store, settings.events, config)
    return [trainer.train(spec, now) for spec in select_specs(config, model)]


def score(store: Store, settings: Settings, now: datetime, times: PhaseTimes | None = None) -> dict[str, int]:
    """Score every profile with each model's latest promoted version; write traits; return counts."""
    config = PredictSettings.from_settings(settings)
    now_ms = to_ms(now)
    times = times or PhaseTimes()
    with store.read() as conn:
        versions = {s.name: predict_q.latest_version(conn, s.name) for s in config.specs()}
        if not any(versions.values()):
            raise NotFound("no trained model to score with", hint="run `tailormail predict train` first")
    with times.phase("features"):
        matrix = features.compute(store, now_ms, settings.events)
    columns: dict[str, np.ndarray] = {}
    counts: dict[str, int] = {}
    for spec in config.specs():
        version = versions[spec.name]
        if version is None:
            continue
        with times.phase("predict"):
            keep = spec.population(matrix)
            everyone = bool(keep.all())  # then skip copying the matrix
            p = models.predict(version["params"], matrix.values if everyone else matrix.values[keep])
            rank = np.empty(len(p), dtype=np.int64)
            rank[np.argsort(p, kind="stable")] = np.arange(len(p))  # the inverse of the sorting permutation
            percentile = np.floor(100.0 * (rank + 1) / max(len(p), 1))
            columns[spec.name] = _spread(keep, p.round(4))
            columns[f"{spec.name}_percentile"] = _spread(keep, percentile)
        counts[spec.name] = int(keep.sum())
    whole = frozenset(name for name in columns if name.endswith("_percentile"))
    with times.phase("write"), store.begin() as conn:
        predict_scores.write_scores(conn, matrix.profile_ids, columns, now_ms, whole)
    log.info("predict: scored %d profiles: %s", len(matrix.profile_ids), times.summary())
    return counts


def _spread(keep: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``values`` (one per kept row) placed at the kept rows, NaN (no score) elsewhere."""
    out = np.full(len(keep), np.nan)
    out[keep] = values
    return out


def latest_reports(store: Store, model: str | None = None) -> list[dict[str, Any]]:
    """The newest version of each model (promoted or not), with metrics and coefficients."""
    config = PredictSettings()
    names = [s.name for s in select_specs(config, model)]
    with store.read() as conn:
        found = [predict_q.latest_version(conn, name, status=None) for name in names]
        promoted = {name: predict_q.latest_version(conn, name) for name in names}
    reports = []
    for version in found:
        if version is None:
            continue
        version.pop("params", None)
        current = promoted[version["model"]]
        version["in_use_version"] = current["version"] if current else None
        reports.append(version)
    if model is not None and not reports:
        raise NotFound(f"model {model} has not been trained", hint="run `tailormail predict train`")
    return reports
