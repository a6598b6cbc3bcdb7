"""Whole-database operations: planner statistics after bulk loads, emptying a database the demo owns."""

from __future__ import annotations

from sqlalchemy import Connection, MetaData, select

from tailormail.store.schema import events, identity_links, profile_seen, profiles


def drop_all_tables(conn: Connection) -> list[str]:
    """Drop every table in the connected database (or schema); return their names."""
    found = MetaData()
    found.reflect(conn)
    found.drop_all(conn)
    return sorted(found.tables)


def holds_data(conn: Connection) -> bool:
    """Whether the database has any profile or event (false when the tables are absent)."""
    if not conn.dialect.has_table(conn, profiles.name):
        return False
    return any(conn.execute(select(table.c.id).limit(1)).first() for table in (profiles, events))


BULK_LOADED = (events, profiles, profile_seen, identity_links)
"""The tables a bulk import fills."""


def refresh_statistics(conn: Connection) -> None:
    """PostgreSQL: ANALYZE the tables a bulk import filled, as its documentation advises after a load.

    Autovacuum would get there later, or never where it is off (as on this
    project's CI machine); meanwhile the planner would estimate the batch
    segment queries from sizes it has not seen.  ANALYZE reads a sample of
    30,000 rows a table, so it takes seconds even at 20M events.  SQLite: nothing.
    """
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("ANALYZE " + ", ".join(table.name for table in BULK_LOADED))  # our own table names
