"""`tailormail metrics`: sent, opens, clicks, conversions and revenue by any grouping."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import typer

from tailormail.analytics.experiment_data import all_experiments, split_plans
from tailormail.analytics.metrics import COLUMNS, DIMENSIONS, compute
from tailormail.cli.common import JsonOption, WorkspaceOption, console, print_json, print_table, runtime_for
from tailormail.cli.experiment import print_result
from tailormail.errors import ValidationError
from tailormail.track.settings import track_settings


def metrics(
    by: Annotated[
        list[str] | None, typer.Option("--by", help=f"Group by (repeatable): {', '.join(DIMENSIONS)}.")
    ] = None,
    include_automated: Annotated[bool, typer.Option(help="Count proxy prefetches and scanner clicks too.")] = False,
    experiments: Annotated[
        bool, typer.Option("--experiments", help="Analyse every A/B test and journey split instead.")
    ] = False,
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Email metrics: sends, bounces, unique opens and clicks, conversions, revenue, unsubscribes, complaints."""
    groups = by or ["campaign", "journey"]
    for name in groups:
        if name not in DIMENSIONS:
            raise ValidationError(f"cannot group by {name!r}", field="by", hint=f"use {', '.join(DIMENSIONS)}")
    if experiments:
        _experiments(workspace, as_json)
        return
    with runtime_for(workspace) as rt:
        track = track_settings(rt.settings)
        with rt.store.read() as conn:
            found = compute(
                conn,
                groups,
                goal_event=track.goal_event,
                attribution_days=track.attribution_days,
                include_automated=include_automated,
            )
    rows = [m.as_dict() for m in found]
    if as_json:
        print_json(rows)
        return
    shown = [c for c in COLUMNS if c.short]  # the terminal's narrower table: rates, not the counts behind them
    columns = [*groups, *(c.short for c in shown)]
    table = [[*(m.group[g] for g in groups), *(c.cell(m) for c in shown)] for m in found]
    print_table("Email metrics" + ("" if include_automated else " (automated hits left out)"), columns, table)


def _experiments(workspace: Path | None, as_json: bool) -> None:
    with runtime_for(workspace) as rt:
        track = track_settings(rt.settings)
        with rt.store.read() as conn:
            results = all_experiments(
                conn,
                goal_event=track.goal_event,
                attribution_days=track.attribution_days,
                plans=split_plans(rt.settings),
            )
    if as_json:
        print_json([{"experiment": name, **dataclasses.asdict(result)} for name, result in results])
        return
    if not results:
        console.print("No experiments yet: no campaign or step sent two variants, and no journey split has two arms.")
    for name, result in results:
        console.rule(name)
        print_result(result)
