"""Named queries of the predict domain: feature aggregates, labels, model versions, scores."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Connection,
    and_,
    bindparam,
    case,
    cast,
    distinct,
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


def _count_if(condition: ColumnElement[bool]) -> ColumnElement[Any]:
    # COUNT(*) FILTER (WHERE ...): SQLite >= 3.30 and PostgreSQL; a little faster than SUM(CASE ...).
    return func.count().filter(condition)


def activity_aggregates(
    conn: Connection,
    cutoff_ms: int,
    *,
    view: str,
    cart: str,
    purchase: str,
    windows: Sequence[int],
    email_window: int,
    opened: str = "email_opened",
    clicked: str = "email_clicked",
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Counts and last times per profile from events strictly before ``cutoff_ms``.

    One grouped query that reads only (profile_id, event, ts), so it runs as a
    scan of the covering index ``ix_events_profile_event_ts`` in profile order
    with no sort.  Window counts cover [cutoff - days, cutoff).  Returns the
    column names and one row per profile with any event, by profile id.
    """
    ev, ts = events.c.event, events.c.ts
    columns: list[ColumnElement[Any]] = [
        events.c.profile_id.label("profile_id"),
        func.min(ts).label("first_ts"),
        _count_if(ev == purchase).label("purchases"),
        func.max(case((ev == purchase, ts))).label("last_purchase"),
        func.max(case((ev == view, ts))).label("last_view"),
        func.max(case((ev == cart, ts))).label("last_cart"),
    ]
    for name, kind in (("views", view), ("carts", cart), ("purchases", purchase)):
        for days in windows:
            columns.append(_count_if(and_(ev == kind, ts >= cutoff_ms - days * DAY_MS)).label(f"{name}_{days}d"))
    email_since = cutoff_ms - email_window * DAY_MS
    columns += [
        _count_if(and_(ev == opened, ts >= email_since)).label("opened"),
        _count_if(and_(ev == clicked, ts >= email_since)).label("clicked"),
    ]
    stmt = select(*columns).where(ts < cutoff_ms).group_by(events.c.profile_id).order_by(events.c.profile_id)
    result = conn.execute(stmt)
    return list(result.keys()), [tuple(row) for row in result]


def revenue_before(conn: Connection, cutoff_ms: int, purchase: str) -> list[tuple[int, float]]:
    """(profile id, revenue of all purchases before the cut-off), by profile id."""
    stmt = (
        select(events.c.profile_id, func.coalesce(func.sum(events.c.revenue), 0.0))
        .where(events.c.event == purchase, events.c.ts < cutoff_ms)
        .group_by(events.c.profile_id)
        .order_by(events.c.profile_id)
    )
    return [(int(p), float(r)) for p, r in conn.execute(stmt)]


def category_breadth(conn: Connection, start_ms: int, cutoff_ms: int, kinds: Sequence[str]) -> list[tuple[int, int]]:
    """(profile id, distinct ``properties.category`` of events of ``kinds`` in [start, cutoff)).

    Bounded to a window so the JSON is read only for recent events (found
    through ``ix_events_event_ts``), not for the whole history.
    """
    category = events.c.properties["category"].as_string()
    stmt = (
        select(events.c.profile_id, func.count(distinct(category)))
        .where(events.c.event.in_(list(kinds)), events.c.ts >= start_ms, events.c.ts < cutoff_ms)
        .group_by(events.c.profile_id)
        .order_by(events.c.profile_id)
    )
    return [(int(p), int(n)) for p, n in conn.execute(stmt)]


def purchase_totals(conn: Connection, start_ms: int, end_ms: int, purchase: str) -> list[tuple[int, int, float]]:
    """(profile id, purchases, revenue) of everyone who bought in [start, end)."""
    stmt = (
        select(events.c.profile_id, func.count(), func.coalesce(func.sum(events.c.revenue), 0.0))
        .where(events.c.event == purchase, events.c.ts >= start_ms, events.c.ts < end_ms)
        .group_by(events.c.profile_id)
        .order_by(events.c.profile_id)
    )
    return [(int(p), int(n), float(r)) for p, n, r in conn.execute(stmt)]


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


def write_scores(conn: Connection, scores: dict[int, dict[str, Any]], now_ms: int, batch: int = 20_000) -> int:
    """Set ``traits["predicted"]`` of many profiles in executemany batches; return how many.

    The JSON is set inside the database (json_set / jsonb_set) so other traits
    need not be read and written back.
    """
    value: BindParameter[Any] = bindparam("predicted")
    if conn.dialect.name == "postgresql":
        current = func.coalesce(cast(profiles.c.traits, JSONB), cast(literal("{}"), JSONB))
        path = postgresql.array([literal("predicted")])
        merged: ColumnElement[Any] = cast(func.jsonb_set(current, path, cast(value, JSONB)), JSON)
    else:
        merged = type_coerce(
            func.json_set(func.coalesce(profiles.c.traits, "{}"), "$.predicted", func.json(value)), JSON
        )
    stmt = (
        update(profiles)
        .where(profiles.c.id == bindparam("pid"))
        .values(traits=merged, updated_at=bindparam("now", type_=BigInteger))
    )
    rows = [{"pid": pid, "predicted": json.dumps(p), "now": now_ms} for pid, p in scores.items()]
    for start in range(0, len(rows), batch):
        conn.execute(stmt, rows[start : start + batch])
    return len(rows)
