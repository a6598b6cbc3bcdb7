"""When can membership change by itself?  The moments a rule's time windows move past.

For every event condition the rule may flip when ``ts + offset`` passes for one
of the person's events, where the offsets are the window bounds, the sequence
wait and the relative first/last bounds (0 for events stamped in the future).
Over-approximating is safe: a recheck that finds no change changes nothing.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection

from tailormail.clock import parse_time, to_ms
from tailormail.segments import rules as r
from tailormail.store import profiles as profile_q
from tailormail.store import segments as q


def event_offsets(rule: r.Condition) -> dict[str, set[int]]:
    """Event name -> durations after an event's time at which the rule may flip."""
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


def profile_offsets(rule: r.Condition) -> dict[str, set[int]]:
    """Profile column -> durations after its value at which the rule may flip."""
    out: dict[str, set[int]] = {}
    for node in r.walk(rule):
        if isinstance(node, r.ProfileTime):
            out.setdefault(node.field, {0}).add(node.value * r.DAY_MS)
    return out


def trait_dates(rule: r.Condition) -> list[r.Compare]:
    """Trait conditions relative to now (dates, anniversaries)."""
    return [n.compare for n in r.walk(rule) if isinstance(n, r.Trait) and n.compare.op in r.DATE_OPS]


def schedule(
    conn: Connection, segment: str, rule: r.Condition, now_ms: int, ids: list[int] | None, timezone: str = "UTC"
) -> None:
    """Replace the rechecks of ``segment`` (for ``ids``, or everyone) with those after ``now_ms``."""
    q.clear_rechecks(conn, segment, ids)
    if ids is None:
        _schedule_everyone(conn, segment, rule, now_ms)
        due: dict[int, int] = {}
    else:
        due = _due_for(conn, rule, now_ms, ids)
    dated = trait_dates(rule)
    if dated:
        for pid, moment in _trait_due(conn, dated, now_ms, ids, timezone).items():
            due[pid] = min(moment, due.get(pid, moment))
    q.add_rechecks(conn, segment, due)


def _schedule_everyone(conn: Connection, segment: str, rule: r.Condition, now_ms: int) -> None:
    """A refresh: one INSERT ... SELECT per (event, offset), all in SQL."""
    for event, offsets in event_offsets(rule).items():
        for offset in sorted(offsets):
            q.schedule_event_rechecks(conn, segment, event, offset, now_ms)
    for column, offsets in profile_offsets(rule).items():
        for offset in sorted(offsets):
            q.schedule_profile_rechecks(conn, segment, column, offset, now_ms)


def _due_for(conn: Connection, rule: r.Condition, now_ms: int, ids: list[int]) -> dict[int, int]:
    """Real time: the earliest moment after now for each of a few people (one query, then Python)."""
    due: dict[int, int] = {}

    def consider(pid: int, moment: int) -> None:
        if moment > now_ms and moment < due.get(pid, moment + 1):
            due[pid] = moment

    offsets = event_offsets(rule)
    if offsets:
        horizon = now_ms - max(max(v) for v in offsets.values())
        for pid, event, ts in q.recent_event_times(conn, ids, sorted(offsets), horizon):
            for offset in offsets[event]:
                consider(pid, ts + offset)
    for column, column_offsets in profile_offsets(rule).items():
        for pid, value in q.profile_times(conn, ids, column).items():
            for offset in column_offsets:
                consider(pid, value + offset)
    return due


def _trait_due(
    conn: Connection, dated: list[r.Compare], now_ms: int, ids: list[int] | None, timezone: str
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
