"""Writing predicted scores into ``profiles.traits["predicted"]``.

On SQLite, the ``predicted`` object of every profile is built as JSON text by
numpy (``score_objects``) from tables of the few distinct number texts: scores
are probabilities rounded to four decimals (10,001 texts, printed once by
SQLite itself so the stored text is what SQLite would print) and percentiles
are small integers.  Each row is then one ``json_set`` of that text into the
profile's traits.  Before, SQLite printed six numbers per row with
``json_object`` and merged them with ``json_patch``: a third more work per row.
Values off those grids (another caller's scores) fall back to that statement.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import numpy as np
from sqlalchemy import (
    JSON,
    BigInteger,
    Connection,
    String,
    Text,
    bindparam,
    cast,
    column,
    func,
    literal,
    literal_column,
    type_coerce,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.sql.elements import BindParameter, ColumnElement

from tailormail.store.dialect import driver_cursor
from tailormail.store.schema import profiles

GRID = 10_000
"""Scores on the text table are multiples of 1 / GRID in [0, 1] (rounded to four decimals)."""
WHOLE_MAX = 10_000
"""Whole-number scores on the text table are 0 .. WHOLE_MAX."""
SCORE_BATCH = 100_000
"""Profiles per score-writing statement on PostgreSQL: one bound JSON array each, bounded in size."""
SPACE = ord(" ")
CHUNK = 65_536
"""Rows of object text built at a time (about 10 MB of bytes, reused)."""


def write_scores(
    conn: Connection,
    profile_ids: np.ndarray,
    scores: dict[str, np.ndarray],
    now_ms: int,
    whole: frozenset[str] = frozenset(),
) -> int:
    """Set ``traits["predicted"]`` of many profiles to ``{name: scores[name][i]}``; return how many.

    Each score column is a float array aligned with ``profile_ids``; NaN
    leaves the key out, and the names in ``whole`` are stored as integers.
    Other traits are never read or rewritten by Python.
    """
    if conn.dialect.name != "sqlite":
        _write_scores_json(conn, profile_ids, scores, now_ms, whole)
        return len(profile_ids)
    texts = score_objects(len(profile_ids), scores, whole, NumberTexts(grid_texts(conn)))
    if texts is None:
        _write_scores_sqlite(conn, profile_ids, scores, now_ms, whole)
    else:
        _write_objects_sqlite(conn, profile_ids, texts, now_ms)
    return len(profile_ids)


def grid_texts(conn: Connection) -> list[str]:
    """How SQLite prints k / GRID in JSON, for k = 0 .. GRID (one query)."""
    numbers = (
        "WITH RECURSIVE k(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM k WHERE i < ?)"
        " SELECT json_group_array(i / ?) FROM k"
    )
    found = conn.exec_driver_sql(numbers, (GRID, float(GRID))).scalar()
    texts = str(found)[1:-1].split(",")
    if len(texts) != GRID + 1:
        raise RuntimeError(f"SQLite printed {len(texts)} grid numbers, not {GRID + 1}")
    return texts


class NumberTexts:
    """Fixed-width byte tables of the number texts: grid fractions and small whole numbers, space-padded."""

    def __init__(self, fractions: list[str]) -> None:
        self.fractions = _table(fractions)
        self.wholes = _table([str(k) for k in range(WHOLE_MAX + 1)])


def _table(texts: list[str]) -> np.ndarray:
    """One row of bytes per text, padded with spaces (JSON whitespace) to the longest."""
    width = max(len(t) for t in texts)
    return np.array([t.encode().ljust(width) for t in texts], dtype=f"S{width}").view(np.uint8).reshape(-1, width)


def score_objects(
    n: int, scores: dict[str, np.ndarray], whole: frozenset[str], numbers: NumberTexts
) -> list[str] | None:
    """The JSON object text of each of ``n`` rows (NaN: key left out), or None if a value is not on a text table.

    Every row is the same width: ``{`` and one fixed-width slot per key
    (``,"name":value`` padded with spaces, or all spaces when absent), then
    ``}``.  The comma of each row's first present key becomes a space.  The
    rows are written in place into one byte matrix of ``CHUNK`` rows, reused:
    on this VM, touching fresh memory costs more than the writing.
    """
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []  # key, texts, index, present
    for name, values in scores.items():
        have = ~np.isnan(values)
        table, index = _lookup(values, have, name in whole, numbers)
        if index is None:
            return None
        key = np.frombuffer(("," + json.dumps(name) + ":").encode(), dtype=np.uint8)
        parts.append((key, table, index, have))
    widths = [len(key) + table.shape[1] for key, table, _, _ in parts]
    starts = 1 + np.cumsum([0, *widths], dtype=np.int64)[:-1]
    buffer = np.empty((min(n, CHUNK), 2 + sum(widths)), dtype=np.uint8)
    out: list[str] = []
    for first in range(0, n, CHUNK):
        rows = buffer[: min(CHUNK, n - first)]
        chunk = slice(first, first + len(rows))
        rows[:, 0], rows[:, -1] = ord("{"), ord("}")
        for (key, table, index, have), start, width in zip(parts, starts.tolist(), widths, strict=True):
            rows[:, start : start + len(key)] = key
            rows[:, start + len(key) : start + width] = table[index[chunk]]
            rows[~have[chunk], start : start + width] = SPACE
        if parts:
            present = np.stack([have[chunk] for _, _, _, have in parts], axis=1)
            some = np.flatnonzero(present.any(axis=1))
            rows[some, starts[np.argmax(present[some], axis=1)]] = SPACE
        # Bound as str (bytes would bind as a BLOB, which json() refuses).
        out += map(bytes.decode, rows.view(f"S{rows.shape[1]}").ravel().tolist())
    return out


def _lookup(
    values: np.ndarray, have: np.ndarray, whole: bool, numbers: NumberTexts
) -> tuple[np.ndarray, np.ndarray | None]:
    """The text table and each row's index into it (0 where absent); index None when a value is off the table."""
    given = np.where(have, values, 0.0)
    if whole:
        table, scaled, top = numbers.wholes, given, WHOLE_MAX
    else:
        table, scaled, top = numbers.fractions, np.rint(given * GRID), GRID
    if not bool(np.all((scaled >= 0) & (scaled <= top))):  # also false for infinities
        return table, None
    index = scaled.astype(np.int64)
    exact = index == given if whole else index / GRID == given
    if not bool(np.all(exact)):
        return table, None
    if whole:  # only as wide as the widest number used (percentiles: 3 digits, not 5)
        table = table[:, : len(str(index.max(initial=0)))]
    return table, index


