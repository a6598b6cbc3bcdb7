"""When can membership change by itself?  The moments a rule's time windows move past.

For every event condition the rule may flip when ``ts + offset`` passes for one
of the person's events, where the offsets are the window bounds, the sequence
wait and the relative first/last bounds (0 for events stamped in the future).
Over-approximating is safe: a recheck that finds no change changes nothing.
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


EventTimes = dict[int, list[tuple[str, int]]]
"""profile id -> (event, ts) of recent events: fetched once per batch, shared by every segment."""


def event_times(conn: Connection, rules: list[r.Condition], ids: list[int], now_ms: int) -> EventTimes:
    """The events every one of ``rules`` may need to schedule rechecks for ``ids``."""
    offsets: dict[str, set[int]] = {}
    for rule in rules:
        for event, values in event_offsets(rule).items():
            offsets.setdefault(event, set()).update(values)
    out: EventTimes = {}
    if offsets and ids:
        after = {event: now_ms - max(values) for event, values in offsets.items()}
        for pid, event, ts in q.recent_event_times(conn, ids, after):
            out.setdefault(pid, []).append((event, ts))
    return out


def schedule(
    conn: Connection,
    segment: str,
    rule: r.Condition,
    now_ms: int,
    ids: list[int] | None,
    timezone: str = "UTC",
    times: EventTimes | None = None,
) -> None:
    """Replace the rechecks of ``segment`` (for ``ids``, or everyone) with those after ``now_ms``.

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
    due = _due_for(conn, rule, now_ms, ids, times)
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
    clocks: Clocks,
    touched: set[int],
    now_ms: int,
    timezone: str = "UTC",
) -> int:
    """Real time: add the recheck moments a batch's events bring, where earlier than what is scheduled.

    ``events``: event name -> (profile id, ts) of the batch.  Every moment
    comes from one event (``ts + offset``), a profile column or a date trait,
    so a batch only adds moments; a person keeps their earliest, and when it
    fires the worker reschedules them in full (``schedule``).  Extra rechecks
    are harmless: one that finds no change changes nothing.  Returns rows added.
    """
    wanted: dict[tuple[str, int], int] = {}

    def consider(segment: str, pid: int, moment: int) -> None:
        key = (segment, pid)
        if moment > now_ms and moment < wanted.get(key, moment + 1):
            wanted[key] = moment

    for segment in segments:
        for name, offsets in event_offsets(segment.rule).items():
            for pid, ts in events.get(name, ()):
                for offset in offsets:
                    consider(segment.name, pid, ts + offset)
        for column, column_offsets in profile_offsets(segment.rule).items():
            index = 1 if column == "first_seen" else 2
            for pid, clock in clocks.items():
                for offset in column_offsets:
                    consider(segment.name, pid, clock[index] + offset)
        dated = trait_dates(segment.rule)
        if dated and touched:
            for pid, moment in _trait_due(conn, dated, now_ms, sorted(touched), timezone).items():
                consider(segment.name, pid, moment)
    return q.add_earlier_rechecks(conn, [(s, p, due) for (s, p), due in sorted(wanted.items())])


def _schedule_everyone(conn: Connection, segment: str, rule: r.Condition, now_ms: int) -> None:
    """A refresh: one INSERT ... SELECT per (event, offset), all in SQL."""
    for event, offsets in event_offsets(rule).items():
        for offset in sorted(offsets):
            q.schedule_event_rechecks(conn, segment, event, offset, now_ms)
    for column, offsets in profile_offsets(rule).items():
        for offset in sorted(offsets):
            q.schedule_profile_rechecks(conn, segment, column, offset, now_ms)


def _due_for(
    conn: Connection, rule: r.Condition, now_ms: int, ids: list[int], times: EventTimes | None
) -> dict[int, int]:
    """Real time: the earliest moment after now for each of a few people."""
    due: dict[int, int] = {}

    def consider(pid: int, moment: int) -> None:
        if moment > now_ms and moment < due.get(pid, moment + 1):
            due[pid] = moment

    offsets = event_offsets(rule)
    if offsets:
        recent = times if times is not None else event_times(conn, [rule], ids, now_ms)
        for pid in ids:
            for event, ts in recent.get(pid, ()):
                for offset in offsets.get(event, ()):
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
