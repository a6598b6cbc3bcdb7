"""Migration steps on databases made by older versions."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import create_engine, inspect, text

from tailormail.store.migrations import add_column
from tailormail.store.schema_segments import segment_state


def test_add_column_adds_a_declared_column_once(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    with engine.begin() as conn:  # segment_state as migration 2 created it before the watermark
        conn.execute(text("CREATE TABLE segment_state (name VARCHAR(100) PRIMARY KEY, rule_hash VARCHAR(32))"))
        step = add_column(segment_state, "scanned_until")
        step(conn)
        step(conn)  # a database created with the column already: nothing to do
        columns = [c["name"] for c in inspect(conn).get_columns("segment_state")]
    assert columns == ["name", "rule_hash", "scanned_until"]
