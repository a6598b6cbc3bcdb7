"""Merges and erasure reach a person's rows in every per-person table through an index."""

from __future__ import annotations

import importlib

import pytest
from sqlalchemy import Table, create_engine, delete, update

from tailormail.store import profiles as profile_q
from tailormail.store.schema import metadata


def _every_profile_table() -> list[tuple[Table, str]]:
    """``PROFILE_TABLES`` once every domain's schema has loaded (each appends its own; migrations load them all)."""
    importlib.import_module("tailormail.store.migrations")
    return list(profile_q.PROFILE_TABLES)


@pytest.mark.parametrize(("table", "column"), _every_profile_table(), ids=lambda v: getattr(v, "name", v))
@pytest.mark.parametrize("kind", ["merge", "erase"])
def test_merge_and_erasure_reach_every_persons_rows_through_an_index_not_a_scan(
    kind: str, table: Table, column: str
) -> None:
    # Per-person tables grow with every event, run or send; a merge happens inside ingest (an identify
    # call) and must not read all of one.  The journey log and timers are reached through the runs.
    engine = create_engine("sqlite://")
    metadata.create_all(engine)
    where = profile_q.rows_of(table, column, 5)
    moved = update(table).where(where).values({column: 6})
    stmt = moved if kind == "merge" else delete(table).where(where)
    with engine.connect() as conn:
        sql = str(stmt.compile(engine, compile_kwargs={"literal_binds": True}))
        plan = " | ".join(row[3] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}"))
    assert f"SEARCH {table.name} USING" in plan, plan
    assert "SCAN" not in plan, plan
