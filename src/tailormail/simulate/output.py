"""Where a simulated shop goes: into a workspace's store, or into a file.

The store path writes the catalog to ``products`` and the messages through
``bulk_ingest`` (so repeated messageIds are skipped).  The file path writes
Segment-format messages as JSONL or Parquet, plus the catalog next to them,
for ``tailormail import events`` to read later.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from pathlib import Path
from typing import Any, TextIO

from tailormail.config import Settings
from tailormail.errors import ValidationError
from tailormail.ingest.bulk import bulk_ingest
from tailormail.ingest.messages import Message
from tailormail.simulate.customers import iso
from tailormail.simulate.shop import Progress, Shop, ShopSpec
from tailormail.store import Store
from tailormail.store import products as product_q

FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}
"""File extensions ``simulate --out`` understands."""

PARQUET_ROWS = 100_000
"""Rows per Parquet row group: bounded memory, still large enough to compress well."""


@dataclass
class SimulationResult:
    """What one simulation produced and where it went."""

    customers: int
    products: int
    messages: int
    stored: int
    duplicates: int
    start: int
    end: int
    """The window [start, end) in seconds since the epoch."""
    path: Path | None = None
    catalog_path: Path | None = None


def simulate_into(
    store: Store,
    settings: Settings,
    *,
    customers: int,
    days: int,
    seed: int,
    end: datetime,
    now_ms: int | None = None,
    progress: Progress | None = None,
    batch_size: int = 20_000,
) -> SimulationResult:
    """Simulate a shop into the store: catalog into ``products``, messages through bulk ingest.

    ``now_ms`` is when the rows count as received (default: the window's end).
    """
    shop = Shop(ShopSpec.ending(end, customers=customers, days=days, seed=seed, events=settings.events))
    now_ms = shop.spec.end * 1000 if now_ms is None else now_ms
    with store.begin() as conn:
        product_q.upsert_changed_products(conn, [catalog_row(p) for p in shop.catalog.products], now_ms)
    result = bulk_ingest(store, shop.messages(progress), now_ms=now_ms, batch_size=batch_size)
    return SimulationResult(
        customers=customers,
        products=len(shop.catalog.products),
        messages=result.received,
        stored=result.stored,
        duplicates=result.duplicates,
        start=shop.spec.start,
        end=shop.spec.end,
    )


def simulate_to_file(
    path: Path,
    *,
    customers: int,
    days: int,
    seed: int,
    end: datetime,
    events: Any = None,
    progress: Progress | None = None,
) -> SimulationResult:
    """Simulate a shop into a JSONL or Parquet file of Segment messages (catalog beside it)."""
    kind = file_format(path)
    shop = Shop(ShopSpec.ending(end, customers=customers, days=days, seed=seed, events=events))
    catalog_path = path.with_name(f"{path.name.removesuffix(path.suffix)}.products{path.suffix}")
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = (segment_message(m) for m in shop.messages(progress))
    writer = _write_jsonl if kind == "jsonl" else _write_parquet
    count = writer(path, rows, kind="messages")
    writer(catalog_path, iter(shop.catalog.products), kind="products")
    return SimulationResult(
        customers=customers,
        products=len(shop.catalog.products),
        messages=count,
        stored=count,
        duplicates=0,
        start=shop.spec.start,
        end=shop.spec.end,
        path=path,
        catalog_path=catalog_path,
    )


def catalog_row(product: dict[str, Any]) -> dict[str, Any]:
    """A product as the ``products`` table holds it: fields without a column go to properties."""
    row = {name: product.get(name) for name in ("product_id", *product_q.CATALOG_COLUMNS)}
    row["properties"] = {k: v for k, v in product.items() if k not in row}
    return row


def file_format(path: Path) -> str:
    """``jsonl`` or ``parquet`` from a file's extension; a clear error otherwise."""
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise ValidationError(
            f"cannot tell the format of {path.name}",
            field="out",
            source=str(path),
            hint="end the file name in .jsonl or .parquet",
        )
    return kind


def segment_message(message: Message) -> dict[str, Any]:
    """A message in Segment's wire format (what ``/v1/batch`` and ``import events`` accept)."""
    raw: dict[str, Any] = {
        "type": message.type,
        "messageId": message.message_id,
        "userId": message.user_id,
        "timestamp": iso(message.timestamp // 1000),
    }
    if message.type == "identify":
        raw["traits"] = message.traits
    else:
        raw["event"] = message.event
        raw["properties"] = message.properties
    if message.context:
        raw["context"] = message.context
    return raw


def _write_jsonl(path: Path, rows: Iterator[dict[str, Any]], *, kind: str) -> int:
    with path.open("w", encoding="utf-8", newline="\n") as out:
        return _dump_lines(out, rows)


def _dump_lines(out: TextIO, rows: Iterable[dict[str, Any]]) -> int:
    count = 0
    for row in rows:
        out.write(json.dumps(row, ensure_ascii=False, separators=(",", ":")))
        out.write("\n")
        count += 1
    return count


MESSAGE_COLUMNS = ("messageId", "type", "userId", "timestamp", "event", "properties", "traits", "context")
"""Parquet columns of a message file, all text: objects as JSON, the timestamp as ISO-8601."""
OBJECT_COLUMNS = ("properties", "traits", "context")
PRODUCT_FIELDS = {"product_id": "string", "name": "string", "category": "string", "brand": "string",
                  "price": "float64", "url": "string", "image_url": "string"}  # fmt: skip


def _write_parquet(path: Path, rows: Iterator[dict[str, Any]], *, kind: str) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    if kind == "messages":
        schema = pa.schema([(name, pa.string()) for name in MESSAGE_COLUMNS])
    else:
        schema = pa.schema([(name, pa.type_for_alias(kind)) for name, kind in PRODUCT_FIELDS.items()])
    count = 0
    with pq.ParquetWriter(path, schema, compression="zstd") as writer:
        while chunk := list(islice(rows, PARQUET_ROWS)):
            flat = [_flat(row) for row in chunk] if kind == "messages" else chunk
            writer.write_table(pa.Table.from_pylist(flat, schema=schema))
            count += len(chunk)
    return count


def _flat(row: dict[str, Any]) -> dict[str, Any]:
    """A message as Parquet columns: nested objects become JSON text."""
    flat = {name: row.get(name) for name in MESSAGE_COLUMNS}
    for name in OBJECT_COLUMNS:
        if flat[name] is not None:
            flat[name] = json.dumps(flat[name], ensure_ascii=False, separators=(",", ":"))
    return flat
