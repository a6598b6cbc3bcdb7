"""Named queries on the product catalog."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, func, select

from tailormail.store.dialect import in_chunks, upsert
from tailormail.store.schema import products

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
