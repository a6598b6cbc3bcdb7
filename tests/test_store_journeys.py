"""The journeys queries of the ingest path: driver SQL on SQLite reads what SQLAlchemy's statements read."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from tailormail.runtime import Runtime
from tailormail.store import journeys as q
from tailormail.store.schema_journeys import journey_runs

TRIGGERS = [
    {},
    {"product_id": "p1", "price": 19.99, "tags": ["a", "b"], "nested": {"x": None, "y": True}},
    {"name": "Zoë ☕", "big": 2**70, "negative": -(2**63)},  # beyond 64 bits: read back exactly
]


@pytest.fixture
def runs(runtime: Runtime) -> list[dict[str, Any]]:
    """Runs of three people in two journeys, some finished, with varied triggers."""
    with runtime.store.begin() as conn:
        made = []
        for i, trigger in enumerate(TRIGGERS * 3):
            run = q.create_run(conn, ("cart", "welcome")[i % 2], 1 + i % 3, trigger, 1_000 + i)
            if i % 4 == 0:
                q.update_run(conn, run["id"], 2_000, status="done", finish_reason="goal")
            elif i % 4 == 1:
                q.update_run(conn, run["id"], 2_000, status="waiting", waiting_for=f"event_{i}")
            made.append(run)
        q.set_paused(conn, "welcome", True, 3_000)
        q.set_paused(conn, "cart", False, 3_000)
    return made


@pytest.mark.parametrize("people", [[1], [2, 3], [1, 2, 3, 4], [5], []])
def test_live_runs_read_as_the_statement_reads_them(
    runtime: Runtime, runs: list[dict[str, Any]], people: list[int]
) -> None:
    with runtime.store.read() as conn:
        found = q.live_runs_of(conn, people)
        stmt = (
            select(journey_runs)
            .where(journey_runs.c.profile_id.in_(people), journey_runs.c.status.in_(q.ACTIVE))
            .order_by(journey_runs.c.id)
        )
        expected = [dict(r) for r in conn.execute(stmt).mappings()]
    assert found == expected
    pairs = [(a, b) for f, x in zip(found, expected, strict=True) for a, b in zip(f.values(), x.values(), strict=True)]
    assert all(type(a) is type(b) for a, b in pairs)


@pytest.mark.parametrize(
    ("journeys", "people"), [(["cart"], [1, 2]), (["cart", "welcome"], [1, 2, 3]), (["welcome"], [9]), ([], [1])]
)
def test_last_entries_read_as_the_statement_reads_them(
    runtime: Runtime, runs: list[dict[str, Any]], journeys: list[str], people: list[int]
) -> None:
    with runtime.store.read() as conn:
        found = q.last_entries(conn, journeys, people)
        stmt = (
            select(journey_runs.c.journey, journey_runs.c.profile_id, func.max(journey_runs.c.entered_at))
            .where(journey_runs.c.profile_id.in_(people), journey_runs.c.journey.in_(journeys))
            .group_by(journey_runs.c.journey, journey_runs.c.profile_id)
        )
        expected = {(j, int(p)): int(last) for j, p, last in conn.execute(stmt)}
    assert found == expected


def test_paused_journeys_and_awaited_events(runtime: Runtime, runs: list[dict[str, Any]]) -> None:
    with runtime.store.read() as conn:
        assert q.paused_journeys(conn) == {"welcome"}
        assert q.awaited_events(conn) == {f"event_{i}" for i in range(len(runs)) if i % 4 == 1}
