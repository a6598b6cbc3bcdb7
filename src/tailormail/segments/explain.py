"""Explain one person's membership: each condition, whether it holds, and the values that decided it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection

from tailormail.clock import from_ms
from tailormail.config import Settings
from tailormail.segments import rules as r
from tailormail.segments.describe import children, sentence
from tailormail.segments.evaluate import matching_profiles
from tailormail.segments.sql import Scope, event_stats
from tailormail.store import profiles as profile_q
from tailormail.store import segments as q


@dataclass
class Step:
    """One condition of the tree for one person."""

    depth: int
    text: str
    holds: bool
    values: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """A plain dict for the API and --json."""
        return {"depth": self.depth, "condition": self.text, "holds": self.holds, "values": self.values}


def explain(
    conn: Connection, rule: r.Condition, profile: dict[str, Any], now_ms: int, settings: Settings | None = None
) -> list[Step]:
    """Every condition of ``rule`` evaluated for ``profile`` at ``now_ms``, parents first."""
    steps: list[Step] = []
    _walk(conn, rule, profile, now_ms, settings, 0, steps)
    return steps


def _walk(
    conn: Connection,
    node: r.Condition,
    profile: dict[str, Any],
    now_ms: int,
    settings: Settings | None,
    depth: int,
    out: list[Step],
) -> None:
    pid = profile["id"]
    holds = pid in matching_profiles(conn, node, now_ms=now_ms, profile_ids=[pid], settings=settings)
    out.append(Step(depth, sentence(node), holds, _values(conn, node, profile, now_ms)))
    for child in children(node):
        _walk(conn, child, profile, now_ms, settings, depth + 1, out)


def _values(conn: Connection, node: r.Condition, profile: dict[str, Any], now_ms: int) -> dict[str, Any]:
    if isinstance(node, r.Trait):
        found: Any = profile.get("traits") or {}
        for key in node.compare.path:
            found = found.get(key) if isinstance(found, dict) else None
        return {".".join(node.compare.path): found}
    if isinstance(node, r.ProfileTime):
        return {node.field: from_ms(profile[node.field]).isoformat()}
    if isinstance(node, r.Event):
        scope = Scope(now_ms, conn.dialect.name, (profile["id"],))
        row = q.run_row(conn, event_stats(node, scope))
        values: dict[str, Any] = {"matching events": row["count"]}
        for key in ("first", "last"):
            if row[key] is not None:
                values[key] = from_ms(row[key]).isoformat()
        if "aggregate" in row and node.aggregate is not None:
            values[f"{node.aggregate.function} of {node.aggregate.property}"] = row["aggregate"]
        return values
    return {}


def find_profile(conn: Connection, user_id: str) -> dict[str, Any] | None:
    """A profile by user id (or by numeric profile id when no user has that id)."""
    profile = profile_q.get_profile(conn, user_id=user_id)
    if profile is None and user_id.isdigit():
        profile = profile_q.get_profile(conn, profile_id=int(user_id))
    return profile
