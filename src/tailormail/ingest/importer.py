"""Import events, profiles and products from data files.

Every row is mapped, validated and stored through the bulk path; a row that
fails goes to an error report (line, field, reason) and the rest are imported.
A row's messageId is derived from its content, so importing a file twice adds
nothing, while two identical rows in one file (two equal purchases on one day)
are both kept: the second gets the next occurrence number in its id.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from tailormail.errors import ValidationError
from tailormail.ingest.bulk import bulk_ingest
from tailormail.ingest.files import BadRow, FileReader, detect_format
from tailormail.ingest.mapping import ColumnMapping, RowError
from tailormail.ingest.messages import Message, parse_message
from tailormail.store import Store
from tailormail.store import products as product_q

KINDS = ("events", "profiles", "products")
"""What a file can hold."""

PROGRESS_EVERY = 2_000
"""Rows between progress reports while reading (stores report once per batch too)."""


@dataclass(frozen=True)
class ImportProgress:
    """How far an import has got: rows read, and ``position`` of ``total`` (bytes or rows)."""

    rows: int
    position: int
    total: int


@dataclass
class ImportOptions:
    """How to read and map a file (the import command's options)."""

    format: str | None = None
    maps: dict[str, str] = field(default_factory=dict)
    date_format: str | None = None
    event: str | None = None
    columns: list[str] | None = None
    errors_path: Path | None = None
    batch_size: int = 20_000


@dataclass
class ImportReport:
    """What one import did."""

    kind: str
    path: Path
    format: str
    rows: int = 0
    imported: int = 0
    duplicates: int = 0
    errors: int = 0
    error_file: Path | None = None
    error_fields: dict[str, list[Any]] = field(default_factory=dict)
    """Per field: [rows, first line, first reason]."""


class ErrorReport:
    """Bad rows, written as CSV (line, field, reason, row) as they are found."""

    def __init__(self, path: Path, report: ImportReport) -> None:
        self.path = path
        self.report = report
        path.unlink(missing_ok=True)  # a report left by an earlier run would describe other rows
        self._file: TextIO | None = None
        self._writer: Any = None

    def add(self, bad: BadRow) -> None:
        """Record one bad row."""
        if self._file is None:
            self._file = self.path.open("w", newline="", encoding="utf-8")
            self._writer = csv.writer(self._file)
            self._writer.writerow(["line", "field", "reason", "row"])
            self.report.error_file = self.path
        self._writer.writerow([bad.line, bad.field or "", bad.reason, bad.text])
        self.report.errors += 1
        summary = self.report.error_fields.setdefault(bad.field or "row", [0, bad.line, bad.reason])
        summary[0] += 1

    def close(self) -> None:
        """Flush and close the report file."""
        if self._file is not None:
            self._file.close()


class RowIds:
    """Deterministic messageIds: a hash of the row's content and its occurrence number."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        # Occurrences per distinct content, keyed by Python's (per-process) string hash:
        # only the count must be reproducible, and an int key keeps memory small.
        self.seen: dict[int, int] = {}

    def __call__(self, raw: dict[str, Any]) -> str:
        """The id of the next row with this content."""
        body = f"{self.kind}\n" + json.dumps(raw, sort_keys=True, separators=(",", ":"), default=str)
        key = hash(body)
        occurrence = self.seen.get(key, 0)
        self.seen[key] = occurrence + 1
        if occurrence:
            body += f"\n{occurrence}"
        return "import-" + hashlib.blake2b(body.encode(), digest_size=16).hexdigest()


def default_errors_path(path: Path) -> Path:
    """Where the error report goes: next to the input, or the current folder if that is read-only."""
    name = path.name + ".errors.csv"
    return path.with_name(name) if os.access(path.parent, os.W_OK) else Path.cwd() / name


def import_file(
    store: Store,
    path: Path,
    kind: str,
    *,
    now_ms: int,
    options: ImportOptions | None = None,
    on_progress: Callable[[ImportProgress], None] | None = None,
) -> ImportReport:
    """Import a file of events, profiles or products; bad rows go to the error report."""
    if kind not in KINDS:
        raise ValidationError(f"cannot import {kind!r}", field="kind", hint=f"import one of {', '.join(KINDS)}")
    options = options or ImportOptions()
    fmt = detect_format(path, options.format)
    reader = FileReader(path, fmt, columns=options.columns, chunk_rows=options.batch_size)
    mapping = ColumnMapping(kind, options.maps, options.date_format, options.event, text_values=reader.text_values)
    report = ImportReport(kind, path, fmt)
    errors = ErrorReport(options.errors_path or default_errors_path(path), report)

    def progress(_: int = 0) -> None:
        if on_progress:
            on_progress(ImportProgress(report.rows, reader.position, reader.total))

    try:
        if kind == "products":
            _import_products(store, reader, mapping, report, errors, now_ms, progress)
        else:
            messages = _messages(reader, mapping, report, errors, now_ms, progress)
            result = bulk_ingest(store, messages, now_ms=now_ms, batch_size=options.batch_size, on_progress=progress)
            report.imported, report.duplicates = result.stored, result.duplicates
    finally:
        errors.close()
    progress()
    return report


def _messages(
    reader: FileReader,
    mapping: ColumnMapping,
    report: ImportReport,
    errors: ErrorReport,
    now_ms: int,
    progress: Callable[[], None],
) -> Iterator[Message]:
    """The valid rows as messages; the others go to the error report."""
    ids = RowIds(mapping.kind)
    for line, row in reader.rows():
        report.rows += 1
        if report.rows % PROGRESS_EVERY == 0:
            progress()
        if isinstance(row, BadRow):
            errors.add(row)
            continue
        try:
            raw = mapping.message(row)
            if "messageId" not in raw:
                raw["messageId"] = ids(raw)
            yield parse_message(raw, received_ms=now_ms)
        except RowError as error:
            errors.add(BadRow(line, error.reason, error.field, _row_text(row)))
        except ValidationError as error:
            errors.add(BadRow(line, error.message, error.field, _row_text(row)))


def _import_products(
    store: Store,
    reader: FileReader,
    mapping: ColumnMapping,
    report: ImportReport,
    errors: ErrorReport,
    now_ms: int,
    progress: Callable[[], None],
) -> None:
    for chunk in reader.chunks():
        products: dict[str, dict[str, Any]] = {}
        for line, row in chunk:
            report.rows += 1
            if isinstance(row, BadRow):
                errors.add(row)
                continue
            try:
                product = mapping.product(row)
            except RowError as error:
                errors.add(BadRow(line, error.reason, error.field, _row_text(row)))
                continue
            products[product["product_id"]] = product  # a later row for the same id wins
        with store.begin() as conn:
            changed = product_q.upsert_changed_products(conn, list(products.values()), now_ms)
        report.imported += changed
        report.duplicates += len(products) - changed
        progress()


def _row_text(row: dict[str, Any]) -> str:
    return json.dumps(row, default=str, ensure_ascii=False)
