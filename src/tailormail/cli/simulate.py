"""`tailormail simulate`: a deterministic simulated shop, into the workspace or a file."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from tailormail.cli.common import JsonOption, WorkspaceOption, print_json, print_table, runtime_for
from tailormail.cli.progress import progress_bar
from tailormail.clock import SystemClock, parse_time, to_ms
from tailormail.config import load_settings
from tailormail.errors import ValidationError
from tailormail.simulate.customers import iso
from tailormail.simulate.output import SimulationResult, simulate_into, simulate_to_file

CustomersOption = Annotated[int, typer.Option(help="How many customers.", min=1)]
DaysOption = Annotated[int, typer.Option(help="How many days of behaviour.", min=1)]
SeedOption = Annotated[int, typer.Option(help="Random seed: the same seed gives the same shop.", min=0)]


def simulate(
    customers: CustomersOption = 5000,
    days: DaysOption = 90,
    seed: SeedOption = 7,
    end: Annotated[
        str | None, typer.Option(help="When the days end (ISO date or time, to the whole hour; default: now).")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Write Segment messages to this .jsonl or .parquet file instead.")
    ] = None,
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Simulate a shop (catalog, customers, sessions, carts, orders) into the workspace or a file."""
    until = _end(end)
    with progress_bar("simulating customers", customers) as advance:
        if out is not None:
            events = load_settings(workspace).events
            result = simulate_to_file(
                out, customers=customers, days=days, seed=seed, end=until, events=events, progress=advance
            )
        else:
            with runtime_for(workspace) as rt:
                result = simulate_into(
                    rt.store, rt.settings, customers=customers, days=days, seed=seed, end=until,
                    now_ms=to_ms(rt.clock.now()), progress=advance,
                )  # fmt: skip
    _report(result, as_json)


def _end(text: str | None) -> datetime:
    if text is None:
        return SystemClock().now()
    try:
        return parse_time(text)
    except ValueError:
        raise ValidationError(
            f"--end {text!r} is not an ISO-8601 date or time", field="end", hint="e.g. --end 2026-03-01"
        ) from None


def _report(result: SimulationResult, as_json: bool) -> None:
    rows: list[list[Any]] = [
        ["customers", result.customers],
        ["products", result.products],
        ["messages", result.messages],
        ["stored", result.stored],
        ["already there", result.duplicates],
        ["window start", iso(result.start)],
        ["window end", iso(result.end)],
    ]
    if result.path:
        rows += [["messages file", str(result.path)], ["catalog file", str(result.catalog_path)]]
    if as_json:
        print_json({str(k).replace(" ", "_"): v for k, v in rows})
    else:
        print_table("Simulated shop", ["what", "value"], rows)
