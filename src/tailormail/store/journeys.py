"""Named queries for journeys: runs, timers, the run log and pause state."""

from __future__ import annotations

import json
from collections.abc import Iterable
from operator import itemgetter
from typing import Any

from sqlalchemy import Connection, and_, bindparam, func, select, update

from tailormail.store.dialect import compact_json, in_chunks, insert_many, one_of, upsert
from tailormail.store.engine import read_json
from tailormail.store.profiles import rows_of
from tailormail.store.schema import profile_seen, profiles
from tailormail.store.schema_journeys import journey_log, journey_runs, journey_state, journey_timers

ACTIVE = ("active", "waiting")

# Statements of the ingest hot path, built once: SQLAlchemy memoizes a built
# statement's cache key, so executing it skips most of the per-call work
# (building ``update().values(...)`` anew cost 10x SQLite's own time).
_CREATE_RUN = journey_runs.insert().returning(*journey_runs.c)
_INSERT_RUNS = journey_runs.insert()
_ADD_TIMER = journey_timers.insert()
_LOG = journey_log.insert()
_CANCEL_TIMERS = (
    update(journey_timers)
    .where(journey_timers.c.run_id == bindparam("b_run_id"), journey_timers.c.fired_at.is_(None))
    .values(fired_at=bindparam("b_now_ms"))
)
_UPDATE_RUN: dict[tuple[str, ...], Any] = {}
_MAX_RUN_ID = select(func.coalesce(func.max(journey_runs.c.id), 0))
_GET_RUNS = select(journey_runs).where(journey_runs.c.id.in_(bindparam("ids", expanding=True)))


def create_run(conn: Connection, journey: str, profile_id: int, trigger: dict[str, Any], now_ms: int) -> dict[str, Any]:
    """A new run of ``journey`` for a person; returns it as ``get_run`` would (one statement, not two)."""
    row = run_row(journey, profile_id, trigger, now_ms)
    del row["id"]
    return dict(conn.execute(_CREATE_RUN, row).mappings().one())


def run_row(
    journey: str, profile_id: int, trigger: dict[str, Any], now_ms: int, run_id: int | None = None
) -> dict[str, Any]:
    """Every column of a new run, as ``get_run`` returns it."""
    return {
        "id": run_id,
        "journey": journey,
        "profile_id": profile_id,
        "status": "active",
        "position": None,
        "waiting_for": None,
        "on_event": None,
        "on_timeout": None,
        "trigger": trigger,
        "attempt": 0,
        "entered_at": now_ms,
        "updated_at": now_ms,
        "finished_at": None,
        "finish_reason": None,
    }


