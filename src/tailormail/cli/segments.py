"""`tailormail segments`: list, show, members, refresh, explain, overlap, doctor."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress

from tailormail.cli.common import JsonOption, WorkspaceOption, console, print_json, print_table, runtime_for
from tailormail.clock import parse_time, to_ms
from tailormail.errors import ValidationError
from tailormail.runtime import Runtime
from tailormail.segments.service import SegmentService

app = typer.Typer(help="Audience segments: rules, members, refresh, explain, overlap, doctor.", no_args_is_help=True)

AsOfOption = Annotated[
    str | None, typer.Option("--as-of", help="Evaluate at this moment (ISO time) instead of now.", show_default=False)
]


def _now(rt: Runtime, as_of: str | None) -> int:
    if as_of is None:
        return to_ms(rt.clock.now())
    try:
        return to_ms(parse_time(as_of))
    except ValueError:
        raise ValidationError(
            f"--as-of {as_of!r} is not an ISO time", field="--as-of", hint="e.g. 2026-03-01T12:00:00Z"
        ) from None


def _service(rt: Runtime) -> SegmentService:
    return SegmentService(rt.store, rt.settings)


@app.command("list")
def list_segments(workspace: WorkspaceOption = None, as_json: JsonOption = False) -> None:
    """List segments with size, change over 7 days and last refresh."""
    with runtime_for(workspace) as rt:
        rows = _service(rt).summaries(to_ms(rt.clock.now()))
    if as_json:
        print_json(rows)
        return
    table = [
        [
            r["name"] + ("" if r["active"] else " (inactive)") + (" (edited: refresh)" if r["stale"] else ""),
            r["size"],
            f"{r['change_7d']:+d}",
            r["refreshed_at"] or "never",
            r["description"],
        ]
        for r in rows
    ]
    print_table("Segments", ["name", "size", "7 days", "last refresh", "description"], table)


@app.command()
def show(name: str, workspace: WorkspaceOption = None, as_json: JsonOption = False) -> None:
    """Show a segment: its rule in words, the SQL it compiles to, its size."""
    with runtime_for(workspace) as rt:
        info = _service(rt).show(name, to_ms(rt.clock.now()))
    if as_json:
        print_json(info)
        return
    console.print(f"[bold]{info['name']}[/] ({info['size']:,} members) — {info['description']}")
    console.print(f"[dim]{info['source']}[/]")
    for line in info["explanation"]:
        console.print("  " + line, highlight=False)
    console.print("\n[dim]SQL (values shown inline here; the engine binds them):[/]")
    console.print(info["sql"], highlight=False, markup=False)


@app.command()
def members(
    name: str,
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
    as_of: AsOfOption = None,
    limit: Annotated[int, typer.Option(help="How many to print.")] = 100,
    after: Annotated[int, typer.Option(help="Start after this profile id (paging).")] = 0,
) -> None:
    """List a segment's members (now, or as of another moment)."""
    with runtime_for(workspace) as rt:
        page = _service(rt).members(name, as_of=_now(rt, as_of) if as_of else None, after=after, limit=limit)
    if as_json:
        print_json(page)
        return
    rows = [[m["profile_id"], m["user_id"] or "(anonymous)", m["since"] or ""] for m in page["members"]]
    print_table(f"{name}" + (f" as of {page['as_of']}" if page["as_of"] else ""), ["profile", "user", "since"], rows)
    if page["next_after"]:
        console.print(f"[dim]more: --after {page['next_after']}[/]")


@app.command()
def refresh(
    name: Annotated[str | None, typer.Argument(help="One segment (default: every active one).")] = None,
    workspace: WorkspaceOption = None,
    as_of: AsOfOption = None,
    as_json: JsonOption = False,
) -> None:
    """Recompute RFM traits and segments in full, writing only what changed."""
    with runtime_for(workspace) as rt:
        service = _service(rt)
        names = [name] if name else None
        total = 1 if name else sum(1 for s in service.definitions().values() if s.active)
        with Progress(console=console, transient=True, disable=as_json) as progress:
            task = progress.add_task("refreshing", total=total)
            diffs = service.refresh(names, _now(rt, as_of), on_done=lambda d: progress.advance(task))
    rows = [[d.segment, d.size or 0, len(d.entered), len(d.exited)] for d in diffs]
    if as_json:
        print_json([dict(zip(["segment", "size", "entered", "exited"], r, strict=True)) for r in rows])
    else:
        print_table("Refreshed", ["segment", "size", "entered", "exited"], rows)


@app.command()
def explain(
    name: str,
    user_id: str,
    workspace: WorkspaceOption = None,
    as_of: AsOfOption = None,
    as_json: JsonOption = False,
) -> None:
    """Explain why a person is or is not in a segment: each condition and the values that decided it."""
    with runtime_for(workspace) as rt:
        report = _service(rt).explain(name, user_id, _now(rt, as_of))
    if as_json:
        print_json(report)
        return
    verdict = "[green]is in[/]" if report["member"] else "[red]is not in[/]"
    console.print(f"{user_id} {verdict} [bold]{name}[/] at {report['at']}")
    for step in report["steps"]:
        mark = "[green]✓[/]" if step["holds"] else "[red]✗[/]"
        values = ", ".join(f"{k}: {v}" for k, v in step["values"].items())
        console.print(
            f"{'  ' * step['depth']}{mark} {step['condition']}" + (f"  [dim]({values})[/]" if values else ""),
            highlight=False,
        )


@app.command()
def overlap(
    workspace: WorkspaceOption = None,
    png: Annotated[Path | None, typer.Option(help="Also draw the matrix as a heatmap PNG here.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Show how much segments overlap (Jaccard), as a table and optionally a heatmap."""
    from tailormail.segments.governance import heatmap_png

    with runtime_for(workspace) as rt:
        data = _service(rt).overlap()
    if png:
        heatmap_png(data["segments"], data["jaccard"], png)
    if as_json:
        print_json(data)
        return
    rows = [[n, *[round(v, 2) for v in row]] for n, row in zip(data["segments"], data["jaccard"], strict=True)]
    print_table("Overlap (Jaccard)", ["segment", *data["segments"]], rows)
    if png:
        console.print(f"Heatmap written to {png}")


@app.command()
def doctor(workspace: WorkspaceOption = None, as_json: JsonOption = False) -> None:
    """Governance: too many segments, tiny, unchanged, unused, overlapping pairs — with suggestions."""
    with runtime_for(workspace) as rt:
        findings = _service(rt).doctor(to_ms(rt.clock.now()))
    if as_json:
        print_json([f.as_json() for f in findings])
        return
    if not findings:
        console.print("[green]No findings: segments look healthy.[/]")
        return
    print_table(
        "Segment doctor", ["finding", "message", "suggestion"], [[f.kind, f.message, f.suggestion] for f in findings]
    )
