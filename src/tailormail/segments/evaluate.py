"""Evaluate any rule: the profile ids for which it holds at a given moment."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection

from tailormail.config import Settings
from tailormail.segments import rules as r
from tailormail.segments.sql import Scope, compile_rule, id_list, prepared
from tailormail.store import segments as q

CHUNK = 1000
"""Profile ids per query when ids are inlined (rules with dates): keeps bound parameters under SQLite's limit."""


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
    wanted = sorted(set(profile_ids))
    if not wanted:
        return set()
    if stmt is not None:  # one query, the ids as one parameter
        return q.run_profile_query(conn, stmt, {"now": now_ms, "ids": id_list(dialect, wanted)})
    found: set[int] = set()
    for chunk in q.chunks(wanted, CHUNK):
        found |= q.run_profile_query(conn, compile_rule(rule, Scope(now_ms, dialect, tuple(chunk), timezone)))
    return found
