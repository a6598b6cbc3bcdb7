"""`tailormail experiment analyze`: honest statistics for any exported experiment table."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Annotated

import typer

from tailormail.analytics.experiment_files import read_experiment_table
from tailormail.analytics.experiments import ExperimentResult, MetricResult, Plan
from tailormail.analytics.verdicts import analyze
from tailormail.cli.common import JsonOption, console, print_json, print_table
from tailormail.errors import ValidationError

app = typer.Typer(help="Analyse A/B tests and holdouts.", no_args_is_help=True)


@app.command("analyze")
def analyze_file(
    file: Annotated[Path, typer.Argument(help="CSV or Parquet, one row per recipient.")],
    arm: Annotated[str, typer.Option(help="Column naming each row's arm.")],
    control: Annotated[str, typer.Option(help="The control arm's value in that column.")],
    metric: Annotated[list[str], typer.Option(help="A metric column (0/1 = proportion, else mean); repeatable.")],
    mde: Annotated[float, typer.Option(help="Minimum detectable relative effect the test was planned for.")] = 0.10,
    alpha: Annotated[float, typer.Option(help="Significance level (family-wise across arms).")] = 0.05,
    power: Annotated[float, typer.Option(help="Planned power.")] = 0.8,
    planned_n: Annotated[int | None, typer.Option(help="Planned recipients per arm (default: from --mde).")] = None,
    weights: Annotated[str | None, typer.Option(help="Planned split, e.g. 'A=0.45,B=0.45,holdout=0.1'.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Per arm: n, rate, lift with 95 % CIs, p-values, P(beat control), SRM check and a verdict."""
    observations = read_experiment_table(file, arm, metric)
    plan = Plan(alpha=alpha, power=power, mde=mde, planned_n=planned_n)
    result = analyze(observations, control, metric, plan, _weights(weights))
    if as_json:
        print_json(dataclasses.asdict(result))
        return
    print_result(result)


def _weights(text: str | None) -> dict[str, float] | None:
    if not text:
        return None
    out: dict[str, float] = {}
    for part in text.split(","):
        name, _, value = part.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise ValidationError(f"weight {part!r} is not NAME=NUMBER", field="weights") from None
    return out


def print_result(result: ExperimentResult) -> None:
    """Print an experiment's sample-ratio check and one table and verdict per metric."""
    srm = result.sample_ratio
    sizes = ", ".join(f"{a} {n:,}" for a, n in srm.counts.items())
    status = "[bold red]MISMATCH: the split is broken; do not trust the results[/]" if srm.mismatch else "ok"
    console.print(f"Arms: {sizes}. Sample ratio check: p = {srm.p_value:.3g} ({status})")
    for m in result.metrics:
        _print_metric(m)


def _print_metric(m: MetricResult) -> None:
    pct = m.kind == "proportion"
    rows: list[list[object]] = [[m.control + " (control)", m.control_n, _fmt(m.control_value, pct), "", "", "", "", ""]]
    for c in m.comparisons:
        rows.append(
            [
                c.arm,
                c.n,
                _fmt(c.value, pct),
                f"{_fmt(c.difference, pct)} [{_fmt(c.difference_ci[0], pct)}, {_fmt(c.difference_ci[1], pct)}]",
                f"{_pct(c.lift)} [{_pct(c.lift_ci[0])}, {_pct(c.lift_ci[1])}]",
                f"{c.p_value:.3g}",
                f"{c.probability_to_beat_control:.1%}",
                "yes" if c.significant else "no",
            ]
        )
    planned = f"planned {m.planned_n:,} per arm" if m.planned_n is not None else "sample size cannot be planned yet"
    title = f"{m.metric} ({m.kind}); {planned}"
    if m.omnibus_p_value is not None:
        title += f"; chi-square across arms p = {m.omnibus_p_value:.3g}"
    print_table(
        title,
        ["arm", "n", "value", "difference [95% CI]", "lift [95% CI]", "p", "P(beat control)", "significant"],
        rows,
    )
    console.print(m.verdict)


def _fmt(value: float, pct: bool) -> str:
    if math.isnan(value):
        return "n/a"
    return f"{value:.2%}" if pct else f"{value:,.2f}"


def _pct(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:+.1%}"
