"""Named queries on the product catalog and on the events that mention products."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from sqlalchemy import Connection, func, select

from tailormail.store.dialect import upsert
from tailormail.store.schema import events, products

PRODUCT_FIELDS = ("name", "category", "price", "url", "image_url", "properties", "updated_at")
"""The columns an upsert rewrites for a product id that already exists."""


def upsert_products(conn: Connection, rows: Sequence[dict[str, Any]], now_ms: int) -> int:
    """Insert or update catalog rows (keyed by ``product_id``); return how many."""
    if not rows:
        return 0
    values = [
        {
            "product_id": str(r["product_id"]),
            "name": str(r.get("name") or r["product_id"]),
            "category": r.get("category"),
            "price": r.get("price"),
            "url": r.get("url"),
            "image_url": r.get("image_url"),
            "properties": dict(r.get("properties") or {}),
            "updated_at": now_ms,
        }
        for r in rows
    ]
    conn.execute(upsert(conn, products, ["product_id"], list(PRODUCT_FIELDS)), values)
    return len(values)


def products_by_id(conn: Connection, product_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Catalog rows for these ids (unknown ids are absent)."""
    wanted = list(set(product_ids))
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(wanted), 500):
        rows = conn.execute(select(products).where(products.c.product_id.in_(wanted[start : start + 500])))
        found.update({row.product_id: dict(row._mapping) for row in rows})
    return found


def all_products(conn: Connection) -> list[dict[str, Any]]:
    """The whole catalog, ordered by product id."""
    return [dict(r) for r in conn.execute(select(products).order_by(products.c.product_id)).mappings()]


def count_products(conn: Connection) -> int:
    """How many products the catalog holds."""
    return int(conn.execute(select(func.count()).select_from(products)).scalar_one())


def product_events(
    conn: Connection,
    event_names: Sequence[str],
    *,
    since_ms: int | None = None,
    until_ms: int | None = None,
    batch: int = 20_000,
) -> Iterator[tuple[int, str, dict[str, Any], int]]:
    """(profile_id, event, properties, ts) of the named events in [since, until), in id order."""
    stmt = select(events.c.id, events.c.profile_id, events.c.event, events.c.properties, events.c.ts).where(
        events.c.event.in_(list(event_names))
    )
    if since_ms is not None:
        stmt = stmt.where(events.c.ts >= since_ms)
    if until_ms is not None:
        stmt = stmt.where(events.c.ts < until_ms)
    last = 0
    while True:
        rows = conn.execute(stmt.where(events.c.id > last).order_by(events.c.id).limit(batch)).all()
        if not rows:
            return
        for _id, profile_id, event, properties, ts in rows:
            yield int(profile_id), str(event), dict(properties or {}), int(ts)
        last = rows[-1][0]


def event_bounds(conn: Connection, event_names: Sequence[str]) -> tuple[int | None, int | None, int]:
    """(earliest ts, latest ts, max id) of the named events: a cache key and a split range."""
    row = conn.execute(
        select(func.min(events.c.ts), func.max(events.c.ts), func.max(events.c.id)).where(
            events.c.event.in_(list(event_names))
        )
    ).one()
    return row[0], row[1], int(row[2] or 0)


def product_events_of(
    conn: Connection, profile_ids: Sequence[int], event_names: Sequence[str], *, since_ms: int, until_ms: int
) -> Iterator[tuple[int, str, dict[str, Any], int]]:
    """(profile_id, event, properties, ts) of these people's named events in [since, until)."""
    wanted = sorted(set(profile_ids))
    for start in range(0, len(wanted), 500):
        rows = conn.execute(
            select(events.c.profile_id, events.c.event, events.c.properties, events.c.ts).where(
                events.c.profile_id.in_(wanted[start : start + 500]),
                events.c.event.in_(list(event_names)),
                events.c.ts >= since_ms,
                events.c.ts < until_ms,
            )
        )
        for profile_id, event, properties, ts in rows:
            yield int(profile_id), str(event), dict(properties or {}), int(ts)


def add_missing_products(conn: Connection, rows: Sequence[dict[str, Any]], now_ms: int) -> None:
    """Insert catalog rows whose product id is unknown; never overwrite a known product."""
    from tailormail.store.dialect import insert_ignoring_conflicts

    if rows:
        conn.execute(
            insert_ignoring_conflicts(conn, products),
            [{**r, "properties": dict(r.get("properties") or {}), "updated_at": now_ms} for r in rows],
        )
