"""`tailormail sync`: status, history and runs of sources and destinations."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from tailormail.cli.common import JsonOption, WorkspaceOption, console, print_json, print_table, runtime_for
from tailormail.clock import from_ms
from tailormail.sync import tasks
from tailormail.sync.pulls import PullOptions
from tailormail.sync.runs import run_json

app = typer.Typer(help="Scheduled pulls and outbound sync: status, logs, runs.", no_args_is_help=True)

HEALTH_STYLE = {"ok": "green", "degraded": "yellow", "failing": "bold red", "late": "red", "never run": "dim"}


@app.command("status")
def status(workspace: WorkspaceOption = None, as_json: JsonOption = False) -> None:
    """The last run of each source and destination, with its health (ok, degraded, failing, late)."""
    with runtime_for(workspace) as rt:
        healths = tasks.status(rt)
    if as_json:
        print_json([h.as_json() for h in healths])
        return
    rows = []
    for h in healths:
        run = h.last_run or {}
        style = HEALTH_STYLE.get(h.health, "")
        rows.append(
            [
                h.name,
                h.kind,
                f"[{style}]{h.health}[/]",
                _when(run.get("started_at")),
                run.get("read", ""),
                run.get("written", ""),
                run.get("failed", ""),
                h.next_run.isoformat(timespec="minutes") if h.next_run else "",
                h.reason,
            ]
        )
    print_table("Sync", ["name", "kind", "health", "last run", "read", "written", "failed", "next run", "why"], rows)


@app.command("log")
def log(
    name: Annotated[str, typer.Argument(help="Source or destination name.")],
    limit: Annotated[int, typer.Option(help="How many runs to show.")] = 20,
    errors: Annotated[bool, typer.Option("--errors", help="Also print each run's first errors and retries.")] = False,
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """The run history of one source or destination, newest first."""
    with runtime_for(workspace) as rt:
        runs = tasks.history(rt, name, limit)
    if as_json:
        print_json([run_json(r) for r in runs])
        return
    columns = [
        "run",
        "trigger",
        "status",
        "started",
        "took",
        "read",
        "written",
        "skipped",
        "failed",
        "retries",
        "watermark",
    ]
    print_table(f"Sync log: {name}", columns, [_log_row(r) for r in runs])
    if errors:
        for run in runs:
            for entry in run["errors"] or []:
                record = f"  record: {entry['record']}" if entry.get("record") is not None else ""
                console.print(
                    f"run {run['id']} {entry['kind']}: {entry.get('where', '')} {entry['message']}{record}",
                    highlight=False,
                    markup=False,
                )


@app.command("run")
def run(
    name: Annotated[str, typer.Argument(help="Source or destination name.")],
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Run one source (pull now) or destination (send what is due) with a progress bar."""
    with runtime_for(workspace) as rt:
        progress = Progress(
            TextColumn(f"[bold]{name}"),
            BarColumn(),
            TextColumn("{task.completed:,} records"),
            TimeElapsedColumn(),
            console=console,
            disable=as_json,
        )
        with progress:
            bar = progress.add_task(name, total=None)
            result = tasks.run_now(rt, name, PullOptions(on_progress=lambda n: progress.advance(bar, n)))
    if as_json:
        print_json(run_json(result))
        return
    console.print(
        f"{name}: {result['status']} — read {result['read']:,}, written {result['written']:,}, "
        f"skipped {result['skipped']:,}, failed {result['failed']:,}, retries {result['retries']}",
        highlight=False,
    )
    for entry in [e for e in result["errors"] if e["kind"] != "retry"][:5]:
        console.print(f"  {entry['kind']}: {entry.get('where', '')} {entry['message']}", highlight=False, markup=False)
    if result["status"] == "failed":
        raise typer.Exit(1)


@app.command("dead")
def dead(
    name: Annotated[str, typer.Argument(help="Destination name.")],
    requeue: Annotated[bool, typer.Option("--requeue", help="Send them again (back to pending).")] = False,
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """A destination's dead-letter list (deliveries that failed too often)."""
    with runtime_for(workspace) as rt:
        rows = tasks.dead_letters(rt, name, requeue=requeue)
    if as_json:
        print_json([{k: v for k, v in r.items() if k != "profile_id"} for r in rows])
        return
    if requeue:
        console.print(f"Requeued {len(rows)} deliveries of {name}.")
        return
    print_table(
        f"Dead letters: {name}",
        ["id", "key", "attempts", "last error", "created"],
        [[r["id"], r["idempotency_key"], r["attempts"], r["last_error"], _when(r["created_at"])] for r in rows],
    )


def _log_row(run: dict[str, Any]) -> list[Any]:
    took = f"{(run['finished_at'] - run['started_at']) / 1000:.1f}s" if run["finished_at"] else "running"
    return [
        run["id"],
        run["trigger"],
        run["status"],
        _when(run["started_at"]),
        took,
        run["read"],
        run["written"],
        run["skipped"],
        run["failed"],
        run["retries"],
        run["watermark"] or "",
    ]


def _when(ms: int | None) -> str:
    return from_ms(ms).isoformat(timespec="seconds") if ms else ""
