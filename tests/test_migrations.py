"""Migration steps on databases made by older versions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Table, create_engine, inspect, text

from tailormail.store.migrations import add_column, create_indexes, move_seen_times, replace_indexes
from tailormail.store.schema_journeys import (
    JOURNEY_LOG_INDEXES_BEFORE,
    JOURNEY_RUN_INDEXES_BEFORE,
    campaign_members,
    journey_log,
    journey_runs,
    webhook_outbox,
)
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


def test_seen_times_move_out_of_profiles_with_their_values(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    with engine.begin() as conn:  # profiles as migration 1 created it before the move
        conn.execute(
            text(
                "CREATE TABLE profiles (id INTEGER PRIMARY KEY, user_id VARCHAR(255) UNIQUE, traits JSON NOT NULL,"
                " first_seen BIGINT NOT NULL, last_seen BIGINT NOT NULL, updated_at BIGINT NOT NULL)"
            )
        )
        rows = "(1, 'a', '{\"plan\": \"pro\"}', 10, 20, 30), (2, NULL, '{}', 5, 6, 7)"
        conn.execute(text(f"INSERT INTO profiles VALUES {rows}"))
        move_seen_times(conn)
        move_seen_times(conn)  # a database created after the move: nothing more to do
        profile_columns = [c["name"] for c in inspect(conn).get_columns("profiles")]
        seen = conn.execute(text("SELECT profile_id, first_seen, last_seen FROM profile_seen ORDER BY 1")).all()
        kept = conn.execute(text("SELECT id, user_id, traits, updated_at FROM profiles ORDER BY 1")).all()
    assert profile_columns == ["id", "user_id", "traits", "updated_at"]
    assert [tuple(r) for r in seen] == [(1, 10, 20), (2, 5, 6)]
    assert [tuple(r) for r in kept] == [(1, "a", '{"plan": "pro"}', 30), (2, None, "{}", 7)]


INDEX_SWAPS = [
    (  # journey_runs with the indexes migration 7 made; migration 13
        journey_runs,
        JOURNEY_RUN_INDEXES_BEFORE,
        "CREATE TABLE journey_runs (id INTEGER PRIMARY KEY, journey VARCHAR(255), profile_id INTEGER,"
        " status VARCHAR(16), position VARCHAR(255), waiting_for VARCHAR(255))",
        [
            "CREATE INDEX ix_journey_runs_profile ON journey_runs (profile_id, status)",
            "CREATE INDEX ix_journey_runs_journey ON journey_runs (journey, profile_id)",
            "CREATE INDEX ix_journey_runs_waiting ON journey_runs (waiting_for, status)",
        ],
        {
            "ix_journey_runs_profile_journey": ["profile_id", "journey", "status"],
            "ix_journey_runs_journey_status": ["journey", "status", "position"],
            "ix_journey_runs_waiting": ["waiting_for", "status"],
        },
    ),
    (  # journey_log with the indexes migration 7 made; migration 15
        journey_log,
        JOURNEY_LOG_INDEXES_BEFORE,
        "CREATE TABLE journey_log (id INTEGER PRIMARY KEY, run_id INTEGER, journey VARCHAR(255),"
        " profile_id INTEGER, node VARCHAR(255), action VARCHAR(32), at BIGINT)",
        [
            "CREATE INDEX ix_journey_log_journey ON journey_log (journey, node, action)",
            "CREATE INDEX ix_journey_log_profile ON journey_log (profile_id, action, at)",
        ],
        {"ix_journey_log_journey": ["journey", "node", "action"], "ix_journey_log_run": ["run_id"]},
    ),
]


@pytest.mark.parametrize(("table", "before", "create", "old_indexes", "expected"), INDEX_SWAPS)
def test_indexes_are_replaced_once(
    tmp_path: Path, table: Table, before: tuple[str, ...], create: str, old_indexes: list[str], expected: Any
) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    with engine.begin() as conn:
        conn.execute(text(create))
        conn.execute(text(f"INSERT INTO {table.name} (id) VALUES (1), (2)"))
        for index in old_indexes:
            conn.execute(text(index))
        step = replace_indexes(table, before)
        step(conn)
        step(conn)  # a database created with the new indexes: nothing to do
        indexes = {i["name"]: i["column_names"] for i in inspect(conn).get_indexes(table.name)}
        kept = conn.execute(text(f"SELECT count(*) FROM {table.name}")).scalar_one()
    assert indexes == expected
    assert kept == 2


def test_person_indexes_are_added_to_campaign_members_and_the_webhook_outbox_once(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    with engine.begin() as conn:  # both tables as migration 8 made them, rows kept
        conn.execute(
            text(
                "CREATE TABLE campaign_members (campaign VARCHAR(255), profile_id INTEGER, status VARCHAR(16),"
                " due_at BIGINT, PRIMARY KEY (campaign, profile_id))"
            )
        )
        conn.execute(text("CREATE INDEX ix_campaign_members_due ON campaign_members (status, due_at)"))
        outbox = "CREATE TABLE webhook_outbox (id INTEGER PRIMARY KEY, profile_id INTEGER, status VARCHAR(16))"
        conn.execute(text(outbox))
        conn.execute(text("CREATE INDEX ix_webhook_outbox_due ON webhook_outbox (status)"))
        conn.execute(text("INSERT INTO campaign_members VALUES ('c', 1, 'queued', 5), ('c', 2, 'queued', 6)"))
        step = create_indexes(campaign_members, webhook_outbox)
        step(conn)
        step(conn)  # a database created with them: nothing to do
        found = {t: {i["name"] for i in inspect(conn).get_indexes(t)} for t in ("campaign_members", "webhook_outbox")}
        kept = conn.execute(text("SELECT count(*) FROM campaign_members")).scalar_one()
    assert found == {
        "campaign_members": {"ix_campaign_members_due", "ix_campaign_members_profile"},
        "webhook_outbox": {"ix_webhook_outbox_due", "ix_webhook_outbox_profile"},
    }
    assert kept == 2
