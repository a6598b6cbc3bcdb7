"""The fast benchmark fixture writes the same database as the simulator through bulk ingest."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from bench.fixtures import build_shop_database, load_shop_database, shop_database

from tailormail.config import DATABASE_FILE

CUSTOMERS = 1200
"""Two blocks (the second cut short), so the pool of workers makes them and order matters."""

CONTENT_QUERIES = {
    "profiles": "SELECT p.user_id, p.traits, s.first_seen, s.last_seen, p.updated_at FROM profiles p"
    " JOIN profile_seen s ON s.profile_id = p.id",
    "events": (
        "SELECT e.message_id, p.user_id, e.anonymous_id, e.type, e.event, e.properties, e.context, e.revenue,"
        " e.ts, e.received_at FROM events e JOIN profiles p ON p.id = e.profile_id"
    ),
    "products": "SELECT * FROM products",
    "identity_links": "SELECT i.anonymous_id, p.user_id, i.linked_at FROM identity_links i JOIN profiles p"
    " ON p.id = i.profile_id",
}
"""Every table the simulation writes, surrogate ids replaced by the user id they stand for."""


def _rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        return sorted(conn.execute(sql).fetchall(), key=repr)


def _schema(db: Path) -> set[tuple[str, str, str | None]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_stat%'")
        return set(rows.fetchall())


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The same small shop written both ways: (through bulk ingest, by the fast loader)."""
    root = tmp_path_factory.mktemp("fixtures")
    build_shop_database(root / "ingest", CUSTOMERS, 30, 7)
    load_shop_database(root / "fast", CUSTOMERS, 30, 7)
    return root / "ingest" / DATABASE_FILE, root / "fast" / DATABASE_FILE


@pytest.mark.parametrize("table", sorted(CONTENT_QUERIES))
def test_fast_fixture_has_the_same_rows_as_the_ingest_path(built: tuple[Path, Path], table: str) -> None:
    slow, fast = built
    expected = _rows(slow, CONTENT_QUERIES[table])
    assert _rows(fast, CONTENT_QUERIES[table]) == expected  # JSON compared as stored text, byte for byte
    if table in ("profiles", "events", "products"):
        assert expected, f"the simulation wrote no {table}"


def test_fast_fixture_has_the_same_ids_and_schema(built: tuple[Path, Path]) -> None:
    """Profile and event ids follow the same order, and every index is back after the load."""
    slow, fast = built
    ids = "SELECT e.id, e.profile_id, p.user_id, e.message_id FROM events e JOIN profiles p ON p.id = e.profile_id"
    assert _rows(fast, ids) == _rows(slow, ids)
    assert _schema(fast) == _schema(slow)
    with sqlite3.connect(fast) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("SELECT count(*) FROM sqlite_stat1 WHERE tbl = 'events'").fetchone()[0] > 0  # analyzed


def test_fast_fixture_events_cover_every_kind(built: tuple[Path, Path]) -> None:
    """The comparison means something: identifies, every track kind and purchases with revenue are there."""
    _, fast = built
    kinds = dict(_rows(fast, "SELECT coalesce(event, type), count(*) FROM events GROUP BY 1"))
    assert kinds["identify"] == CUSTOMERS
    assert {"product_view", "add_to_cart", "checkout_started", "purchase"} <= set(kinds)
    revenue = _rows(fast, "SELECT revenue, properties FROM events WHERE event = 'purchase' LIMIT 1")[0]
    assert revenue[0] == json.loads(revenue[1])["revenue"]


def test_shop_database_reuses_a_built_fixture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Built once into the cache folder (no half-built folder left), then returned as is."""
    monkeypatch.setenv("TAILORMAIL_BENCH_CACHE", str(tmp_path))
    first = shop_database(20, 3, 1)
    assert first == tmp_path / "shop-20c-3d-seed1"
    assert not list(tmp_path.glob("*.building"))
    stamp = (first / DATABASE_FILE).stat().st_mtime_ns
    assert shop_database(20, 3, 1) == first
    assert (first / DATABASE_FILE).stat().st_mtime_ns == stamp
