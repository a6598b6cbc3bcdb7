"""Named queries on the product catalog and on the events that mention products."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import Connection, func, select, text

from tailormail.store.dialect import in_chunks, upsert
from tailormail.store.schema import events, products

CATALOG_COLUMNS = ("name", "category", "price", "url", "image_url", "properties")
"""The columns an import sets (besides the key and ``updated_at``)."""


def products_by_id(conn: Connection, product_ids: list[str]) -> dict[str, dict[str, Any]]:
    """The stored products among these ids."""
    found: dict[str, dict[str, Any]] = {}
    for chunk in in_chunks(product_ids):
        rows = conn.execute(select(products).where(products.c.product_id.in_(chunk))).mappings()
        found.update({row["product_id"]: dict(row) for row in rows})
    return found


def upsert_changed_products(conn: Connection, rows: list[dict[str, Any]], now_ms: int) -> int:
    """Insert new products and update changed ones; return how many were written.

    Unchanged products are left alone (their ``updated_at`` too), so importing a
    catalog twice writes nothing the second time.
    """
    known = products_by_id(conn, [r["product_id"] for r in rows])
    full = [{"product_id": r["product_id"], **{c: r.get(c) for c in CATALOG_COLUMNS}} for r in rows]
    for row in full:
        row["properties"] = row["properties"] or {}
    changed = [
        {**row, "updated_at": now_ms}
        for row in full
        if row["product_id"] not in known or any(known[row["product_id"]][c] != row[c] for c in CATALOG_COLUMNS)
    ]
    if changed:
        conn.execute(upsert(conn, products, ["product_id"], [*CATALOG_COLUMNS, "updated_at"]), changed)
    return len(changed)


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


# Each touch is one (person, product) mention: an event's own product_id (or sku), or
# one line of Segment's products[] list.  A blank or null id falls back to sku, as
# ``products_in`` does.  Only products in the catalog count (the model ignores others).
_TOUCH_TOTALS = {
    "sqlite": """
WITH touch AS (
    SELECT profile_id, event,
           CAST(coalesce(nullif(json_extract(properties, '$.product_id'), ''),
                         json_extract(properties, '$.sku')) AS TEXT) AS product_id
      FROM events
     WHERE {people}event IN (:view, :cart, :purchase) AND ts >= :since AND ts < :until
    UNION ALL
    SELECT e.profile_id, e.event,
           CAST(coalesce(nullif(json_extract(line.value, '$.product_id'), ''),
                         json_extract(line.value, '$.sku')) AS TEXT)
      FROM events AS e, json_each(e.properties, '$.products') AS line
     WHERE {people_e}e.event IN (:view, :cart, :purchase) AND e.ts >= :since AND e.ts < :until
       AND json_type(e.properties, '$.products') = 'array' AND line.type = 'object'
)
SELECT touch.profile_id, touch.product_id,
       sum(CASE touch.event WHEN :purchase THEN :purchase_w WHEN :cart THEN :cart_w ELSE :view_w END),
       max(CASE touch.event WHEN :purchase THEN :purchase_w WHEN :cart THEN :cart_w ELSE :view_w END)
  FROM touch JOIN products ON products.product_id = touch.product_id
 GROUP BY touch.profile_id, touch.product_id
""",
    "postgresql": """
WITH touch AS (
    SELECT profile_id, event,
           coalesce(nullif(json_extract_path_text(properties, 'product_id'), ''),
                    json_extract_path_text(properties, 'sku')) AS product_id
      FROM events
     WHERE {people}event IN (:view, :cart, :purchase) AND ts >= :since AND ts < :until
    UNION ALL
    SELECT e.profile_id, e.event,
           coalesce(nullif(line ->> 'product_id', ''), line ->> 'sku')
      FROM events AS e
     CROSS JOIN LATERAL json_array_elements(
           CASE WHEN json_typeof(e.properties -> 'products') = 'array' THEN e.properties -> 'products' END) AS line
     WHERE {people_e}e.event IN (:view, :cart, :purchase) AND e.ts >= :since AND e.ts < :until
       AND json_typeof(line) = 'object'
)
SELECT touch.profile_id, touch.product_id,
       sum(CASE touch.event WHEN :purchase THEN :purchase_w WHEN :cart THEN :cart_w ELSE :view_w END),
       max(CASE touch.event WHEN :purchase THEN :purchase_w WHEN :cart THEN :cart_w ELSE :view_w END)
  FROM touch JOIN products ON products.product_id = touch.product_id
 GROUP BY touch.profile_id, touch.product_id
""",
}


def touch_totals(
    conn: Connection,
    weights: dict[str, float],
    *,
    view: str,
    cart: str,
    purchase: str,
    since_ms: int,
    until_ms: int,
    chunk: int = 100_000,
    profiles: tuple[int, int] | None = None,
) -> Iterator[list[tuple[int, str, float, float]]]:
    """(profile_id, product_id, summed weight, largest single weight) per person and catalog product.

    The aggregation runs in the database, so training reads one row per person and
    product rather than every event with its JSON; rows come in lists of ``chunk``.
    ``profiles``: only people whose id is in this (first, last) range.
    """
    params: dict[str, Any] = {
        "view": view,
        "cart": cart,
        "purchase": purchase,
        "view_w": float(weights[view]),
        "cart_w": float(weights[cart]),
        "purchase_w": float(weights[purchase]),
        "since": since_ms,
        "until": until_ms,
    }
    people = people_e = ""
    if profiles is not None:  # constant SQL text; the bounds are parameters
        people, people_e = "profile_id BETWEEN :first AND :last AND ", "e.profile_id BETWEEN :first AND :last AND "
        params |= {"first": profiles[0], "last": profiles[1]}
    sql = _TOUCH_TOTALS[conn.dialect.name].format(people=people, people_e=people_e)
    result = conn.execute(text(sql), params)
    while rows := result.fetchmany(chunk):
        yield [(int(r[0]), str(r[1]), float(r[2]), float(r[3])) for r in rows]


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
