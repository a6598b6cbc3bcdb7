"""A self-contained HTML report of the models: ROC, calibration and lift charts (plotly, inline)."""

from __future__ import annotations

import html
from typing import Any

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs
from plotly.subplots import make_subplots

from tailormail.clock import from_ms


def figure(report: dict[str, Any]) -> go.Figure:
    """ROC curve, calibration by decile and lift by decile of one model version."""
    m = report["metrics"]
    fig = make_subplots(rows=1, cols=3, subplot_titles=("ROC", "Calibration (deciles)", "Lift by decile"))
    fig.add_trace(go.Scatter(x=m["roc"]["fpr"], y=m["roc"]["tpr"], name="ROC", mode="lines"), row=1, col=1)
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], name="chance", mode="lines", line={"dash": "dot"}), row=1, col=1)
    cal = m["calibration"]
    fig.add_trace(
        go.Scatter(
            x=[c["predicted"] for c in cal], y=[c["observed"] for c in cal], name="observed", mode="markers+lines"
        ),
        row=1,
        col=2,
    )
    top = max([c["predicted"] for c in cal] + [c["observed"] for c in cal] + [0.01])
    fig.add_trace(go.Scatter(x=[0, top], y=[0, top], name="perfect", mode="lines", line={"dash": "dot"}), row=1, col=2)
    fig.add_trace(
        go.Bar(x=[r["decile"] for r in m["lift"]], y=[r["lift"] for r in m["lift"]], name="lift"), row=1, col=3
    )
    fig.update_xaxes(title_text="false positive rate", row=1, col=1)
    fig.update_yaxes(title_text="true positive rate", row=1, col=1)
    fig.update_xaxes(title_text="predicted", row=1, col=2)
    fig.update_yaxes(title_text="observed", row=1, col=2)
    fig.update_xaxes(title_text="decile (1 = highest scores)", row=1, col=3)
    fig.update_layout(height=380, showlegend=False, margin={"t": 40, "b": 40})
    return fig


def _section(report: dict[str, Any]) -> str:
    m, e = report["metrics"], html.escape
    status = f"{report['status']}" + (f": {report['reason']}" if report.get("reason") else "")
    words = "".join(f"<li>{e(c['feature'])}: {e(c['sentence'])}</li>" for c in report["coefficients"])
    chart = figure(report).to_html(full_html=False, include_plotlyjs=False)
    return (
        f"<section><h2>{e(report['model'])} v{report['version']} ({e(status)})</h2>"
        f"<p>Trained {from_ms(report['trained_at']):%Y-%m-%d %H:%M} UTC; horizon {report['horizon_days']} days; "
        f"evaluated on {m['n']:,} profiles after {from_ms(report['eval_cutoff']):%Y-%m-%d}.</p>"
        f"<table><tr><th>ROC AUC</th><th>PR AUC</th><th>Brier</th><th>positive rate</th></tr>"
        f"<tr><td>{m['roc_auc']:.3f}</td><td>{m['pr_auc']:.3f}</td><td>{m['brier']:.4f}</td>"
        f"<td>{m['positive_rate']:.1%}</td></tr></table>{chart}<h3>What moves the odds</h3><ul>{words}</ul></section>"
    )


def render(reports: list[dict[str, Any]]) -> str:
    """One HTML page (plotly's JavaScript inline, so it opens offline) for the given versions."""
    body = "".join(_section(r) for r in reports) or "<p>No model trained yet.</p>"
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>tailormail predictions</title>"
        "<style>body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto}"
        "td,th{padding:.2em .8em;text-align:right}</style>"
        f"<script>{get_plotlyjs()}</script></head><body><h1>Predictive models</h1>{body}</body></html>"
    )
