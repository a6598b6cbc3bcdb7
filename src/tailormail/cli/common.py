"""Shared pieces of the CLI: options, output, and error to exit-code mapping."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from typer.core import TyperGroup

from tailormail.errors import AuthError, NotFound, StoreError, TailormailError, ValidationError
from tailormail.runtime import Runtime, open_runtime

# On a terminal Rich measures the width; in pipes and logs wide tables must not wrap.
console = Console() if sys.stdout.isatty() else Console(width=160)
err_console = Console(stderr=True) if sys.stderr.isatty() else Console(stderr=True, width=160)

WorkspaceOption = Annotated[
    Path | None,
    typer.Option(
        "--workspace",
        "-w",
        envvar="TAILORMAIL_WORKSPACE",
        help="Workspace folder (default: the current folder).",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of a table.")]

EXIT_CODES: list[tuple[type[TailormailError], int]] = [
    (ValidationError, 65),  # EX_DATAERR: the input was wrong
    (NotFound, 3),
    (AuthError, 4),
    (StoreError, 69),  # EX_UNAVAILABLE: the database could not do it
    (TailormailError, 1),
]


def exit_code(error: TailormailError) -> int:
    """The process exit code for a library error."""
    return next(code for cls, code in EXIT_CODES if isinstance(error, cls))


class Group(TyperGroup):
    """The root command group: library errors print as one clear line, not a trace."""

    def invoke(self, ctx: Any) -> Any:
        """Run the command; turn a TailormailError into a message and exit code."""
        try:
            return super().invoke(ctx)
        except TailormailError as error:
            where = _where(error)
            err_console.print(f"[bold red]error:[/] {where}{error.message}", highlight=False)
            if error.hint:
                err_console.print(f"[dim]hint:[/] {error.hint}", highlight=False)
            raise typer.Exit(exit_code(error)) from None


def _where(error: TailormailError) -> str:
    if not isinstance(error, ValidationError):
        return ""
    parts = [p for p in (error.source, f"line {error.line}" if error.line else None) if p]
    if error.field and error.field not in error.message:
        parts.append(f"field {error.field}")
    return ": ".join(parts) + ": " if parts else ""


@contextmanager
def runtime_for(workspace: Path | None) -> Iterator[Runtime]:
    """Open the workspace for one command and close it afterwards."""
    runtime = open_runtime(workspace)
    try:
        yield runtime
    finally:
        runtime.close()


def print_table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Print rows as a Rich table (numbers right-aligned)."""
    table = Table(title=title, title_justify="left")
    for i, name in enumerate(columns):
        numeric = bool(rows) and all(isinstance(r[i], int | float) for r in rows)
        table.add_column(name, justify="right" if numeric else "left")
    for row in rows:
        table.add_row(*(_cell(v) for v in row))
    console.print(table)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return "" if value is None else str(value)


def print_json(data: Any) -> None:
    """Print JSON to stdout, plainly (no colour codes for scripts)."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
