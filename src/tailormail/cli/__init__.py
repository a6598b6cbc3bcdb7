"""The `tailormail` command: a thin layer over the library.

Each module here defines one command or command group and is registered below.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tailormail.cli import (
    campaigns,
    complaints,
    consume,
    demo,
    experiment,
    exports,
    heatmap,
    imports,
    journeys,
    keys,
    lint,
    metrics,
    outbox,
    predict,
    preview,
    recommend,
    report,
    segments,
    simulate,
    sync,
)
from tailormail.cli.common import Group, WorkspaceOption, console, runtime_for
from tailormail.config import workspace_path
from tailormail.workspace import init_workspace

app = typer.Typer(
    cls=Group,
    help="tailormail: data-driven email personalization you run yourself.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(keys.app, name="keys")
app.add_typer(predict.app, name="predict")
app.add_typer(experiment.app, name="experiment")
app.add_typer(imports.app, name="import")
app.add_typer(exports.app, name="export")
app.add_typer(outbox.app, name="outbox")
app.command("simulate")(simulate.simulate)
app.command("demo")(demo.demo)
app.add_typer(sync.app, name="sync")
app.add_typer(consume.app, name="consume")
app.command("lint")(lint.lint)
app.command("preview")(preview.preview)
app.add_typer(recommend.app, name="recommend")
app.add_typer(segments.app, name="segments")
app.add_typer(journeys.app, name="journeys")
app.add_typer(campaigns.app, name="campaigns")
app.add_typer(complaints.app, name="complaints")
app.command("metrics")(metrics.metrics)
app.command("report")(report.report)
app.command("heatmap")(heatmap.heatmap)


@app.command()
def init(
    directory: Annotated[Path, typer.Argument(help="Folder to create the workspace in.")] = Path("."),
    force: Annotated[bool, typer.Option(help="Rewrite preset files in an existing workspace.")] = False,
) -> None:
    """Create a workspace: tailormail.toml, segments/, templates/, blocks/, journeys/ and the database."""
    root = workspace_path(directory)
    created = init_workspace(root, force=force)
    with runtime_for(root) as rt:
        database = rt.settings.database_url
    for path in created:
        console.print(f"  created {path.relative_to(root.parent)}")
    console.print(f"Workspace ready in {root} (database: {database}).")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    with_worker: Annotated[bool, typer.Option(help="Also run the worker in this process (one-box setups).")] = True,
    workspace: WorkspaceOption = None,
) -> None:
    """Run the HTTP API (ingestion, profiles, segments, tracking links) and, by default, the worker."""
    import threading

    import uvicorn

    from tailormail.api.app import create_app
    from tailormail.worker import make_worker

    stop = threading.Event()
    with runtime_for(workspace) as rt:
        thread = threading.Thread(target=make_worker(rt).run_forever, args=(stop,), daemon=True, name="worker")
        if with_worker:
            thread.start()
        try:
            uvicorn.run(create_app(rt), host=host, port=port, log_level="info")
        finally:
            stop.set()
            if with_worker:
                thread.join(timeout=10)


@app.command()
def worker(workspace: WorkspaceOption = None) -> None:
    """Run the worker: timers, segment rechecks, journeys, delivery, sync schedules."""
    import signal
    import threading

    from tailormail.worker import make_worker

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with runtime_for(workspace) as rt:
        console.print("Worker running; Ctrl-C to stop.")
        try:
            make_worker(rt).run_forever(stop)
        except KeyboardInterrupt:
            stop.set()


def main() -> None:
    """Entry point of the `tailormail` console script."""
    app()
