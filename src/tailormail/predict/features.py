"""Features of each profile as of a cut-off, from its events strictly before it.

The events are read once into narrow numpy columns (a ``History``: time and
profile of each view, add-to-cart, purchase, open and click, from the
covering index; revenue of purchases; categories of a recent window; see
``store.predict``).  Features as of any cut-off covered by the history are
then counted with ``np.bincount`` over time-sorted slices, so training at four
cut-offs and labelling their outcomes reads the events once.  Every feature:

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


@dataclass(frozen=True)
class Timeline:
    """Events of one kind in time order: when, and whose (a row of ``History.profile_ids``)."""

    ts: np.ndarray
    row: np.ndarray

    def between(self, start_ms: int | None, end_ms: int) -> slice:
        """The events in [start, end) (from the first when ``start_ms`` is None)."""
        first = 0 if start_ms is None else int(np.searchsorted(self.ts, start_ms, side="left"))
        return slice(first, int(np.searchsorted(self.ts, end_ms, side="left")))


@dataclass(frozen=True)
class History:
    """Everything the features and outcomes read, for cut-offs up to ``until_ms``.

    Categories are kept only from ``category_since_ms``, so cut-offs must be
    at least ``EMAIL_WINDOW`` days later than that.
    """

    until_ms: int
    category_since_ms: int
    profile_ids: np.ndarray
    """Every profile with an event before ``until_ms``, ascending."""
    first_ts: np.ndarray
    kinds: dict[str, Timeline]
    """view, cart, purchase, opened, clicked."""
    revenue: np.ndarray
    """Revenue of each purchase of ``kinds["purchase"]`` (0 when none was given)."""
    categories: Timeline
    category_codes: np.ndarray
    """A number per distinct category, aligned with ``categories``."""

    def counts(self, kind: str, start_ms: int | None, end_ms: int) -> np.ndarray:
        """Events of ``kind`` per profile in [start, end)."""
        line = self.kinds[kind]
        return np.bincount(line.row[line.between(start_ms, end_ms)], minlength=len(self.profile_ids)).astype(float)

    def revenue_between(self, start_ms: int | None, end_ms: int) -> np.ndarray:
        """Revenue of purchases per profile in [start, end)."""
        line = self.kinds["purchase"]
        window = line.between(start_ms, end_ms)
        return np.bincount(line.row[window], weights=self.revenue[window], minlength=len(self.profile_ids))

    def last(self, kind: str, end_ms: int) -> np.ndarray:
        """Time of each profile's last event of ``kind`` before ``end_ms`` (NaN: none)."""
        line = self.kinds[kind]
        window = line.between(None, end_ms)
        latest = np.full(len(self.profile_ids), -1, dtype=np.int64)
        np.maximum.at(latest, line.row[window], line.ts[window])
        return np.where(latest < 0, np.nan, latest.astype(float))

    def distinct_categories(self, start_ms: int, end_ms: int) -> np.ndarray:
        """Distinct categories per profile among the events in [start, end)."""
        if start_ms < self.category_since_ms:
            raise ValueError(f"categories were read from {self.category_since_ms} only, not {start_ms}")
        window = self.categories.between(start_ms, end_ms)
        width = int(self.category_codes.max(initial=0)) + 1
        pairs = np.unique(self.categories.row[window] * width + self.category_codes[window])
        return np.bincount(pairs // width, minlength=len(self.profile_ids)).astype(float)


def load_history(conn: Connection, names: EventNames, until_ms: int, category_since_ms: int) -> History:
    """Read the events before ``until_ms`` (categories from ``category_since_ms``) into a History."""
    ids, first_ts = predict_q.first_event_times(conn, until_ms)
    kinds = {}
    for kind, event in (("view", names.product_view), ("cart", names.add_to_cart), *EMAIL_EVENTS):
        kinds[kind] = _timeline(ids, *predict_q.event_times(conn, event, until_ms))
    ts, pid, revenue = predict_q.purchases(conn, names.purchase, until_ms)
    kinds["purchase"], keep = _timeline_kept(ids, ts, pid)
    shopping = [names.product_view, names.add_to_cart, names.purchase]
    ts, pid, values = predict_q.event_categories(conn, shopping, category_since_ms, until_ms)
    categories, kept = _timeline_kept(ids, ts, pid)
    return History(until_ms, category_since_ms, ids, first_ts, kinds, revenue[keep], categories, _codes(values)[kept])


EMAIL_EVENTS = (("opened", "email_opened"), ("clicked", "email_clicked"))
"""The email engagement events (named by the tracking module, not configurable)."""


def _timeline(ids: np.ndarray, ts: np.ndarray, pid: np.ndarray) -> Timeline:
    return _timeline_kept(ids, ts, pid)[0]


def _timeline_kept(ids: np.ndarray, ts: np.ndarray, pid: np.ndarray) -> tuple[Timeline, np.ndarray]:
    """The timeline of events whose profile is in ``ids`` (one stored after the first query is dropped)."""
    row = np.searchsorted(ids, pid)
    keep = (row < len(ids)) & (ids[np.minimum(row, len(ids) - 1)] == pid) if len(ids) else row < 0
    return Timeline(ts[keep], row[keep]), keep


def _codes(values: list[object]) -> np.ndarray:
    """A number per distinct value, in order of first appearance."""
    seen: dict[object, int] = {}
    return np.fromiter((seen.setdefault(v, len(seen)) for v in values), dtype=np.int64, count=len(values))


def matrix_at(history: History, cutoff_ms: int) -> FeatureMatrix:
    """The features of every profile with an event before ``cutoff_ms``."""
    if cutoff_ms > history.until_ms:
        raise ValueError(f"the history ends at {history.until_ms}, before the cut-off {cutoff_ms}")
    keep = history.first_ts < cutoff_ms
    since = {days: cutoff_ms - days * DAY_MS for days in {*WINDOWS, EMAIL_WINDOW}}
    col = {
        "first_ts": history.first_ts.astype(float),
        "purchases": history.counts("purchase", None, cutoff_ms),
        "revenue": history.revenue_between(None, cutoff_ms),
        "last_purchase": history.last("purchase", cutoff_ms),
        "last_view": history.last("view", cutoff_ms),
        "last_cart": history.last("cart", cutoff_ms),
        "opened": history.counts("opened", since[EMAIL_WINDOW], cutoff_ms),
        "clicked": history.counts("clicked", since[EMAIL_WINDOW], cutoff_ms),
        "categories": history.distinct_categories(since[EMAIL_WINDOW], cutoff_ms),
    }
    for name, kind in (("views", "view"), ("carts", "cart"), ("purchases", "purchase")):
        for days in WINDOWS:
            col[f"{name}_{days}d"] = history.counts(kind, since[days], cutoff_ms)
    names = list(col)
    raw = np.stack([col[name][keep] for name in names], axis=1)
    return FeatureMatrix(cutoff_ms, history.profile_ids[keep], from_aggregates(names, raw, cutoff_ms))


def compute(conn: Connection, cutoff_ms: int, names: EventNames) -> FeatureMatrix:
    """Every profile with events before ``cutoff_ms`` and its features."""
    history = load_history(conn, names, cutoff_ms, cutoff_ms - EMAIL_WINDOW * DAY_MS)
    return matrix_at(history, cutoff_ms)


def from_aggregates(columns: list[str], raw: np.ndarray, cutoff_ms: int) -> np.ndarray:
    """The feature matrix from per-profile aggregates (counts, sums, first and last times)."""
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
