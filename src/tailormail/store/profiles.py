"""Named queries on profiles and identity links."""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    ColumnElement,
    Connection,
    Table,
    bindparam,
    cast,
    delete,
    func,
    literal,
    select,
    update,
)

from tailormail.store.dialect import (
    compact_json,
    driver_cursor,
    in_chunks,
    insert_in_rowid_order,
    insert_many,
    one_of,
    unnest_select,
)
from tailormail.store.engine import read_json
from tailormail.store.schema import events, identity_links, profile_seen, profiles

PROFILE_TABLES: list[tuple[Table, str]] = [(events, "profile_id"), (identity_links, "profile_id")]
"""Every (table, column) holding a person's data, in the order merges and erasure go through them.

Domains that store per-person rows append theirs when their schema loads."""

PROFILE_ROWS: dict[Table, Callable[[int], ColumnElement[bool]]] = {}
"""How to find a person's rows in a table of ``PROFILE_TABLES`` whose person column has no index of its own.

Without an entry: ``column = profile_id``."""


def rows_of(table: Table, column: str, profile_id: int) -> ColumnElement[bool]:
    """The WHERE clause of a person's rows in one of ``PROFILE_TABLES``."""
    found = PROFILE_ROWS.get(table)
    return found(profile_id) if found is not None else table.c[column] == profile_id


def profile_ids_by_user(conn: Connection, user_ids: Iterable[str]) -> dict[str, int]:
    """Map known user ids to profile ids."""
    wanted = list(set(user_ids))
    found: dict[str, int] = {}
    for chunk in in_chunks(wanted):
        if conn.dialect.name == "sqlite":  # once per ingested batch: driver SQL, no statement to build
            found.update(driver_cursor(conn).execute(_SQLITE_BY_USER, (json.dumps(chunk),)).fetchall())
            continue
        rows = conn.execute(select(profiles.c.user_id, profiles.c.id).where(one_of(conn, profiles.c.user_id, chunk)))
        found.update((user, pid) for user, pid in rows.all())  # fetchall: no per-row calls
    return found


def profile_ids_by_anonymous(conn: Connection, anonymous_ids: Iterable[str]) -> dict[str, int]:
    """Map linked anonymous ids to profile ids."""
    wanted = list(set(anonymous_ids))
    found: dict[str, int] = {}
    for chunk in in_chunks(wanted):
        if conn.dialect.name == "sqlite":
            found.update(driver_cursor(conn).execute(_SQLITE_BY_ANONYMOUS, (json.dumps(chunk),)).fetchall())
            continue
        rows = conn.execute(
            select(identity_links.c.anonymous_id, identity_links.c.profile_id).where(
                identity_links.c.anonymous_id.in_(chunk)
            )
        )
        found.update({anon: pid for anon, pid in rows})
    return found


def create_profiles(conn: Connection, user_ids: Sequence[str | None], now_ms: int) -> list[int]:
    """Insert one profile per user id (None: anonymous); return their ids in order."""
    if not user_ids:
        return []
    if conn.dialect.name == "sqlite":
        return _create_profiles_sqlite(conn, user_ids, now_ms)
    named = [u for u in user_ids if u is not None]
    if len(named) == len(user_ids):
        # Identified people: one bulk insert and one lookup by user id.
        new = unnest_select({"user_id": (profiles.c.user_id.type, named)}).subquery()
        each = select(new.c.user_id, cast(literal("{}"), JSON), literal(now_ms, BigInteger))
        conn.execute(profiles.insert().from_select(["user_id", "traits", "updated_at"], each))
        found = profile_ids_by_user(conn, named)
        ids = [found[u] for u in named]
    else:
        stmt = profiles.insert().returning(profiles.c.id, sort_by_parameter_order=True)
        rows: list[dict[str, Any]] = [{"user_id": u, "traits": {}, "updated_at": now_ms} for u in user_ids]
        ids = list(conn.execute(stmt, rows).scalars())
    _stamp_seen(conn, ids, now_ms)
    return ids


def _stamp_seen(conn: Connection, ids: Sequence[int], now_ms: int) -> None:
    """Every new profile is seen from its creation until its events say otherwise (``touch_seen``)."""
    insert_many(conn, profile_seen.insert(), SEEN_COLUMNS, [(pid, now_ms, now_ms) for pid in ids])


SEEN_COLUMNS = ("profile_id", "first_seen", "last_seen")
"""The columns of ``profile_seen``, in the order its rows are given."""


def _create_profiles_sqlite(conn: Connection, user_ids: Sequence[str | None], now_ms: int) -> list[int]:
    """One executemany; the new ids from the rowid range (``insert_in_rowid_order``), else read back in id order."""
    cursor = driver_cursor(conn)
    rows = [(u, now_ms) for u in user_ids]
    before, made = insert_in_rowid_order(cursor, "profiles", _SQLITE_CREATE, rows)
    ids = list(made) if made is not None else [pid for (pid,) in cursor.execute(_SQLITE_CREATED_SINCE, (before,))]
    _stamp_seen(conn, ids, now_ms)
    return ids