def _write_objects_sqlite(conn: Connection, profile_ids: np.ndarray, texts: list[str], now_ms: int) -> None:
    """One UPDATE per profile by id, all bound in one executemany of (object text, id)."""
    stmt = _set_predicted_sqlite(conn, func.json(bindparam("obj")), now_ms)
    _execute_many(conn, stmt, {"pid": profile_ids.tolist(), "obj": texts})


def _set_predicted_sqlite(conn: Connection, predicted: ColumnElement[Any], now_ms: int) -> Any:
    """``UPDATE profiles`` of the row ``:pid``: ``traits.predicted`` set to ``predicted``, stamped ``now_ms``.

    The time is written into the statement (a number of ours, not bound once per row).
    """
    current = func.coalesce(profiles.c.traits, _constant(conn, "{}"))
    merged = type_coerce(func.json_set(current, _constant(conn, "$.predicted"), predicted), JSON)
    stamp = literal_column(str(int(now_ms)), BigInteger)
    return update(profiles).where(profiles.c.id == bindparam("pid")).values(traits=merged, updated_at=stamp)


def _execute_many(conn: Connection, stmt: Any, columns: dict[str, Iterable[Any]]) -> None:
    """Run a compiled statement once per row of ``columns`` straight through the driver.

    SQLAlchemy's per-row parameter handling would cost more than the update;
    the driver takes the rows from an iterator, so no list of a tuple per row is built.
    """
    compiled = stmt.compile(dialect=conn.dialect)
    rows = zip(*(columns[p] for p in compiled.positiontup or ()), strict=True)
    driver_cursor(conn).executemany(str(compiled), rows)


