"""`tailormail keys`: create, list and revoke API keys."""

from __future__ import annotations

from typing import Annotated

import typer

from tailormail.cli.common import JsonOption, WorkspaceOption, console, print_json, print_table, runtime_for
from tailormail.clock import from_ms, to_ms
from tailormail.store import keys as key_store

app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)


@app.command("create")
def create(
    scope: Annotated[str, typer.Option(help="write (ingest only) or admin (everything).")] = "write",
    name: Annotated[str, typer.Option(help="A label to recognise the key by.")] = "default",
    workspace: WorkspaceOption = None,
) -> None:
    """Create a key and print it once, alone on the last line."""
    with runtime_for(workspace) as rt, rt.store.begin() as conn:
        record, plaintext = key_store.create_key(conn, scope, name, to_ms(rt.clock.now()))
    console.print(f"Created {record.scope} key {record.name!r} (id {record.id}). It is shown only this once:")
    typer.echo(plaintext)


@app.command("list")
def list_keys(workspace: WorkspaceOption = None, as_json: JsonOption = False) -> None:
    """List keys (their prefixes; the keys themselves are not stored)."""
    with runtime_for(workspace) as rt, rt.store.read() as conn:
        records = key_store.list_keys(conn)
    rows = [
        [
            r.id,
            r.name,
            r.scope,
            r.prefix + "…",
            from_ms(r.created_at).isoformat(timespec="seconds"),
            "revoked" if r.revoked_at else "active",
        ]
        for r in records
    ]
    columns = ["id", "name", "scope", "prefix", "created", "status"]
    if as_json:
        print_json([dict(zip(columns, row, strict=True)) for row in rows])
    else:
        print_table("API keys", columns, rows)


@app.command("revoke")
def revoke(
    key_id: Annotated[int, typer.Argument(help="The id shown by `keys list`.")], workspace: WorkspaceOption = None
) -> None:
    """Revoke a key: it authenticates nothing from now on."""
    with runtime_for(workspace) as rt, rt.store.begin() as conn:
        key_store.revoke_key(conn, key_id, to_ms(rt.clock.now()))
    console.print(f"Revoked key {key_id}.")