def link_anonymous(conn: Connection, links: dict[str, int], now_ms: int) -> None:
    """Record anonymous id -> profile links (new ones only)."""
    from tailormail.store.dialect import insert_ignoring_conflicts

    if links and conn.dialect.name == "sqlite":
        driver_cursor(conn).executemany(_SQLITE_LINK, [(a, p, now_ms) for a, p in links.items()])
    elif links:
        conn.execute(
            insert_ignoring_conflicts(conn, identity_links),
            [{"anonymous_id": a, "profile_id": p, "linked_at": now_ms} for a, p in links.items()],
        )


def get_profile(
    conn: Connection, *, user_id: str | None = None, profile_id: int | None = None
) -> dict[str, Any] | None:
    """One profile row as a dict, by user id or profile id."""
    where = profiles.c.user_id == user_id if user_id is not None else profiles.c.id == profile_id
    row = conn.execute(_WITH_SEEN.where(where)).mappings().first()
    return dict(row) if row else None


_WITH_SEEN = select(profiles, profile_seen.c.first_seen, profile_seen.c.last_seen).select_from(
    profiles.outerjoin(profile_seen, profile_seen.c.profile_id == profiles.c.id)
)
"""Profile rows with their first and last seen, as one row each."""


def anonymous_ids(conn: Connection, profile_id: int) -> list[str]:
    """The anonymous ids linked to a profile."""
    return list(
        conn.execute(
            select(identity_links.c.anonymous_id)
            .where(identity_links.c.profile_id == profile_id)
            .order_by(identity_links.c.linked_at, identity_links.c.anonymous_id)
        ).scalars()
    )


def anonymous_ids_of(conn: Connection, profile_ids: Iterable[int]) -> dict[int, list[str]]:
    """The anonymous ids linked to each of several profiles (sorted)."""
    found: dict[int, list[str]] = {}
    for chunk in in_chunks(list(set(profile_ids))):
        rows = conn.execute(
            select(identity_links.c.profile_id, identity_links.c.anonymous_id)
            .where(identity_links.c.profile_id.in_(chunk))
            .order_by(identity_links.c.anonymous_id)
        )
        for pid, anon in rows:
            found.setdefault(pid, []).append(anon)
    return found


