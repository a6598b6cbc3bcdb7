"""Reading an exported experiment table (CSV or Parquet) into per-arm observations."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path

from tailormail.analytics.verdicts import Observations
from tailormail.errors import ValidationError


def read_experiment_table(path: Path, arm: str, metrics: Sequence[str]) -> Observations:
    """Group the rows of ``path`` by the ``arm`` column, collecting each metric as floats."""
    if not path.exists():
        raise ValidationError(f"{path} does not exist", source=str(path))
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        rows, first_line = _parquet_rows(path), 1
    elif suffix in (".csv", ".tsv"):
        rows, first_line = _csv_rows(path, "\t" if suffix == ".tsv" else ","), 2
    else:
        raise ValidationError(f"{path.name}: unknown format {suffix!r}", source=str(path), hint="use .csv or .parquet")
    out: Observations = {}
    for offset, row in enumerate(rows):
        if offset == 0:
            _check_columns(path, row.keys(), [arm, *metrics])
        group = out.setdefault(str(row[arm]), {m: [] for m in metrics})
        for metric in metrics:
            group[metric].append(_number(path, row[metric], metric, offset + first_line))  # type: ignore[attr-defined]
    if not out:
        raise ValidationError(f"{path.name} has no rows", source=str(path))
    return out


def _csv_rows(path: Path, delimiter: str):  # type: ignore[no-untyped-def]
    with path.open(newline="", encoding="utf-8") as handle:
        yield from csv.DictReader(handle, delimiter=delimiter)


def _parquet_rows(path: Path):  # type: ignore[no-untyped-def]
    import pyarrow.parquet as pq

    for batch in pq.ParquetFile(path).iter_batches(batch_size=65536):
        yield from batch.to_pylist()


def _check_columns(path: Path, present: Sequence[str], wanted: Sequence[str]) -> None:
    for column in wanted:
        if column not in present:
            raise ValidationError(
                f"{path.name}: no column {column!r}",
                field=column,
                source=str(path),
                hint=f"columns are: {', '.join(present)}",
            )


def _number(path: Path, value: object, metric: str, line: int) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        number = math.nan
    if math.isnan(number):
        raise ValidationError(
            f"{path.name} line {line}: {metric} is {value!r}, not a number",
            field=metric,
            line=line,
            source=str(path),
            hint="use 0/1 for conversions and plain numbers for revenue",
        )
    return number
