"""The simulated shop written straight into a fresh SQLite workspace: minutes at 1M customers.

    result = load_shop(root, customers=1_000_000, days=90, seed=7, end=FIXTURE_END)

The simulator (``tailormail.simulate``) still decides every row; only the
writing differs from ``simulate_into``.  The ingest path must look each
message up (dedupe, identity, traits, first/last seen) because it cannot know
the data is fresh; a fixture built into an empty database can.  So rows are
made here exactly as the ingest path would make them (``encoded_event_rows``, the
same JSON encodings, profile ids in customer order) and inserted with the
driver's executemany in large transactions, with the events table's secondary
indexes built once after the load and ANALYZE run at the end.
tests/test_bench_fixture.py proves the result equals what ``simulate_into``
writes at small scale.
"""

from __future__ import annotations

import multiprocessing
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from tailormail.config import DATABASE_FILE
from tailormail.ingest.pipeline import encoded_event_rows, set_profile_ids
from tailormail.runtime import open_runtime
from tailormail.simulate.output import catalog_row
from tailormail.simulate.shop import Shop, ShopSpec
from tailormail.store import products as product_q
from tailormail.store.dialect import compact_json
from tailormail.store.events import EVENT_COLUMNS
from tailormail.workspace import init_workspace

BLOCKS_PER_TRANSACTION = 50
"""Customer blocks (1,000 customers, ~20,000 events each) per commit: about a million rows."""

DEFERRED_INDEX_TABLES = ("events",)
"""Tables whose secondary indexes are dropped for the load and built after it (one sort each)."""

_encode_traits = compact_json
"""How ``store.profiles.set_traits_many`` encodes ``profiles.traits`` on SQLite."""


@dataclass
class LoadResult:
    """What one load wrote and how long its parts took (seconds)."""

    customers: int
    products: int
    events: int
    load_seconds: float
    index_seconds: float
    analyze_seconds: float


def load_shop(
    root: Path,
    *,
    customers: int,
    days: int,
    seed: int,
    end: datetime,
    now_ms: int | None = None,
    progress: Callable[[int], None] | None = None,
    workers: int = 2,
) -> LoadResult:
    """Create a workspace in ``root`` holding the simulated shop (SQLite, empty beforehand).

    ``workers`` processes simulate and encode blocks while this one writes (1: all in this one).
    """
    init_workspace(root)
    runtime = open_runtime(root, database_url=f"sqlite:///{root / DATABASE_FILE}")  # migrates the schema
    try:
        spec = ShopSpec.ending(end, customers=customers, days=days, seed=seed, events=runtime.settings.events)
        shop = Shop(spec)
        now_ms = spec.end * 1000 if now_ms is None else now_ms
        with runtime.store.begin() as conn:
            if conn.exec_driver_sql("SELECT count(*) FROM profiles").scalar_one():
                raise ValueError(f"{root} already holds profiles: the fast load needs an empty database")
            product_q.upsert_changed_products(conn, [catalog_row(p) for p in shop.catalog.products], now_ms)
    finally:
        runtime.close()
    db = sqlite3.connect(root / DATABASE_FILE, isolation_level=None)
    try:
        return _load(db, shop, now_ms, progress, workers)
    finally:
        db.close()


