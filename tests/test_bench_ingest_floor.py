"""The hand-written ingest floor stores what the real ingest path stores for the same stream, and nothing twice."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from bench.ingest_floor import floor_rows, run_floor

from conftest import T0
from tailormail.clock import ManualClock, to_ms
from tailormail.config import DATABASE_FILE
from tailormail.ingest.pipeline import Ingestor
from tailormail.runtime import Runtime, open_runtime
from tailormail.store.engine import sqlite_file
from tailormail.workspace import init_workspace

CUSTOMERS = [f"u{i}" for i in range(6)]

STREAM: list[dict[str, Any]] = [
    {"type": "track", "userId": "u0", "event": "product_view", "messageId": "m1", "properties": {"product_id": "p1"}},
    {"type": "track", "userId": "u1", "event": "add_to_cart", "messageId": "m2", "properties": {"price": 20.0}},
    {"type": "track", "userId": "u1", "event": "purchase", "messageId": "m3", "properties": {"revenue": 42.5}},
    {"type": "identify", "userId": "u2", "messageId": "m4", "traits": {"plan": "pro"}},
    {"type": "track", "userId": "u3", "event": "product_view", "messageId": "m5", "properties": {}},
    {"type": "track", "userId": "u0", "event": "purchase", "messageId": "m6", "properties": {"revenue": 10}},
]
"""Tracks with and without revenue, one person twice, an identify: three batches of two."""

STORED = (
    "SELECT e.message_id, p.user_id, e.anonymous_id, e.type, e.event, e.properties, e.context, e.revenue, e.ts,"
    " e.received_at FROM events e JOIN profiles p ON p.id = e.profile_id WHERE e.message_id LIKE 'm%'"
)
SEEN = "SELECT p.user_id, s.first_seen, s.last_seen FROM profile_seen s JOIN profiles p ON p.id = s.profile_id"


def _shop(root: Path, clock: ManualClock) -> Runtime:
    """A SQLite workspace whose customers were identified at T0."""
    init_workspace(root)
    rt = open_runtime(root, database_url=f"sqlite:///{root / DATABASE_FILE}", clock=clock)
    Ingestor(rt.store, clock).ingest_raw(
        [{"type": "identify", "userId": u, "messageId": f"signup-{u}", "traits": {}} for u in CUSTOMERS]
    )
    return rt


@pytest.fixture
def shops(tmp_path: Path) -> Iterator[tuple[Runtime, Runtime, ManualClock]]:
    """Two identical shops, an hour after their customers signed up."""
    clock = ManualClock(T0)
    real, floor = _shop(tmp_path / "real", clock), _shop(tmp_path / "floor", clock)
    clock.set(T0 + timedelta(hours=1))
    yield real, floor, clock
    real.close()
    floor.close()


def _rows(rt: Runtime, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(str(sqlite_file(rt.store.engine))) as conn:
        return sorted(conn.execute(sql).fetchall())


def _events(rt: Runtime) -> list[tuple[Any, ...]]:
    """The stream's stored events, properties decoded (the two paths may space JSON differently)."""
    return [(*r[:5], json.loads(r[5]), *r[6:]) for r in _rows(rt, STORED)]


def test_the_floor_stores_the_same_events_and_last_seen_as_the_ingest_path(
    shops: tuple[Runtime, Runtime, ManualClock],
) -> None:
    real, floor, clock = shops
    ingest = Ingestor(real.store, clock)
    for start in range(0, len(STREAM), 2):
        ingest.ingest_raw(STREAM[start : start + 2])

    stored = run_floor(floor.store, floor_rows(STREAM), batch=2, now_ms=to_ms(clock.now()))

    assert stored == len(STREAM)
    rows = _events(floor)
    assert rows == _events(real)
    assert [r[7] for r in rows] == [None, None, 42.5, None, None, 10.0]  # m1..m6: revenue of purchases only
    assert _rows(floor, SEEN) == _rows(real, SEEN)
    moved = {u for u, first, last in _rows(floor, SEEN) if last > first}
    assert moved == {"u0", "u1", "u2", "u3"}


def test_a_message_id_already_stored_is_not_stored_again(shops: tuple[Runtime, Runtime, ManualClock]) -> None:
    _, floor, clock = shops
    rows = floor_rows(STREAM)
    first = run_floor(floor.store, rows[:4], batch=4, now_ms=to_ms(clock.now()))
    again = run_floor(floor.store, rows, batch=3, now_ms=to_ms(clock.now()))

    assert (first, again) == (4, 2)
    assert len(_events(floor)) == len(STREAM)
