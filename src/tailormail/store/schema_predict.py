"""Tables of the predict domain: versioned models with their metrics and parameters.

Scores themselves live on profiles (``traits["predicted"][model]``), so this
domain keeps no per-person rows and adds nothing to ``PROFILE_TABLES``.
"""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Column, Integer, String, Table, Text, UniqueConstraint

from tailormail.store.schema import Id, metadata

predict_models = Table(
    "predict_models",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("model", String(64), nullable=False, doc="purchase_30d, churn_90d, high_value_90d"),
    Column("version", Integer, nullable=False, doc="1, 2, ... per model"),
    Column("status", String(16), nullable=False, doc="promoted or rejected"),
    Column("reason", Text, nullable=True, doc="why a version was rejected"),
    Column("trained_at", BigInteger, nullable=False),
    Column("train_cutoff", BigInteger, nullable=False, doc="training features end here (ms)"),
    Column("eval_cutoff", BigInteger, nullable=False, doc="evaluation features end here (ms)"),
    Column("horizon_days", Integer, nullable=False),
    Column("features", JSON, nullable=False, doc="feature names, in the order of the parameters"),
    Column("params", JSON, nullable=False, doc="scaler mean/scale, coefficients, intercept"),
    Column("metrics", JSON, nullable=False, doc="AUC, PR AUC, Brier, calibration, lift, ROC points"),
    Column("coefficients", JSON, nullable=False, doc="per feature: weight and its plain-words reading"),
    UniqueConstraint("model", "version", name="uq_predict_models_model_version"),
)
