"""`tailormail import`: events, profiles and products from CSV, JSONL, Parquet or text files."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, DownloadColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from tailormail.cli.common import JsonOption, WorkspaceOption, console, print_json, print_table, runtime_for
from tailormail.clock import to_ms
from tailormail.ingest.files import FORMATS
from tailormail.ingest.importer import ImportOptions, ImportProgress, ImportReport, import_file
from tailormail.ingest.mapping import parse_maps

app = typer.Typer(help="Import events, profiles or products from a file.", no_args_is_help=True)

FileArg = Annotated[Path, typer.Argument(help="CSV, JSONL, Parquet or whitespace-separated text file.")]
FormatOpt = Annotated[
    str | None, typer.Option("--format", help=f"One of {', '.join(FORMATS)} (default: from the extension).")
]
MapOpt = Annotated[
    list[str] | None,
    typer.Option("--map", help="column=field, repeatable: e.g. customer_id=userId, dollar_value=properties.revenue."),
]
DateOpt = Annotated[
    str | None, typer.Option("--date-format", help="strptime format of the timestamp column, e.g. %Y%m%d.")
]
ColumnsOpt = Annotated[
    str | None, typer.Option("--columns", help="Comma-separated column names for a file without a header line.")
]
ErrorsOpt = Annotated[
    Path | None, typer.Option("--errors", help="Where to write bad rows (default: FILE.errors.csv next to FILE).")
]


@app.command("events")
def events(
    file: FileArg,
    fmt: FormatOpt = None,
    maps: MapOpt = None,
    date_format: DateOpt = None,
    event: Annotated[
        str | None, typer.Option("--event", help="Event name for rows that have none, e.g. purchase.")
    ] = None,
    columns: ColumnsOpt = None,
    errors: ErrorsOpt = None,
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Import events (track, page, identify...); extra columns become properties."""
    options = _options(fmt, maps, date_format, columns, errors, event)
    _run("events", file, options, workspace, as_json)


@app.command("profiles")
def profiles(
    file: FileArg,
    fmt: FormatOpt = None,
    maps: MapOpt = None,
    date_format: DateOpt = None,
    columns: ColumnsOpt = None,
    errors: ErrorsOpt = None,
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Import profiles (one identify per row); extra columns become traits."""
    _run("profiles", file, _options(fmt, maps, date_format, columns, errors), workspace, as_json)


@app.command("products")
def products(
    file: FileArg,
    fmt: FormatOpt = None,
    maps: MapOpt = None,
    columns: ColumnsOpt = None,
    errors: ErrorsOpt = None,
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Import the product catalog (product_id, name, category, price, url, image_url; the rest: properties)."""
    _run("products", file, _options(fmt, maps, None, columns, errors), workspace, as_json)


def _options(
    fmt: str | None,
    maps: list[str] | None,
    date_format: str | None,
    columns: str | None,
    errors: Path | None,
    event: str | None = None,
) -> ImportOptions:
    return ImportOptions(
        format=fmt,
        maps=parse_maps(maps or []),
        date_format=date_format,
        event=event,
        columns=[c.strip() for c in columns.split(",")] if columns else None,
        errors_path=errors,
    )


def _run(kind: str, file: Path, options: ImportOptions, workspace: Path | None, as_json: bool) -> None:
    with runtime_for(workspace) as rt, _progress_bar(file, enabled=not as_json) as on_progress:
        report = import_file(
            rt.store, file, kind, now_ms=to_ms(rt.clock.now()), options=options, on_progress=on_progress
        )
    if as_json:
        print_json(
            {k: v for k, v in asdict(report).items() if k != "error_fields"} | {"error_fields": report.error_fields}
        )
    else:
        _print_report(report)


@contextmanager
def _progress_bar(file: Path, *, enabled: bool) -> Iterator[Callable[[ImportProgress], None] | None]:
    """A Rich bar on a terminal (bytes read, or rows for Parquet); nothing otherwise."""
    if not (enabled and console.is_terminal):
        yield None
        return
    by_bytes = file.suffix.lower() not in (".parquet", ".pq")
    progress = Progress(
        TextColumn(f"importing {file.name}"),
        BarColumn(),
        DownloadColumn() if by_bytes else MofNCompleteColumn(),
        TextColumn("{task.fields[rows]:,} rows"),
        TimeRemainingColumn(),
        console=console,
    )
    task = progress.add_task("import", total=None, rows=0)

    def update(p: ImportProgress) -> None:
        progress.update(task, completed=p.position, total=p.total, rows=p.rows)

    with progress:
        yield update


def _print_report(report: ImportReport) -> None:
    print_table(
        f"Imported {report.kind} from {report.path.name} ({report.format})",
        ["rows read", "imported", "already there", "bad rows"],
        [[report.rows, report.imported, report.duplicates, report.errors]],
    )
    if report.errors:
        rows: list[list[Any]] = [[name, n, line, reason] for name, (n, line, reason) in report.error_fields.items()]
        print_table("Bad rows (not imported)", ["field", "rows", "first line", "first reason"], rows)
        console.print(f"Every bad row, with its line and reason: {report.error_file}", highlight=False)
