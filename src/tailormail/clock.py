"""The injected clock: services ask it for ``now`` so tests never sleep."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """Anything that can tell the current time as an aware UTC datetime."""

    def now(self) -> datetime:
        """Return the current time, timezone-aware, in UTC."""
        ...


class SystemClock:
    """The wall clock; the only place tailormail reads real time."""

    def now(self) -> datetime:
        """Return the wall-clock time in UTC."""
        return datetime.now(UTC)


class ManualClock:
    """A clock that moves only when told to; for tests and dry runs."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("ManualClock needs an aware datetime")
        self._now = start.astimezone(UTC)

    def now(self) -> datetime:
        """Return the time this clock was set to."""
        return self._now

    def advance(self, delta: timedelta) -> datetime:
        """Move the clock forward by ``delta`` and return the new time."""
        self._now += delta
        return self._now

    def set(self, moment: datetime) -> None:
        """Jump to ``moment`` (aware datetime)."""
        self._now = moment.astimezone(UTC)


def to_ms(moment: datetime) -> int:
    """Milliseconds since the Unix epoch for an aware datetime (naive = UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def from_ms(ms: int) -> datetime:
    """The aware UTC datetime for milliseconds since the Unix epoch."""
    return datetime.fromtimestamp(ms / 1000, UTC)


def parse_time(text: str) -> datetime:
    """Parse an ISO-8601 time or date (``Z`` allowed; naive means UTC)."""
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)
