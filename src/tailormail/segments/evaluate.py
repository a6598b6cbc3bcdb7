"""Evaluate any rule: the profile ids for which it holds at a given moment."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection

from tailormail.config import Settings
from tailormail.segments import rules as r
from tailormail.segments.sql import Scope, compile_rule, prepared
from tailormail.store import segments as q

CHUNK = 1000
"""Profile ids per query when restricted: keeps bound parameters under SQLite's limit."""


def matching_profiles(
    conn: Connection,
    rule: r.Condition,
    *,
    now_ms: int,
    profile_ids: Iterable[int] | None = None,
    settings: Settings | None = None,
) -> set[int]:
    """Profile ids for which ``rule`` holds at ``now_ms`` (only among ``profile_ids`` when given)."""
    timezone = settings.timezone if settings is not None else "UTC"
    dialect = conn.dialect.name
    restricted = profile_ids is not None
    stmt = prepared(rule, dialect, restricted, timezone)
    if profile_ids is None:
        if stmt is not None:
            return q.run_profile_query(conn, stmt, {"now": now_ms})
        return q.run_profile_query(conn, compile_rule(rule, Scope(now_ms, dialect, None, timezone)))
    found: set[int] = set()
    for chunk in q.chunks(sorted(set(profile_ids)), CHUNK):
        if stmt is not None:
            found |= q.run_profile_query(conn, stmt, {"now": now_ms, "ids": chunk})
        else:
            found |= q.run_profile_query(conn, compile_rule(rule, Scope(now_ms, dialect, tuple(chunk), timezone)))
    return found
