"""`tailormail predict`: train, score, report and the CDNOW benchmark."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from tailormail.cli.common import JsonOption, WorkspaceOption, console, print_json, print_table, runtime_for
from tailormail.clock import parse_time
from tailormail.predict import benchmark, report, service
from tailormail.runtime import Runtime

AsOfOption = Annotated[
    str | None,
    typer.Option("--as-of", help="Pretend it is this ISO date/time (a backtest); default: now.", show_default=False),
]

app = typer.Typer(help="Predictive scores: purchase likelihood, churn risk, high value.", no_args_is_help=True)


@app.command()
def train(
    model: Annotated[
        str | None, typer.Argument(help="purchase_30d, churn_90d or high_value_90d (default: all).")
    ] = None,
    as_of: AsOfOption = None,
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Train models on a time split, store new versions, promote those whose AUC did not fall."""
    with runtime_for(workspace) as rt, console.status("training"):
        results = service.train(rt.store, rt.settings, _moment(rt, as_of), model)
    if as_json:
        print_json([r.as_dict() for r in results])
        return
    rows = [[r.model, r.version, r.status, f"{r.roc_auc:.3f}", _auc_text(r.previous_auc), r.reason] for r in results]
    print_table("Trained models", ["model", "version", "status", "ROC AUC", "previous AUC", "reason"], rows)


@app.command()
def score(as_of: AsOfOption = None, workspace: WorkspaceOption = None, as_json: JsonOption = False) -> None:
    """Score every profile with the latest promoted models; write traits.predicted.*."""
    with runtime_for(workspace) as rt, console.status("scoring"):
        counts = service.score(rt.store, rt.settings, _moment(rt, as_of))
    if as_json:
        print_json(counts)
        return
    print_table("Profiles scored", ["model", "profiles"], list(counts.items()))


@app.command("report")
def show_report(
    model: Annotated[str | None, typer.Argument(help="One model (default: all).")] = None,
    html: Annotated[Path | None, typer.Option("--html", help="Write a self-contained HTML report with charts.")] = None,
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Metrics, calibration, lift and coefficients in words of the newest model versions."""
    with runtime_for(workspace) as rt:
        reports = service.latest_reports(rt.store, model)
    if html is not None:
        html.write_text(report.render(reports), encoding="utf-8")
        console.print(f"Report written to {html}")
    if as_json:
        print_json(reports)
        return
    for r in reports:
        m = r["metrics"]
        title = f"{r['model']} v{r['version']} ({r['status']}; in use: v{r['in_use_version']})"
        print_table(
            title,
            ["ROC AUC", "PR AUC", "Brier", "positive rate", "profiles"],
            [
                [
                    f"{m['roc_auc']:.3f}",
                    f"{m['pr_auc']:.3f}",
                    f"{m['brier']:.4f}",
                    f"{m['positive_rate']:.1%}",
                    m["n"],
                ]
            ],
        )
        print_table(
            None,
            ["decile", "predicted", "observed", "lift"],
            [
                [c["decile"], f"{c['predicted']:.3f}", f"{c['observed']:.3f}", f"{lf['lift']:.2f}"]
                for c, lf in zip(m["calibration"], m["lift"], strict=True)
            ],
        )
        for c in r["coefficients"][:5]:
            console.print(f"  {c['feature']}: {c['sentence']}", highlight=False)


@app.command("benchmark-cdnow")
def benchmark_cdnow(
    files: Annotated[list[Path], typer.Argument(help="CDNOW files (sample and/or master layout).", exists=True)],
    as_json: JsonOption = False,
) -> None:
    """BG/NBD vs our logistic regression on the CDNOW purchases (calibration to 1997-09-30)."""
    results = []
    with console.status("fitting"):
        results = [benchmark.run(path) for path in files]
    if as_json:
        print_json([r.as_dict() for r in results])
        return
    rows = [
        [r.dataset, r.customers, m.model, f"{m.auc:.3f}", round(m.predicted_purchases), round(m.actual_purchases)]
        for r in results
        for m in r.results
    ]
    print_table(
        "Who buys again in 1997-10-01..1998-06-30",
        ["data", "customers", "model", "ROC AUC", "predicted purchases", "actual purchases"],
        rows,
    )
    for r in results:
        f = r.fit
        console.print(
            f"{r.dataset}: BG/NBD r={f.r:.3f} alpha={f.alpha:.3f} a={f.a:.3f} b={f.b:.3f} LL={f.log_likelihood:.1f}"
        )


def _moment(rt: Runtime, as_of: str | None) -> datetime:
    return parse_time(as_of) if as_of else rt.clock.now()


def _auc_text(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"