def _load(
    db: sqlite3.Connection, shop: Shop, now_ms: int, progress: Callable[[int], None] | None, workers: int
) -> LoadResult:
    # A half-built fixture is thrown away, never reused: no journal, no fsync.
    db.execute("PRAGMA journal_mode=OFF")
    db.execute("PRAGMA synchronous=OFF")
    db.execute("PRAGMA cache_size=-1048576")  # 1 GiB: the message_id and user_id indexes stay in memory
    db.execute("PRAGMA temp_store=MEMORY")
    db.execute("PRAGMA threads=2")  # CREATE INDEX sorts with a helper thread
    deferred = _drop_secondary_indexes(db)
    profile_sql = "INSERT INTO profiles (id, user_id, traits, updated_at) VALUES (?,?,?,?)"
    seen_sql = "INSERT INTO profile_seen (profile_id, first_seen, last_seen) VALUES (?,?,?)"
    event_sql = f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) VALUES ({', '.join('?' * len(EVENT_COLUMNS))})"
    started = time.perf_counter()
    events = 0
    db.execute("BEGIN")
    for number, (profile_rows, event_rows) in enumerate(_blocks_of_rows(shop, now_ms, workers), start=1):
        db.executemany(profile_sql, [(pid, user, traits, updated) for pid, user, traits, _, _, updated in profile_rows])
        db.executemany(seen_sql, [(pid, first, last) for pid, _, _, first, last, _ in profile_rows])
        db.executemany(event_sql, event_rows)
        events += len(event_rows)
        if number % BLOCKS_PER_TRANSACTION == 0:
            db.execute("COMMIT")
            db.execute("BEGIN")
        if progress:
            progress(len(profile_rows))
    db.execute("COMMIT")
    loaded = time.perf_counter()
    for sql in deferred:
        db.execute(sql)
    indexed = time.perf_counter()
    db.execute("ANALYZE")
    db.execute("PRAGMA journal_mode=WAL")  # what the store expects of its file
    return LoadResult(
        customers=shop.spec.customers,
        products=len(shop.catalog.products),
        events=events,
        load_seconds=loaded - started,
        index_seconds=indexed - loaded,
        analyze_seconds=time.perf_counter() - indexed,
    )


Rows = tuple[list[tuple[Any, ...]], list[Sequence[Any]]]
"""One block's profile rows and event rows, ready for executemany."""

_worker_shop: tuple[Shop, int] | None = None
"""The shop and ``now_ms`` of a worker process (set before the pool forks)."""


def _blocks_of_rows(shop: Shop, now_ms: int, workers: int) -> Iterator[Rows]:
    """Each block's rows in block order, made by ``workers`` processes while this one writes."""
    global _worker_shop
    if workers <= 1 or shop.block_count < 2:
        yield from (block_rows(shop, number, now_ms) for number in range(shop.block_count))
        return
    _worker_shop = (shop, now_ms)
    try:
        # fork: the workers inherit the shop; each block has its own random streams, so the
        # data does not depend on which process makes it, and imap keeps the block order.
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            yield from pool.imap(_worker_block_rows, range(shop.block_count))
    finally:
        _worker_shop = None


def _worker_block_rows(number: int) -> Rows:
    assert _worker_shop is not None
    shop, now_ms = _worker_shop
    return block_rows(shop, number, now_ms)


def block_rows(shop: Shop, number: int, now_ms: int) -> Rows:
    """The profile and event rows of block ``number``, as the ingest path would write them."""
    block, customers = shop.block(number)
    profile_rows = []
    event_rows: list[Sequence[Any]] = []
    for k, customer in enumerate(customers):
        pid = block.first + k + 1  # the ingest path creates profiles in customer order from 1
        messages = customer.messages
        times = [m.timestamp for m in messages]
        profile_rows.append((pid, customer.user_id, _encode_traits(messages[0].traits), min(times), max(times), now_ms))
        rows = encoded_event_rows(messages, now_ms)  # the bulk path's own rows
        set_profile_ids(rows, [pid] * len(rows))
        event_rows += rows
    return profile_rows, event_rows


def _drop_secondary_indexes(db: sqlite3.Connection) -> list[str]:
    """Drop the explicit indexes of the deferred tables; return the SQL that recreates them."""
    marks = ", ".join("?" * len(DEFERRED_INDEX_TABLES))
    found = db.execute(
        f"SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL AND tbl_name IN ({marks})",
        DEFERRED_INDEX_TABLES,
    ).fetchall()
    for name, _sql in found:
        db.execute(f'DROP INDEX "{name}"')
    return [sql for _name, sql in found]
