"""`tailormail demo`: the whole pipeline on a simulated shop, summarised."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tailormail.cli.common import JsonOption, console, print_json, print_table
from tailormail.cli.progress import progress_bar
from tailormail.cli.simulate import CustomersOption, DaysOption, SeedOption
from tailormail.demo import DemoOptions, DemoSummary, run_demo


def demo(
    workspace: Annotated[
        Path, typer.Option("--workspace", "-w", help="Folder for the demo workspace (reset on each run).")
    ] = Path("demo-workspace"),
    customers: CustomersOption = 5000,
    days: DaysOption = 90,
    seed: SeedOption = 7,
    live: Annotated[
        bool,
        typer.Option(
            "--live/--no-live",
            help="Run the live part too: previews, journeys on a demo clock, simulated opens and clicks, the report.",
        ),
    ] = True,
    as_json: JsonOption = False,
) -> None:
    """Run the pipeline on a simulated shop in a fresh workspace and summarise it."""
    options = DemoOptions(workspace=workspace, customers=customers, days=days, seed=seed, live=live)
    with progress_bar("simulating the shop", customers) as advance:
        summary = run_demo(options, progress=advance, on_step=None if as_json else _announce)
    if as_json:
        print_json(summary.as_dict())
    else:
        _print(summary)


def _announce(step: str) -> None:
    console.print(f"[dim]> {step}[/dim]", highlight=False)


def _print(summary: DemoSummary) -> None:
    for section in summary.sections:
        console.rule(f"[bold]{section.title}")
        for note in section.notes:
            console.print(note, highlight=False)
        for table in section.tables:
            print_table(table.title, table.columns, table.rows)
    console.print(f"\nReport: {summary.report}  ({summary.seconds:.1f} s)", highlight=False)
