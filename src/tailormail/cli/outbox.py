"""`tailormail outbox`: look into the outbox, retry a message, manage suppressions."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from tailormail.cli.common import JsonOption, WorkspaceOption, console, print_json, print_table, runtime_for
from tailormail.clock import from_ms, to_ms
from tailormail.deliver import admin

app = typer.Typer(help="Look into the outbox, retry messages, suppress addresses.", no_args_is_help=True)

LIST_COLUMNS = ["id", "status", "recipient", "source", "tries", "next try", "last error"]


def _when(ms: int | None) -> str:
    return from_ms(ms).isoformat(timespec="seconds") if ms else ""


def _source(row: dict[str, Any]) -> str:
    parts = [f"{name}:{row[name]}" for name in ("campaign", "journey", "node", "template", "variant") if row.get(name)]
    return " ".join(parts)


@app.command("list")
def list_messages(
    status: Annotated[
        str | None, typer.Option(help="Only this status: queued, sending, sent, failed, bounced, suppressed.")
    ] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 50,
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """List the newest outbox messages, with a count per status."""
    with runtime_for(workspace) as rt, rt.store.read() as conn:
        rows = admin.list_messages(conn, status, limit)
        counts = admin.counts(conn)
    if as_json:
        print_json({"counts": counts, "messages": rows})
        return
    table = [
        [
            r["id"],
            r["status"],
            r["recipient"],
            _source(r),
            r["attempts"],
            _when(r["next_attempt_at"]) if r["status"] == "queued" else "",
            (r["last_error"] or "")[:40],
        ]
        for r in rows
    ]
    print_table("Outbox", LIST_COLUMNS, table)
    console.print("  ".join(f"{name}: {n:,}" for name, n in counts.items()), highlight=False)


@app.command("show")
def show(
    outbox_id: Annotated[int, typer.Argument(help="The id shown by `outbox list`.")],
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show one message: its state, every attempt, and the MIME as stored."""
    with runtime_for(workspace) as rt, rt.store.read() as conn:
        row = admin.show_message(conn, outbox_id)
    if as_json:
        print_json(row)
        return
    fields = ["id", "idempotency_key", "message_id", "status", "recipient", "sender", "kind", "profile_id", "attempts"]
    for name in fields:
        console.print(f"[bold]{name}[/]: {row[name]}", highlight=False)
    console.print(f"[bold]source[/]: {_source(row)}", highlight=False)
    for name in ("not_before", "next_attempt_at", "sent_at"):
        console.print(f"[bold]{name}[/]: {_when(row[name])}", highlight=False)
    if row["last_error"]:
        console.print(f"[bold]last_error[/]: {row['last_error']}", highlight=False)
    attempts = [
        [a["attempt"], _when(a["at"]), a["result"], a["smtp_code"], a["smtp_response"], a["worker"]]
        for a in row["attempt_log"]
    ]
    print_table("Attempts", ["#", "at", "result", "code", "response", "worker"], attempts)
    console.rule("MIME")
    console.print(row["mime"], markup=False, highlight=False)


@app.command("retry")
def retry(
    outbox_id: Annotated[int, typer.Argument(help="The id shown by `outbox list`.")], workspace: WorkspaceOption = None
) -> None:
    """Queue a failed, bounced or suppressed message again (suppressions still apply)."""
    with runtime_for(workspace) as rt, rt.store.begin() as conn:
        admin.retry_message(conn, outbox_id, to_ms(rt.clock.now()))
    console.print(f"Message {outbox_id} queued; the worker sends it on its next round.")


@app.command("suppress")
def suppress(
    address: Annotated[str, typer.Argument(help="The email address to stop sending to.")],
    reason: Annotated[str, typer.Option(help="unsubscribe (marketing only), bounce, complaint or manual.")] = "manual",
    workspace: WorkspaceOption = None,
) -> None:
    """Never send to an address again (checked right before every send)."""
    with runtime_for(workspace) as rt, rt.store.begin() as conn:
        cleaned = admin.suppress(conn, address, reason, to_ms(rt.clock.now()))
    console.print(f"Suppressed {cleaned} ({reason}).")


@app.command("unsuppress")
def unsuppress(
    address: Annotated[str, typer.Argument(help="A suppressed email address.")], workspace: WorkspaceOption = None
) -> None:
    """Lift a suppression (for example after a bounce was fixed)."""
    with runtime_for(workspace) as rt, rt.store.begin() as conn:
        cleaned = admin.unsuppress(conn, address)
    console.print(f"{cleaned} is no longer suppressed.")


@app.command("suppressions")
def list_suppressions(workspace: WorkspaceOption = None, as_json: JsonOption = False) -> None:
    """List suppressed addresses, newest first."""
    with runtime_for(workspace) as rt, rt.store.read() as conn:
        rows = admin.suppressions(conn)
    if as_json:
        print_json(rows)
        return
    print_table(
        "Suppressed",
        ["address", "reason", "since", "detail"],
        [[r["address"], r["reason"], _when(r["created_at"]), r["detail"]] for r in rows],
    )
