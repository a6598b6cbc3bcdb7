"""Ordered schema migrations, applied on start-up, each in its own transaction.

A migration is a version number, a name and a function of a connection.  Add a
new one at the end of ``MIGRATIONS`` with the next number; never edit one that
has shipped.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Connection, Table, inspect, select, text

from tailormail.store import (
    schema,
    schema_content,
    schema_deliver,
    schema_journeys,
    schema_predict,
    schema_segments,
    schema_sync,
)


@dataclass(frozen=True)
class Migration:
    """One schema change: applied once, in version order."""

    version: int
    name: str
    apply: Callable[[Connection], None]


def create_tables(*tables: Table) -> Callable[[Connection], None]:
    """A migration step that creates the given tables and their indexes."""

    def apply(conn: Connection) -> None:
        schema.metadata.create_all(conn, tables=list(tables))

    return apply


def add_column(table: Table, name: str) -> Callable[[Connection], None]:
    """A migration step that adds a column the schema declares (skipped when the table was created with it)."""

    def apply(conn: Connection) -> None:
        if name in {c["name"] for c in inspect(conn).get_columns(table.name)}:
            return  # the table was created after the column joined the schema
        column = table.c[name]
        kind = column.type.compile(dialect=conn.dialect)
        conn.execute(text(f"ALTER TABLE {table.name} ADD COLUMN {name} {kind}"))

    return apply


def move_seen_times(conn: Connection) -> None:
    """Move first/last seen from ``profiles`` into ``profile_seen`` (where a workspace made before has them)."""
    schema.metadata.create_all(conn, tables=[schema.profile_seen])
    if "first_seen" not in {c["name"] for c in inspect(conn).get_columns(schema.profiles.name)}:
        return  # profiles was created without them
    copy = "INSERT INTO profile_seen (profile_id, first_seen, last_seen) SELECT id, first_seen, last_seen FROM profiles"
    conn.execute(text(copy))
    for name in ("first_seen", "last_seen"):  # SQLite 3.35+ drops columns; Python 3.11 ships a newer one
        conn.execute(text(f"ALTER TABLE profiles DROP COLUMN {name}"))


def create_indexes(*tables: Table) -> Callable[[Connection], None]:
    """A migration step that creates the indexes these tables declare and lack (tables made before them)."""

    def apply(conn: Connection) -> None:
        for table in tables:
            for index in table.indexes:
                index.create(conn, checkfirst=True)

    return apply


def replace_indexes(table: Table, before: tuple[str, ...]) -> Callable[[Connection], None]:
    """A migration step that drops the indexes named ``before`` and creates those ``table`` declares."""
    create = create_indexes(table)

    def apply(conn: Connection) -> None:
        for name in before:
            conn.execute(text(f"DROP INDEX IF EXISTS {name}"))  # our own index names
        create(conn)

    return apply


MIGRATIONS: list[Migration] = [
    Migration(
        1,
        "foundation",
        create_tables(
            schema.profiles,
            schema.identity_links,
            schema.events,
            schema.products,
            schema.api_keys,
        ),
    ),
    Migration(2, "segments", create_tables(*schema_segments.SEGMENT_TABLES)),
    Migration(3, "predict", create_tables(schema_predict.predict_models)),
    Migration(4, "sync", create_tables(schema_sync.sync_runs, schema_sync.sync_state, schema_sync.sync_outbox)),
    Migration(5, "content", create_tables(schema_content.template_versions, schema_content.render_failures)),
    Migration(
        6,
        "deliver",
        create_tables(
            schema_deliver.outbox,
            schema_deliver.outbox_bodies,
            schema_deliver.delivery_attempts,
            schema_deliver.suppressions,
        ),
    ),
    Migration(7, "journeys", create_tables(*schema_journeys.JOURNEY_TABLES)),
    Migration(8, "campaigns and webhooks", create_tables(*schema_journeys.CAMPAIGN_TABLES)),
    Migration(10, "segment scan watermark", add_column(schema_segments.segment_state, "scanned_until")),
    Migration(11, "recommendation models", create_tables(schema_content.recommend_models)),
    Migration(12, "first and last seen in their own table", move_seen_times),
    Migration(
        13,
        "journey run indexes by person and by journey",
        replace_indexes(schema_journeys.journey_runs, schema_journeys.JOURNEY_RUN_INDEXES_BEFORE),
    ),
    Migration(14, "profile clock index", create_indexes(schema.profiles)),
    Migration(
        15,
        "journey log indexed by run",
        replace_indexes(schema_journeys.journey_log, schema_journeys.JOURNEY_LOG_INDEXES_BEFORE),
    ),
    Migration(
        16,
        "campaign members and webhook outbox indexed by person",
        create_indexes(schema_journeys.campaign_members, schema_journeys.webhook_outbox),
    ),
]


def pending(applied: set[int]) -> list[Migration]:
    """The migrations not yet applied, in order."""
    versions = [m.version for m in MIGRATIONS]
    if versions != sorted(set(versions)):
        raise RuntimeError("MIGRATIONS must have unique, increasing versions")
    return [m for m in MIGRATIONS if m.version not in applied]


def migrate(conn_factory: Callable[[], object], dialect: str) -> list[Migration]:
    """Apply every pending migration; return those applied now."""
    done: list[Migration] = []
    with conn_factory() as conn:  # type: ignore[attr-defined]
        if dialect == "postgresql":
            # Many processes may start at once; one migrates, the others wait.
            conn.execute(text("SELECT pg_advisory_xact_lock(7460531)"))
        schema.metadata.create_all(conn, tables=[schema.schema_migrations])
        applied = set(conn.execute(select(schema.schema_migrations.c.version)).scalars())
        for migration in pending(applied):
            migration.apply(conn)
            conn.execute(
                schema.schema_migrations.insert().values(
                    version=migration.version,
                    name=migration.name,
                    applied_at=int(time.time() * 1000),  # bookkeeping only, not domain time
                )
            )
            done.append(migration)
    return done