def traits_of(conn: Connection, profile_ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    """Current traits of several profiles."""
    found: dict[int, dict[str, Any]] = {}
    for chunk in in_chunks(list(set(profile_ids))):
        if conn.dialect.name == "sqlite":  # once per batch with identify calls: driver SQL, as the JSON type reads
            rows = driver_cursor(conn).execute(_SQLITE_TRAITS, (json.dumps(chunk),)).fetchall()
            found.update({pid: dict(read_json(traits) or {}) if traits is not None else {} for pid, traits in rows})
            continue
        rows = conn.execute(select(profiles.c.id, profiles.c.traits).where(profiles.c.id.in_(chunk)))
        found.update({pid: dict(traits or {}) for pid, traits in rows})
    return found


def set_traits(conn: Connection, profile_id: int, traits: dict[str, Any], now_ms: int) -> None:
    """Replace a profile's traits."""
    set_traits_many(conn, {profile_id: traits}, now_ms)


def set_traits_many(conn: Connection, traits: dict[int, dict[str, Any]], now_ms: int) -> None:
    """Replace the traits of several profiles (one statement, many parameter sets)."""
    if traits and conn.dialect.name == "sqlite":
        encode = compact_json
        rows = [(encode(value), now_ms, pid) for pid, value in traits.items()]
        driver_cursor(conn).executemany(_SQLITE_SET_TRAITS, rows)
    elif traits:
        stmt = update(profiles).where(profiles.c.id == bindparam("pid")).values(traits=bindparam("new_traits"))
        conn.execute(
            stmt.values(updated_at=now_ms), [{"pid": pid, "new_traits": value} for pid, value in traits.items()]
        )


def set_new_profiles(conn: Connection, rows: dict[int, tuple[dict[str, Any], int, int]], now_ms: int) -> None:
    """Set the traits and exact (first, last) seen of profiles created in this transaction."""
    set_traits_many(conn, {pid: traits for pid, (traits, _, _) in rows.items()}, now_ms)
    _set_seen(conn, {pid: (lo, hi) for pid, (_, lo, hi) in rows.items()}, widen=False)


def touch_seen(conn: Connection, seen: dict[int, tuple[int, int]], created: Collection[int] = ()) -> None:
    """Widen first/last seen of profiles to include (earliest, latest) times.

    Profiles ``created`` in the same batch take the range exactly: they were
    stamped with the time of creation, which is not when the person was seen
    (an import of last year's orders must not make everyone seen today).
    """
    _set_seen(conn, {p: r for p, r in seen.items() if p in created}, widen=False)
    _set_seen(conn, {p: r for p, r in seen.items() if p not in created}, widen=True)


def _set_seen(conn: Connection, ranges: dict[int, tuple[int, int]], *, widen: bool) -> None:
    """Set (``widen``: stretch) the first/last seen of profiles to the given (earliest, latest)."""
    if not ranges:
        return
    if conn.dialect.name == "sqlite":
        sql = _SQLITE_SEEN_WIDER if widen else _SQLITE_SEEN_EXACT
        driver_cursor(conn).executemany(sql, [(a, b, p) for p, (a, b) in ranges.items()])
        return
    new = unnest_select(
        {
            "pid": (BigInteger(), list(ranges)),
            "lo": (BigInteger(), [a for a, _ in ranges.values()]),
            "hi": (BigInteger(), [b for _, b in ranges.values()]),
        }
    ).subquery()
    lo = func.least(profile_seen.c.first_seen, new.c.lo) if widen else new.c.lo
    hi = func.greatest(profile_seen.c.last_seen, new.c.hi) if widen else new.c.hi
    stmt = update(profile_seen).where(profile_seen.c.profile_id == new.c.pid)
    conn.execute(stmt.values(first_seen=lo, last_seen=hi))


# SQLite statements of the ingest path run through the driver's executemany: SQLAlchemy's
# per-row parameter processing cost several times SQLite's own work at 100-event batches.
_SQLITE_BY_USER = "SELECT user_id, id FROM profiles WHERE user_id IN (SELECT value FROM json_each(?))"
_SQLITE_BY_ANONYMOUS = (
    "SELECT anonymous_id, profile_id FROM identity_links WHERE anonymous_id IN (SELECT value FROM json_each(?))"
)
_SQLITE_LINK = (
    "INSERT INTO identity_links (anonymous_id, profile_id, linked_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING"
)
_SQLITE_TRAITS = "SELECT id, traits FROM profiles WHERE id IN (SELECT value FROM json_each(?))"
_SQLITE_CREATE = "INSERT INTO profiles (user_id, traits, updated_at) VALUES (?, '{}', ?)"
_SQLITE_CREATED_SINCE = "SELECT id FROM profiles WHERE id > ? ORDER BY id"
_SQLITE_SET_TRAITS = "UPDATE profiles SET traits = ?, updated_at = ? WHERE id = ?"
_SQLITE_SEEN_EXACT = "UPDATE profile_seen SET first_seen = ?, last_seen = ? WHERE profile_id = ?"
_SQLITE_SEEN_WIDER = (
    "UPDATE profile_seen SET first_seen = min(first_seen, ?), last_seen = max(last_seen, ?) WHERE profile_id = ?"
)


def merge_profiles(conn: Connection, source_id: int, target_id: int, now_ms: int) -> None:
    """Fold profile ``source_id`` into ``target_id``: its events, links and traits move."""
    if source_id == target_id:
        return
    source = get_profile(conn, profile_id=source_id)
    target = get_profile(conn, profile_id=target_id)
    if source is None or target is None:
        return
    for table, column in PROFILE_TABLES:
        conn.execute(update(table).where(rows_of(table, column, source_id)).values({column: target_id}))
    # The identified profile's own traits win over what the anonymous one had.
    traits = {**(source["traits"] or {}), **(target["traits"] or {})}
    conn.execute(update(profiles).where(profiles.c.id == target_id).values(traits=traits, updated_at=now_ms))
    _set_seen(conn, {target_id: (source["first_seen"], source["last_seen"])}, widen=True)
    _delete_profile(conn, source_id)


def _delete_profile(conn: Connection, profile_id: int) -> None:
    """The profile row and its seen times (foreign keys may be off on a SQLite connection)."""
    conn.execute(delete(profile_seen).where(profile_seen.c.profile_id == profile_id))
    conn.execute(delete(profiles).where(profiles.c.id == profile_id))


def erase_profile(conn: Connection, profile_id: int) -> None:
    """Delete a person everywhere (GDPR erasure)."""
    for table, column in PROFILE_TABLES:
        conn.execute(delete(table).where(rows_of(table, column, profile_id)))
    _delete_profile(conn, profile_id)


def count_profiles(conn: Connection) -> int:
    """How many profiles there are (identified and anonymous)."""
    return int(conn.execute(select(func.count()).select_from(profiles)).scalar_one())


def iter_profiles(conn: Connection, batch: int = 5000) -> Iterable[dict[str, Any]]:
    """Every profile, in id order, in pages of ``batch``."""
    last = 0
    while True:
        rows = (
            conn.execute(_WITH_SEEN.where(profiles.c.id > last).order_by(profiles.c.id).limit(batch)).mappings().all()
        )
        if not rows:
            return
        for row in rows:
            yield dict(row)
        last = rows[-1]["id"]


def largest_profile_id(conn: Connection) -> int:
    """The largest profile id (0: no profiles)."""
    return int(conn.execute(select(func.max(profiles.c.id))).scalar() or 0)
