"""SQLite's memory statistics are switched off at the first engine, and only while nothing of SQLite's is open.

Each case runs in a fresh interpreter: the switch is made once per process,
and this test process switched it long ago.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the switch is made on Linux only")

_PROBE = """
import ctypes, json, sqlite3, sys, _sqlite3
library = ctypes.CDLL(_sqlite3.__file__)
library.sqlite3_memory_used.restype = ctypes.c_int64
held = sqlite3.connect(":memory:") if sys.argv[2] == "open-first" else None
from tailormail.store import Store, sqlite_memstats
store = Store("sqlite:///" + sys.argv[1])
store.migrate()
with store.begin() as conn:
    conn.exec_driver_sql("CREATE TABLE t (v TEXT)")
    conn.exec_driver_sql("INSERT INTO t VALUES (json_extract('{\\"a\\": \\"x\\"}', '$.a'))")
with store.read() as conn:
    value = conn.exec_driver_sql("SELECT group_concat(v, ',') FROM t").scalar()
    counted = library.sqlite3_memory_used()
print(json.dumps({"off": sqlite_memstats.disable(), "counted": counted, "value": value}))
store.close()
"""


def _probe(tmp_path: Path, mode: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, str(tmp_path / "m.db"), mode],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_the_first_engine_switches_the_counting_off_and_queries_still_work(tmp_path: Path) -> None:
    found = _probe(tmp_path, "fresh")
    assert found["off"] is True
    assert found["counted"] == 0  # a connection is open and SQLite counts none of its memory
    assert found["value"] == "x"


def test_nothing_is_switched_while_a_connection_of_someone_else_is_open(tmp_path: Path) -> None:
    found = _probe(tmp_path, "open-first")
    assert found["off"] is False
    assert isinstance(found["counted"], int) and found["counted"] > 0  # still counted: SQLite kept running
    assert found["value"] == "x"