def _write_scores_sqlite(
    conn: Connection, profile_ids: np.ndarray, scores: dict[str, np.ndarray], now_ms: int, whole: frozenset[str]
) -> None:
    """Scores off the text tables: SQLite prints them with ``json_object``, bound as plain numbers.

    The driver binds the numbers row by row in C (SQLite stores a NaN as NULL).
    """
    names = list(scores)
    pairs: list[Any] = []
    for i, name in enumerate(names):
        value: ColumnElement[Any] = bindparam(f"v{i}")
        pairs += [_constant(conn, name), cast(value, BigInteger) if name in whole else value]
    # json_patch onto {} drops the members whose value is null.
    predicted = func.json_patch(_constant(conn, "{}"), func.json_object(*pairs))
    columns: dict[str, Iterable[Any]] = {"pid": profile_ids.tolist()}
    columns.update({f"v{i}": scores[name].tolist() for i, name in enumerate(names)})
    _execute_many(conn, _set_predicted_sqlite(conn, predicted, now_ms), columns)


def _constant(conn: Connection, text: str) -> ColumnElement[Any]:
    """A string constant written into the statement, quoted by the dialect: bound, it would be re-bound every row."""
    quote = String().literal_processor(conn.dialect)
    if quote is None:
        raise RuntimeError(f"{conn.dialect.name} cannot write string constants")
    return literal_column(quote(text), String)


def _write_scores_json(
    conn: Connection, profile_ids: np.ndarray, scores: dict[str, np.ndarray], now_ms: int, whole: frozenset[str]
) -> None:
    """Batches of one UPDATE ... FROM over a JSON array bound as a single parameter (jsonb_array_elements)."""
    names = list(scores)
    columns = [profile_ids.tolist(), *(_numbers(scores[n], n in whole) for n in names)]
    rows = list(zip(*columns, strict=True))
    for start in range(0, len(rows), SCORE_BATCH):
        payload = json.dumps(rows[start : start + SCORE_BATCH])
        conn.execute(_scores_update(names), {"rows": payload, "now": now_ms})


def _numbers(values: np.ndarray, whole: bool) -> list[Any]:
    """Python numbers (ints when ``whole``), None for NaN."""
    out = values.astype(object)
    present = ~np.isnan(values)
    out[~present] = None
    if whole:
        out[present] = values[present].astype(np.int64).astype(object)
    return list(out.tolist())


def _scores_update(names: list[str]) -> Any:
    """The PostgreSQL UPDATE of ``_write_scores_json``."""
    payload: BindParameter[Any] = bindparam("rows", type_=Text)
    each = func.jsonb_array_elements(cast(payload, JSONB)).table_valued(column("value", JSONB)).alias("s")
    pid: ColumnElement[Any] = cast(each.c.value.op("->>")(0), BigInteger)
    pairs: list[Any] = [part for i, n in enumerate(names, 1) for part in (literal(n), each.c.value.op("->")(i))]
    current = func.coalesce(cast(profiles.c.traits, JSONB), cast(literal("{}"), JSONB))
    predicted = func.jsonb_strip_nulls(func.jsonb_build_object(*pairs))
    path = postgresql.array([literal("predicted")])
    merged: ColumnElement[Any] = cast(func.jsonb_set(current, path, predicted), JSON)
    return (
        update(profiles)
        .where(profiles.c.id == pid)
        .values(traits=merged, updated_at=bindparam("now", type_=BigInteger))
    )
