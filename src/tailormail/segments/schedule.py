"""When can membership change by itself?  The moments a rule's time windows move past.

For every event condition the rule may flip when ``ts + offset`` passes for one
of the person's events, where the offsets are the window bounds, the sequence
wait and the relative first/last bounds (0 for events stamped in the future).
Over-approximating is safe: a recheck that finds no change changes nothing.

Two ways to be woken.  Moments ``ts + offset`` with a positive offset are not
stored: the worker finds the events whose moments passed since its last tick
with a range of the (event, ts) index (``realtime.scan_passed_moments``), so
ingest writes nothing for them.  Rows in ``segment_rechecks`` are kept for the
rest: events stamped in the future (offset 0), profile columns, date traits,
and moments due within ``GUARD_MS`` of an event's arrival (the scan may have
passed them while the event's transaction was still open).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection

from tailormail.clock import parse_time, to_ms
from tailormail.segments import rules as r
from tailormail.store import profiles as profile_q
from tailormail.store import segments as q

if TYPE_CHECKING:
    from tailormail.segments.definitions import Segment

GUARD_MS = 60_000
"""Event moments due this soon after the event arrives also get a row, not only the worker's scan.

The scan reads committed events; an ingest transaction still open when the
worker's tick passes a moment of its events would otherwise be missed.  A
transaction open longer than this (ingest takes milliseconds) is the limit.
"""

Clocks = dict[int, tuple[int, int, int]]
"""Profile id -> (updated_at, first_seen, last_seen), read once per batch (``store.segments.profile_clocks``)."""


@lru_cache(maxsize=256)
def event_offsets(rule: r.Condition) -> dict[str, set[int]]:
    """Event name -> durations after an event's time at which the rule may flip (cached: do not modify)."""
    out: dict[str, set[int]] = {}
    for node in r.walk(rule):
        if not isinstance(node, r.Event):
            continue
        offsets = out.setdefault(node.event, {0})
        offsets.add(node.window.end_ago)
        if node.window.start_ago is not None:
            offsets.add(node.window.start_ago)
        for moment in (node.first_before, node.first_after, node.last_before, node.last_after):
            if moment is not None and moment.ago is not None:
                offsets.add(moment.ago)
        if node.not_followed_by is not None:
            if node.not_followed_by.within is not None:
                offsets.add(node.not_followed_by.within)
            out.setdefault(node.not_followed_by.event, set()).add(0)
    return out


@lru_cache(maxsize=256)
def profile_offsets(rule: r.Condition) -> dict[str, set[int]]:
    """Profile column -> durations after its value at which the rule may flip (cached: do not modify)."""
    out: dict[str, set[int]] = {}
    for node in r.walk(rule):
        if isinstance(node, r.ProfileTime):
            out.setdefault(node.field, {0}).add(node.value * r.DAY_MS)
    return out


@lru_cache(maxsize=256)
def trait_dates(rule: r.Condition) -> tuple[r.Compare, ...]:
    """Trait conditions relative to now (dates, anniversaries)."""
    return tuple(n.compare for n in r.walk(rule) if isinstance(n, r.Trait) and n.compare.op in r.DATE_OPS)


@lru_cache(maxsize=256)
def scanned_offsets(rule: r.Condition) -> dict[str, tuple[int, ...]]:
    """Event name -> the positive offsets the worker's scan applies (cached: do not modify)."""
    out = {name: tuple(sorted(o for o in offsets if o > 0)) for name, offsets in event_offsets(rule).items()}
    return {name: offsets for name, offsets in out.items() if offsets}


def needs_row(offset: int, moment: int, now_ms: int) -> bool:
    """Whether an event moment after ``now_ms`` needs a recheck row (the scan does not cover it for sure)."""
    return moment > now_ms and (offset == 0 or moment <= now_ms + GUARD_MS)


def row_ranges(rules: Sequence[r.Condition], now_ms: int) -> list[tuple[str, int, int | None]]:
    """(event, lo, hi): the event times ``lo < ts <= hi`` whose moments need rows at ``now_ms``."""
    out: set[tuple[str, int, int | None]] = set()
    for rule in rules:
        for event, offsets in event_offsets(rule).items():
            for offset in offsets:
                out.add((event, now_ms, None) if offset == 0 else (event, now_ms - offset, now_ms - offset + GUARD_MS))
    return sorted(out, key=lambda x: (x[0], x[1], x[2] is None, x[2] or 0))


