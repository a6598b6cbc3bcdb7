"""None is bound as NULL through the sqlite3 adapter registry once a SQLite store exists (a fast path, same values)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

from tailormail.store import Store
from tailormail.store.engine import bind_none_directly

_PROBE = """
import json, sqlite3, sys
key = (type(None), sqlite3.PrepareProtocol)
before = key in sqlite3.adapters
from tailormail.store import Store
store = Store("sqlite:///" + sys.argv[1])
print(json.dumps({"before": before, "after": key in sqlite3.adapters}))
store.close()
"""


def test_a_sqlite_store_registers_the_none_adapter(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, str(tmp_path / "n.db")], capture_output=True, text=True, check=True
    )
    assert json.loads(done.stdout) == {"before": False, "after": True}


def test_none_still_binds_as_null_and_other_values_as_themselves(tmp_path: Path) -> None:
    bind_none_directly()
    bind_none_directly()  # idempotent: a second store in the process registers the same adapter
    store = Store("sqlite:///" + str(tmp_path / "v.db"))
    rows = [(None, 1, "a", 1.5, None), (2, None, None, None, b"x")]
    with store.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (a, b, c, d, e)")
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        cursor.executemany("INSERT INTO t VALUES (?, ?, ?, ?, ?)", rows)
    with store.read() as conn:
        kinds = conn.exec_driver_sql(
            "SELECT typeof(a), typeof(b), typeof(c), typeof(d), typeof(e) FROM t ORDER BY rowid"
        ).all()
        nulls = conn.exec_driver_sql("SELECT count(*) FROM t WHERE a IS NULL AND e IS NULL").scalar_one()
        back = conn.exec_driver_sql("SELECT a, b, c, d, e FROM t ORDER BY rowid").all()
    store.close()
    assert [tuple(k) for k in kinds] == [
        ("null", "integer", "text", "real", "null"),
        ("integer", "null", "null", "null", "blob"),
    ]
    assert nulls == 1
    assert [tuple(r) for r in back] == rows
    assert sqlite3.adapters[(type(None), sqlite3.PrepareProtocol)](None) is None
