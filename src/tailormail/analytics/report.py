"""One self-contained HTML report: metrics, experiments, cohorts and paths, with charts.

Plotly's JavaScript is embedded once, inline, so the file opens with no
network; every number in a chart also stands in a table beside it.
"""

from __future__ import annotations

import base64
import html
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import plotly.graph_objects as go
from sqlalchemy import Connection

from tailormail.analytics.cohorts import CohortTable, cohorts
from tailormail.analytics.experiment_data import HOLDOUT, SplitPlan, all_experiments
from tailormail.analytics.experiments import ExperimentResult
from tailormail.analytics.heatmap import HeatmapData, link_clicks
from tailormail.analytics.metrics import COLUMNS, Metrics, compute, outcomes
from tailormail.analytics.paths import PathStat, paths_to_goal
from tailormail.errors import TailormailError
from tailormail.store import analytics as q

PictureMaker = Callable[[HeatmapData], bytes]
"""Draws a template's heatmap as PNG bytes (raises TailormailError when it cannot)."""


@dataclass(frozen=True)
class ReportOptions:
    """What the report covers and how it is labelled."""

    goal_event: str = "purchase"
    attribution_days: float = 5.0
    journey_events: tuple[str, ...] = (
        "product_view",
        "add_to_cart",
        "checkout_started",
        "email_opened",
        "email_clicked",
    )
    simulated: bool = False
    """Label the data as simulated (the demo's recipients are not people)."""
    title: str = "tailormail report"
    split_plans: dict[tuple[str, str], SplitPlan] = field(default_factory=dict)
    """Planned weights and goals of the journeys' splits (from the workspace's journey files)."""
    heatmap_templates: int = 3
    """How many of the most clicked templates get a heatmap (each takes a Chromium run)."""


class _Page:
    """Collects sections; the first chart carries plotly's JavaScript inline."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self._js_done = False

    def add(self, text: str) -> None:
        self.parts.append(text)

    def chart(self, figure: go.Figure) -> None:
        figure.update_layout(margin={"l": 40, "r": 20, "t": 40, "b": 40}, template="plotly_white")
        self.parts.append(figure.to_html(full_html=False, include_plotlyjs="inline" if not self._js_done else False))
        self._js_done = True


def build_report(conn: Connection, now_ms: int, options: ReportOptions, pictures: PictureMaker | None = None) -> str:
    """The whole report as one HTML document; ``pictures`` draws the heatmaps (None: tables only).

    The email metrics run on ``conn``; the cohorts and paths, which each read
    nearly every event, run at the same time on their own read connections.
    """
    goal = options.goal_event
    emails, active, buyers, paths = q.read_in_parallel(
        conn,
        [
            lambda c: _email_sections(c, options),
            lambda c: cohorts(c, now_ms=now_ms, period="week", activity=None),
            lambda c: cohorts(c, now_ms=now_ms, period="week", start="first_purchase", activity=goal,
                              purchase_event=goal),
            lambda c: paths_to_goal(c, options.journey_events, goal),
        ],
    )  # fmt: skip
    page = _Page()
    _metrics_section(page, emails.metrics)
    _experiments_section(page, emails.experiments)
    _heatmap_section(page, emails.clicks[: options.heatmap_templates], pictures)
    _cohort_section(page, "Customers by first week, share active in each later week", active)
    _cohort_section(page, "Buyers by week of first purchase, share buying again in each later week", buyers)
    _paths_section(page, paths)
    return _document(options, now_ms, page.parts)


@dataclass(frozen=True)
class _EmailSections:
    """What the report says about the emails: metrics, experiments and clicks per link."""

    metrics: list[Metrics]
    experiments: list[tuple[str, ExperimentResult]]
    clicks: list[HeatmapData]


def _email_sections(conn: Connection, options: ReportOptions) -> _EmailSections:
    """The email sections' data, with the outcomes computed once and shared by metrics and experiments."""
    goal, days = options.goal_event, options.attribution_days
    emails = outcomes(conn, goal_event=goal, attribution_days=days)
    return _EmailSections(
        metrics=compute(conn, ["campaign", "journey"], goal_event=goal, attribution_days=days, emails=emails),
        experiments=all_experiments(
            conn, goal_event=goal, attribution_days=days, plans=options.split_plans, emails=emails
        ),
        clicks=link_clicks(conn),
    )


