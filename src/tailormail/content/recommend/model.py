"""Product recommendations: item-to-item co-occurrence with popularity fallbacks.

The model is a cosine item-item similarity over a weighted person x product
matrix (a purchase counts more than an add-to-cart, which counts more than a
view), computed with scipy sparse algebra from the events before ``now``.
A person's score for a product is the similarity-weighted sum of what they
touched.  Slots the similarity cannot fill come from the most popular products
of the person's favourite category, then the most popular products overall.
Anything the person purchased in the last ``exclude_purchased_days`` (default
90) is never recommended.

The model is cached per database and per hour of ``now``; models trained in
the background (each day's successor, and the first one of a large store) are
also kept in the database (``recommend_models``), so a new process starts
from them.  A person's own history is always read fresh, so an order placed a
second ago is excluded.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from scipy import sparse
from sqlalchemy import Connection

from tailormail.config import EventNames, Settings
from tailormail.store import content as content_q
from tailormail.store import events as event_q
from tailormail.store import products as product_q
from tailormail.store import profiles as profile_q
from tailormail.store.engine import write_transaction

log = logging.getLogger(__name__)

DAY_MS = 86_400_000
HOUR_MS = 3_600_000


@dataclass(frozen=True)
class Product:
    """A catalog product as templates see it (``reason`` says why it was chosen)."""

    product_id: str
    name: str
    category: str | None = None
    price: float | None = None
    url: str | None = None
    image: str | None = None
    reason: str = ""

    def as_context(self) -> dict[str, Any]:
        """The dict a template loops over: name, price ("19.99"), url, image, category, id."""
        return {
            "product_id": self.product_id,
            "id": self.product_id,
            "name": self.name,
            "price": None if self.price is None else f"{self.price:.2f}",
            "url": self.url,
            "image": self.image,
            "category": self.category,
        }


@dataclass(frozen=True)
class RecommendSettings:
    """How recommendations are learnt; the ``[recommend]`` table of tailormail.toml."""

    lookback_days: int = 365
    """Only events this recent train the model (old tastes fade, and it bounds the work)."""
    exclude_purchased_days: int = 90
    """Never recommend what the person bought in this many days (no "buy it again")."""
    view_weight: float = 1.0
    cart_weight: float = 2.0
    purchase_weight: float = 4.0
    max_age_hours: int = 24
    """Serve a trained model this long, then train its successor in the background (training is the costly part)."""
    inline_training_max_events: int = 200_000
    """With no model yet, a send trains one at once only in a store of at most this many events.

    Sends run inside write transactions: training at a million customers took
    minutes, with every writer waiting.  Above this size the first model trains
    in the background (sends meanwhile get no recommendations) and is kept in
    the database, so it is trained once per workspace, not once per process.
    """

    @classmethod
    def of(cls, settings: Settings) -> RecommendSettings:
        """Settings from the ``[recommend]`` table of tailormail.toml; unknown keys are an error."""
        return settings.table(cls, "recommend")


@dataclass(frozen=True)
class Touch:
    """One person's interaction with one product (a view, cart add or purchase)."""

    profile_id: int
    product_id: str
    weight: float
    purchased: bool
    ts: int


def products_in(properties: dict[str, Any]) -> list[str]:
    """The product ids an event mentions: ``product_id`` or Segment's ``products[]``."""
    found: list[str] = []
    single = properties.get("product_id") or properties.get("sku")
    if single is not None:
        found.append(str(single))
    for line in properties.get("products") or []:
        if isinstance(line, dict) and (line.get("product_id") or line.get("sku")) is not None:
            found.append(str(line.get("product_id") or line.get("sku")))
    return found


def _weights(names: EventNames, settings: RecommendSettings) -> dict[str, float]:
    return {
        names.product_view: settings.view_weight,
        names.add_to_cart: settings.cart_weight,
        names.purchase: settings.purchase_weight,
    }


def touches_from(
    rows: Iterable[tuple[int, str, dict[str, Any], int]], weights: dict[str, float], purchase: str
) -> Iterator[Touch]:
    """Expand event rows into one Touch per product mentioned."""
    for profile_id, event, properties, ts in rows:
        for product_id in products_in(properties):
            yield Touch(profile_id, product_id, weights[event], event == purchase, ts)


