"""`tailormail lint`: check templates before they can be sent."""

from __future__ import annotations

from typing import Annotated

import typer

from tailormail.cli.common import JsonOption, WorkspaceOption, console, print_json, print_table, runtime_for
from tailormail.clock import to_ms
from tailormail.content.lint import lint_workspace


def lint(
    templates: Annotated[
        list[str] | None, typer.Argument(help="Template names or files (default: every template in templates/).")
    ] = None,
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Check templates: unknown variables, empty placeholders, unsubscribe link, MJML, client support."""
    with runtime_for(workspace) as rt, rt.store.read() as conn:
        reports = lint_workspace(rt.settings.workspace, templates or [], conn, to_ms(rt.clock.now()))
    if as_json:
        print_json([r.as_dict() for r in reports])
    else:
        for report in reports:
            rows = [
                [f"{f.file}:{f.line}" if f.line else f.file, f.severity, f.check, f.message + _for(f.sample)]
                for f in report.sorted()
            ]
            title = f"{report.template}: {len(report.errors)} error(s), {len(report.warnings)} warning(s)"
            if rows:
                print_table(title, ["where", "severity", "check", "message"], rows)
            else:
                console.print(f"[green]✓[/] {report.template}: no problems")
        if not reports:
            console.print("No templates found in templates/.")
    if any(not r.ok for r in reports):
        raise typer.Exit(1)


def _for(sample: str | None) -> str:
    return f" (sample: {sample})" if sample else ""
