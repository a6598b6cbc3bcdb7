"""Whole-database operations: emptying a database the demo owns."""

from __future__ import annotations

from sqlalchemy import Connection, MetaData, select

from tailormail.store.schema import events, profiles


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
