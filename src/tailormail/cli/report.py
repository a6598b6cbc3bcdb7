"""`tailormail report`: one self-contained HTML report of what worked."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tailormail.analytics.experiment_data import split_plans
from tailormail.analytics.heatmap import picture_maker
from tailormail.analytics.report import ReportOptions, build_report
from tailormail.cli.common import WorkspaceOption, console, runtime_for
from tailormail.clock import to_ms
from tailormail.track.settings import track_settings


def report(
    html: Annotated[
        Path | None, typer.Option("--html", help="Where to write it (default: reports/report.html).")
    ] = None,
    simulated: Annotated[bool, typer.Option(help="Label the data as simulated.")] = False,
    heatmaps: Annotated[
        bool, typer.Option(help="Draw click heatmaps over the emails (needs Chromium; tables appear either way).")
    ] = True,
    workspace: WorkspaceOption = None,
) -> None:
    """Write the HTML report: metrics, experiments, click heatmaps, cohorts and paths; opens with no network."""
    with runtime_for(workspace) as rt:
        track = track_settings(rt.settings)
        events = rt.settings.events
        options = ReportOptions(
            goal_event=track.goal_event,
            attribution_days=track.attribution_days,
            journey_events=(
                events.product_view,
                events.add_to_cart,
                events.checkout_started,
                "email_opened",
                "email_clicked",
            ),
            simulated=simulated,
            split_plans=split_plans(rt.settings),
            title=f"{rt.settings.name}: what worked",
        )
        with rt.store.read() as conn:
            pictures = picture_maker(conn, rt.settings, rt.clock.now()) if heatmaps else None
            document = build_report(conn, to_ms(rt.clock.now()), options, pictures)
        target = html or rt.settings.workspace / "reports" / "report.html"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(document, encoding="utf-8")
    console.print(f"Report written to {target} ({len(document) / 1024:,.0f} KB); open it in any browser.")