@dataclass
class Model:
    """Item-item similarities and popularity learnt from the events before a moment."""

    items: list[str]
    index: dict[str, int]
    similarity: sparse.csr_matrix
    popularity: np.ndarray
    category_of: dict[str, str | None]
    catalog: dict[str, dict[str, Any]] = field(default_factory=dict)

    ranked: dict[str | None, list[str]] = field(default_factory=dict)
    """Popularity order per category (None: overall), computed on first use."""

    def to_bytes(self) -> bytes:
        """The model as an .npz archive: arrays as they are, names and catalog rows as JSON (no pickles)."""
        meta = {"items": self.items, "category_of": self.category_of, "catalog": self.catalog}
        similarity = self.similarity.tocsr()
        buffer = io.BytesIO()
        np.savez_compressed(
            buffer,
            meta=np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8),
            data=similarity.data,
            indices=similarity.indices,
            indptr=similarity.indptr,
            shape=np.array(similarity.shape, dtype=np.int64),
            popularity=self.popularity,
        )
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, payload: bytes) -> Model:
        """The model ``to_bytes`` wrote."""
        with np.load(io.BytesIO(payload), allow_pickle=False) as archive:
            meta = json.loads(archive["meta"].tobytes().decode("utf-8"))
            shape = tuple(int(n) for n in archive["shape"])
            similarity = sparse.csr_matrix((archive["data"], archive["indices"], archive["indptr"]), shape=shape)
            popularity = archive["popularity"]
        items = list(meta["items"])
        index = {p: i for i, p in enumerate(items)}
        return cls(items, index, similarity, popularity, meta["category_of"], meta["catalog"])

    def popular(self, category: str | None = None) -> list[str]:
        """Products by popularity (ties by id), optionally within one category."""
        if not self.ranked:
            order = sorted(range(len(self.items)), key=lambda i: (-self.popularity[i], self.items[i]))
            overall = [self.items[i] for i in order if self.popularity[i] > 0]
            self.ranked[None] = overall
            for product_id in overall:
                self.ranked.setdefault(self.category_of.get(product_id) or "", []).append(product_id)
        return self.ranked.get(category, []) if category is not None else self.ranked[None]


def fit(touches: Sequence[Touch], catalog: dict[str, dict[str, Any]]) -> Model:
    """Learn a Model from touches; products missing from the catalog are ignored."""
    items = sorted({t.product_id for t in touches if t.product_id in catalog})
    index = {p: i for i, p in enumerate(items)}
    people = {pid: i for i, pid in enumerate(sorted({t.profile_id for t in touches}))}
    kept = [t for t in touches if t.product_id in index]
    return fit_cells(
        np.array([people[t.profile_id] for t in kept], dtype=np.int64),
        np.array([index[t.product_id] for t in kept], dtype=np.int64),
        np.array([t.weight for t in kept], dtype=np.float64),
        len(people),
        items,
        max((t.weight for t in kept), default=1.0),
        catalog,
    )


def fit_cells(
    rows: np.ndarray,
    cols: np.ndarray,
    weights: np.ndarray,
    n_people: int,
    items: list[str],
    cap: float,
    catalog: dict[str, dict[str, Any]],
) -> Model:
    """Learn a Model from (person row, product column, weight) cells; repeated cells add up.

    ``cap`` bounds each summed cell: repeated views of one product should not
    outweigh a purchase, so no cell exceeds the largest single touch weight.
    """
    matrix = sparse.coo_matrix((weights, (rows, cols)), shape=(n_people, len(items))).tocsr()
    matrix.data = np.minimum(matrix.data, cap)
    popularity = np.asarray(matrix.sum(axis=0)).ravel()
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=0)).ravel())
    normalised = matrix @ sparse.diags(np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0))
    similarity = (normalised.T @ normalised).tocsr()
    similarity.setdiag(0.0)
    similarity.eliminate_zeros()
    category_of = {p: catalog[p].get("category") for p in items}
    return Model(items, {p: i for i, p in enumerate(items)}, similarity, popularity, category_of, catalog)


_CACHE: dict[tuple[str, tuple[str, ...], RecommendSettings], tuple[int, Model]] = {}
"""(database, event names, settings) -> (the moment the model was trained as of, the model)."""
_CACHE_LOCK = threading.Lock()


