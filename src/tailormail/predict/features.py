"""Features of each profile as of a cut-off, from its events strictly before it.

The events are read once into narrow numpy columns (a ``History``: time and
profile of each view, add-to-cart, purchase, open and click, from the
covering index; revenue of purchases; categories of a recent window; see
``store.predict``).  Features as of any cut-off covered by the history are
then counted with ``np.bincount`` over time-sorted slices, so training at four
cut-offs and labelling their outcomes reads the events once.  Read from a
Store, the queries run on two connections at once, the table scan split in
two by id range on SQLite.  Every feature:

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

import json
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import Connection

from tailormail.config import EventNames
from tailormail.store import Store
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

    Categories and email events are kept only from ``category_since_ms``, so
    cut-offs must be at least ``EMAIL_WINDOW`` days later than that.
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
        if kind in EMAIL_KINDS and (start_ms is None or start_ms < self.category_since_ms):
            raise ValueError(f"{kind} events were read from {self.category_since_ms} only, not {start_ms}")
        line = self.kinds[kind]
        return np.bincount(line.row[line.between(start_ms, end_ms)], minlength=len(self.profile_ids)).astype(float)

    def revenue_between(self, start_ms: int | None, end_ms: int) -> np.ndarray:
        """Revenue of purchases per profile in [start, end)."""
        line = self.kinds["purchase"]
        window = line.between(start_ms, end_ms)
        return np.bincount(line.row[window], weights=self.revenue[window], minlength=len(self.profile_ids))

    def last(self, kind: str, end_ms: int) -> np.ndarray:
        """Time of each profile's last event of ``kind`` before ``end_ms`` (-1: none)."""
        line = self.kinds[kind]
        window = line.between(None, end_ms)
        latest = np.full(len(self.profile_ids), -1, dtype=np.int64)
        np.maximum.at(latest, line.row[window], line.ts[window])
        return latest

    def distinct_categories(self, start_ms: int, end_ms: int) -> np.ndarray:
        """Distinct categories per profile among the events in [start, end)."""
        if start_ms < self.category_since_ms:
            raise ValueError(f"categories were read from {self.category_since_ms} only, not {start_ms}")
        window = self.categories.between(start_ms, end_ms)
        width = int(self.category_codes.max(initial=0)) + 1
        pairs = np.sort(self.categories.row[window] * width + self.category_codes[window])
        first = np.ones(len(pairs), dtype=bool)  # the first of each run of equal (profile, category) pairs
        first[1:] = pairs[1:] != pairs[:-1]
        return np.bincount(pairs[first] // width, minlength=len(self.profile_ids)).astype(float)


def load_history(source: Store | Connection, names: EventNames, until_ms: int, category_since_ms: int) -> History:
    """Read the events before ``until_ms`` (categories and email events from ``category_since_ms``) into a History.

    Given a Store, the reads run on ``READERS`` connections at once (the
    database works while Python waits); given a Connection, one after another on it.
    """
    shopping = [names.product_view, names.add_to_cart, names.purchase]
    ranges = _scan_ranges(source)
    purchase, since, until = names.purchase, category_since_ms, until_ms

    def scan(ids: tuple[int, int] | None) -> Query:
        return lambda c: _in_time_order(predict_q.purchases_and_categories(c, purchase, shopping, since, until, ids))

    def times(event: str, since_ms: int | None = None) -> Query:
        return lambda c: predict_q.event_times(c, event, until_ms, since_ms)

    # The profiles first (every other result is placed by them), then longest first, so
    # that this thread can place each result while the slower reads still run.
    queries: dict[str, Query] = {"first": lambda c: predict_q.first_event_times(c, until_ms)}
    queries.update({f"scan{i}": scan(ids) for i, ids in enumerate(ranges)})
    kinds_events = [("view", names.product_view), ("cart", names.add_to_cart), *EMAIL_EVENTS]
    # Views and carts from the start (days since the last one); email events only where a window reaches.
    queries.update({kind: times(event, since if kind in EMAIL_KINDS else None) for kind, event in kinds_events})
    with _started(source, queries) as found:
        ids, first_ts = found["first"].result()
        order = _ascending(ids)
        ids, first_ts = ids[order], first_ts[order]
        kinds = {kind: _timeline(ids, *found[kind].result())[0] for kind, _ in kinds_events}
        parts = [found[f"scan{i}"].result() for i in range(len(ranges))]

    def joined(field: str) -> np.ndarray:
        # Each part is in time order already: the stable sort of _timeline merges the runs.
        return np.concatenate([getattr(part, field) for part in parts])

    kinds["purchase"], (revenue,) = _timeline(ids, joined("purchase_ts"), joined("purchase_profile"), joined("revenue"))
    codes = _renumbered([(part.codes, part.values) for part in parts])
    categories, (codes,) = _timeline(ids, joined("category_ts"), joined("category_profile"), codes, keep=codes >= 0)
    return History(until_ms, category_since_ms, ids, first_ts, kinds, revenue, categories, codes)


@dataclass(frozen=True)
class _ScanPart:
    """One range of the table scan, prepared in its reading thread: time order, categories numbered."""

    purchase_ts: np.ndarray
    purchase_profile: np.ndarray
    revenue: np.ndarray
    category_ts: np.ndarray
    category_profile: np.ndarray
    codes: np.ndarray
    values: list[object]
    """The distinct categories of this part, by code."""


def _in_time_order(rows: predict_q.PurchasesAndCategories) -> _ScanPart:
    """Sort a scanned range by time and number its categories (in the reader thread, beside the other reads).

    The sorts are stable, so events at the same time keep the table's order.
    """
    codes, values = _codes(rows.categories)
    bought, seen = _ascending(rows.purchase_ts), _ascending(rows.category_ts)
    return _ScanPart(
        rows.purchase_ts[bought],
        rows.purchase_profile[bought],
        rows.revenue[bought],
        rows.category_ts[seen],
        rows.category_profile[seen],
        codes[seen],
        values,
    )


def _renumbered(parts: list[tuple[np.ndarray, list[object]]]) -> np.ndarray:
    """The parts' category codes, concatenated and renumbered to one numbering across parts (-1 stays)."""
    numbers: dict[object, int] = {}
    out = []
    for codes, values in parts:
        # Index -1 (no category) reads the appended -1.
        mapping = np.array([numbers.setdefault(v, len(numbers)) for v in values] + [-1], dtype=np.int64)
        out.append(mapping[codes])
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


Query = Callable[[Connection], Any]
"""One read of ``load_history``."""
READERS = 2
"""Connections reading at once: this machine's two cores; SQLite and the driver release the GIL while stepping."""


def _scan_ranges(source: Store | Connection) -> list[tuple[int, int] | None]:
    """The id ranges of the table scan: one per reader on SQLite, one in all otherwise."""
    if isinstance(source, Connection):
        return [None]
    with source.read() as conn:
        return predict_q.event_id_ranges(conn, READERS)


@contextmanager
def _started(source: Store | Connection, queries: dict[str, Query]) -> Iterator[dict[str, Future[Any]]]:
    """Each query's future: running on ``READERS`` connections of a Store, or already run in turn on one Connection."""
    if isinstance(source, Connection):
        done: dict[str, Future[Any]] = {}
        for name, query in queries.items():
            done[name] = Future()
            done[name].set_result(query(source))
        yield done
        return
    store = source

    def run(query: Query) -> Any:
        with store.read() as conn, predict_q.scanning(conn):
            return query(conn)

    with ThreadPoolExecutor(max_workers=READERS, thread_name_prefix="predict-read") as pool:
        yield {name: pool.submit(run, query) for name, query in queries.items()}


EMAIL_EVENTS = (("opened", "email_opened"), ("clicked", "email_clicked"))
"""The email engagement events (named by the tracking module, not configurable)."""
EMAIL_KINDS = frozenset(kind for kind, _ in EMAIL_EVENTS)
"""Counted only in the ``EMAIL_WINDOW`` before a cut-off."""


def _ascending(values: np.ndarray) -> np.ndarray | slice:
    """The order that sorts ``values`` (a no-op slice when they already are, as the databases return them)."""
    if bool(np.all(values[1:] >= values[:-1])):
        return slice(None)
    return np.argsort(values, kind="stable")


def _timeline(
    ids: np.ndarray, ts: np.ndarray, pid: np.ndarray, *aligned: np.ndarray, keep: np.ndarray | None = None
) -> tuple[Timeline, list[np.ndarray]]:
    """The events (and ``aligned`` values) of profiles in ``ids``, in time order.

    An event of a profile stored after the first query ran has no row and is left out.
    """
    row = _rows(ids, pid)
    known = row >= 0
    if keep is not None:
        known &= keep
    ts, row = ts[known], row[known]
    order = _ascending(ts)
    return Timeline(ts[order], row[order]), [values[known][order] for values in aligned]


def _rows(ids: np.ndarray, pid: np.ndarray) -> np.ndarray:
    """The position of each of ``pid`` in the sorted ``ids`` (-1 where absent).

    Profile ids are dense (autoincrement), so a lookup table indexed by id
    replaces a binary search per event; very sparse ids fall back to the search.
    """
    if not len(ids) or not len(pid):
        return np.full(len(pid), -1, dtype=np.int64)
    top = int(max(ids[-1], pid.max()))
    if ids[0] >= 0 and pid.min() >= 0 and top < 8 * len(ids) + 1_000_000:
        table = np.full(top + 1, -1, dtype=np.int64)
        table[ids] = np.arange(len(ids))
        return table[pid]
    row = np.searchsorted(ids, pid)
    return np.where(ids[np.minimum(row, len(ids) - 1)] == pid, row, -1)


def _codes(values: list[object]) -> tuple[np.ndarray, list[object]]:
    """A number per distinct value (-1 for None: no category), and the distinct values by number."""
    try:
        distinct = dict.fromkeys(values)
        hashable = values
    except TypeError:  # a category given as JSON (an object or list) is compared by its text, as SQL would
        hashable = [json.dumps(v, sort_keys=True) if isinstance(v, dict | list) else v for v in values]
        distinct = dict.fromkeys(hashable)
    distinct.pop(None, None)
    numbers = {value: i for i, value in enumerate(distinct)}
    numbers[None] = -1
    codes = np.fromiter(map(numbers.__getitem__, hashable), dtype=np.int64, count=len(hashable))
    return codes, list(distinct)


def matrix_at(history: History, cutoff_ms: int) -> FeatureMatrix:
    """The features of every profile with an event before ``cutoff_ms``.

    Each column is written straight into one preallocated matrix: on a busy
    machine, touching fresh memory for large temporaries cost more than the counting.
    """
    if cutoff_ms > history.until_ms:
        raise ValueError(f"the history ends at {history.until_ms}, before the cut-off {cutoff_ms}")
    keep = history.first_ts < cutoff_ms
    tenure = (cutoff_ms - history.first_ts[keep]) / DAY_MS
    email_since = cutoff_ms - EMAIL_WINDOW * DAY_MS

    def days_since(kind: str) -> np.ndarray:
        last = history.last(kind, cutoff_ms)[keep]
        return np.where(last < 0, tenure, (cutoff_ms - last) / DAY_MS)

    frequency = history.counts("purchase", None, cutoff_ms)[keep]
    monetary = history.revenue_between(None, cutoff_ms)[keep]
    columns = {
        "recency_days": lambda: days_since("purchase"),
        "frequency": lambda: frequency,
        "monetary": lambda: monetary,
        "aov": lambda: monetary / np.maximum(frequency, 1),
        "tenure_days": lambda: tenure,
        "days_since_view": lambda: days_since("view"),
        "days_since_cart": lambda: days_since("cart"),
        "emails_opened_90d": lambda: history.counts("opened", email_since, cutoff_ms)[keep],
        "emails_clicked_90d": lambda: history.counts("clicked", email_since, cutoff_ms)[keep],
        "category_breadth_90d": lambda: history.distinct_categories(email_since, cutoff_ms)[keep],
    }
    values = np.empty((int(keep.sum()), len(FEATURES)))
    for j, name in enumerate(FEATURES):
        if name in columns:
            values[:, j] = columns[name]()
        else:  # views_7d ... purchases_90d
            kind, days = name.split("_")
            values[:, j] = history.counts(WINDOW_KINDS[kind], cutoff_ms - int(days[:-1]) * DAY_MS, cutoff_ms)[keep]
    np.nan_to_num(values, copy=False)
    return FeatureMatrix(cutoff_ms, history.profile_ids[keep], values)


WINDOW_KINDS = {"views": "view", "carts": "cart", "purchases": "purchase"}
"""The event kind behind each windowed count's name."""


def compute(source: Store | Connection, cutoff_ms: int, names: EventNames) -> FeatureMatrix:
    """Every profile with events before ``cutoff_ms`` and its features (read in parallel from a Store)."""
    history = load_history(source, names, cutoff_ms, cutoff_ms - EMAIL_WINDOW * DAY_MS)
    return matrix_at(history, cutoff_ms)
