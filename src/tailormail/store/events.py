"""Named queries on the event log."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from sqlalchemy import JSON, Column, Connection, MetaData, Table, Text, bindparam, cast, func, select

from tailormail.store.dialect import (
    compact_json,
    driver_cursor,
    in_chunks,
    insert_ignoring_conflicts,
    insert_in_rowid_order,
    one_of,
    unnest_rows,
)
from tailormail.store.schema import events, profiles

EVENT_COLUMNS = (
    "message_id", "profile_id", "anonymous_id", "type", "event", "properties", "context", "revenue", "ts", "received_at"
)  # fmt: skip
"""The columns an ingested event sets, in the order bulk inserts take them."""


def insert_event_values_returning(conn: Connection, rows: list[tuple[Any, ...]]) -> list[tuple[int, str]]:
    """Insert ``EVENT_COLUMNS`` tuples, skipping known message ids: (id, message_id) of the rows that were new.

    SQLite: the driver's executemany of one compiled INSERT, JSON encoded once
    per row; the new ids are read from the rowid range (an ``INTEGER PRIMARY
    KEY`` takes max + 1, and this transaction is the only writer), checked
    against the row count and the new maximum, else looked up by message id.
    A third cheaper than a multi-row ``INSERT ... RETURNING``, whose rows came
    back one by one.  PostgreSQL: one ``INSERT ... SELECT`` of arrays (``unnest_rows``).
    """
    if not rows:
        return []
    if conn.dialect.name != "sqlite":
        stmt = insert_ignoring_conflicts(conn, events).from_select(
            list(EVENT_COLUMNS), unnest_rows(events, EVENT_COLUMNS, rows)
        )
        return [(int(eid), str(mid)) for eid, mid in conn.execute(stmt.returning(events.c.id, events.c.message_id))]
    before, ids = insert_in_rowid_order(driver_cursor(conn), "events", _sqlite_insert_sql(conn), _encoded(rows))
    if ids is not None:
        return [(eid, r[0]) for eid, r in zip(ids, rows, strict=True)]
    stmt = select(events.c.id, events.c.message_id).where(
        events.c.id > before, one_of(conn, events.c.message_id, [r[0] for r in rows])
    )
    return sorted((int(eid), str(mid)) for eid, mid in conn.execute(stmt).all())


def _encoded(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Rows with their JSON columns (properties, context) as compact JSON text."""
    return [encoded_row(r) for r in rows]


def encoded_row(r: tuple[Any, ...]) -> tuple[Any, ...]:
    """One ``EVENT_COLUMNS`` row with its JSON columns (properties, context) as compact JSON text."""
    return (*r[:5], compact_json(r[5]), None if r[6] is None else compact_json(r[6]), *r[7:])


def insert_encoded_events(conn: Connection, rows: Sequence[Sequence[Any]]) -> int:
    """Insert ``EVENT_COLUMNS`` rows with JSON already text, skipping known message ids; how many were new.

    The bulk import's insert; rows may be tuples or lists.  SQLite: the
    statement is compiled by SQLAlchemy once and run with the driver's own
    executemany (per-row parameter processing costs more than SQLite's insert
    itself); driver errors come unwrapped.  PostgreSQL: COPY into a temporary
    table, then one ``INSERT ... SELECT``, instead of a round trip per row.
    """
    if not rows:
        return 0
    if conn.dialect.name == "sqlite":
        return int(driver_cursor(conn).executemany(_sqlite_insert_sql(conn), rows).rowcount)
    return _copy_insert_postgresql(conn, rows)


_staged_events = Table(
    "staged_events",
    MetaData(),
    *(Column(c.name, Text if isinstance(c.type, JSON) else c.type) for c in events.c if c.name in EVENT_COLUMNS),
    prefixes=["TEMPORARY"],
    postgresql_on_commit="DROP",
)


def _copy_insert_postgresql(conn: Connection, prepared: Sequence[Sequence[Any]]) -> int:
    """COPY rows into a temporary table, then insert the new ones into events; the table goes right after.

    Dropped here, not only at commit: a second call in the same transaction creates it anew.
    """
    _staged_events.create(conn)
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    columns = ", ".join(EVENT_COLUMNS)
    with cursor.copy(f"COPY {_staged_events.name} ({columns}) FROM STDIN") as copy:
        for row in prepared:
            copy.write_row(row)
    staged = [
        cast(_staged_events.c[c], JSON) if c in ("properties", "context") else _staged_events.c[c]
        for c in EVENT_COLUMNS
    ]
    insert = insert_ignoring_conflicts(conn, events).from_select(list(EVENT_COLUMNS), select(*staged))
    # rowcount of an INSERT is kept only when asked for (SQLAlchemy reads it for UPDATE and DELETE)
    inserted = int(conn.execute(insert.execution_options(preserve_rowcount=True)).rowcount)
    _staged_events.drop(conn)
    return inserted


def _sqlite_insert_sql(conn: Connection) -> str:
    """The compiled INSERT, its ``?`` parameters in ``EVENT_COLUMNS`` order."""
    global _SQLITE_INSERT
    if _SQLITE_INSERT is None:
        stmt = insert_ignoring_conflicts(conn, events).values({c: bindparam(c) for c in EVENT_COLUMNS})
        compiled = stmt.compile(dialect=conn.dialect)
        if list(compiled.positiontup or []) != list(EVENT_COLUMNS):
            raise AssertionError("unexpected parameter order in the bulk insert")
        _SQLITE_INSERT = str(compiled)
    return _SQLITE_INSERT


_SQLITE_INSERT: str | None = None


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
    for chunk in in_chunks(wanted):
        if conn.dialect.name == "sqlite":  # once per ingested batch: driver SQL, no statement to build
            rows = driver_cursor(conn).execute(_SQLITE_KNOWN, (json.dumps(chunk),)).fetchall()
            found.update(mid for (mid,) in rows)
            continue
        stmt = select(events.c.message_id).where(one_of(conn, events.c.message_id, chunk))
        found.update(conn.execute(stmt).scalars().all())
    return found


_SQLITE_KNOWN = "SELECT message_id FROM events WHERE message_id IN (SELECT value FROM json_each(?))"


def count_events(conn: Connection) -> int:
    """How many events are stored."""
    return int(conn.execute(select(func.count()).select_from(events)).scalar_one())


def event_id_bounds(conn: Connection) -> tuple[int, int] | None:
    """The smallest and largest event id (None: no events), read from the ends of the key."""
    # One subquery each: SQLite finds a lone min() or max() at an end of the key, but
    # both in one SELECT scan the whole table (0.55 s at a million customers).
    low, high = conn.execute(
        select(select(func.min(events.c.id)).scalar_subquery(), select(func.max(events.c.id)).scalar_subquery())
    ).one()
    return None if low is None else (int(low), int(high))


def event_count_estimate(conn: Connection) -> int:
    """About how many events are stored, in constant time: the span of their ids.

    Ids only grow; deletions leave gaps, so this is at most a little high.
    """
    bounds = event_id_bounds(conn)
    return 0 if bounds is None else bounds[1] - bounds[0] + 1
