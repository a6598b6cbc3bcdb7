"""Streaming readers for data files: CSV, JSONL, Parquet and whitespace-separated text (gzipped too).

A reader yields rows as ``(line, dict)`` pairs a chunk at a time, so a file of
any size is read in bounded memory.  ``line`` is the 1-based line (text files)
or row (Parquet) a person would look for in the file.  A reader also tells how
far it has got (``position`` of ``total``, bytes or rows) for a progress bar.
"""

from __future__ import annotations

import csv
import gzip
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from tailormail.errors import ValidationError

FORMATS = ("csv", "jsonl", "parquet", "whitespace")
"""The file formats import understands."""

EXTENSIONS = {
    ".csv": "csv",
    ".tsv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".txt": "whitespace",
}
"""Which format a file extension means when ``--format`` is not given."""


@dataclass
class BadRow:
    """A row that cannot be read or mapped: where it is and why."""

    line: int
    reason: str
    field: str | None = None
    text: str = ""


Row = tuple[int, dict[str, Any] | BadRow]
"""One row of a file: its line number and its values (or why it is unreadable)."""


def detect_format(path: Path, given: str | None = None) -> str:
    """The format to read ``path`` as: ``given`` if set, else from the extension."""
    if given:
        if given not in FORMATS:
            raise ValidationError(f"unknown format {given!r}", field="format", hint=f"use one of {', '.join(FORMATS)}")
        return given
    suffixes = [s.lower() for s in path.suffixes if s.lower() != ".gz"]
    found = EXTENSIONS.get(suffixes[-1] if suffixes else "")
    if found is None:
        raise ValidationError(
            f"cannot tell the format of {path.name} from its extension",
            source=str(path),
            field="format",
            hint=f"pass --format ({', '.join(FORMATS)})",
        )
    return found


class FileReader:
    """Reads one file in chunks of rows and knows how far it has got."""

    def __init__(self, path: Path, fmt: str, *, columns: list[str] | None = None, chunk_rows: int = 10_000) -> None:
        if not path.is_file():
            raise ValidationError(f"no such file: {path}", source=str(path), hint="check the path")
        self.path = path
        self.format = fmt
        self.columns = columns
        self.chunk_rows = chunk_rows
        self.position = 0
        self.total = path.stat().st_size
        self.text_values = fmt in ("csv", "whitespace")
        """True when every value arrives as text (and numbers must be recognised)."""

    def rows(self) -> Iterator[Row]:
        """Every row of the file, in order."""
        if self.format == "parquet":
            yield from self._parquet()
            return
        with self.path.open("rb") as raw:
            lines = self._lines(raw, gzip.GzipFile(fileobj=raw) if self.path.suffix.lower() == ".gz" else raw)
            if self.format == "jsonl":
                yield from self._jsonl(lines)
            elif self.format == "whitespace":
                yield from self._whitespace(lines)
            else:
                yield from self._csv(lines)

    def chunks(self) -> Iterator[list[Row]]:
        """The rows in lists of ``chunk_rows``."""
        chunk: list[Row] = []
        for row in self.rows():
            chunk.append(row)
            if len(chunk) >= self.chunk_rows:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    def _lines(self, raw: BinaryIO, source: Any) -> Iterator[str]:
        """Decoded lines of ``source`` (``raw`` or its gzip stream), counting bytes of ``raw`` read.

        A UTF-8 byte-order mark is dropped.
        """
        first = True
        for line in source:
            self.position = self.position + len(line) if source is raw else raw.tell()
            try:
                text = line.decode("utf-8-sig" if first else "utf-8")
            except UnicodeDecodeError:
                text = line.decode("latin-1")  # never lose a row over its encoding
            first = False
            yield text

    def _header(self, first: list[str] | None) -> list[str]:
        if self.columns:
            return self.columns
        if not first or not any(c.strip() for c in first):
            raise ValidationError(
                "the file is empty or has no header line",
                source=str(self.path),
                line=1,
                hint="add a header line or name the columns with --columns",
            )
        return [c.strip() for c in first]

    def _csv(self, lines: Iterator[str]) -> Iterator[Row]:
        delimiter = "\t" if ".tsv" in (s.lower() for s in self.path.suffixes) else ","
        reader = csv.reader(lines, delimiter=delimiter)
        header = self._header(None if self.columns else next(reader, None))
        for values in reader:
            if not values:
                continue
            yield reader.line_num, self._zip(header, values, reader.line_num, delimiter.join(values))

    def _whitespace(self, lines: Iterator[str]) -> Iterator[Row]:
        numbered = enumerate(lines, start=1)
        header = self.columns
        for number, text in numbered:
            values = text.split()
            if not values:
                continue
            if header is None:
                header = self._header(values)
                continue
            yield number, self._zip(header, values, number, text.strip())

    def _zip(self, header: list[str], values: list[str], line: int, text: str) -> dict[str, Any] | BadRow:
        if len(values) != len(header):
            return BadRow(line, f"has {len(values)} values, the header names {len(header)} columns", None, text)
        return dict(zip(header, values, strict=True))

    def _jsonl(self, lines: Iterator[str]) -> Iterator[Row]:
        for number, text in enumerate(lines, start=1):
            if not text.strip():
                continue
            try:
                value = json.loads(text)
            except json.JSONDecodeError as error:
                yield number, BadRow(number, f"not valid JSON: {error.msg} (column {error.colno})", None, text.strip())
                continue
            if not isinstance(value, dict):
                yield number, BadRow(number, "each line must be a JSON object", None, text.strip())
                continue
            yield number, value

    def _parquet(self) -> Iterator[Row]:
        import pyarrow.parquet as pq

        parquet = pq.ParquetFile(self.path)
        self.total = parquet.metadata.num_rows
        number = 0
        for batch in parquet.iter_batches(batch_size=self.chunk_rows):
            for values in batch.to_pylist():
                number += 1
                yield number, values
            self.position = number
