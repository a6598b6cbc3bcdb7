"""Cron schedules in the workspace timezone: when a source is due, and how late it is."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from tailormail.errors import ConfigError

GRACE = timedelta(minutes=5)
"""A run this much after its time still counts as on time (a worker round, a slow start)."""


def zone(name: str) -> ZoneInfo:
    """The timezone called ``name`` (ConfigError when unknown)."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"unknown timezone {name!r}", hint="use an IANA name such as Europe/Berlin") from None


def next_run(expr: str, after: datetime, tz: str) -> datetime:
    """The first scheduled time strictly after ``after`` (UTC)."""
    local = after.astimezone(zone(tz))
    return croniter(expr, local).get_next(datetime).astimezone(UTC)


def interval(expr: str, around: datetime, tz: str) -> timedelta:
    """The gap between the scheduled time after ``around`` and the one after it."""
    first = next_run(expr, around, tz)
    return next_run(expr, first, tz) - first


def is_due(expr: str, tz: str, since: datetime, now: datetime) -> bool:
    """True when a scheduled time passed after ``since`` (the last run, or registration)."""
    return next_run(expr, since, tz) <= now


def missed_since(expr: str, tz: str, since: datetime, now: datetime) -> datetime | None:
    """The first scheduled time after ``since`` that is overdue by more than GRACE, if any."""
    due = next_run(expr, since, tz)
    return due if now - due > GRACE else None


def late_beyond_interval(expr: str, tz: str, since: datetime, now: datetime) -> bool:
    """True when the missed run is overdue by more than one whole interval (an alert)."""
    due = missed_since(expr, tz, since, now)
    return due is not None and now - due > interval(expr, due, tz)
