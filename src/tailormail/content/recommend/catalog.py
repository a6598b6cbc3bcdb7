"""The product catalog, filled from Segment e-commerce events as they are ingested.

Events that describe a product (``Product Viewed`` with ``product_id`` and
``name``, or an order's ``products[]``) add it to the catalog when it is not
there yet; ``tailormail import products`` is the authority and overwrites.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection

from tailormail.ingest.pipeline import StoredEvent
from tailormail.store import products as product_q

FIELDS = {"product_id": "product_id", "sku": "product_id", "name": "name", "category": "category",
          "price": "price", "url": "url", "image_url": "image_url", "image": "image_url"}  # fmt: skip
"""Segment's product properties (and common aliases) -> catalog columns."""


def product_row(properties: dict[str, Any]) -> dict[str, Any] | None:
    """A catalog row from one product's properties, or None without an id and a name."""
    if properties.get("name") in (None, "") or (
        properties.get("product_id") in (None, "") and properties.get("sku") in (None, "")
    ):
        return None  # most events (opens, clicks, page views) describe no product: say so cheaply
    row: dict[str, Any] = {}
    for key, column in FIELDS.items():
        if properties.get(key) not in (None, "") and column not in row:
            row[column] = properties[key]
    if "product_id" not in row or "name" not in row:
        return None
    row["product_id"] = str(row["product_id"])
    row["price"] = _price(row.get("price"))
    return {"category": None, "price": None, "url": None, "image_url": None, **row}


def _price(value: Any) -> float | None:
    try:
        return None if value in (None, "") else float(value)
    except (TypeError, ValueError):
        return None


def rows_from_events(events: Iterable[StoredEvent]) -> list[dict[str, Any]]:
    """Catalog rows described by events (first description of each product wins)."""
    found: dict[str, dict[str, Any]] = {}
    for stored in events:
        properties = stored.message.properties
        if not properties:  # identifies and most page views: nothing to look at
            continue
        for candidate in [properties, *(p for p in properties.get("products") or [] if isinstance(p, dict))]:
            row = product_row(candidate)
            if row is not None:
                found.setdefault(row["product_id"], row)
    return list(found.values())


def catalog_hook(conn: Connection, events: list[StoredEvent], now_ms: int) -> None:
    """Ingest hook: add products that events describe and the catalog lacks."""
    product_q.add_missing_products(conn, rows_from_events(events), now_ms)
