"""Export events and profiles to JSONL or Parquet, streamed in pages.

JSONL events are in Segment's own shape (``event_json``), so an export can be
imported again (into tailormail or anything that reads Segment data).  Parquet
has the same fields as columns; the free-form objects (``properties``,
``traits``, ``context``) are JSON text, since their keys differ row to row.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

from tailormail.clock import from_ms, parse_time
from tailormail.errors import ValidationError
from tailormail.ingest.messages import revenue_of
from tailormail.ingest.profiles import event_json
from tailormail.store import Store
from tailormail.store import events as event_q
from tailormail.store import profiles as profile_q

EXPORT_FORMATS = ("jsonl", "parquet")
"""The formats export writes."""

_OBJECT_FIELDS = ("properties", "traits", "context")
_EVENT_COLUMNS = ("messageId", "type", "event", "name", "userId", "anonymousId", "timestamp", "receivedAt")
_PROFILE_COLUMNS = ("userId", "anonymousIds", "firstSeen", "lastSeen")
_TIME_FIELDS = ("timestamp", "receivedAt", "firstSeen", "lastSeen")


@dataclass(frozen=True)
class ExportResult:
    """What one export wrote."""

    kind: str
    path: Path
    format: str
    rows: int


def export_events(
    store: Store, out: Path, fmt: str, *, on_progress: Callable[[int, int], None] | None = None, page: int = 10_000
) -> ExportResult:
    """Write every event, oldest id first, to ``out``."""
    with store.read() as conn:
        total = event_q.count_events(conn)
        rows = (event_json(row) for row in event_q.iter_events(conn, batch=page))
        written = _write(out, fmt, rows, _EVENT_COLUMNS, page, total, on_progress)
    return ExportResult("events", out, fmt, written)


def export_profiles(
    store: Store, out: Path, fmt: str, *, on_progress: Callable[[int, int], None] | None = None, page: int = 5_000
) -> ExportResult:
    """Write every profile (user id, anonymous ids, traits, first and last seen) to ``out``."""
    with store.read() as conn:
        total = profile_q.count_profiles(conn)
        rows = _profile_rows(conn, page)
        written = _write(out, fmt, rows, _PROFILE_COLUMNS, page, total, on_progress)
    return ExportResult("profiles", out, fmt, written)


def _profile_rows(conn: Any, page: int) -> Iterator[dict[str, Any]]:
    profiles = profile_q.iter_profiles(conn, batch=page)
    while chunk := list(islice(profiles, page)):
        anonymous = profile_q.anonymous_ids_of(conn, [p["id"] for p in chunk])
        for p in chunk:
            yield {
                "userId": p["user_id"],
                "anonymousIds": anonymous.get(p["id"], []),
                "traits": p["traits"] or {},
                "firstSeen": from_ms(p["first_seen"]).isoformat(),
                "lastSeen": from_ms(p["last_seen"]).isoformat(),
            }


def _write(
    out: Path,
    fmt: str,
    rows: Iterable[dict[str, Any]],
    columns: tuple[str, ...],
    page: int,
    total: int,
    on_progress: Callable[[int, int], None] | None,
) -> int:
    if fmt not in EXPORT_FORMATS:
        raise ValidationError(f"cannot export as {fmt!r}", field="format", hint=f"use {' or '.join(EXPORT_FORMATS)}")
    out.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    writer = _ParquetWriter(out, columns) if fmt == "parquet" else None
    with out.open("w", encoding="utf-8") if writer is None else writer as sink:
        iterator = iter(rows)
        while chunk := list(islice(iterator, page)):
            if isinstance(sink, _ParquetWriter):
                sink.write(chunk)
            else:
                sink.writelines(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n" for row in chunk)
            written += len(chunk)
            if on_progress:
                on_progress(written, total)
    return written


class _ParquetWriter:
    """Writes pages of Segment-shaped rows as Parquet row groups."""

    def __init__(self, out: Path, columns: tuple[str, ...]) -> None:
        import pyarrow as pa

        types = {"anonymousIds": pa.list_(pa.string()), "revenue": pa.float64()}
        types.update({name: pa.timestamp("ms", tz="UTC") for name in _TIME_FIELDS})
        names = [*columns, *(f for f in _OBJECT_FIELDS if f != ("traits" if "event" in columns else "properties"))]
        if "event" in columns:
            names.append("revenue")
        self.schema = pa.schema([(n, types.get(n, pa.string())) for n in names])
        self.out = out
        self.writer: Any = None

    def __enter__(self) -> _ParquetWriter:
        import pyarrow.parquet as pq

        self.writer = pq.ParquetWriter(self.out, self.schema)
        return self

    def __exit__(self, *_: object) -> None:
        self.writer.close()

    def write(self, rows: list[dict[str, Any]]) -> None:
        """Append one page of rows as a row group."""
        import pyarrow as pa

        columns: dict[str, list[Any]] = {name: [] for name in self.schema.names}
        for row in rows:
            for name in self.schema.names:
                value = row.get(name)
                if name in _OBJECT_FIELDS:
                    value = json.dumps(value, ensure_ascii=False) if value else None
                elif name == "revenue":
                    value = revenue_of(row.get("properties") or {}) if row.get("type") == "track" else None
                elif name in _TIME_FIELDS and value is not None:
                    value = parse_time(value)
                columns[name].append(value)
        self.writer.write_table(pa.table(columns, schema=self.schema))
