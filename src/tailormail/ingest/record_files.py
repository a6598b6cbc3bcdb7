"""Minimal readers of record files (CSV, JSONL, Parquet) for scheduled file pulls.

Each record comes with where it was (file and line or row) so an error can
point at it.  The ``import`` command has fuller readers; this one only needs
to yield plain dicts.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tailormail.errors import ValidationError

FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}


@dataclass(frozen=True)
class FileRecord:
    """One record and where it came from."""

    path: Path
    line: int
    record: Any


def file_format(path: Path, explicit: str = "") -> str:
    """csv, jsonl or parquet, from ``explicit`` or the file extension."""
    fmt = explicit or FORMATS.get(path.suffix.lower(), "")
    if not fmt:
        raise ValidationError(
            f"cannot tell the format of {path.name}", source=str(path), hint="set format = csv, jsonl or parquet"
        )
    return fmt


def read_records(path: Path, explicit_format: str = "") -> Iterator[FileRecord]:
    """Every record of one file; a JSONL line that is not JSON yields a ValidationError as its record."""
    fmt = file_format(path, explicit_format)
    if fmt == "csv":
        with path.open(newline="", encoding="utf-8-sig") as handle:
            for number, row in enumerate(csv.DictReader(handle), start=2):
                yield FileRecord(path, number, {k: v for k, v in row.items() if v not in (None, "")})
    elif fmt == "jsonl":
        with path.open(encoding="utf-8") as handle:
            for number, text in enumerate(handle, start=1):
                if text.strip():
                    yield FileRecord(path, number, _json_line(text, path, number))
    else:
        import pyarrow.parquet as pq

        row_number = 0
        for batch in pq.ParquetFile(path).iter_batches(batch_size=10_000):
            for row in batch.to_pylist():
                row_number += 1
                yield FileRecord(path, row_number, row)


def _json_line(text: str, path: Path, number: int) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        return ValidationError(f"not valid JSON: {exc}", source=str(path), line=number)