EventTimes = dict[int, list[tuple[str, int]]]
"""profile id -> (event, ts) of the events whose moments need rows."""


def event_times(conn: Connection, rules: list[r.Condition], ids: list[int], now_ms: int) -> EventTimes:
    """The events of ``ids`` that bring recheck rows for any of ``rules`` at ``now_ms``."""
    out: EventTimes = {}
    ranges = row_ranges(rules, now_ms)
    if ranges and ids:
        for pid, event, ts in q.event_times_between(conn, ids, ranges):
            out.setdefault(pid, []).append((event, ts))
    return out


def schedule(
    conn: Connection,
    segment: str,
    rule: r.Condition,
    now_ms: int,
    ids: list[int] | None,
    timezone: str = "UTC",
) -> None:
    """Replace the recheck rows of ``segment`` (for ``ids``, or everyone) with those after ``now_ms``.

    For a few ids only the rows that differ are rewritten: most events leave a
    person's next recheck where it was, and deletes are what cost.
    """
    dated = trait_dates(rule)
    if ids is None:
        q.clear_rechecks(conn, segment, None)
        _schedule_everyone(conn, segment, rule, now_ms)
        if dated:
            q.add_rechecks(conn, segment, _trait_due(conn, dated, now_ms, None, timezone))
        return
    due = _due_for(conn, rule, now_ms, ids)
    if dated:
        for pid, moment in _trait_due(conn, dated, now_ms, ids, timezone).items():
            due[pid] = min(moment, due.get(pid, moment))
    existing = q.rechecks_of(conn, segment, ids)
    stale = [p for p in ids if existing.get(p, set()) != ({due[p]} if p in due else set())]
    q.clear_rechecks(conn, segment, stale)
    q.add_rechecks(conn, segment, {p: due[p] for p in stale if p in due})


def schedule_batch(
    conn: Connection,
    segments: Sequence[Segment],
    events: Mapping[str | None, Sequence[tuple[int, int]]],
    seen: Mapping[int, tuple[int, int]],
    clocks: Clocks,
    touched: set[int],
    now_ms: int,
    timezone: str = "UTC",
) -> int:
    """Real time: add the recheck rows a batch brings, where earlier than what is scheduled.

    ``events``: event name -> (profile id, ts) of the batch; ``seen``: each
    person's (earliest, latest) event time in it.  Rows come only from events
    stamped in the future, moments within ``GUARD_MS`` (late events), profile
    columns the batch moved and date traits of ``touched`` people; the worker's
    scan finds the other event moments, so a batch of events stamped now
    usually writes nothing.  A person keeps their earliest row, and when it
    fires the worker reschedules them in full (``schedule``).  Extra rechecks
    are harmless: one that finds no change changes nothing.  Returns rows added.
    """
    wanted: dict[tuple[str, int], int] = {}

    def consider(segment: str, pid: int, moment: int) -> None:
        key = (segment, pid)
        if moment > now_ms and moment < wanted.get(key, moment + 1):
            wanted[key] = moment

    spans = {name: (min(ts for _, ts in items), max(ts for _, ts in items)) for name, items in events.items() if items}
    moved = _moved_columns(seen, clocks, touched)
    for segment in segments:
        for name, offsets in event_offsets(segment.rule).items():
            lo, hi = spans.get(name, (0, -1))
            for offset in offsets:
                # Most batches are stamped around now: no event can need a row, skip the loop.
                if hi + offset <= now_ms or (offset > 0 and lo + offset > now_ms + GUARD_MS):
                    continue
                for pid, ts in events[name]:
                    if needs_row(offset, ts + offset, now_ms):
                        consider(segment.name, pid, ts + offset)
        for column, column_offsets in profile_offsets(segment.rule).items():
            index = 1 if column == "first_seen" else 2
            for pid in moved[column]:
                for offset in column_offsets:
                    consider(segment.name, pid, clocks[pid][index] + offset)
        dated = trait_dates(segment.rule)
        if dated and touched:
            for pid, moment in _trait_due(conn, dated, now_ms, sorted(touched), timezone).items():
                consider(segment.name, pid, moment)
    return q.add_earlier_rechecks(conn, [(s, p, due) for (s, p), due in sorted(wanted.items())])


