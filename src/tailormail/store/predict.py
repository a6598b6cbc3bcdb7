"""Named queries of the predict domain: feature aggregates, labels, model versions, scores."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from sqlalchemy import (
    JSON,
    BigInteger,
    Connection,
    Text,
    bindparam,
    cast,
    column,
    func,
    literal,
    select,
    type_coerce,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.sql.elements import BindParameter, ColumnElement

from tailormail.store.schema import events, profiles
from tailormail.store.schema_predict import predict_models

DAY_MS = 86_400_000


def _numeric_columns(rows: Iterable[Sequence[Any]], width: int, dtype: type = np.int64) -> np.ndarray:
    """Result rows of ``width`` numbers as an (n, width) array, without a Python list in between."""
    flat: np.ndarray = np.fromiter(itertools.chain.from_iterable(rows), dtype=dtype)
    return flat.reshape(-1, width)


def first_event_times(conn: Connection, until_ms: int) -> tuple[np.ndarray, np.ndarray]:
    """(profile ids ascending, time of each one's first event) over events before ``until_ms``.

    Reads only (profile_id, ts) from the covering index ``ix_events_profile_event_ts``.
    """
    stmt = (
        select(events.c.profile_id, func.min(events.c.ts))
        .where(events.c.ts < until_ms)
        .group_by(events.c.profile_id)
        .order_by(events.c.profile_id)
    )
    table = _numeric_columns(conn.execute(stmt), 2)
    return table[:, 0], table[:, 1]


def event_times(conn: Connection, event: str, until_ms: int) -> tuple[np.ndarray, np.ndarray]:
    """(times ascending, profile ids) of every ``event`` before ``until_ms``.

    One range of the covering index ``ix_events_event_ts``, already in time
    order, so no table row is read and nothing is sorted.
    """
    stmt = (
        select(events.c.ts, events.c.profile_id)
        .where(events.c.event == event, events.c.ts < until_ms)
        .order_by(events.c.ts)
    )
    table = _numeric_columns(conn.execute(stmt), 2)
    return table[:, 0], table[:, 1]


def purchases(conn: Connection, purchase: str, until_ms: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(times ascending, profile ids, revenue with 0 for none) of every purchase before ``until_ms``."""
    stmt = (
        select(events.c.ts, events.c.profile_id, func.coalesce(events.c.revenue, 0.0))
        .where(events.c.event == purchase, events.c.ts < until_ms)
        .order_by(events.c.ts)
    )
    # Times and ids are below 2**53, so they survive the float column exactly.
    table = _numeric_columns(conn.execute(stmt), 3, np.float64)
    return table[:, 0].astype(np.int64), table[:, 1].astype(np.int64), table[:, 2]


def event_categories(
    conn: Connection, kinds: Sequence[str], since_ms: int, until_ms: int
) -> tuple[np.ndarray, np.ndarray, list[Any]]:
    """(times ascending, profile ids, ``properties.category``) of events of ``kinds`` in [since, until).

    Only events with a category; bounded to a window so the JSON is read for
    recent events alone (found through ``ix_events_event_ts``).
    """
    category = events.c.properties["category"].as_string()
    stmt = (
        select(events.c.ts, events.c.profile_id, category)
        .where(events.c.event.in_(list(kinds)), events.c.ts >= since_ms, events.c.ts < until_ms, category.is_not(None))
        .order_by(events.c.ts)
    )
    times: list[np.ndarray] = []
    ids: list[np.ndarray] = []
    values: list[Any] = []
    for batch in conn.execute(stmt).partitions(100_000):
        columns = list(zip(*batch, strict=True))
        times.append(np.array(columns[0], dtype=np.int64))
        ids.append(np.array(columns[1], dtype=np.int64))
        values.extend(columns[2])
    if not times:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), []
    return np.concatenate(times), np.concatenate(ids), values


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


SCORE_BATCH = 100_000
"""Profiles per score-writing statement: one bound JSON array each, bounded in size."""


def write_scores(
    conn: Connection, profile_ids: Sequence[int], scores: dict[str, list[Any]], now_ms: int, batch: int = SCORE_BATCH
) -> int:
    """Set ``traits["predicted"]`` of many profiles to ``{name: scores[name][i]}``; return how many.

    ``None`` leaves a key out.  Each batch is one UPDATE ... FROM over a JSON
    array bound as a single parameter (json_each / jsonb_array_elements), and
    the object is built and merged inside the database, so other traits are
    never read or rewritten by Python.
    """
    names = list(scores)
    columns = [list(profile_ids), *(scores[name] for name in names)]
    rows = list(zip(*columns, strict=True))
    for start in range(0, len(rows), batch):
        payload = json.dumps(rows[start : start + batch])
        conn.execute(_scores_update(conn, names), {"rows": payload, "now": now_ms})
    return len(rows)


def _scores_update(conn: Connection, names: list[str]) -> Any:
    """The UPDATE of ``write_scores`` in this database's spelling."""
    payload: BindParameter[Any] = bindparam("rows", type_=Text)
    if conn.dialect.name == "postgresql":
        each = func.jsonb_array_elements(cast(payload, JSONB)).table_valued(column("value", JSONB)).alias("s")
        pid: ColumnElement[Any] = cast(each.c.value.op("->>")(0), BigInteger)
        pairs: list[Any] = [part for i, n in enumerate(names, 1) for part in (literal(n), each.c.value.op("->")(i))]
        current = func.coalesce(cast(profiles.c.traits, JSONB), cast(literal("{}"), JSONB))
        predicted = func.jsonb_strip_nulls(func.jsonb_build_object(*pairs))
        path = postgresql.array([literal("predicted")])
        merged: ColumnElement[Any] = cast(func.jsonb_set(current, path, predicted), JSON)
    else:
        each = func.json_each(payload).table_valued("value").alias("s")
        pid = func.json_extract(each.c.value, "$[0]")
        pairs = [part for i, n in enumerate(names, 1) for part in (n, func.json_extract(each.c.value, f"$[{i}]"))]
        # json_patch onto {} drops the members whose value is null.
        predicted = func.json_patch("{}", func.json_object(*pairs))
        merged = type_coerce(func.json_set(func.coalesce(profiles.c.traits, "{}"), "$.predicted", predicted), JSON)
    return (
        update(profiles)
        .where(profiles.c.id == pid)
        .values(traits=merged, updated_at=bindparam("now", type_=BigInteger))
    )