def model_for(conn: Connection, now_ms: int, names: EventNames, settings: RecommendSettings) -> Model:
    """The model trained on events before a moment at most ``max_age_hours`` before ``now_ms``.

    Training reads every product event of the lookback window (minutes at millions of
    customers), and this is called from sends inside ingest and timer transactions.  So
    a process takes the model this process trained, else the one kept in the database;
    with neither, a small store trains one here and a large one (more events than
    ``inline_training_max_events``) in the background, serving an empty model (no
    recommendations) until it is ready.  A model past its age keeps serving while a
    background thread trains its successor.  A model is never used for a moment before
    the one it was trained as of (it would have seen the future): a clock that moved
    backwards trains here.
    """
    event_names = tuple(_weights(names, settings))
    key = (str(conn.engine.url), event_names, settings)
    with _CACHE_LOCK:
        cached = _CACHE.get(key)
    if cached is None or now_ms < cached[0]:
        kept = content_q.recommend_model(conn, stored_key(names, settings), now_ms)
        if kept is not None:
            cached = (kept[0], Model.from_bytes(kept[1]))
            _keep_in_process(key, *cached)
    if cached is not None and now_ms >= cached[0]:
        if now_ms - cached[0] >= settings.max_age_hours * HOUR_MS:
            _refresh_in_background(conn.engine, key, now_ms, names, settings)
        return cached[1]
    events = event_q.event_count_estimate(conn)
    if events > settings.inline_training_max_events:
        if _refresh_in_background(conn.engine, key, now_ms, names, settings):
            log.warning(
                "recommendations: training the first model in the background (about %s events); until it is "
                "ready, emails get no recommendations",
                f"{events:,}",
            )
        return fit([], {})
    return _train_and_keep(conn, key, now_ms, names, settings)


def stored_key(names: EventNames, settings: RecommendSettings) -> str:
    """The database key of the models learnt with these event names, weights and lookback (what training reads)."""
    learnt_with = {"weights": _weights(names, settings), "lookback_days": settings.lookback_days}
    return hashlib.sha256(json.dumps(learnt_with, sort_keys=True).encode("utf-8")).hexdigest()


def _train_and_keep(
    conn: Connection,
    key: Any,
    now_ms: int,
    names: EventNames,
    settings: RecommendSettings,
    people_per_snapshot: int | None = None,
) -> Model:
    trained_as_of = _as_of(now_ms)
    model = train(conn, trained_as_of, names, settings, people_per_snapshot=people_per_snapshot)
    _keep_in_process(key, trained_as_of, model)
    return model


def _as_of(now_ms: int) -> int:
    """The moment a model for ``now_ms`` learns up to: the whole hour, so near moments share one model."""
    return now_ms - now_ms % HOUR_MS


def _keep_in_process(key: Any, trained_as_of: int, model: Model) -> None:
    with _CACHE_LOCK:
        _CACHE.clear()  # one model per process is enough; older ones are stale
        _CACHE[key] = (trained_as_of, model)


_REFRESHING: dict[Any, threading.Thread] = {}

PEOPLE_PER_SNAPSHOT = 100_000
"""Background training reads this many profile ids per read transaction (about 30 s each at 1M customers)."""


def _refresh_in_background(engine: Any, key: Any, now_ms: int, names: EventNames, settings: RecommendSettings) -> bool:
    """Train a model on a thread of its own and keep it (one at a time per model); False: one is training."""
    with _CACHE_LOCK:
        running = _REFRESHING.get(key)
        if running is not None and running.is_alive():
            return False

        def work() -> None:
            try:
                with engine.connect() as conn:
                    model = _train_and_keep(conn, key, now_ms, names, settings, people_per_snapshot=PEOPLE_PER_SNAPSHOT)
                payload = model.to_bytes()
                with write_transaction(engine) as conn:  # other processes (and this one, restarted) start from it
                    content_q.save_recommend_model(conn, stored_key(names, settings), _as_of(now_ms), payload)
            except Exception:  # the stale model keeps serving; the next send tries again
                log.exception("recommendations: training the next model failed")

        thread = threading.Thread(target=work, name="tailormail-recommend-train", daemon=True)
        _REFRESHING[key] = thread
    thread.start()
    return True


def wait_for_training(timeout_s: float | None = None) -> None:
    """Wait until background training started so far has finished (tests, orderly shutdown)."""
    with _CACHE_LOCK:
        threads = list(_REFRESHING.values())
    for thread in threads:
        thread.join(timeout_s)


