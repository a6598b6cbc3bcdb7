"""Named queries of the predict domain: feature reads, labels, model versions (scores: ``predict_scores``)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import (
    Connection,
    LargeBinary,
    Text,
    and_,
    cast,
    func,
    literal,
    or_,
    select,
)
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import ColumnElement, UnaryExpression

from tailormail.store.events import event_id_bounds
from tailormail.store.schema import events
from tailormail.store.schema_predict import predict_models

DAY_MS = 86_400_000


# Reading millions of events as result rows costs about a microsecond each in
# the driver, more than the database spends finding them.  These queries
# therefore aggregate each column into one comma-separated string
# (group_concat / string_agg) that numpy parses in C: a handful of values
# cross into Python instead of one object per event.  Aggregates of one query
# see the same rows in the same order, so their columns stay aligned.  A string
# is bounded by SQLite's 1 GB limit: about 50 million events of one kind.
# SQLite hands the string over as a BLOB: the driver copies its bytes as they
# are instead of decoding them into a str, which numpy would only encode again.


def _packed(conn: Connection, value: ColumnElement[Any], where: ColumnElement[bool] | None = None) -> Any:
    """The aggregate of ``value`` over the rows (those matching ``where``) as one comma-separated string."""
    if conn.dialect.name == "postgresql":
        joined = func.string_agg(cast(value, Text), literal(","))
        return joined if where is None else joined.filter(where)
    concat = func.group_concat(value, ",")
    return cast(concat if where is None else concat.filter(where), LargeBinary)


def _exact_text(conn: Connection, value: ColumnElement[Any]) -> ColumnElement[Any]:
    """A float as text that parses back to the same double (SQLite's own conversion keeps 15 digits)."""
    if conn.dialect.name == "postgresql":
        return value  # PostgreSQL 12+ prints the shortest exact form
    return func.printf("%!.20g", value)


def _unpack(text: str | bytes | None, dtype: type = np.int64) -> np.ndarray:
    """A packed column (text or its bytes) back as an array; a malformed value is an error, not a short array."""
    if not text:
        return np.zeros(0, dtype=dtype)
    values: np.ndarray = np.fromstring(text, dtype=dtype, sep=",")
    commas = text.count(b",") if isinstance(text, bytes) else text.count(",")
    if len(values) != commas + 1:
        raise ValueError(f"could not read a packed column of {commas + 1} values")
    return values


def first_event_times(conn: Connection, until_ms: int) -> tuple[np.ndarray, np.ndarray]:
    """(profile ids, time of each one's first event) over every event before ``until_ms``.

    Reads only (profile_id, ts) from the covering index ``ix_events_profile_event_ts``.
    """
    first = (
        select(events.c.profile_id.label("pid"), func.min(events.c.ts).label("first"))
        .where(events.c.ts < until_ms)
        .group_by(events.c.profile_id)
        .subquery()
    )
    ids, times = conn.execute(select(_packed(conn, first.c.pid), _packed(conn, first.c.first))).one()
    return _unpack(ids), _unpack(times)


def event_times(
    conn: Connection, event: str, until_ms: int, since_ms: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(times, profile ids) of every ``event`` before ``until_ms`` (and from ``since_ms`` when given).

    One range of the covering index ``ix_events_event_ts``: no table row is read.
    """
    stmt = select(_packed(conn, events.c.ts), _packed(conn, events.c.profile_id)).where(
        events.c.event == event, events.c.ts < until_ms
    )
    if since_ms is not None:
        stmt = stmt.where(events.c.ts >= since_ms)
    times, ids = conn.execute(stmt).one()
    return _unpack(times), _unpack(ids)


@dataclass(frozen=True)
class PurchasesAndCategories:
    """What ``purchases_and_categories`` reads from the table rows: times, profile ids and values."""

    purchase_ts: np.ndarray
    purchase_profile: np.ndarray
    revenue: np.ndarray
    """Revenue of each purchase, 0 when none was given."""
    category_ts: np.ndarray
    category_profile: np.ndarray
    categories: list[Any]
    """``properties.category`` of each event in the window (None where it has none)."""


def purchases_and_categories(
    conn: Connection,
    purchase: str,
    kinds: Sequence[str],
    since_ms: int,
    until_ms: int,
    ids: tuple[int, int] | None = None,
) -> PurchasesAndCategories:
    """Each purchase before ``until_ms`` with its revenue; the category of each event of ``kinds`` in [since, until).

    Revenue and categories live in the table rows, not in an index.  One
    sequential scan of the table reads both; fetching them through the
    (event, ts) index instead costs a random row read per event, which
    measured twice as slow on a million customers.  Only the rows that some
    aggregate takes pass the WHERE clause, so the aggregates' filters are
    evaluated on a third of the rows: a fifth less CPU for the scan at
    100,000 customers.  ``ids`` limits the scan
    to the events with ids in [low, high) (see ``event_id_ranges``).
    """
    event = _unindexed(conn, events.c.event)
    is_purchase = event == purchase
    in_window = and_(event.in_(list(kinds)), events.c.ts >= since_ms)
    category = events.c.properties["category"].as_string()
    gather = func.json_agg if conn.dialect.name == "postgresql" else func.json_group_array
    stmt = select(
        _packed(conn, events.c.ts, is_purchase),
        _packed(conn, events.c.profile_id, is_purchase),
        _packed(conn, _exact_text(conn, func.coalesce(events.c.revenue, 0.0)), is_purchase),
        _packed(conn, events.c.ts, in_window),
        _packed(conn, events.c.profile_id, in_window),
        gather(category).filter(in_window),
    ).where(events.c.ts < until_ms, or_(is_purchase, in_window))
    if ids is not None:
        stmt = stmt.where(events.c.id >= ids[0], events.c.id < ids[1])
    p_ts, p_pid, revenue, c_ts, c_pid, found = conn.execute(stmt).one()
    return PurchasesAndCategories(
        _unpack(p_ts),
        _unpack(p_pid),
        _unpack(revenue, np.float64),
        _unpack(c_ts),
        _unpack(c_pid),
        json.loads(found) if isinstance(found, str) else list(found or []),
    )


def _unindexed(conn: Connection, value: ColumnElement[Any]) -> ColumnElement[Any]:
    """``value`` in a form SQLite will not search an index by (unary plus), so a filter keeps the table scan.

    Given ``event = ? OR (event IN (...) AND ts >= ?)``, SQLite would read
    the rows through ``ix_events_event_ts`` at random instead.
    """
    if conn.dialect.name != "sqlite":
        return value
    return UnaryExpression(value, operator=operators.custom_op("+"), type_=value.type)


def event_id_ranges(conn: Connection, parts: int) -> list[tuple[int, int] | None]:
    """Up to ``parts`` consecutive id ranges [low, high) covering every event, for scans on parallel connections.

    SQLite stores the table in id order, so each range is a sequential stretch
    of it.  PostgreSQL would scan the whole heap for each range (or read it
    at random through the key), so it gets one range: everything (None).
    """
    if conn.dialect.name != "sqlite" or parts <= 1:
        return [None]
    bounds = event_id_bounds(conn)
    if bounds is None:
        return [None]
    low, high = bounds
    step = -(-(high + 1 - low) // parts)  # ceiling division
    return [(start, min(start + step, high + 1)) for start in range(low, high + 1, step)]


SCAN_MMAP_BYTES = 1 << 31
"""How much of the SQLite file a scanning connection maps into memory (SQLite caps it at its build limit)."""


@contextmanager
def scanning(conn: Connection) -> Iterator[Connection]:
    """Tune a connection for one long read-only scan; back to the defaults afterwards.

    On SQLite, memory-mapping the file lets a scan read pages in place
    instead of copying each through the 2 MB page cache: the feature reads
    at a million customers took about a fifth less CPU.  It is per
    connection, and the pooled connection is given back unmapped.
    """
    if conn.dialect.name != "sqlite":
        yield conn
        return
    conn.exec_driver_sql(f"PRAGMA mmap_size={SCAN_MMAP_BYTES}")
    try:
        yield conn
    finally:
        conn.exec_driver_sql("PRAGMA mmap_size=0")


def event_time_range(conn: Connection) -> tuple[int | None, int | None]:
    """The earliest and latest event time stored."""
    low, high = conn.execute(select(func.min(events.c.ts), func.max(events.c.ts))).one()
    return low, high


def save_model_version(conn: Connection, record: dict[str, Any]) -> int:
    """Store a trained model as the next version of its name; return the version."""
    latest = conn.execute(
        select(func.max(predict_models.c.version)).where(predict_models.c.model == record["model"])
    ).scalar()
    version = int(latest or 0) + 1
    conn.execute(predict_models.insert().values(**record, version=version))
    return version


def model_versions(conn: Connection, model: str | None = None, status: str | None = None) -> list[dict[str, Any]]:
    """Model versions, newest first, optionally of one model and one status."""
    stmt = select(predict_models).order_by(predict_models.c.model, predict_models.c.version.desc())
    if model is not None:
        stmt = stmt.where(predict_models.c.model == model)
    if status is not None:
        stmt = stmt.where(predict_models.c.status == status)
    return [dict(row) for row in conn.execute(stmt).mappings()]


def latest_version(conn: Connection, model: str, status: str | None = "promoted") -> dict[str, Any] | None:
    """The newest version of a model (by default: the newest promoted one)."""
    found = model_versions(conn, model, status)
    return found[0] if found else None
