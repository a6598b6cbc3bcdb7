"""Named queries for segments: run a compiled rule, memberships, history, rechecks, state."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, Select, cast, delete, distinct, func, insert, literal, select, update
from sqlalchemy.types import Integer, String

from tailormail.store import jsonsql
from tailormail.store.dialect import upsert
from tailormail.store.schema import events, profiles
from tailormail.store.schema_segments import segment_changes, segment_members, segment_rechecks, segment_state

ENTERED, EXITED = "entered", "exited"
EVENT_OF_CHANGE = {ENTERED: "segment_entered", EXITED: "segment_exited"}


def run_profile_query(conn: Connection, stmt: Select[Any], params: dict[str, Any] | None = None) -> set[int]:
    """Execute a compiled segment query: the set of profile ids it selects."""
    return {int(pid) for pid in conn.execute(stmt, params or {}).scalars()}


def touched_profiles(conn: Connection, ids: Iterable[int], now_ms: int) -> set[int]:
    """Of ``ids``, the profiles created, merged into or given traits at ``now_ms`` (ingest stamps updated_at)."""
    found: set[int] = set()
    for chunk in chunks(sorted(set(ids)), 2000):
        stmt = select(profiles.c.id).where(profiles.c.id.in_(chunk), profiles.c.updated_at == now_ms)
        found.update(int(p) for p in conn.execute(stmt).scalars())
    return found


def current_members(conn: Connection, segment: str, ids: Iterable[int] | None = None) -> set[int]:
    """Who is in ``segment`` now (of ``ids``, when given)."""
    stmt = select(segment_members.c.profile_id).where(segment_members.c.segment == segment)
    if ids is None:
        return {int(p) for p in conn.execute(stmt).scalars()}
    found: set[int] = set()
    for chunk in chunks(sorted(set(ids)), 2000):
        found.update(int(p) for p in conn.execute(stmt.where(segment_members.c.profile_id.in_(chunk))).scalars())
    return found


def segments_of(conn: Connection, profile_id: int) -> list[str]:
    """The segments a person is in, by name."""
    stmt = (
        select(distinct(segment_members.c.segment))
        .where(segment_members.c.profile_id == profile_id)
        .order_by(segment_members.c.segment)
    )
    return list(conn.execute(stmt).scalars())


def members_page(conn: Connection, segment: str, *, after: int = 0, limit: int = 100) -> list[dict[str, Any]]:
    """Members with their user id and entry time, by profile id, ``limit`` after ``after``."""
    stmt = (
        select(segment_members.c.profile_id, profiles.c.user_id, func.min(segment_members.c.since).label("since"))
        .join(profiles, profiles.c.id == segment_members.c.profile_id)
        .where(segment_members.c.segment == segment, segment_members.c.profile_id > after)
        .group_by(segment_members.c.profile_id, profiles.c.user_id)
        .order_by(segment_members.c.profile_id)
        .limit(limit)
    )
    return [dict(row) for row in conn.execute(stmt).mappings()]


def apply_changes(
    conn: Connection, segment: str, entered: set[int], exited: set[int], now_ms: int, source: str
) -> None:
    """Write enters and exits: memberships, history, and segment_entered/exited events."""
    if exited:
        for chunk in chunks(sorted(exited), 2000):
            conn.execute(
                delete(segment_members).where(
                    segment_members.c.segment == segment, segment_members.c.profile_id.in_(chunk)
                )
            )
    if entered:
        conn.execute(insert(segment_members), [{"segment": segment, "profile_id": p, "since": now_ms} for p in entered])
    changes = [(p, ENTERED) for p in sorted(entered)] + [(p, EXITED) for p in sorted(exited)]
    if not changes:
        return
    conn.execute(
        insert(segment_changes),
        [{"segment": segment, "profile_id": p, "change": c, "at": now_ms, "source": source} for p, c in changes],
    )
    conn.execute(insert(events), [_change_event(segment, p, c, now_ms) for p, c in changes])
    conn.execute(update(segment_state).where(segment_state.c.name == segment).values(changed_at=now_ms))


def _change_event(segment: str, profile_id: int, change: str, now_ms: int) -> dict[str, Any]:
    return {
        "message_id": f"segment-{uuid.uuid4().hex}",
        "profile_id": profile_id,
        "anonymous_id": None,
        "type": "track",
        "event": EVENT_OF_CHANGE[change],
        "properties": {"segment": segment},
        "context": None,
        "revenue": None,
        "ts": now_ms,
        "received_at": now_ms,
    }


def history(conn: Connection, segment: str | None = None, profile_id: int | None = None) -> list[dict[str, Any]]:
    """Membership changes, oldest first, of a segment and/or a person."""
    stmt = select(segment_changes).order_by(segment_changes.c.at, segment_changes.c.id)
    if segment is not None:
        stmt = stmt.where(segment_changes.c.segment == segment)
    if profile_id is not None:
        stmt = stmt.where(segment_changes.c.profile_id == profile_id)
    return [dict(r) for r in conn.execute(stmt).mappings()]


def change_counts_since(conn: Connection, since_ms: int) -> dict[str, tuple[int, int]]:
    """(entered, exited) per segment since ``since_ms``."""
    stmt = (
        select(segment_changes.c.segment, segment_changes.c.change, func.count())
        .where(segment_changes.c.at >= since_ms)
        .group_by(segment_changes.c.segment, segment_changes.c.change)
    )
    out: dict[str, tuple[int, int]] = {}
    for name, change, n in conn.execute(stmt):
        entered, exited = out.get(name, (0, 0))
        out[name] = (entered + n, exited) if change == ENTERED else (entered, exited + n)
    return out


# --- refresh state ---------------------------------------------------------------


def states(conn: Connection) -> dict[str, dict[str, Any]]:
    """The refresh state of every segment ever refreshed, by name."""
    return {r["name"]: dict(r) for r in conn.execute(select(segment_state)).mappings()}


def save_state(conn: Connection, name: str, rule_hash: str, now_ms: int, size: int) -> None:
    """Record a full refresh."""
    stmt = upsert(conn, segment_state, ["name"], ["rule_hash", "refreshed_at", "size"])
    conn.execute(stmt, {"name": name, "rule_hash": rule_hash, "refreshed_at": now_ms, "size": size})


def set_size(conn: Connection, name: str) -> None:
    """Recount a segment's size after real-time changes."""
    size = select(func.count(distinct(segment_members.c.profile_id))).where(segment_members.c.segment == name)
    conn.execute(update(segment_state).where(segment_state.c.name == name).values(size=size.scalar_subquery()))


