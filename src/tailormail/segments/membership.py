"""Memberships: who is in which segment, kept by refreshes, real time and rechecks.

Every path runs the same compiled query (restricted to some ids or not), so
a refresh and real time cannot disagree; each writes only the difference.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import Connection

from tailormail.config import Settings
from tailormail.segments.definitions import Segment
from tailormail.segments.evaluate import matching_profiles
from tailormail.segments.schedule import schedule
from tailormail.store import segments as q


@dataclass(frozen=True)
class Diff:
    """What one evaluation changed in a segment."""

    segment: str
    entered: frozenset[int]
    exited: frozenset[int]
    size: int | None = None


ChangeListener = Callable[[Connection, Settings, Sequence[Diff], int], None]
"""Told of membership changes inside the transaction that writes them: (conn, settings, diffs, now_ms)."""

_LISTENERS: list[ChangeListener] = []


def listen(listener: ChangeListener) -> None:
    """Tell ``listener`` of every membership change from now on (once per listener; journeys use it).

    Segments do not know who reacts to them (journeys build on segments, not the
    reverse); the listener runs in the same transaction as the change, so a run
    started by an entry commits or rolls back with it.
    """
    if listener not in _LISTENERS:
        _LISTENERS.append(listener)


def _tell(conn: Connection, settings: Settings | None, diffs: Sequence[Diff], now_ms: int) -> None:
    moved = [d for d in diffs if d.entered or d.exited]
    if settings is None or not moved:
        return
    for listener in _LISTENERS:
        listener(conn, settings, moved, now_ms)


def members(conn: Connection, name: str) -> set[int]:
    """Profile ids currently in segment ``name``."""
    return q.current_members(conn, name)


def memberships_of(conn: Connection, profile_id: int) -> list[str]:
    """Names of the segments a person is in, sorted."""
    return q.segments_of(conn, profile_id)


def reevaluate(
    conn: Connection,
    segment: Segment,
    ids: Iterable[int],
    now_ms: int,
    *,
    source: str,
    settings: Settings | None = None,
) -> Diff:
    """Evaluate ``segment`` for ``ids`` at ``now_ms``; write changes and the next rechecks."""
    wanted = sorted(set(ids))
    if not wanted:
        return Diff(segment.name, frozenset(), frozenset())
    matching = matching_profiles(conn, segment.rule, now_ms=now_ms, profile_ids=wanted, settings=settings)
    current = q.current_members(conn, segment.name, wanted)
    diff = Diff(segment.name, frozenset(matching - current), frozenset(current - matching))
    q.apply_changes(conn, segment.name, set(diff.entered), set(diff.exited), now_ms, source)
    schedule(conn, segment.name, segment.rule, now_ms, wanted, _tz(settings))
    _tell(conn, settings, [diff], now_ms)
    return diff


def reevaluate_many(
    conn: Connection,
    work: Sequence[tuple[Segment, Collection[int]]],
    now_ms: int,
    *,
    source: str,
    settings: Settings | None = None,
) -> list[Diff]:
    """Evaluate each segment once for its people; read and write memberships of all of them together.

    One restricted query per segment, one read of current memberships, and one
    executemany per table for the changes.  Rechecks are the caller's (real
    time adds the moments its events bring; see ``schedule.schedule_batch``).
    """
    work = [(segment, ids) for segment, ids in work if ids]
    if not work:
        return []
    everyone = set().union(*(ids for _, ids in work))
    current = q.memberships_among(conn, [segment.name for segment, _ in work], everyone)
    diffs: list[Diff] = []
    changes: list[tuple[str, int, str]] = []
    for segment, ids in work:
        matching = matching_profiles(conn, segment.rule, now_ms=now_ms, profile_ids=ids, settings=settings)
        before = {p for p in ids if (segment.name, p) in current}
        diff = Diff(segment.name, frozenset(matching - before), frozenset(before - matching))
        changes += [(segment.name, p, q.ENTERED) for p in sorted(diff.entered)]
        changes += [(segment.name, p, q.EXITED) for p in sorted(diff.exited)]
        diffs.append(diff)
    q.apply_many_changes(conn, changes, now_ms, source)
    _tell(conn, settings, diffs, now_ms)
    return diffs


def refresh(conn: Connection, segment: Segment, now_ms: int, *, settings: Settings | None = None) -> Diff:
    """Recompute a whole segment with one query; write the difference and reschedule everyone.

    A segment's first computation is a backfill: its members were there before the
    segment existed, so listeners (journeys) are not told of them as entries.
    """
    matching = matching_profiles(conn, segment.rule, now_ms=now_ms, settings=settings)
    current = q.current_members(conn, segment.name)
    diff = Diff(segment.name, frozenset(matching - current), frozenset(current - matching), len(matching))
    backfill = q.state_of(conn, segment.name) is None
    q.save_state(conn, segment.name, segment.rule_hash, now_ms, len(matching))
    q.apply_changes(conn, segment.name, set(diff.entered), set(diff.exited), now_ms, "refresh")
    schedule(conn, segment.name, segment.rule, now_ms, None, _tz(settings))
    if not backfill:
        _tell(conn, settings, [diff], now_ms)
    return diff


def refresh_all(
    begin: Callable[[], object],
    segments: Iterable[Segment],
    now_ms: int,
    *,
    settings: Settings | None = None,
    on_done: Callable[[Diff], None] | None = None,
) -> list[Diff]:
    """Refresh several segments, each in its own transaction."""
    out = []
    for segment in segments:
        with begin() as conn:  # type: ignore[attr-defined]
            diff = refresh(conn, segment, now_ms, settings=settings)
        out.append(diff)
        if on_done:
            on_done(diff)
    return out


def _tz(settings: Settings | None) -> str:
    return settings.timezone if settings is not None else "UTC"
