"""What the store does on PostgreSQL only: plans made for each statement's parameters, inserts from arrays."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from tailormail.runtime import Runtime
from tailormail.store.dialect import insert_many
from tailormail.store.events import insert_event_values_returning
from tailormail.store.schema import events, profiles

pytestmark = pytest.mark.postgres


def needs_postgresql(runtime: Runtime) -> None:
    if runtime.store.dialect != "postgresql":
        pytest.skip("needs PostgreSQL: runs in the pass with TAILORMAIL_TEST_DATABASE_URL set")


def test_every_connection_plans_each_statement_for_its_own_parameters(runtime: Runtime) -> None:
    needs_postgresql(runtime)
    with runtime.store.read() as conn:
        assert conn.exec_driver_sql("SHOW plan_cache_mode").scalar_one() == "force_custom_plan"
    with runtime.store.begin() as conn:  # a write transaction's connection too
        assert conn.exec_driver_sql("SHOW plan_cache_mode").scalar_one() == "force_custom_plan"


def test_events_inserted_from_arrays_keep_json_nulls_floats_and_skip_known_ids(runtime: Runtime) -> None:
    needs_postgresql(runtime)
    with runtime.store.begin() as conn:
        insert_many(conn, profiles.insert(), ("id", "traits", "updated_at"),
                    [(1, {"plan": "pro", "tags": ["a", "b"]}, 7), (2, {}, 10)])  # fmt: skip
        rows = [
            ("m1", 1, None, "track", "purchase", {"revenue": 42, "note": 'é "q"'}, None, 42, 100, 200),
            ("m2", 2, "anon", "track", "product_view", {}, {"ip": "1.2.3.4"}, None, 101, 200),
            ("m3", 1, None, "track", "purchase", {"revenue": 9.5}, None, 9.5, 102, 200),  # an int, then a float
        ]
        first = insert_event_values_returning(conn, rows)
        again = insert_event_values_returning(conn, [rows[0], ("m4", 2, None, "identify", None, {}, None, None, 1, 2)])
    assert sorted(mid for _, mid in first) == ["m1", "m2", "m3"]
    assert [mid for _, mid in again] == ["m4"]  # m1 was known: skipped, not an error
    with runtime.store.read() as conn:
        stored = {r.message_id: r for r in conn.execute(select(events).order_by(events.c.id))}
        traits = dict(conn.execute(select(profiles.c.id, profiles.c.traits)).all())
    assert stored["m1"].properties == {"revenue": 42, "note": 'é "q"'} and stored["m1"].context is None
    assert stored["m1"].revenue == 42.0 and stored["m3"].revenue == 9.5 and stored["m2"].revenue is None
    assert stored["m2"].context == {"ip": "1.2.3.4"} and stored["m2"].anonymous_id == "anon"
    assert {eid for eid, _ in first} == {stored[m].id for m in ("m1", "m2", "m3")}  # the ids RETURNING gave
    assert traits == {1: {"plan": "pro", "tags": ["a", "b"]}, 2: {}}