def forget_segment(conn: Connection, name: str) -> None:
    """Drop a deleted segment's memberships, rechecks and state (history stays)."""
    for table, column in ((segment_members, "segment"), (segment_rechecks, "segment"), (segment_state, "name")):
        conn.execute(delete(table).where(table.c[column] == name))


def sizes(conn: Connection) -> dict[str, int]:
    """Members per segment, counted from the memberships table."""
    stmt = select(segment_members.c.segment, func.count(distinct(segment_members.c.profile_id))).group_by(
        segment_members.c.segment
    )
    return {name: int(n) for name, n in conn.execute(stmt)}


# --- rechecks ----------------------------------------------------------------------


def clear_rechecks(conn: Connection, segment: str, ids: Iterable[int] | None = None) -> None:
    """Forget the scheduled rechecks of a segment (for ``ids`` only, when given)."""
    stmt = delete(segment_rechecks).where(segment_rechecks.c.segment == segment)
    if ids is None:
        conn.execute(stmt)
        return
    for chunk in chunks(sorted(set(ids)), 2000):
        conn.execute(stmt.where(segment_rechecks.c.profile_id.in_(chunk)))


def schedule_event_rechecks(conn: Connection, segment: str, event: str, offset: int, now_ms: int) -> None:
    """For each person, the first moment an ``event`` of theirs reaches ``ts + offset`` after now."""
    where = [events.c.event == event, events.c.ts > now_ms - offset]
    due = select(literal(segment), events.c.profile_id, func.min(events.c.ts) + offset).where(*where)
    source = due.group_by(events.c.profile_id)
    conn.execute(insert(segment_rechecks).from_select(["segment", "profile_id", "due_at"], source))


def schedule_profile_rechecks(conn: Connection, segment: str, column: str, offset: int, now_ms: int) -> None:
    """The moment ``profiles.column + offset`` passes, for people where that is after now."""
    col = profiles.c[column]
    source = select(literal(segment), profiles.c.id, col + offset).where(col > now_ms - offset)
    conn.execute(insert(segment_rechecks).from_select(["segment", "profile_id", "due_at"], source))


