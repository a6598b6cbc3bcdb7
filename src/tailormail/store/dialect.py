"""Statements whose spelling differs between SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql, sqlite


def insert_ignoring_conflicts(conn: Connection, table: Table) -> Any:
    """An INSERT that skips rows whose unique key already exists."""
    module = postgresql if conn.dialect.name == "postgresql" else sqlite
    return module.insert(table).on_conflict_do_nothing()


def upsert(conn: Connection, table: Table, keys: list[str], update: list[str]) -> Any:
    """An INSERT that updates ``update`` columns when ``keys`` already exist."""
    module = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = module.insert(table)
    return stmt.on_conflict_do_update(index_elements=keys, set_={name: stmt.excluded[name] for name in update})
