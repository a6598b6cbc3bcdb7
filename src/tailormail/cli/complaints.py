"""`tailormail complaints import`: feedback-loop reports (ARF) become suppressions and events."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tailormail.cli.common import JsonOption, WorkspaceOption, console, print_json, print_table, runtime_for
from tailormail.errors import ValidationError
from tailormail.track.complaints import parse_report, record_complaints

app = typer.Typer(help="Spam complaints from mailbox providers' feedback loops.", no_args_is_help=True)


@app.command("import")
def import_reports(
    paths: Annotated[
        list[Path], typer.Argument(help="ARF report files (.eml), or folders of them (a Maildir's new/ and cur/ too).")
    ],
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Suppress each complained-about address and record an email_complained event for its email."""
    files = _files(paths)
    if not files:
        raise ValidationError("no report files found", field="paths", hint="give .eml files or a folder of them")
    complaints = [parse_report(path.read_bytes(), str(path)) for path in files]
    with runtime_for(workspace) as rt:
        result = record_complaints(rt, complaints)
    if as_json:
        print_json({"reports": len(files), "recorded": result.recorded, "suppressed": result.suppressed,
                    "unknown": result.unknown})  # fmt: skip
        return
    print_table(
        "Complaints",
        ["reports", "events recorded", "addresses suppressed", "not our email"],
        [[len(files), result.recorded, len(result.suppressed), len(result.unknown)]],
    )
    for source in result.unknown:
        console.print(f"[yellow]not ours:[/] {source} (its Message-ID is in no outbox row)", highlight=False)


def _files(paths: list[Path]) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            for folder in (path, path / "new", path / "cur"):
                if folder.is_dir():
                    found.extend(sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")))
        elif path.is_file():
            found.append(path)
        else:
            raise ValidationError(f"{path}: no such file or folder", field="paths")
    return found
