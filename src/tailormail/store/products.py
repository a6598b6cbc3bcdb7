"""Named queries on the product catalog."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, func, select

from tailormail.store.dialect import upsert
from tailormail.store.schema import products

PRODUCT_COLUMNS = ("product_id", "name", "category", "price", "url", "image_url")
"""The catalog fields with their own column; anything else goes to ``properties``."""


def upsert_products(conn: Connection, items: Sequence[dict[str, Any]], now_ms: int) -> int:
    """Insert or update products by product_id; return how many were written."""
    rows = [
        {
            **{name: item.get(name) for name in PRODUCT_COLUMNS},
            "properties": {k: v for k, v in item.items() if k not in PRODUCT_COLUMNS},
            "updated_at": now_ms,
        }
        for item in items
    ]
    if rows:
        stmt = upsert(conn, products, ["product_id"], [*PRODUCT_COLUMNS[1:], "properties", "updated_at"])
        conn.execute(stmt, rows)
    return len(rows)


def count_products(conn: Connection) -> int:
    """How many products the catalog holds."""
    return int(conn.execute(select(func.count()).select_from(products)).scalar_one())


def products_by_id(conn: Connection, product_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Catalog rows of these product ids."""
    found: dict[str, dict[str, Any]] = {}
    wanted = list(set(product_ids))
    for start in range(0, len(wanted), 500):
        rows = conn.execute(select(products).where(products.c.product_id.in_(wanted[start : start + 500])))
        found.update({row["product_id"]: dict(row) for row in rows.mappings()})
    return found
