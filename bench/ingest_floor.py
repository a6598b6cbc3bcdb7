"""The hand-written floor of ingest: the SQL every stored event needs, and nothing else.

Real time's target (#3: 20,000 events/s through the ingest path with every
hook) had no hand-written counterpart in the same run, as the batch queries
do.  This is the nearest one: per batch, in one transaction on the store's own
connection (its PRAGMAs, page cache, write queue and background checkpointer),
plain driver calls do what no ingest path can skip for the events of known
customers:

1. find the senders' profiles by user id;
2. look the message ids up (exact dedup);
3. insert the events (the table, its message-id key and its two indexes);
4. move each sender's last seen.

No validation, identify traits, hooks, journeys or segments: each only adds
to this.  Messages become rows before the clock starts, as the stream makes
its messages before its clock starts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from tailormail.store import Store
from tailormail.store.dialect import driver_cursor, tune_for_bulk_writes

_PROFILES = "SELECT user_id, id FROM profiles WHERE user_id IN (SELECT value FROM json_each(?))"
_KNOWN = "SELECT message_id FROM events WHERE message_id IN (SELECT value FROM json_each(?))"
_INSERT = (
    "INSERT INTO events (message_id, profile_id, anonymous_id, type, event, properties, context, revenue, ts,"
    " received_at) VALUES (?, ?, NULL, ?, ?, ?, NULL, ?, ?, ?)"
)
_SEEN = "UPDATE profile_seen SET last_seen = max(last_seen, ?) WHERE profile_id = ?"


@dataclass(frozen=True)
class FloorRow:
    """One message as the floor stores it: who sent it and the event's own columns."""

    user_id: str
    message_id: str
    type: str
    event: str | None
    properties: str
    revenue: float | None


def floor_rows(messages: Sequence[dict[str, Any]]) -> list[FloorRow]:
    """The stream's raw messages as floor rows (an identify's traits stand as its properties)."""
    rows = []
    for m in messages:
        properties = m.get("properties") or m.get("traits") or {}
        revenue = properties.get("revenue") if m["type"] == "track" else None
        rows.append(
            FloorRow(m["userId"], m["messageId"], m["type"], m.get("event"), orjson.dumps(properties).decode(), revenue)
        )
    return rows


def store_floor_batch(store: Store, rows: Sequence[FloorRow], now_ms: int) -> int:
    """One transaction of the four statements; return how many events it stored (known ids are skipped).

    Every sender must be a stored customer, as in the bench's stream: a new
    person's profile is work the floor leaves out.
    """
    with store.begin() as conn:
        tune_for_bulk_writes(conn)
        cursor = driver_cursor(conn)
        users = orjson.dumps(sorted({r.user_id for r in rows})).decode()
        profile_of = dict(cursor.execute(_PROFILES, (users,)).fetchall())
        known = {mid for (mid,) in cursor.execute(_KNOWN, (orjson.dumps([r.message_id for r in rows]).decode(),))}
        fresh = [r for r in rows if r.message_id not in known]
        cursor.executemany(
            _INSERT,
            [
                (r.message_id, profile_of[r.user_id], r.type, r.event, r.properties, r.revenue, now_ms, now_ms)
                for r in fresh
            ],
        )
        cursor.executemany(_SEEN, [(now_ms, profile_of[r.user_id]) for r in fresh])
        return len(fresh)


def run_floor(store: Store, rows: Sequence[FloorRow], *, batch: int, now_ms: int) -> int:
    """Store ``rows`` in back-to-back batches of ``batch`` through ``store_floor_batch``; return how many were new."""
    return sum(store_floor_batch(store, rows[start : start + batch], now_ms) for start in range(0, len(rows), batch))