def train(
    conn: Connection,
    now_ms: int,
    names: EventNames,
    settings: RecommendSettings,
    *,
    people_per_snapshot: int | None = None,
) -> Model:
    """Train a Model on the lookback window before ``now_ms`` (no cache).

    The database sums each person's touches of each catalog product, so what
    crosses into Python is one row per (person, product), not every event.
    ``people_per_snapshot``: read that many profile ids at a time, each slice in
    a read transaction of its own (ended here: only for a connection of the
    caller's own, not one inside a transaction that must go on).  One snapshot
    held for the minutes training takes at a million customers kept SQLite's
    checkpoints from folding in anything written meanwhile, so the log grew.
    """
    weights = _weights(names, settings)
    profile_ids: list[np.ndarray] = []
    first_seen: dict[str, int] = {}  # product id -> column, in order of first appearance
    columns: list[np.ndarray] = []
    totals: list[np.ndarray] = []
    cap = 0.0
    slices: list[tuple[int, int] | None] = [None]
    if people_per_snapshot is not None:
        last = profile_q.largest_profile_id(conn)
        slices = [(first, first + people_per_snapshot - 1) for first in range(1, last + 1, people_per_snapshot)]
    for id_slice in slices:
        for chunk in product_q.touch_totals(
            conn,
            weights,
            view=names.product_view,
            cart=names.add_to_cart,
            purchase=names.purchase,
            since_ms=now_ms - settings.lookback_days * DAY_MS,
            until_ms=now_ms,
            profiles=id_slice,
        ):
            profile_ids.append(np.fromiter((r[0] for r in chunk), dtype=np.int64, count=len(chunk)))
            columns.append(
                np.fromiter(
                    (first_seen.setdefault(r[1], len(first_seen)) for r in chunk), dtype=np.int64, count=len(chunk)
                )
            )
            totals.append(np.fromiter((r[2] for r in chunk), dtype=np.float64, count=len(chunk)))
            cap = max(cap, max(r[3] for r in chunk))
        if id_slice is not None:
            conn.rollback()  # a read: ending it lets checkpoints move past this slice's snapshot
    if not first_seen:
        return fit([], {})
    people, rows = np.unique(np.concatenate(profile_ids), return_inverse=True)
    items = sorted(first_seen)
    position = {p: i for i, p in enumerate(items)}
    sorted_column = np.array([position[p] for p in first_seen], dtype=np.int64)  # columns in product id order
    cols = sorted_column[np.concatenate(columns)]
    catalog = product_q.products_by_id(conn, items)
    return fit_cells(rows, cols, np.concatenate(totals), len(people), items, cap, catalog)


def clear_cache() -> None:
    """Forget cached models (after a catalog import, or between tests)."""
    with _CACHE_LOCK:
        _CACHE.clear()


@dataclass
class History:
    """What one person touched (weights per product) and recently bought."""

    weights: dict[str, float] = field(default_factory=dict)
    recently_bought: set[str] = field(default_factory=set)


def histories(
    conn: Connection, profile_ids: Sequence[int], now_ms: int, names: EventNames, settings: RecommendSettings
) -> dict[int, History]:
    """Each person's touches in the lookback window, read fresh (never cached)."""
    weights = _weights(names, settings)
    rows = product_q.product_events_of(
        conn, profile_ids, list(weights), since_ms=now_ms - settings.lookback_days * DAY_MS, until_ms=now_ms + 1
    )
    exclude_since = now_ms - settings.exclude_purchased_days * DAY_MS
    found: dict[int, History] = {pid: History() for pid in profile_ids}
    for touch in touches_from(rows, weights, names.purchase):
        history = found[touch.profile_id]
        history.weights[touch.product_id] = max(history.weights.get(touch.product_id, 0.0), touch.weight)
        if touch.purchased and touch.ts >= exclude_since:
            history.recently_bought.add(touch.product_id)
    return found


def recommend_for(
    conn: Connection,
    profile_ids: Sequence[int],
    k: int = 4,
    now_ms: int = 0,
    *,
    names: EventNames | None = None,
    settings: RecommendSettings | None = None,
) -> dict[int, list[Product]]:
    """Up to ``k`` products for each person, in one batch (every id gets a list)."""
    if now_ms <= 0:
        raise ValueError("recommend_for needs now_ms (the clock's time in ms)")
    names = names or EventNames()
    settings = settings or RecommendSettings()
    model = model_for(conn, now_ms, names, settings)
    people = histories(conn, profile_ids, now_ms, names, settings)
    ranked = rank(model, [people[pid] for pid in profile_ids], k)
    wanted = {p for ids in ranked for p, _ in ids}
    catalog = {**model.catalog, **product_q.products_by_id(conn, sorted(wanted - set(model.catalog)))}
    return {
        pid: [_product(catalog[p], reason) for p, reason in picks if p in catalog]
        for pid, picks in zip(profile_ids, ranked, strict=True)
    }


