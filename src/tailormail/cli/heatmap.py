"""`tailormail heatmap`: clicks per link and block of a template, drawn over its screenshot."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tailormail.analytics.heatmap import draw, email_for_heatmap, link_clicks
from tailormail.cli.common import JsonOption, WorkspaceOption, console, print_json, print_table, runtime_for
from tailormail.content.screenshot import find_chromium
from tailormail.errors import TailormailError


def heatmap(
    template: Annotated[str, typer.Argument(help="Template name (templates/NAME.liquid or .hbs).")],
    campaign: Annotated[str | None, typer.Option(help="Only clicks on emails of this campaign.")] = None,
    journey: Annotated[str | None, typer.Option(help="Only clicks on emails of this journey.")] = None,
    user: Annotated[
        str | None, typer.Option(help="Draw over this person's email (default: the one showing most variants).")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="PNG to write (default: reports/heatmap-TEMPLATE.png in the workspace).")
    ] = None,
    include_automated: Annotated[bool, typer.Option(help="Count scanner clicks too.")] = False,
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Which links and blocks of a template get the clicks: tables, and a PNG drawn over the email."""
    picture, missing = None, None
    with runtime_for(workspace) as rt, rt.store.read() as conn:
        [data] = link_clicks(
            conn, template=template, campaign=campaign, journey=journey, include_automated=include_automated
        )
        target = out or rt.settings.workspace / "reports" / f"heatmap-{template}.png"
        if find_chromium() is None:
            missing = "Chromium is not installed (apt-get install chromium): tables only"
        else:
            try:
                picture = draw(email_for_heatmap(conn, rt.settings, template, rt.clock.now(), user), data, target)
            except TailormailError as error:
                missing = f"no picture: {error.message}"
    if as_json:
        print_json({**data.as_dict(), "picture": str(picture) if picture else None, "picture_missing": missing})
        return
    print_table(
        f"Clicks per link of {template} ({data.delivered:,} delivered)",
        ["link", "block", "position", "clicks", "share", "unique clicks", "click rate", "top destination"],
        [
            [
                r["link_id"],
                r["block"],
                r["position"],
                r["clicks"],
                f"{r['share']:.1%}",
                r["unique_clicks"],
                f"{r['click_rate']:.1%}",
                r["top_urls"][0][0] if r["top_urls"] else "",
            ]
            for r in data.link_rows()
        ],
    )
    print_table(
        "Clicks per block",
        ["block", "clicks", "share", "unique clicks", "click rate"],
        [
            [
                r["block"] or "(outside blocks)",
                r["clicks"],
                f"{r['share']:.1%}",
                r["unique_clicks"],
                f"{r['click_rate']:.1%}",
            ]
            for r in data.block_rows()
        ],
    )
    console.print(f"Heatmap written to {picture}." if picture else str(missing))
