"""Statements whose spelling differs between SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import orjson
from sqlalchemy import (
    JSON,
    ColumnElement,
    Connection,
    Float,
    Select,
    Table,
    Text,
    any_,
    bindparam,
    cast,
    func,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.dml import Insert
from sqlalchemy.types import TypeEngine


def insert_ignoring_conflicts(conn: Connection, table: Table) -> Any:
    """An INSERT that skips rows whose unique key already exists."""
    module = postgresql if conn.dialect.name == "postgresql" else sqlite
    return module.insert(table).on_conflict_do_nothing()


def upsert(
    conn: Connection, table: Table, keys: list[str], update: list[str], only_if: Callable[[Any], Any] | None = None
) -> Any:
    """An INSERT that updates ``update`` columns when ``keys`` already exist.

    ``only_if(excluded)``: a condition on the stored row and the new one (``excluded``) for the update.
    """
    module = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = module.insert(table)
    condition = None if only_if is None else only_if(stmt.excluded)
    set_ = {name: stmt.excluded[name] for name in update}
    return stmt.on_conflict_do_update(index_elements=keys, set_=set_, where=condition)


def one_of(conn: Connection, column: Any, values: Sequence[str]) -> ColumnElement[bool]:
    """``column IN (values)`` with one parameter: a JSON list on SQLite, an array on PostgreSQL.

    Rendering thousands of expanding parameters costs more Python time than the
    lookup itself; ``json_each`` takes the whole list as one bound string.
    """
    if conn.dialect.name == "sqlite":
        each = func.json_each(json.dumps(list(values))).table_valued("value")
        return column.in_(select(each.c.value))
    return column == any_(bindparam(None, list(values), type_=postgresql.ARRAY(column.type)))


_compact_json = json.JSONEncoder(check_circular=False, separators=(",", ":")).encode
_orjson_dumps = orjson.dumps


def compact_json(value: Any) -> str:
    """Compact JSON text for rows written through the driver (orjson: several times faster than ``json``).

    Non-ASCII characters are written as UTF-8 rather than escaped; both read
    back the same.  What orjson refuses (integers beyond 64 bits, non-string keys)
    goes through the standard library instead.
    """
    if value.__class__ is dict and not value:  # most events' properties or context: no encoder call
        return "{}"
    try:
        return _orjson_dumps(value).decode()
    except TypeError:
        return _compact_json(value)


LOOKUP_CHUNK = 5000
"""Values per ``IN (...)`` lookup: few round trips, well under SQLite's 32,766 and PostgreSQL's 65,535 parameters."""

T = TypeVar("T")


def in_chunks(items: Sequence[T], size: int = LOOKUP_CHUNK) -> Iterator[Sequence[T]]:
    """``items`` in slices of ``size``, for lookups with a bounded number of parameters."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def unnest_select(columns: dict[str, tuple[TypeEngine[Any], list[Any]]]) -> Select[Any]:
    """PostgreSQL: ``SELECT unnest(:a), unnest(:b), ...``, many rows as one array per column.

    JSON columns travel as text and are cast back, so values encoded once stay as they are.
    """
    parts = []
    for name, (kind, values) in columns.items():
        if isinstance(kind, JSON):
            parts.append(cast(func.unnest(bindparam(name, values, type_=postgresql.ARRAY(Text))), kind).label(name))
        else:
            parts.append(func.unnest(bindparam(name, values, type_=postgresql.ARRAY(kind))).label(name))
    return select(*parts)


def unnest_rows(table: Any, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> Select[Any]:
    """PostgreSQL: ``rows`` of ``table``'s ``columns`` as one SELECT of arrays (``unnest_select``), Python JSON encoded.

    One short statement whatever the number of rows: a multi-row VALUES
    statement has a new text for every batch size, which psycopg parses in
    Python each time (statements over 4 KiB are not cached), and which the
    server plans anew.
    """
    arrays: dict[str, tuple[TypeEngine[Any], list[Any]]] = {}
    for i, name in enumerate(columns):
        kind = table.c[name].type
        values = [row[i] for row in rows]
        if isinstance(kind, JSON):
            values = [None if v is None else compact_json(v) for v in values]
        elif isinstance(kind, Float):  # psycopg types a list by its first element: 42 then 9.5 would not dump
            values = [None if v is None else float(v) for v in values]
        arrays[name] = (kind, values)
    return unnest_select(arrays)


BULK_CACHE_KIB = 65_536
"""SQLite page cache for bulk writes (64 MiB): index pages stay in memory across a batch."""


def driver_cursor(conn: Connection) -> Any:
    """A DB-API cursor on ``conn``'s connection, inside its current transaction.

    For the few-row statements an ingested batch runs on SQLite: SQLAlchemy's
    per-statement work (execution context, result object) cost as much as
    SQLite's own for them.  Errors come as the driver's, not wrapped.
    """
    return conn.connection.cursor()


def insert_in_rowid_order(cursor: Any, table: str, sql: str, rows: Sequence[Sequence[Any]]) -> tuple[int, range | None]:
    """SQLite: ``sql`` for every row through the driver's executemany; (the old largest id, the new rows' ids).

    SQLite gives each new row of an ``INTEGER PRIMARY KEY`` table max(id) + 1,
    and the caller's write transaction is the only writer: when all rows went
    in and the largest id grew by exactly their number, they took those ids in
    order.  Otherwise (conflicts skipped, ids set by hand) the ids are None and
    the caller reads them back, above the old largest id.  Ordered RETURNING
    would insert row by row; a lookup afterwards cost as much as the insert.
    """
    largest = f"SELECT coalesce(max(id), 0) FROM {table}"  # ``table`` is one of our own table names
    before = int(cursor.execute(largest).fetchone()[0])
    inserted = cursor.executemany(sql, rows).rowcount
    if inserted == len(rows) and int(cursor.execute(largest).fetchone()[0]) == before + len(rows):
        return before, range(before + 1, before + 1 + len(rows))
    return before, None


def tune_for_bulk_writes(conn: Connection) -> None:
    """Give this connection a larger page cache on SQLite (inserting into three indexes at once)."""
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql(f"PRAGMA cache_size=-{BULK_CACHE_KIB}")


def insert_many(conn: Connection, stmt: Any, columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    """Run ``stmt`` for each row of values in ``columns`` order.

    SQLite: compiled once, then the driver's own executemany (SQLAlchemy's
    per-row parameter processing costs more than SQLite's insert itself);
    PostgreSQL: SQLAlchemy's batched executemany.
    """
    if not rows:
        return
    if conn.dialect.name != "sqlite":
        if isinstance(stmt, Insert):
            conn.execute(stmt.from_select(list(columns), unnest_rows(stmt.table, columns, rows)))
        else:
            conn.execute(stmt, [dict(zip(columns, row, strict=True)) for row in rows])
        return
    key = (type(stmt).__name__, stmt.table.name, columns)
    sql = _SQLITE_SQL.get(key)
    if sql is None:
        values = stmt.values({c: bindparam(c) for c in columns}) if isinstance(stmt, Insert) else stmt
        compiled = values.compile(dialect=conn.dialect)
        if list(compiled.positiontup or []) != list(columns):
            raise AssertionError(f"unexpected parameter order {compiled.positiontup} for {columns}")
        sql = _SQLITE_SQL[key] = str(compiled)
    conn.exec_driver_sql(sql, rows)


_SQLITE_SQL: dict[tuple[str, str, tuple[str, ...]], str] = {}
"""Compiled SQLite text of ``insert_many`` statements (one per kind, table and columns)."""