RANK_CHUNK = 500
"""People scored at once: the dense score matrix is chunk x products floats."""


def rank(model: Model, people: Sequence[History], k: int) -> list[list[tuple[str, str]]]:
    """(product id, reason) picks for each person: similar, then category, then popular."""
    picks: list[list[tuple[str, str]]] = []
    for start in range(0, len(people), RANK_CHUNK):
        picks += _rank_chunk(model, people[start : start + RANK_CHUNK], k)
    return picks


def _rank_chunk(model: Model, people: Sequence[History], k: int) -> list[list[tuple[str, str]]]:
    scores = _similar_scores(model, people)
    overall = model.popular()
    picks: list[list[tuple[str, str]]] = []
    for row, history in enumerate(people):
        chosen: list[tuple[str, str]] = []
        blocked = set(history.recently_bought)
        for i in _top(scores[row], k + len(blocked)):
            _take(chosen, blocked, model.items[i], "similar to what you viewed or bought", k)
        favourite = _favourite_category(model, history)
        if favourite is not None:
            for product_id in model.popular(favourite):
                _take(chosen, blocked, product_id, f"popular in {favourite}", k)
        for product_id in overall:
            _take(chosen, blocked, product_id, "popular", k)
        picks.append(chosen)
    return picks


def _top(row: np.ndarray, n: int) -> list[int]:
    """Indexes of the n best positive scores, best first (ties by index)."""
    positive = np.flatnonzero(row > 0)
    if len(positive) > n:
        positive = positive[np.argpartition(-row[positive], n - 1)[:n]]
    return sorted(positive.tolist(), key=lambda i: (-row[i], i))


def _take(chosen: list[tuple[str, str]], blocked: set[str], product_id: str, reason: str, k: int) -> None:
    if len(chosen) < k and product_id not in blocked:
        chosen.append((product_id, reason))
        blocked.add(product_id)


def _similar_scores(model: Model, people: Sequence[History]) -> np.ndarray:
    """A dense people x products score matrix: history weights times similarity."""
    rows, cols, data = [], [], []
    for row, history in enumerate(people):
        for product_id, weight in history.weights.items():
            if product_id in model.index:
                rows.append(row)
                cols.append(model.index[product_id])
                data.append(weight)
    touched = sparse.csr_matrix((data, (rows, cols)), shape=(len(people), len(model.items)))
    return np.asarray((touched @ model.similarity).todense()) if model.items else np.zeros((len(people), 0))


def _favourite_category(model: Model, history: History) -> str | None:
    totals: dict[str, float] = {}
    for product_id, weight in history.weights.items():
        category = model.category_of.get(product_id)
        if category:
            totals[category] = totals.get(category, 0.0) + weight
    return min(totals, key=lambda c: (-totals[c], c)) if totals else None


def _product(row: dict[str, Any], reason: str) -> Product:
    return Product(
        product_id=row["product_id"],
        name=row["name"],
        category=row.get("category"),
        price=row.get("price"),
        url=row.get("url"),
        image=row.get("image_url"),
        reason=reason,
    )


def popular_for(model: Model, people: Sequence[History], k: int) -> list[list[tuple[str, str]]]:
    """The baseline: the k most popular products each person did not just buy."""
    return rank(model, [replace(h, weights={}) for h in people], k)


def recommendation_source(
    now_ms: int, *, k: int = 4, names: EventNames | None = None, settings: RecommendSettings | None = None
) -> Callable[[Connection, Sequence[int]], dict[int, list[dict[str, Any]]]]:
    """``(conn, profile_ids) -> template dicts``: what the renderer's data sources take."""

    def recommend(conn: Connection, profile_ids: Sequence[int]) -> dict[int, list[dict[str, Any]]]:
        found = recommend_for(conn, profile_ids, k, now_ms, names=names, settings=settings)
        return {pid: [p.as_context() for p in products] for pid, products in found.items()}

    return recommend
