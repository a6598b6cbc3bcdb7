"""Named queries on the event log."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from sqlalchemy import Connection, func, select

from tailormail.store.dialect import insert_ignoring_conflicts
from tailormail.store.schema import events, profiles


def insert_events(conn: Connection, rows: list[dict[str, Any]]) -> list[tuple[int, str]]:
    """Insert events, skipping known message ids; return (id, message_id) of new ones."""
    if not rows:
        return []
    stmt = insert_ignoring_conflicts(conn, events).returning(events.c.id, events.c.message_id)
    return [(row[0], row[1]) for row in conn.execute(stmt, rows)]


def insert_events_fast(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Insert events skipping known message ids, without returning ids (bulk import)."""
    if rows:
        conn.execute(insert_ignoring_conflicts(conn, events), rows)


def recent_events(conn: Connection, profile_id: int, limit: int = 50) -> list[dict[str, Any]]:
    """A person's latest events, newest first."""
    rows = conn.execute(
        select(events)
        .where(events.c.profile_id == profile_id)
        .order_by(events.c.ts.desc(), events.c.id.desc())
        .limit(limit)
    ).mappings()
    return [dict(r) for r in rows]


def events_of(conn: Connection, profile_id: int) -> list[dict[str, Any]]:
    """All of a person's events, oldest first (for a data export)."""
    rows = conn.execute(
        select(events).where(events.c.profile_id == profile_id).order_by(events.c.ts, events.c.id)
    ).mappings()
    return [dict(r) for r in rows]


def event_counts(conn: Connection) -> list[tuple[str, str | None, int, float]]:
    """(type, event, count, revenue) for every kind of event, most frequent first."""
    n = func.count().label("n")
    stmt = (
        select(events.c.type, events.c.event, n, func.coalesce(func.sum(events.c.revenue), 0.0))
        .group_by(events.c.type, events.c.event)
        .order_by(n.desc())
    )
    return [(t, e, int(c), float(r)) for t, e, c, r in conn.execute(stmt)]


def iter_events(conn: Connection, batch: int = 10000) -> Iterator[dict[str, Any]]:
    """Every event with its user id, in id order, in pages of ``batch``."""
    last = 0
    stmt = select(events, profiles.c.user_id).join(profiles, profiles.c.id == events.c.profile_id, isouter=True)
    while True:
        rows = conn.execute(stmt.where(events.c.id > last).order_by(events.c.id).limit(batch)).mappings().all()
        if not rows:
            return
        for row in rows:
            yield dict(row)
        last = rows[-1]["id"]


def known_message_ids(conn: Connection, message_ids: Iterable[str]) -> set[str]:
    """Which of these message ids are already stored."""
    wanted = list(set(message_ids))
    found: set[str] = set()
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        found.update(conn.execute(select(events.c.message_id).where(events.c.message_id.in_(chunk))).scalars())
    return found


def count_events(conn: Connection) -> int:
    """How many events are stored."""
    return int(conn.execute(select(func.count()).select_from(events)).scalar_one())
