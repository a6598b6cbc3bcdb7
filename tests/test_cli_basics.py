"""The CLI's foundation commands, through Typer's runner on a real workspace."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from tailormail.cli import app
from tailormail.config import CONFIG_FILE, SECRET_FILE, WORKSPACE_FOLDERS
from tailormail.runtime import open_runtime
from tailormail.store import keys

runner = CliRunner()


def test_init_creates_the_workspace_layout(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("TAILORMAIL_DATABASE_URL", raising=False)
    result = runner.invoke(app, ["init", str(tmp_path / "shop")])
    assert result.exit_code == 0, result.output
    root = tmp_path / "shop"
    assert (root / CONFIG_FILE).exists() and (root / SECRET_FILE).exists()
    assert all((root / folder).is_dir() for folder in WORKSPACE_FOLDERS)
    assert (root / "tailormail.db").exists()
    again = runner.invoke(app, ["init", str(root)])
    assert again.exit_code == 1 and "already exists" in again.output


def test_keys_create_prints_the_key_alone_on_the_last_line_and_stores_a_hash(workspace: Path) -> None:
    result = runner.invoke(app, ["keys", "create", "--scope", "admin", "--workspace", str(workspace)])
    assert result.exit_code == 0, result.output
    key = result.output.strip().splitlines()[-1]
    assert key.startswith("tm_admin_") and " " not in key
    rt = open_runtime(workspace)
    with rt.store.read() as conn:
        record = keys.authenticate(conn, key, "admin")
        stored = conn.exec_driver_sql("select key_hash from api_keys").scalars().all()
    rt.close()
    assert record.scope == "admin" and key not in stored and keys.hash_key(key) in stored


def test_unknown_scope_is_a_clear_error(workspace: Path) -> None:
    result = runner.invoke(app, ["keys", "create", "--scope", "root", "--workspace", str(workspace)])
    assert result.exit_code == 65
    assert "unknown scope 'root'" in result.output and "write or admin" in result.output


def test_keys_list_json_and_revoke(workspace: Path) -> None:
    runner.invoke(app, ["keys", "create", "--workspace", str(workspace)])
    listed = runner.invoke(app, ["keys", "list", "--json", "--workspace", str(workspace)])
    assert '"status": "active"' in listed.output
    assert runner.invoke(app, ["keys", "revoke", "1", "--workspace", str(workspace)]).exit_code == 0
    assert runner.invoke(app, ["keys", "revoke", "1", "--workspace", str(workspace)]).exit_code == 3