def _document(options: ReportOptions, now_ms: int, parts: list[str]) -> str:
    stamp = datetime.fromtimestamp(now_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")
    banner = (
        "<p class=sim>Simulated data: the recipients, opens and clicks in this report were produced by the"
        " demo's simulator, not by people.</p>"
        if options.simulated
        else ""
    )
    style = (
        "body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:72rem;margin:2rem auto;"
        "padding:0 1rem;color:#222}table{border-collapse:collapse;margin:1rem 0;font-size:.9rem}"
        "td,th{border-bottom:1px solid #ddd;padding:.3rem .6rem;text-align:right}td:first-child,th:first-child"
        "{text-align:left}.sim{background:#fff4d6;border:1px solid #e5c15c;padding:.6rem 1rem}"
        ".verdict{background:#eef5ff;padding:.5rem 1rem;border-left:4px solid #3a6ee8}"
    )
    return (
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{html.escape(options.title)}</title>"
        f"<style>{style}</style></head><body><h1>{html.escape(options.title)}</h1><p>Generated {stamp}.</p>"
        f"{banner}{''.join(parts)}</body></html>"
    )


def table(columns: list[str], rows: list[list[Any]]) -> str:
    """An HTML table, every cell escaped."""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(v))}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _pct(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:.1%}"


def _metrics_section(page: _Page, rows: list[Metrics]) -> None:
    page.add("<h2>What was sent and what people did</h2>")
    if not rows:
        page.add("<p>Nothing has been sent yet.</p>")
        return
    names = [" / ".join(str(v) for v in m.group.values() if v) or "(other)" for m in rows]
    page.add(
        table(
            ["campaign / journey", *(c.label for c in COLUMNS)],
            [[n, *(c.cell(m) for c in COLUMNS)] for n, m in zip(names, rows, strict=True)],
        )
    )
    figure = go.Figure(
        [
            go.Bar(name=label, x=names, y=[getattr(m, attr) for m in rows])
            for label, attr in (
                ("open rate", "open_rate"),
                ("click rate", "click_rate"),
                ("conversion rate", "conversion_rate"),
            )
        ]
    )
    figure.update_layout(barmode="group", title="Rates by campaign and journey", yaxis_tickformat=".0%")
    page.chart(figure)


def _experiments_section(page: _Page, experiments: list[tuple[str, ExperimentResult]]) -> None:
    page.add("<h2>Experiments</h2>")
    if not experiments:
        page.add("<p>No campaign or journey step has sent two variants yet, and no journey split has two arms.</p>")
        return
    for name, result in experiments:
        srm = result.sample_ratio
        page.add(
            f"<h3>{html.escape(name)}</h3><p>Arms: "
            + ", ".join(f"{html.escape(a)} {n:,}" for a, n in srm.counts.items())
            + f". Sample ratio check p = {srm.p_value:.3g}"
            + (" — <strong>mismatch: the split is broken</strong>" if srm.mismatch else " (ok)")
            + ".</p>"
        )
        if result.control == HOLDOUT:
            page.add(
                "<p>The control is the holdout, who got nothing: each arm's lift is what the journey's"
                " emails themselves added. Conversions count the goal within the window after assignment.</p>"
            )
        for metric in result.metrics:
            rows = [[f"{metric.control} (control)", metric.control_n, metric.control_value, "", "", "", ""]]
            rows += [
                [
                    c.arm,
                    c.n,
                    c.value,
                    f"{c.lift:+.1%}" if not math.isnan(c.lift) else "–",
                    f"[{_pct(c.lift_ci[0])}, {_pct(c.lift_ci[1])}]",
                    f"{c.p_value:.3g}",
                    f"{c.probability_to_beat_control:.0%}",
                ]
                for c in metric.comparisons
            ]
            page.add(f"<h4>{html.escape(metric.metric)} ({metric.kind})</h4>")
            page.add(table(["arm", "n", "value", "lift", "95 % CI", "p", "P(beat control)"], rows))
            page.add(f"<p class=verdict>{html.escape(metric.verdict)}</p>")


