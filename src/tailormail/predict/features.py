"""Features of each profile as of a cut-off, from its events strictly before it.

The database does the heavy part in three grouped queries (activity from the
covering index, revenue of purchases, categories of the last 90 days; see
``store.predict``); this module joins them by profile id and derives the
feature matrix with vectorised numpy.  Every feature:

| feature | meaning |
|---|---|
| recency_days | days since the last purchase (tenure when never bought) |
| frequency | purchases ever made |
| monetary | revenue of all purchases |
| aov | average order value: monetary / frequency (0 when never bought) |
| tenure_days | days since the profile's first event |
| views_7d, views_30d, views_90d | product views in the last 7, 30, 90 days |
| carts_7d, carts_30d, carts_90d | add-to-carts in the last 7, 30, 90 days |
| purchases_7d, purchases_30d, purchases_90d | purchases in the last 7, 30, 90 days |
| days_since_view | days since the last product view (tenure when never) |
| days_since_cart | days since the last add-to-cart (tenure when never) |
| emails_opened_90d | email_opened events in the last 90 days |
| emails_clicked_90d | email_clicked events in the last 90 days |
| category_breadth_90d | distinct product categories viewed, carted or bought in the last 90 days |
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sqlalchemy import Connection

from tailormail.config import EventNames
from tailormail.store import predict as predict_q

WINDOWS = (7, 30, 90)
"""Days of the activity windows."""
EMAIL_WINDOW = 90
"""Days of the email engagement window."""
DAY_MS = predict_q.DAY_MS

FEATURES: tuple[str, ...] = (
    "recency_days",
    "frequency",
    "monetary",
    "aov",
    "tenure_days",
    *(f"{kind}_{days}d" for kind in ("views", "carts", "purchases") for days in WINDOWS),
    "days_since_view",
    "days_since_cart",
    "emails_opened_90d",
    "emails_clicked_90d",
    "category_breadth_90d",
)
"""Feature names in matrix column order (documented in this module's docstring)."""

UNITS = {
    "recency_days": "day since the last purchase",
    "frequency": "purchase ever made",
    "monetary": "unit of revenue ever spent",
    "aov": "unit of average order value",
    "tenure_days": "day of tenure",
    "days_since_view": "day since the last product view",
    "days_since_cart": "day since the last add-to-cart",
    "emails_opened_90d": "email opened in the last 90 days",
    "emails_clicked_90d": "email clicked in the last 90 days",
    "category_breadth_90d": "distinct category browsed or bought in the last 90 days",
    **{
        f"{kind}_{days}d": f"{noun} in the last {days} days"
        for kind, noun in (("views", "product view"), ("carts", "add-to-cart"), ("purchases", "purchase"))
        for days in WINDOWS
    },
}
"""What one unit of each feature is, for the plain-words coefficients."""


@dataclass(frozen=True)
class FeatureMatrix:
    """Profiles (sorted ids) and their features as of ``cutoff_ms``."""

    cutoff_ms: int
    profile_ids: np.ndarray
    values: np.ndarray

    def column(self, name: str) -> np.ndarray:
        """One feature for every profile."""
        return self.values[:, FEATURES.index(name)]


def compute(conn: Connection, cutoff_ms: int, names: EventNames) -> FeatureMatrix:
    """Every profile with events before ``cutoff_ms`` and its features."""
    kinds = {"view": names.product_view, "cart": names.add_to_cart, "purchase": names.purchase}
    columns, rows = predict_q.activity_aggregates(conn, cutoff_ms, **kinds, windows=WINDOWS, email_window=EMAIL_WINDOW)
    if not rows:
        return FeatureMatrix(cutoff_ms, np.zeros(0, dtype=np.int64), np.zeros((0, len(FEATURES))))
    raw = np.array(rows, dtype=float)  # NULL (never happened) becomes NaN
    ids = raw[:, 0].astype(np.int64)
    revenue = predict_q.revenue_before(conn, cutoff_ms, names.purchase)
    breadth = predict_q.category_breadth(conn, cutoff_ms - EMAIL_WINDOW * DAY_MS, cutoff_ms, list(kinds.values()))
    extra = np.stack([align(ids, revenue), align(ids, breadth)], axis=1)
    table = np.concatenate([raw, extra], axis=1)
    return FeatureMatrix(cutoff_ms, ids, from_aggregates([*columns, "revenue", "categories"], table, cutoff_ms))


def align(ids: np.ndarray, pairs: list[tuple[int, float]] | list[tuple[int, int]]) -> np.ndarray:
    """Values of (profile id, value) pairs placed in the order of ``ids`` (0 where absent)."""
    out = np.zeros(len(ids))
    if not pairs or not len(ids):
        return out
    found = np.array(pairs, dtype=float)
    at = np.searchsorted(ids, found[:, 0].astype(np.int64))
    hit = (at < len(ids)) & (ids[np.minimum(at, len(ids) - 1)] == found[:, 0])
    out[at[hit]] = found[hit, 1]
    return out


def from_aggregates(columns: list[str], raw: np.ndarray, cutoff_ms: int) -> np.ndarray:
    """The feature matrix from the aggregate columns of ``feature_aggregates``."""
    col = {name: raw[:, i] for i, name in enumerate(columns)}
    tenure = (cutoff_ms - col["first_ts"]) / DAY_MS

    def days_since(ts: np.ndarray) -> np.ndarray:
        return np.where(np.isnan(ts), tenure, (cutoff_ms - ts) / DAY_MS)

    frequency, monetary = col["purchases"], col["revenue"]
    derived = {
        "recency_days": days_since(col["last_purchase"]),
        "frequency": frequency,
        "monetary": monetary,
        "aov": monetary / np.maximum(frequency, 1),
        "tenure_days": tenure,
        "days_since_view": days_since(col["last_view"]),
        "days_since_cart": days_since(col["last_cart"]),
        "emails_opened_90d": col["opened"],
        "emails_clicked_90d": col["clicked"],
        "category_breadth_90d": col["categories"],
    }
    derived.update({name: col[name] for name in FEATURES if name not in derived})
    return np.nan_to_num(np.stack([derived[name] for name in FEATURES], axis=1))
