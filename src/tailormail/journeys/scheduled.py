"""Entries that no single event triggers: dates, inactivity, scheduled broadcasts.

The worker calls ``enter_scheduled`` every minute or so; re-entry rules make a
second call for the same person harmless, and each query looks only at the
people who can be due now (today's month-day, yesterday's lapse window).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from sqlalchemy import Connection

from tailormail.journeys import model as m
from tailormail.journeys.engine import zone
from tailormail.journeys.runner import JourneyRunner
from tailormail.segments.membership import members
from tailormail.store import journeys as q

DAY_MS = 86_400_000


def enter_scheduled(conn: Connection, runner: JourneyRunner, now_ms: int) -> int:
    """Start the runs of date, inactivity and broadcast journeys that are due; return how many."""
    paused = q.paused_journeys(conn)
    started = 0
    for journey in runner.journeys.values():
        if journey.name in paused:
            continue
        started += len(runner.enter_many(conn, journey, _due(conn, journey, now_ms, runner.timezone), {}, now_ms))
        if isinstance(journey.entry, m.BroadcastEntry) and now_ms >= journey.entry.at_ms:
            q.mark_broadcast_done(conn, journey.name, now_ms)
    return started


def _due(conn: Connection, journey: m.Journey, now_ms: int, workspace_tz: str) -> list[int]:
    entry = journey.entry
    if isinstance(entry, m.DateEntry):
        return _dates_due(conn, entry, now_ms, workspace_tz)
    if isinstance(entry, m.InactivityEntry):
        # Lapsed within the last two days past the threshold: each lapse is seen, none is entered twice.
        latest = now_ms - entry.days * DAY_MS
        return q.lapsed_between(conn, latest - 2 * DAY_MS, latest)
    if isinstance(entry, m.BroadcastEntry) and now_ms >= entry.at_ms and not q.broadcast_done(conn, journey.name):
        return sorted(members(conn, entry.segment))
    return []


def _dates_due(conn: Connection, entry: m.DateEntry, now_ms: int, workspace_tz: str) -> list[int]:
    """People whose date trait is today in their own timezone, once their local time passed ``at``."""
    utc_today = datetime.fromtimestamp(now_ms / 1000, UTC).date()
    near = [(utc_today + timedelta(days=d)).strftime("%m-%d") for d in (-1, 0, 1)]
    if "02-28" in near:
        near.append("02-29")  # a leap-day birthday is celebrated on Feb 28 in other years
    due = []
    for profile_id, text, tz in q.date_trait_candidates(conn, entry.trait, near):
        local = datetime.fromtimestamp(now_ms / 1000, UTC).astimezone(zone(tz or workspace_tz))
        if _same_day(text, local.date()) and local.strftime("%H:%M") >= entry.at_local:
            due.append(profile_id)
    return due


def _same_day(text: str, today: date) -> bool:
    try:
        month, day = int(text[5:7]), int(text[8:10])
    except ValueError:
        return False
    if (month, day) == (2, 29) and not _leap(today.year):
        month, day = 2, 28
    return (month, day) == (today.month, today.day)


def _leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
