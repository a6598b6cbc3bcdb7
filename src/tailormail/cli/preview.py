"""`tailormail preview`: write the HTML, text and screenshots of a template for some people."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress

from tailormail.cli.common import JsonOption, WorkspaceOption, console, print_json, print_table, runtime_for
from tailormail.content.preview import PreviewRequest, contact_sheet, render_mails, write_previews
from tailormail.content.screenshot import find_chromium
from tailormail.errors import ValidationError


def preview(
    template: Annotated[str, typer.Argument(help="Template name (templates/NAME.liquid or .hbs).")],
    profile: Annotated[
        list[str] | None, typer.Option("--profile", "-p", help="A user id to preview for (repeatable).")
    ] = None,
    sample: Annotated[int, typer.Option("--sample", help="Preview N people chosen to cover every block variant.")] = 0,
    out: Annotated[
        Path | None, typer.Option(help="Folder to write into (default: previews/ in the workspace).")
    ] = None,
    screenshots: Annotated[bool, typer.Option(help="Take PNG screenshots when Chromium is installed.")] = True,
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Write a template's HTML and text part for people, with 600/375 px screenshots."""
    if not profile and sample <= 0:
        raise ValidationError("say who to preview for", field="profile", hint="use --profile USER_ID or --sample N")
    request = PreviewRequest(template, user_ids=profile or [], sample=sample)
    with runtime_for(workspace) as rt, rt.store.read() as conn:
        mails = render_mails(conn, rt.settings, request, rt.clock.now())
        folder = out or rt.settings.workspace / "previews"
        shots = screenshots and find_chromium() is not None
        with Progress(console=console, transient=True, disable=as_json) as progress:
            task = progress.add_task("Rendering previews" + (" and screenshots" if shots else ""), total=len(mails))
            previews = write_previews(
                mails, folder, template=template, screenshots=shots, on_progress=lambda n: progress.advance(task, n)
            )
        sheet = contact_sheet(previews, folder, template=template, now=rt.clock.now()) if sample else None
    if as_json:
        print_json({"previews": [p.as_dict() for p in previews], "contact_sheet": str(sheet) if sheet else None})
        return
    rows = [
        [p.label, p.subject or p.error or "", ", ".join(f"{b}={v}" for b, v in p.variants.items()), str(p.html)]
        for p in previews
    ]
    print_table(f"Previews of {template}", ["person", "subject", "variants", "html"], rows)
    if screenshots and not shots:
        console.print("Chromium is not installed: wrote HTML and text only (apt-get install chromium).")
    if sheet:
        console.print(f"Contact sheet: {sheet}")