def _moved_columns(seen: Mapping[int, tuple[int, int]], clocks: Clocks, touched: set[int]) -> dict[str, list[int]]:
    """People whose first_seen / last_seen the batch set (or who were created or merged): their moments are new.

    Anyone else keeps the row scheduled when that value was set (a refresh, an
    earlier batch or the worker's full reschedule).
    """
    first = [p for p, (lo, _) in seen.items() if p in clocks and (clocks[p][1] == lo or p in touched)]
    last = [p for p, (_, hi) in seen.items() if p in clocks and (clocks[p][2] == hi or p in touched)]
    return {"first_seen": first, "last_seen": last}


def _schedule_everyone(conn: Connection, segment: str, rule: r.Condition, now_ms: int) -> None:
    """A refresh: rows for events stamped in the future and for profile columns, all in SQL.

    Moments of past events need none: the refresh evaluated everyone at
    ``now_ms``, where the worker's scan starts.
    """
    for event in event_offsets(rule):
        q.schedule_event_rechecks(conn, segment, event, 0, now_ms)
    for column, offsets in profile_offsets(rule).items():
        for offset in sorted(offsets):
            q.schedule_profile_rechecks(conn, segment, column, offset, now_ms)


def _due_for(conn: Connection, rule: r.Condition, now_ms: int, ids: list[int]) -> dict[int, int]:
    """The earliest moment after now that needs a row, for each of a few people."""
    due: dict[int, int] = {}

    def consider(pid: int, moment: int) -> None:
        if moment > now_ms and moment < due.get(pid, moment + 1):
            due[pid] = moment

    offsets = event_offsets(rule)
    if offsets:
        recent = event_times(conn, [rule], ids, now_ms)
        for pid in ids:
            for event, ts in recent.get(pid, ()):
                for offset in offsets.get(event, ()):
                    if needs_row(offset, ts + offset, now_ms):
                        consider(pid, ts + offset)
    for column, column_offsets in profile_offsets(rule).items():
        for pid, value in q.profile_times(conn, ids, column).items():
            for offset in column_offsets:
                consider(pid, value + offset)
    return due


def _trait_due(
    conn: Connection, dated: Sequence[r.Compare], now_ms: int, ids: list[int] | None, timezone: str
) -> dict[int, int]:
    """The next moment each person's date traits move a condition (Python: dates come in many shapes)."""
    traits = profile_q.traits_of(conn, ids) if ids is not None else _all_traits(conn)
    due: dict[int, int] = {}
    for pid, values in traits.items():
        moments = [m for cmp in dated for m in _trait_moments(values, cmp, now_ms, timezone) if m > now_ms]
        if moments:
            due[pid] = min(moments)
    return due


def _all_traits(conn: Connection) -> dict[int, dict[str, Any]]:
    return {p["id"]: p["traits"] or {} for p in profile_q.iter_profiles(conn)}


def _trait_moments(traits: dict[str, Any], cmp: r.Compare, now_ms: int, timezone: str) -> list[int]:
    value: Any = traits
    for key in cmp.path:
        value = value.get(key) if isinstance(value, dict) else None
    if value is None or isinstance(value, bool):
        return []
    if cmp.op in ("anniversary_within_days", "birthday_within_days"):
        zone = str(traits.get("timezone") or timezone)
        return [_next_midnight(now_ms, zone, timezone)]
    try:
        at = int(value) if isinstance(value, int | float) else to_ms(parse_time(str(value)))
    except (TypeError, ValueError):
        return []
    return [at, at + cmp.value * r.DAY_MS]


def _next_midnight(now_ms: int, zone: str, fallback: str) -> int:
    try:
        tz = ZoneInfo(zone)
    except (KeyError, ValueError):
        tz = ZoneInfo(fallback)
    local = datetime.fromtimestamp(now_ms / 1000, tz)
    midnight = datetime.combine(local.date() + timedelta(days=1), datetime.min.time(), tz)
    return to_ms(midnight)
