"""`tailormail journeys`: list, show, test (dry run), pause and resume journeys."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.tree import Tree

from tailormail.cli.common import JsonOption, WorkspaceOption, console, print_json, print_table, runtime_for
from tailormail.clock import from_ms, to_ms
from tailormail.errors import ValidationError
from tailormail.journeys import admin
from tailormail.journeys import describe as d
from tailormail.journeys import model as m
from tailormail.journeys.definitions import get_journey, load_journeys
from tailormail.journeys.dryrun import dry_run
from tailormail.store import journeys as q

app = typer.Typer(help="Trigger-based journeys: list, show, test, pause, resume.", no_args_is_help=True)


@app.command("list")
def list_journeys(workspace: WorkspaceOption = None, as_json: JsonOption = False) -> None:
    """Every journey with its entry, state and runs."""
    with runtime_for(workspace) as rt, rt.store.read() as conn:
        rows = admin.overview(rt.settings, conn)
    if as_json:
        print_json(rows)
    else:
        print_table("Journeys", list(admin.OVERVIEW_COLUMNS), [list(r.values()) for r in rows])


@app.command("show")
def show(name: str, workspace: WorkspaceOption = None, as_json: JsonOption = False) -> None:
    """The journey as a tree, with how many people are at and have passed each step."""
    with runtime_for(workspace) as rt:
        journey = get_journey(load_journeys(rt.settings), name)
        with rt.store.read() as conn:
            counts = q.node_counts(conn, name)
            totals = q.run_totals(conn, name)
    if as_json:
        print_json(
            {"journey": name, "nodes": {k: {"at": a, "passed": p} for k, (a, p) in counts.items()}, "runs": totals}
        )
        return
    tree = Tree(
        f"[bold]{name}[/]: enters when a person {d.entry_text(journey.entry)}"
        + (f"; goal {journey.goal}" if journey.goal else "")
    )
    _grow(tree, journey, journey.start, counts, set())
    console.print(tree)
    console.print("Runs: " + (", ".join(f"{k} {v:,}" for k, v in sorted(totals.items())) or "none yet"))


def _grow(
    parent: Tree, journey: m.Journey, node_id: str | None, counts: dict[str, tuple[int, int]], seen: set[str]
) -> None:
    while node_id is not None:
        if node_id in seen:
            parent.add(f"[dim]back to {node_id}[/]")
            return
        seen.add(node_id)
        node = journey.nodes[node_id]
        at, passed = counts.get(node_id, (0, 0))
        label = parent.add(f"{node_id}: {d.node_text(node)}  [cyan]{at:,} here, {passed:,} passed[/]")
        ways = d.outcomes(node)
        if len(ways) == 1:
            node_id = ways[0][1]
            continue
        for text, target in ways:
            _grow(label.add(f"[italic]{text}[/]"), journey, target, counts, seen) if target else label.add(
                f"[italic]{text}[/] → end"
            )
        return
    parent.add("end")


@app.command("test")
def test(
    name: str,
    profile: Annotated[str, typer.Option("--profile", help="The userId of the person to walk through.")],
    events: Annotated[Path | None, typer.Option(help="JSONL of Segment track calls with timestamps.")] = None,
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Dry run on a virtual clock: the path the person would take and the emails they would get."""
    raw = _read_events(events) if events else []
    with runtime_for(workspace) as rt:
        result = dry_run(rt, name, profile, raw)
    if as_json:
        print_json({"timeline": result.timeline, "emails": [e.__dict__ for e in result.emails]})
        return
    rows = [
        [
            from_ms(line["at"]).isoformat(timespec="minutes"),
            line["node"] or "",
            line["action"],
            json.dumps(line["detail"]) if line["detail"] else "",
        ]
        for line in result.timeline
    ]
    print_table(f"{name} for {profile}", ["time (UTC)", "step", "what happened", "detail"], rows)
    for email in result.emails:
        variant = f", subject variant {email.subject_variant + 1}" if email.subject_variant is not None else ""
        console.print(f"✉ {from_ms(email.at_ms).isoformat(timespec='minutes')}: {email.template}{variant}")
    if not result.emails:
        console.print("No email would be sent.")


def _read_events(path: Path) -> list[dict[str, Any]]:
    out = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError as exc:
            raise ValidationError(
                f"{path.name} line {number}: not JSON ({exc})", line=number, source=str(path)
            ) from None
        if not isinstance(value, dict):
            raise ValidationError(f"{path.name} line {number}: expected a JSON object", line=number, source=str(path))
        out.append(value)
    return out


@app.command("pause")
def pause(name: str, workspace: WorkspaceOption = None) -> None:
    """Pause a journey: no one enters and waiting runs hold until resumed."""
    _set_paused(name, True, workspace)


@app.command("resume")
def resume(name: str, workspace: WorkspaceOption = None) -> None:
    """Resume a paused journey; held runs continue on the next worker tick."""
    _set_paused(name, False, workspace)


def _set_paused(name: str, paused: bool, workspace: Path | None) -> None:
    with runtime_for(workspace) as rt:
        admin.set_paused(rt.store, rt.settings, name, paused, to_ms(rt.clock.now()))
    console.print(f"{name}: {'paused' if paused else 'resumed'}.")
