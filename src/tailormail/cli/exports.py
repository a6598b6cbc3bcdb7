"""`tailormail export`: events and profiles to JSONL or Parquet."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from tailormail.cli.common import JsonOption, WorkspaceOption, console, print_json, runtime_for
from tailormail.ingest.export import EXPORT_FORMATS, ExportResult, export_events, export_profiles

app = typer.Typer(help="Export events or profiles to JSONL or Parquet.", no_args_is_help=True)

OutArg = Annotated[Path, typer.Argument(help="The file to write.")]
FormatOpt = Annotated[str, typer.Option("--format", help=f"{' or '.join(EXPORT_FORMATS)}.")]


@app.command("events")
def events(
    out: OutArg, fmt: FormatOpt = "jsonl", workspace: WorkspaceOption = None, as_json: JsonOption = False
) -> None:
    """Export every event in Segment's shape (JSONL) or as columns (Parquet)."""
    with runtime_for(workspace) as rt, _progress_bar("events", enabled=not as_json) as on_progress:
        result = export_events(rt.store, out, fmt, on_progress=on_progress)
    _report(result, as_json)


@app.command("profiles")
def profiles(
    out: OutArg, fmt: FormatOpt = "jsonl", workspace: WorkspaceOption = None, as_json: JsonOption = False
) -> None:
    """Export every profile: user id, anonymous ids, traits, first and last seen."""
    with runtime_for(workspace) as rt, _progress_bar("profiles", enabled=not as_json) as on_progress:
        result = export_profiles(rt.store, out, fmt, on_progress=on_progress)
    _report(result, as_json)


@contextmanager
def _progress_bar(what: str, *, enabled: bool) -> Iterator[Callable[[int, int], None] | None]:
    if not (enabled and console.is_terminal):
        yield None
        return
    progress = Progress(TextColumn(f"exporting {what}"), BarColumn(), MofNCompleteColumn(), console=console)
    task = progress.add_task(what, total=None)
    with progress:
        yield lambda done, total: progress.update(task, completed=done, total=total)


def _report(result: ExportResult, as_json: bool) -> None:
    if as_json:
        print_json({"kind": result.kind, "path": str(result.path), "format": result.format, "rows": result.rows})
    else:
        console.print(f"Exported {result.rows:,} {result.kind} to {result.path} ({result.format}).", highlight=False)