def _heatmap_section(page: _Page, templates: list[HeatmapData], pictures: PictureMaker | None) -> None:
    page.add("<h2>Which links get the clicks</h2>")
    if not templates:
        page.add("<p>No clicks yet.</p>")
        return
    for data in templates:
        page.add(f"<h3>{html.escape(data.template)}: {data.clicks:,} clicks, {data.delivered:,} delivered</h3>")
        page.add(_picture(data, pictures))
        page.add(
            table(
                ["link", "block", "position", "clicks", "share", "unique clicks", "click rate", "top destinations"],
                [
                    [
                        r["link_id"],
                        r["block"],
                        r["position"],
                        r["clicks"],
                        _pct(r["share"]),
                        r["unique_clicks"],
                        _pct(r["click_rate"]),
                        ", ".join(f"{url} ({n:,})" for url, n in r["top_urls"]),
                    ]
                    for r in data.link_rows()
                ],
            )
        )
        page.add(
            table(
                ["block", "clicks", "share", "unique clicks", "click rate"],
                [
                    [
                        r["block"] or "(outside blocks)",
                        r["clicks"],
                        _pct(r["share"]),
                        r["unique_clicks"],
                        _pct(r["click_rate"]),
                    ]
                    for r in data.block_rows()
                ],
            )
        )


def _picture(data: HeatmapData, pictures: PictureMaker | None) -> str:
    """The heatmap as an inline PNG, or a sentence saying why there is none."""
    if pictures is None:
        return "<p>No heatmap picture: this report was built without Chromium screenshots (the tables stand alone).</p>"
    try:
        png = pictures(data)
    except TailormailError as error:
        return f"<p>No heatmap picture: {html.escape(error.message)}.</p>"
    encoded = base64.b64encode(png).decode("ascii")
    return (
        f'<p><img alt="clicks per link of {html.escape(data.template)}" style="max-width:600px;border:1px solid #ddd"'
        f' src="data:image/png;base64,{encoded}"></p>'
    )


def _cohort_section(page: _Page, title: str, cohort: CohortTable) -> None:
    page.add(f"<h2>{html.escape(title)}</h2>")
    if not cohort.labels:
        page.add("<p>No cohorts yet.</p>")
        return
    z = [[None if v is None else round(v * 100, 1) for v in row] for row in cohort.shares]
    figure = go.Figure(
        go.Heatmap(
            z=z,
            x=[f"+{k}" for k in range(len(cohort.shares[0]))],
            y=[f"{label} ({n:,})" for label, n in zip(cohort.labels, cohort.sizes, strict=True)],
            colorscale="Blues",
            zmin=0,
            zmax=100,
            text=z,
            texttemplate="%{text}",
            hovertemplate="%{z}%<extra></extra>",
        )
    )
    figure.update_layout(
        title=f"% of each cohort, by {cohort.period}s since joining (cohort size in brackets)",
        yaxis_autorange="reversed",
        height=120 + 28 * len(cohort.labels),
    )
    page.chart(figure)


def _paths_section(page: _Page, paths: list[PathStat]) -> None:
    page.add("<h2>Paths before a conversion</h2>")
    if not paths:
        page.add("<p>No paths yet.</p>")
        return
    page.add(
        table(
            ["path (last steps)", "people", "converted", "conversion rate"],
            [[" → ".join(p.steps), p.people, p.converted, _pct(p.conversion_rate)] for p in paths],
        )
    )
    page.chart(_sankey(paths))


def _sankey(paths: list[PathStat]) -> go.Figure:
    labels: list[str] = []
    index: dict[str, int] = {}

    def node(name: str) -> int:
        if name not in index:
            index[name] = len(labels)
            labels.append(name)
        return index[name]

    flows: dict[tuple[int, int], int] = {}
    for p in paths:
        chain = [f"{i + 1}. {s}" for i, s in enumerate(p.steps)]
        for a, b in itertools.pairwise(chain):
            flows[(node(a), node(b))] = flows.get((node(a), node(b)), 0) + p.people
        if chain:
            last = node(chain[-1])
            for outcome, n in (("converted", p.converted), ("did not convert", p.people - p.converted)):
                if n:
                    flows[(last, node(outcome))] = flows.get((last, node(outcome)), 0) + n
    source, target, value = zip(*[(a, b, n) for (a, b), n in flows.items()], strict=True) if flows else ((), (), ())
    figure = go.Figure(
        go.Sankey(node={"label": labels, "pad": 14}, link={"source": source, "target": target, "value": value})
    )
    figure.update_layout(title="The most common paths and where they lead", height=420)
    return figure
