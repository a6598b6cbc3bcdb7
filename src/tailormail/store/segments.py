"""Named queries for segments: run a compiled rule, memberships, history, rechecks, state."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import (
    BigInteger,
    Connection,
    Select,
    and_,
    bindparam,
    cast,
    delete,
    distinct,
    exists,
    func,
    insert,
    literal,
    not_,
    or_,
    select,
    update,
)
from sqlalchemy.types import Integer, String

from tailormail.store import jsonsql
from tailormail.store.dialect import driver_cursor, insert_many, one_of, unnest_select, upsert
from tailormail.store.schema import events, profile_seen, profiles
from tailormail.store.schema_segments import segment_changes, segment_members, segment_rechecks, segment_state

ENTERED, EXITED = "entered", "exited"
EVENT_OF_CHANGE = {ENTERED: "segment_entered", EXITED: "segment_exited"}


def among(conn: Connection, column: Any, ids: Sequence[int]) -> Any:
    """``column IN (ids)`` as one parameter (a JSON list on SQLite, an array on PostgreSQL)."""
    return one_of(conn, column, ids)  # type: ignore[arg-type]  # one_of takes any JSON-able values


def run_profile_query(conn: Connection, stmt: Select[Any], params: dict[str, Any] | None = None) -> set[int]:
    """Execute a compiled segment query: the set of profile ids it selects."""
    form = _driver_form(conn, stmt, params) if params and conn.dialect.name == "sqlite" else None
    if form is not None:
        sql, template = form
        values = tuple(value if name is None else params[name] for name, value in template)  # type: ignore[index]
        return {int(pid) for (pid,) in driver_cursor(conn).execute(sql, values).fetchall()}
    return {int(pid) for pid in conn.execute(stmt, params or {}).scalars().all()}  # fetchall: no per-row calls


_DRIVER_FORMS: dict[int, tuple[Select[Any], frozenset[str], tuple[str, tuple[tuple[str | None, Any], ...]] | None]] = {}
"""id(prepared statement) -> (it, its parameter names, (SQL text, values with the named ones left open)) on SQLite."""


def _driver_form(
    conn: Connection, stmt: Select[Any], params: dict[str, Any]
) -> tuple[str, tuple[tuple[str | None, Any], ...]] | None:
    """A prepared segment query as driver SQL and its constant values, rendered once (None: not possible).

    Real time runs the same few prepared statements for every batch; through
    SQLAlchemy each execution walked the statement for its cache key, which
    cost several times SQLite's own work for a batch of 100 events.  Only
    ``params`` (``now``, ``ids``) change between executions; every other value
    is a constant of the rule.
    """
    names = frozenset(params)
    entry = _DRIVER_FORMS.get(id(stmt))
    if entry is not None and entry[0] is stmt and entry[1] == names:
        return entry[2]
    compiled = stmt.compile(dialect=conn.dialect)
    state = compiled.construct_expanded_state(dict(params))
    template: list[tuple[str | None, Any]] = []
    form: tuple[str, tuple[tuple[str | None, Any], ...]] | None = None
    for name in state.positiontup or ():
        bind = compiled.binds.get(name)
        if bind is None:  # one value of an expanded IN list
            bind = compiled.binds.get(name.rsplit("_", 1)[0])
        process = bind.type.bind_processor(conn.dialect) if bind is not None else None
        if name in names and process is not None:
            break  # a parameter that needs converting: leave it to SQLAlchemy
        value = state.parameters[name]
        template.append((name, None) if name in names else (None, process(value) if process else value))
    else:
        form = (state.statement, tuple(template))
    if len(_DRIVER_FORMS) > 1024:
        _DRIVER_FORMS.clear()
    _DRIVER_FORMS[id(stmt)] = (stmt, names, form)
    return form


def run_row(conn: Connection, stmt: Select[Any]) -> dict[str, Any]:
    """Execute a one-row query (explain's statistics) as a dict."""
    return dict(conn.execute(stmt).mappings().one())


def user_ids(conn: Connection, ids: Iterable[int]) -> dict[int, str | None]:
    """Profile id -> user id (None for anonymous profiles)."""
    out: dict[int, str | None] = {}
    for chunk in chunks(sorted(set(ids)), 2000):
        out.update(conn.execute(select(profiles.c.id, profiles.c.user_id).where(profiles.c.id.in_(chunk))).all())
    return out


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
        select(segment_members.c.segment)
        .where(segment_members.c.profile_id == profile_id)
        .distinct()
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
    changes = [(segment, p, ENTERED) for p in sorted(entered)] + [(segment, p, EXITED) for p in sorted(exited)]
    apply_many_changes(conn, changes, now_ms, source)


def apply_many_changes(conn: Connection, changes: list[tuple[str, int, str]], now_ms: int, source: str) -> None:
    """Write (segment, profile id, entered|exited) changes of several segments: a few statements in all.

    Memberships, history rows and ``segment_entered``/``segment_exited`` events,
    each as one executemany; ``changed_at`` of every segment that moved.
    """
    if not changes:
        return
    exits = [(s, p) for s, p, c in changes if c == EXITED]
    if exits:
        gone = delete(segment_members).where(
            segment_members.c.segment == bindparam("segment"), segment_members.c.profile_id == bindparam("profile_id")
        )
        insert_many(conn, gone, ("segment", "profile_id"), exits)
    enters = [(s, p, now_ms) for s, p, c in changes if c == ENTERED]
    if enters:
        insert_many(conn, insert(segment_members), ("segment", "profile_id", "since"), enters)
    history = [(s, p, c, now_ms, source) for s, p, c in changes]
    insert_many(conn, insert(segment_changes), ("segment", "profile_id", "change", "at", "source"), history)
    emitted = [_change_event(s, p, c, now_ms, conn.dialect.name) for s, p, c in changes]
    insert_many(conn, insert(events), CHANGE_EVENT_COLUMNS, emitted)
    moved = sorted({s for s, _, _ in changes})
    conn.execute(
        update(segment_state).where(segment_state.c.name == bindparam("n")).values(changed_at=now_ms),
        [{"n": name} for name in moved],
    )


def memberships_among(conn: Connection, segments: Iterable[str], ids: Iterable[int]) -> set[tuple[str, int]]:
    """(segment, profile id) of these people's memberships in these segments: one query."""
    wanted = sorted(set(ids))
    names = set(segments)
    if not wanted or not names:
        return set()
    if conn.dialect.name == "sqlite":  # once per ingested batch: driver SQL, no statement to build
        # By person (a few rows each), not by (segment, person): that was a probe per pair.
        rows = driver_cursor(conn).execute(_SQLITE_MEMBERSHIPS, (json.dumps(wanted),)).fetchall()
        return {(str(s), int(p)) for s, p in rows if s in names}
    stmt = select(segment_members.c.segment, segment_members.c.profile_id).where(
        among(conn, segment_members.c.profile_id, wanted), segment_members.c.segment.in_(sorted(names))
    )
    return {(str(s), int(p)) for s, p in conn.execute(stmt).all()}


def profile_clocks(conn: Connection, ids: Iterable[int]) -> dict[int, tuple[int, int, int]]:
    """Profile id -> (updated_at, first_seen, last_seen) of these people: one query."""
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    if conn.dialect.name == "sqlite":  # once per ingested batch: driver SQL, no statement to build
        rows = driver_cursor(conn).execute(_SQLITE_CLOCKS, (json.dumps(wanted),)).fetchall()
        return {int(p): (int(u), int(f), int(last)) for p, u, f, last in rows}
    cols = (profiles.c.id, profiles.c.updated_at, profile_seen.c.first_seen, profile_seen.c.last_seen)
    joined = profiles.join(profile_seen, profile_seen.c.profile_id == profiles.c.id)
    stmt = select(*cols).select_from(joined).where(among(conn, profiles.c.id, wanted))
    return {int(p): (int(u), int(f), int(last)) for p, u, f, last in conn.execute(stmt).all()}


_SQLITE_MEMBERSHIPS = (
    "SELECT segment, profile_id FROM segment_members WHERE profile_id IN (SELECT value FROM json_each(?))"
)
_SQLITE_CLOCKS = (
    "SELECT p.id, p.updated_at, s.first_seen, s.last_seen FROM profiles AS p INDEXED BY ix_profiles_clock"
    " JOIN profile_seen AS s"
    " ON s.profile_id = p.id WHERE p.id IN (SELECT value FROM json_each(?))"
)

CHANGE_EVENT_COLUMNS = ("message_id", "profile_id", "type", "event", "properties", "ts", "received_at")


def _change_event(segment: str, profile_id: int, change: str, now_ms: int, dialect: str) -> tuple[Any, ...]:
    """A ``segment_entered``/``segment_exited`` event row in ``CHANGE_EVENT_COLUMNS`` order."""
    properties: Any = {"segment": segment}
    if dialect == "sqlite":  # the driver gets the JSON text SQLAlchemy would have written
        properties = json.dumps(properties)
    return (change_message_id(now_ms), profile_id, "track", EVENT_OF_CHANGE[change], properties, now_ms, now_ms)


def change_message_id(now_ms: int) -> str:
    """A unique message id for a change event that sorts by time: ``segment-<ms, 12 hex>-<64 random bits>``.

    A random id (a bare uuid4) put each change into a random page of the
    message-id index, one more page for every batch's commit to write; ids
    that grow with time go to its last pages, which the batch shares.
    """
    return f"segment-{now_ms:012x}-{uuid.uuid4().hex[:16]}"


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
    if conn.dialect.name == "sqlite":  # read by every ingested batch: driver SQL
        columns = [c.name for c in segment_state.c]
        rows = driver_cursor(conn).execute(f"SELECT {', '.join(columns)} FROM {segment_state.name}").fetchall()
        return {row[0]: dict(zip(columns, row, strict=True)) for row in rows}
    return {r["name"]: dict(r) for r in conn.execute(select(segment_state)).mappings()}


def state_of(conn: Connection, name: str) -> dict[str, Any] | None:
    """The refresh state of one segment (None: never refreshed)."""
    row = conn.execute(select(segment_state).where(segment_state.c.name == name)).mappings().first()
    return dict(row) if row is not None else None


def save_state(conn: Connection, name: str, rule_hash: str, now_ms: int, size: int) -> None:
    """Record a full refresh (event moments are applied up to it: everyone was evaluated then)."""
    stmt = upsert(conn, segment_state, ["name"], ["rule_hash", "refreshed_at", "size", "scanned_until"])
    params = {"name": name, "rule_hash": rule_hash, "refreshed_at": now_ms, "size": size, "scanned_until": now_ms}
    conn.execute(stmt, params)


def set_scanned_until(conn: Connection, names: Sequence[str], until_ms: int) -> None:
    """Record that event moments up to ``until_ms`` are applied for these segments."""
    if names:
        stmt = update(segment_state).where(segment_state.c.name == bindparam("n")).values(scanned_until=until_ms)
        conn.execute(stmt, [{"n": name} for name in names])


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


def pair_intersections(conn: Connection) -> dict[tuple[str, str], int]:
    """People shared by each pair of segments (a < b), counted in the database."""
    a, b = segment_members.alias("a"), segment_members.alias("b")
    stmt = (
        select(a.c.segment, b.c.segment, func.count(distinct(a.c.profile_id)))
        .join(b, and_(a.c.profile_id == b.c.profile_id, a.c.segment < b.c.segment))
        .group_by(a.c.segment, b.c.segment)
    )
    return {(x, y): int(n) for x, y, n in conn.execute(stmt)}


# --- rechecks ----------------------------------------------------------------------


def clear_rechecks(conn: Connection, segment: str, ids: Iterable[int] | None = None) -> None:
    """Forget the scheduled rechecks of a segment (for ``ids`` only, when given)."""
    stmt = delete(segment_rechecks).where(segment_rechecks.c.segment == segment)
    if ids is None:
        conn.execute(stmt)
        return
    ids = list(ids)
    if not ids:
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
    """The moment ``profile_seen.column + offset`` passes, for people where that is after now."""
    col = profile_seen.c[column]
    source = select(literal(segment), profile_seen.c.profile_id, col + offset).where(col > now_ms - offset)
    conn.execute(insert(segment_rechecks).from_select(["segment", "profile_id", "due_at"], source))


def passed_event_moments(conn: Connection, event: str, offset: int, after_ms: int, until_ms: int) -> set[int]:
    """People with an ``event`` whose moment ``ts + offset`` is in (after, until] and later than its arrival.

    A range of the (event, ts) index.  Moments at or before the arrival were
    already applied by the ingest that stored the event.
    """
    stmt = (
        select(events.c.profile_id)
        .where(
            events.c.event == event,
            events.c.ts > after_ms - offset,
            events.c.ts <= until_ms - offset,
            events.c.received_at < events.c.ts + offset,
        )
        .distinct()
    )
    return {int(p) for p in conn.execute(stmt).scalars()}


def event_times_between(
    conn: Connection, ids: list[int], ranges: Sequence[tuple[str, int, int | None]]
) -> list[tuple[int, str, int]]:
    """(profile_id, event, ts) of these people's events in any (event, lo, hi): ``lo < ts <= hi`` (hi None: open)."""
    if not ranges:
        return []
    out: list[tuple[int, str, int]] = []
    parts = [
        and_(events.c.event == name, events.c.ts > lo, *([events.c.ts <= hi] if hi is not None else []))
        for name, lo, hi in ranges
    ]
    wanted = or_(*parts)
    for chunk in chunks(sorted(set(ids)), 1000):
        stmt = select(events.c.profile_id, events.c.event, events.c.ts).where(events.c.profile_id.in_(chunk), wanted)
        out.extend((int(p), str(e), int(t)) for p, e, t in conn.execute(stmt))
    return out


def profile_times(conn: Connection, ids: list[int], column: str) -> dict[int, int]:
    """A time column (first_seen, last_seen) of these profiles."""
    out: dict[int, int] = {}
    for chunk in chunks(sorted(set(ids)), 1000):
        stmt = select(profile_seen.c.profile_id, profile_seen.c[column]).where(profile_seen.c.profile_id.in_(chunk))
        out.update((int(p), int(t)) for p, t in conn.execute(stmt))
    return out


def rechecks_of(conn: Connection, segment: str, ids: list[int]) -> dict[int, set[int]]:
    """The scheduled recheck moments of these people in ``segment``."""
    out: dict[int, set[int]] = {}
    for chunk in chunks(sorted(set(ids)), 2000):
        stmt = select(segment_rechecks.c.profile_id, segment_rechecks.c.due_at).where(
            segment_rechecks.c.segment == segment, segment_rechecks.c.profile_id.in_(chunk)
        )
        for pid, due in conn.execute(stmt):
            out.setdefault(int(pid), set()).add(int(due))
    return out


def add_rechecks(conn: Connection, segment: str, due: dict[int, int]) -> None:
    """Schedule one recheck per person at the given moments."""
    if due:
        conn.execute(
            insert(segment_rechecks), [{"segment": segment, "profile_id": p, "due_at": t} for p, t in due.items()]
        )


def add_earlier_rechecks(conn: Connection, rows: Sequence[tuple[str, int, int]]) -> int:
    """Schedule each (segment, profile id, due_at) unless that person already has a recheck at or before it.

    One INSERT ... SELECT over the rows passed as one parameter (a JSON list on
    SQLite, arrays on PostgreSQL): no rows travel back to Python.  Returns rows added.
    """
    if not rows:
        return 0
    if conn.dialect.name == "postgresql":
        new: Any = unnest_select(
            {
                "segment": (String(), [s for s, _, _ in rows]),
                "profile_id": (BigInteger(), [p for _, p, _ in rows]),
                "due_at": (BigInteger(), [d for _, _, d in rows]),
            }
        ).subquery("new")
        seg, pid, due = new.c.segment, new.c.profile_id, new.c.due_at
    else:
        new = func.json_each(json.dumps([list(row) for row in rows])).table_valued("value").alias("new")
        seg, pid, due = (func.json_extract(new.c.value, f"$[{i}]") for i in range(3))
    r = segment_rechecks.alias("r")
    earlier = exists(select(r.c.id).where(r.c.segment == seg, r.c.profile_id == pid, r.c.due_at <= due))
    source = select(seg, pid, due).select_from(new).where(not_(earlier))
    done = conn.execute(insert(segment_rechecks).from_select(["segment", "profile_id", "due_at"], source))
    return int(done.rowcount or 0)


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