def insert_runs(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Insert runs given whole (``run_row`` with their ids), in one statement."""
    _insert_many(conn, _INSERT_RUNS, rows, ("trigger",))


def _insert_many(conn: Connection, stmt: Any, rows: list[dict[str, Any]], json_columns: tuple[str, ...]) -> None:
    """Insert rows that all have the same keys (``insert_many``); on SQLite JSON is encoded once per value."""
    if not rows:
        return
    names = tuple(c.name for c in stmt.table.c if c.name in rows[0])  # the order the compiled INSERT binds
    if len(names) != len(rows[0]):
        raise KeyError(f"{stmt.table.name} has no column {sorted(set(rows[0]) - set(names))}")
    get = itemgetter(*names)
    values = [get(row) for row in rows] if len(names) > 1 else [(row[names[0]],) for row in rows]
    encoded = [i for i, n in enumerate(names) if n in json_columns]
    if encoded and conn.dialect.name == "sqlite":  # the driver takes the JSON text the ingest path writes
        values = [_encode_at(row, encoded) for row in values]
    insert_many(conn, stmt, names, values)


def _encode_at(row: tuple[Any, ...], positions: list[int]) -> tuple[Any, ...]:
    """The row with the values at ``positions`` as compact JSON text."""
    out = list(row)
    for i in positions:
        out[i] = compact_json(out[i])
    return tuple(out)


def max_run_id(conn: Connection) -> int:
    """The highest run id so far (0: none)."""
    return int(conn.execute(_MAX_RUN_ID).scalar_one())


def reserve_run_ids(conn: Connection, n: int, after: int = 0) -> list[int]:
    """Ids for ``n`` new runs, each above ``after`` (the last id the caller reserved), in a write transaction.

    PostgreSQL: drawn from the column's sequence, so other workers never get
    them.  SQLite: the next ones after the highest stored; the caller holds the
    write lock, so nobody else inserts runs before it does.
    """
    if conn.dialect.name == "postgresql":
        stmt = "SELECT nextval(pg_get_serial_sequence('journey_runs', 'id')) FROM generate_series(1, %(n)s)"
        return [int(i) for (i,) in conn.exec_driver_sql(stmt, {"n": n})]
    start = max(max_run_id(conn), after) + 1
    return list(range(start, start + n))


def get_run(conn: Connection, run_id: int) -> dict[str, Any] | None:
    """One run as a dict."""
    row = conn.execute(select(journey_runs).where(journey_runs.c.id == run_id)).mappings().first()
    return dict(row) if row else None


def get_runs(conn: Connection, run_ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    """Runs by id."""
    out: dict[int, dict[str, Any]] = {}
    for chunk in in_chunks(sorted(set(run_ids))):
        out.update({int(r["id"]): dict(r) for r in conn.execute(_GET_RUNS, {"ids": list(chunk)}).mappings()})
    return out


def last_entry(conn: Connection, journey: str, profile_id: int) -> tuple[int | None, bool]:
    """(when the person last entered ``journey``, whether a run of it is still going)."""
    stmt = select(func.max(journey_runs.c.entered_at), func.count().filter(journey_runs.c.status.in_(ACTIVE))).where(
        journey_runs.c.journey == journey, journey_runs.c.profile_id == profile_id
    )
    last, active = conn.execute(stmt).one()
    return (int(last) if last is not None else None), bool(active)


def update_run(conn: Connection, run_id: int, now_ms: int, **values: Any) -> None:
    """Change a run's columns."""
    update_runs(conn, {run_id: {**values, "updated_at": now_ms}})


def update_runs(conn: Connection, changes: dict[int, dict[str, Any]]) -> None:
    """Change columns of many runs (run id -> column values), one executemany per set of columns."""
    if conn.dialect.name == "sqlite":  # through the driver: none of these columns needs processing
        by_columns: dict[tuple[str, ...], list[tuple[Any, ...]]] = {}
        for run_id, values in changes.items():
            names = tuple(sorted(values))
            by_columns.setdefault(names, []).append((*(values[n] for n in names), run_id))
        for names, tuples in by_columns.items():
            assigned = ", ".join(f'"{journey_runs.c[n].name}" = ?' for n in names)
            conn.exec_driver_sql(f"UPDATE journey_runs SET {assigned} WHERE id = ?", tuples)
        return
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for run_id, values in changes.items():
        params = {f"v_{name}": value for name, value in values.items()}
        groups.setdefault(tuple(sorted(values)), []).append({"run_id": run_id, **params})
    for names, rows in groups.items():
        stmt = _UPDATE_RUN.get(names)
        if stmt is None:
            columns: dict[str, Any] = {name: bindparam(f"v_{name}") for name in names}
            stmt = update(journey_runs).where(journey_runs.c.id == bindparam("run_id")).values(columns)
            _UPDATE_RUN[names] = stmt
        conn.execute(stmt, rows)


def active_runs(conn: Connection, journeys: Iterable[str], profile_id: int) -> list[dict[str, Any]]:
    """Runs of these journeys still going for a person."""
    stmt = select(journey_runs).where(
        journey_runs.c.profile_id == profile_id,
        journey_runs.c.journey.in_(list(journeys)),
        journey_runs.c.status.in_(ACTIVE),
    )
    return [dict(r) for r in conn.execute(stmt).mappings()]


def live_runs_of(conn: Connection, profile_ids: Iterable[int]) -> list[dict[str, Any]]:
    """Every run still going (active or waiting) of these people, oldest first."""
    wanted = sorted(set(profile_ids))
    if not wanted:
        return []
    if conn.dialect.name == "sqlite":  # once per ingested batch: driver SQL, JSON read as the engine reads it
        # Oldest first: sorting the few rows here costs less than SQLite's temporary b-tree for ORDER BY.
        rows = sorted(conn.exec_driver_sql(_SQLITE_LIVE_RUNS, (json.dumps(wanted),)).fetchall(), key=_first)
        trigger = _RUN_COLUMNS.index("trigger")
        out = []
        for row in rows:
            run = dict(zip(_RUN_COLUMNS, row, strict=True))
            if row[trigger] is not None:
                run["trigger"] = read_json(row[trigger])
            out.append(run)
        return out
    among = one_of(conn, journey_runs.c.profile_id, wanted)  # type: ignore[arg-type]
    stmt = select(journey_runs).where(among, journey_runs.c.status.in_(ACTIVE)).order_by(journey_runs.c.id)
    return [dict(r) for r in conn.execute(stmt).mappings()]


def last_entries(conn: Connection, journeys: Iterable[str], profile_ids: Iterable[int]) -> dict[tuple[str, int], int]:
    """(journey, person) -> when the person last entered it, for these journeys and people."""
    names, wanted = list(journeys), sorted(set(profile_ids))
    if not names or not wanted:
        return {}
    if conn.dialect.name == "sqlite":  # once per ingested batch: driver SQL, no statement to build
        sql = _SQLITE_LAST_ENTRIES.format(names=", ".join("?" * len(names)))
        rows = conn.exec_driver_sql(sql, (json.dumps(wanted), *names)).fetchall()
        return {(j, int(p)): int(last) for j, p, last in rows}
    stmt = (
        select(journey_runs.c.journey, journey_runs.c.profile_id, func.max(journey_runs.c.entered_at))
        .where(one_of(conn, journey_runs.c.profile_id, wanted), journey_runs.c.journey.in_(names))  # type: ignore[arg-type]
        .group_by(journey_runs.c.journey, journey_runs.c.profile_id)
    )
    return {(j, int(p)): int(last) for j, p, last in conn.execute(stmt)}


_first = itemgetter(0)
_RUN_COLUMNS = tuple(c.name for c in journey_runs.c)
_QUOTED = ", ".join(f'"{name}"' for name in _RUN_COLUMNS)
_LIVE = ", ".join(f"'{status}'" for status in ACTIVE)
_SQLITE_LIVE_RUNS = (
    f"SELECT {_QUOTED} FROM journey_runs WHERE profile_id IN (SELECT value FROM json_each(?)) AND status IN ({_LIVE})"
)
_SQLITE_LAST_ENTRIES = (
    "SELECT journey, profile_id, max(entered_at) FROM journey_runs"
    " WHERE profile_id IN (SELECT value FROM json_each(?)) AND journey IN ({names}) GROUP BY journey, profile_id"
)


def awaited_events(conn: Connection) -> frozenset[str]:
    """The events that runs parked at a ``wait_for`` wait for now (distinct names)."""
    stmt = (
        select(journey_runs.c.waiting_for)
        .distinct()
        .where(journey_runs.c.waiting_for.is_not(None), journey_runs.c.status == "waiting")
    )
    return frozenset(str(name) for name in conn.execute(stmt).scalars())


def runs_waiting_for(conn: Connection, event: str, profile_id: int) -> list[dict[str, Any]]:
    """Runs parked at a wait_for of ``event`` for a person."""
    stmt = select(journey_runs).where(
        journey_runs.c.waiting_for == event,
        journey_runs.c.status == "waiting",
        journey_runs.c.profile_id == profile_id,
    )
    return [dict(r) for r in conn.execute(stmt).mappings()]


def add_timer(conn: Connection, run_id: int, profile_id: int, due_ms: int, resume: str | None, kind: str) -> None:
    """Schedule a run to wake at ``due_ms``."""
    conn.execute(_ADD_TIMER, timer_row(run_id, profile_id, due_ms, resume, kind))


def timer_row(run_id: int, profile_id: int, due_ms: int, resume: str | None, kind: str) -> dict[str, Any]:
    """The journey_timers row of ``add_timer`` (pending: not fired)."""
    return {
        "run_id": run_id,
        "profile_id": profile_id,
        "due_at": due_ms,
        "resume": resume,
        "kind": kind,
        "fired_at": None,
    }


def add_timers(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Schedule many wake-ups (``timer_row`` rows) in one statement."""
    _insert_many(conn, _ADD_TIMER, rows, ())


def cancel_timers(conn: Connection, run_id: int, now_ms: int) -> None:
    """Retire a run's pending timers (they will not fire)."""
    cancel_timers_of(conn, [run_id], now_ms)


def cancel_timers_of(conn: Connection, run_ids: Iterable[int], now_ms: int) -> None:
    """Retire the pending timers of several runs (one executemany)."""
    rows = [{"b_run_id": run_id, "b_now_ms": now_ms} for run_id in run_ids]
    if rows:
        conn.execute(_CANCEL_TIMERS, rows)


def claim_due_timers(
    conn: Connection, now_ms: int, limit: int, skip_journeys: Iterable[str] = (), only_runs: Iterable[int] | None = None
) -> list[dict[str, Any]]:
    """Take up to ``limit`` due timers, oldest first, marking them fired (in the caller's transaction)."""
    stmt = (
        select(journey_timers)
        .where(journey_timers.c.fired_at.is_(None), journey_timers.c.due_at <= now_ms)
        .order_by(journey_timers.c.due_at, journey_timers.c.id)
        .limit(limit)
    )
    if only_runs is not None:
        stmt = stmt.where(journey_timers.c.run_id.in_(list(only_runs)))
    skip = list(skip_journeys)
    if skip:
        paused_runs = select(journey_runs.c.id).where(journey_runs.c.journey.in_(skip))
        stmt = stmt.where(journey_timers.c.run_id.not_in(paused_runs))
    if conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)  # several workers share the timers
    rows = [dict(r) for r in conn.execute(stmt).mappings()]
    if rows:
        conn.execute(
            update(journey_timers).where(journey_timers.c.id.in_([r["id"] for r in rows])).values(fired_at=now_ms)
        )
    return rows


def next_timer_due(conn: Connection, only_runs: Iterable[int] | None = None) -> int | None:
    """When the next pending timer is due (None: none pending), of some runs or of all."""
    stmt = select(func.min(journey_timers.c.due_at)).where(journey_timers.c.fired_at.is_(None))
    if only_runs is not None:
        stmt = stmt.where(journey_timers.c.run_id.in_(list(only_runs)))
    return conn.execute(stmt).scalar()


def runs_of(conn: Connection, journey: str, profile_id: int) -> list[dict[str, Any]]:
    """Every run of a journey for a person, oldest first."""
    stmt = select(journey_runs).where(journey_runs.c.journey == journey, journey_runs.c.profile_id == profile_id)
    return [dict(r) for r in conn.execute(stmt.order_by(journey_runs.c.id)).mappings()]


def log_of(conn: Connection, run_ids: Iterable[int]) -> list[dict[str, Any]]:
    """The log lines of some runs, in order."""
    stmt = select(journey_log).where(journey_log.c.run_id.in_(list(run_ids))).order_by(journey_log.c.id)
    return [dict(r) for r in conn.execute(stmt).mappings()]


def log(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Append to the run log (rows with the same keys)."""
    _insert_many(conn, _LOG, rows, ("detail",))


def sends_since(conn: Connection, profile_id: int, since_ms: int, kind: str = "marketing") -> int:
    """How many emails of ``kind`` journeys sent a person since then."""
    stmt = select(func.count()).where(
        rows_of(journey_log, "profile_id", profile_id),
        journey_log.c.action == "send",
        journey_log.c.at >= since_ms,
        journey_log.c.detail["kind"].as_string() == kind,
    )
    return int(conn.execute(stmt).scalar_one())


def node_counts(conn: Connection, journey: str) -> dict[str, tuple[int, int]]:
    """Per node: (runs parked there now, runs that have passed it)."""
    parked = (
        select(journey_runs.c.position, func.count())
        .where(journey_runs.c.journey == journey, journey_runs.c.status.in_(ACTIVE))
        .group_by(journey_runs.c.position)
    )
    passed = (
        select(journey_log.c.node, func.count(func.distinct(journey_log.c.run_id)))
        .where(and_(journey_log.c.journey == journey, journey_log.c.action == "passed"))
        .group_by(journey_log.c.node)
    )
    counts: dict[str, tuple[int, int]] = {}
    for node, n in conn.execute(parked):
        if node is not None:
            counts[node] = (int(n), 0)
    for node, n in conn.execute(passed):
        counts[node] = (counts.get(node, (0, 0))[0], int(n))
    return counts


def run_totals(conn: Connection, journey: str) -> dict[str, int]:
    """Runs by status and finish reason."""
    stmt = (
        select(journey_runs.c.status, journey_runs.c.finish_reason, func.count())
        .where(journey_runs.c.journey == journey)
        .group_by(journey_runs.c.status, journey_runs.c.finish_reason)
    )
    out: dict[str, int] = {}
    for status, reason, n in conn.execute(stmt):
        out[reason or status] = out.get(reason or status, 0) + int(n)
    return out


def paused_journeys(conn: Connection) -> set[str]:
    """Names of paused journeys."""
    if conn.dialect.name == "sqlite":  # twice per ingested batch: driver SQL, no statement to build
        return {str(name) for (name,) in conn.exec_driver_sql(_SQLITE_PAUSED).fetchall()}
    return set(conn.execute(select(journey_state.c.journey).where(journey_state.c.paused.is_(True))).scalars())


_SQLITE_PAUSED = "SELECT journey FROM journey_state WHERE paused IS 1"


def set_paused(conn: Connection, journey: str, paused: bool, now_ms: int) -> None:
    """Pause or resume a journey."""
    stmt = upsert(conn, journey_state, ["journey"], ["paused", "updated_at"])  # broadcast_at stays
    conn.execute(stmt, {"journey": journey, "paused": paused, "updated_at": now_ms})


def date_trait_candidates(
    conn: Connection, path: tuple[str, ...], month_days: Iterable[str]
) -> list[tuple[int, str, str | None]]:
    """(profile id, date text, timezone) of people whose date trait falls on one of ``month_days`` (MM-DD)."""
    from tailormail.store import jsonsql as js

    d = conn.dialect.name
    value = js.text(profiles.c.traits, path, d)
    tz = js.text(profiles.c.traits, ("timezone",), d)
    stmt = select(profiles.c.id, value, tz).where(func.substr(value, 6, 5).in_(list(month_days)))
    return [(int(pid), str(v), t) for pid, v, t in conn.execute(stmt)]


def lapsed_between(conn: Connection, earliest_ms: int, latest_ms: int) -> list[int]:
    """Profiles whose last event was in [earliest, latest]."""
    seen = profile_seen.c.last_seen
    stmt = select(profile_seen.c.profile_id).where(seen >= earliest_ms, seen <= latest_ms)
    return [int(p) for p in conn.execute(stmt).scalars()]


def broadcast_done(conn: Connection, journey: str) -> bool:
    """Whether a broadcast journey has already enrolled its segment."""
    done = conn.execute(select(journey_state.c.broadcast_at).where(journey_state.c.journey == journey)).scalar()
    return done is not None


def mark_broadcast_done(conn: Connection, journey: str, now_ms: int) -> None:
    """Remember that a broadcast journey enrolled its segment."""
    paused = conn.execute(select(journey_state.c.paused).where(journey_state.c.journey == journey)).scalar()
    stmt = upsert(conn, journey_state, ["journey"], ["broadcast_at", "updated_at"])
    conn.execute(stmt, {"journey": journey, "paused": bool(paused), "broadcast_at": now_ms, "updated_at": now_ms})