def recent_event_times(conn: Connection, ids: list[int], names: list[str], after_ms: int) -> list[tuple[int, str, int]]:
    """(profile_id, event, ts) of these people's events named ``names`` after ``after_ms``."""
    out: list[tuple[int, str, int]] = []
    for chunk in chunks(sorted(set(ids)), 1000):
        stmt = select(events.c.profile_id, events.c.event, events.c.ts).where(
            events.c.profile_id.in_(chunk), events.c.event.in_(names), events.c.ts > after_ms
        )
        out.extend((int(p), str(e), int(t)) for p, e, t in conn.execute(stmt))
    return out


def profile_times(conn: Connection, ids: list[int], column: str) -> dict[int, int]:
    """A time column (first_seen, last_seen) of these profiles."""
    out: dict[int, int] = {}
    for chunk in chunks(sorted(set(ids)), 1000):
        stmt = select(profiles.c.id, profiles.c[column]).where(profiles.c.id.in_(chunk))
        out.update((int(p), int(t)) for p, t in conn.execute(stmt))
    return out


def add_rechecks(conn: Connection, segment: str, due: dict[int, int]) -> None:
    """Schedule one recheck per person at the given moments."""
    if due:
        conn.execute(
            insert(segment_rechecks), [{"segment": segment, "profile_id": p, "due_at": t} for p, t in due.items()]
        )


def due_rechecks(conn: Connection, now_ms: int, limit: int = 5000) -> dict[str, set[int]]:
    """People whose membership may have changed by itself by now, by segment."""
    stmt = (
        select(segment_rechecks.c.segment, segment_rechecks.c.profile_id)
        .where(segment_rechecks.c.due_at <= now_ms)
        .order_by(segment_rechecks.c.due_at)
        .limit(limit)
    )
    out: dict[str, set[int]] = {}
    for name, pid in conn.execute(stmt):
        out.setdefault(name, set()).add(int(pid))
    return out


def next_recheck(conn: Connection) -> int | None:
    """The earliest scheduled recheck, if any."""
    return conn.execute(select(func.min(segment_rechecks.c.due_at))).scalar_one_or_none()


def chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    """Consecutive slices of at most ``size``."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


# --- RFM -------------------------------------------------------------------------


def write_rfm_traits(conn: Connection, purchase_event: str, now_ms: int) -> int:
    """Set traits.rfm of every buyer from purchases up to ``now_ms`` (one UPDATE ... FROM)."""
    agg = (
        select(
            events.c.profile_id,
            func.max(events.c.ts).label("last_ts"),
            func.count().label("n"),
            func.coalesce(func.sum(events.c.revenue), 0.0).label("money"),
        )
        .where(events.c.event == purchase_event, events.c.ts <= now_ms)
        .group_by(events.c.profile_id)
        .subquery("agg")
    )
    tiles = select(
        agg.c.profile_id,
        agg.c.n,
        agg.c.money,
        agg.c.last_ts,
        _quintile(agg.c.last_ts, conn.dialect.name).label("r"),
        _quintile(agg.c.n, conn.dialect.name).label("f"),
        _quintile(agg.c.money, conn.dialect.name).label("m"),
    ).subquery("tiles")
    code = cast(tiles.c.r, String) + cast(tiles.c.f, String) + cast(tiles.c.m, String)
    scores = {
        "r": tiles.c.r,
        "f": tiles.c.f,
        "m": tiles.c.m,
        "score": tiles.c.r + tiles.c.f + tiles.c.m,
        "code": code,
        "frequency": tiles.c.n,
        "monetary": tiles.c.money,
        "last_purchase": tiles.c.last_ts,
    }
    value = jsonsql.with_object(profiles.c.traits, "rfm", scores, conn.dialect.name)
    done = conn.execute(update(profiles).where(profiles.c.id == tiles.c.profile_id).values(traits=value))
    return int(done.rowcount or 0)


def _quintile(value: Any, dialect: str) -> Any:
    """ceil(5 * cume_dist): 1-5, equal values share a score, the best is always 5.

    Spelled 5 - floor(5 * (1 - cume_dist)) because SQLite may lack ceil() and
    floor(); its integer cast truncates (PostgreSQL's rounds, so it uses floor).
    """
    spread = (1 - func.cume_dist().over(order_by=value)) * 5 + 1e-9
    return 5 - cast(func.floor(spread) if dialect == "postgresql" else spread, Integer)
