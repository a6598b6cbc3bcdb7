"""Database errors read as one clear line with a hint, on every path: SQLAlchemy's, driver SQL, the CLI."""

from __future__ import annotations

import socket
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import Connection, text
from sqlalchemy.exc import IntegrityError, OperationalError
from typer.testing import CliRunner

from tailormail.api.errors import status_of
from tailormail.cli import app
from tailormail.errors import StoreError
from tailormail.store import Store
from tailormail.store.engine import store_error


@pytest.mark.parametrize(
    ("driver_text", "hint_says"),
    [
        ("database is locked", "try again"),
        ("unable to open database file", "--workspace"),
        ("attempt to write a readonly database", "read-only"),
        ("database or disk is full", "free space"),
        ("no such table: events", "not a tailormail workspace"),
        ('relation "events" does not exist', "not a tailormail workspace"),
        ('connection failed: FATAL:  database "shop" does not exist', "database name"),
        ("connection failed: Connection refused", "server is running"),
        ("NOT NULL constraint failed: events.type", None),
    ],
)
def test_each_known_cause_gets_its_hint(driver_text: str, hint_says: str | None) -> None:
    error = store_error(sqlite3.OperationalError(driver_text), "sqlite:///shop/tailormail.db")
    assert error.message == f"database sqlite:///shop/tailormail.db: {driver_text}"
    assert (error.hint is None) if hint_says is None else (hint_says in (error.hint or ""))


def test_sqlalchemy_wrapped_errors_show_the_drivers_first_line() -> None:
    wrapped = OperationalError("SELECT 1", {}, sqlite3.OperationalError("database is locked\nmore detail"))
    assert store_error(wrapped, "db").message == "database db: database is locked"


def closed_port() -> int:
    with socket.socket() as s:  # bound, then closed: nothing listens there
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_unreachable_postgresql_is_a_store_error_with_the_password_hidden() -> None:
    store = Store(f"postgresql://tm:s3cret@127.0.0.1:{closed_port()}/shop")
    with pytest.raises(StoreError) as caught, store.read():
        pass
    assert "s3cret" not in str(caught.value) and "***" in caught.value.message
    assert "server is running" in (caught.value.hint or "")
    assert status_of(caught.value) == 503
    store.close()


HALF_A_KEY = "INSERT INTO api_keys (name) VALUES ('half')"  # its NOT NULL columns missing


@pytest.mark.parametrize(
    ("path", "run", "cause"),
    [
        ("driver SQL through SQLAlchemy", lambda conn: conn.exec_driver_sql(HALF_A_KEY), IntegrityError),
        ("the driver's own cursor", lambda conn: conn.connection.cursor().execute(HALF_A_KEY), sqlite3.IntegrityError),
    ],
)
def test_errors_in_a_write_transaction_are_store_errors_and_roll_back(
    tmp_path: Path, path: str, run: Callable[[Connection], object], cause: type[Exception]
) -> None:
    store = Store(f"sqlite:///{tmp_path / 'shop.db'}")
    store.migrate()
    with pytest.raises(StoreError) as caught, store.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO api_keys (name, prefix, key_hash, scope, created_at) VALUES ('k', 'p', 'h', 'write', 0)"
        )
        run(conn)
    assert isinstance(caught.value.__cause__, cause)  # the driver's error is kept for a traceback
    assert "NOT NULL constraint failed: api_keys." in caught.value.message
    with store.read() as conn:  # the whole transaction is rolled back
        assert conn.execute(text("SELECT count(*) FROM api_keys")).scalar_one() == 0
    store.close()


def test_the_cli_prints_one_line_and_a_hint_and_exits_69(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["init", str(tmp_path / "shop")]).exit_code == 0
    monkeypatch.setenv("TAILORMAIL_DATABASE_URL", f"postgresql://tm@127.0.0.1:{closed_port()}/shop")
    result = runner.invoke(app, ["segments", "list", "--workspace", str(tmp_path / "shop")])
    assert result.exit_code == 69, result.output
    assert "error: database postgresql" in result.output and "hint: check TAILORMAIL_DATABASE_URL" in result.output
    assert "Traceback" not in result.output
