"""Paths: the event sequences people take before converting, and how often each converts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection

from tailormail.store import analytics as q


@dataclass(frozen=True)
class PathStat:
    """One sequence of steps and what became of the people who took it."""

    steps: tuple[str, ...]
    people: int
    converted: int

    @property
    def conversion_rate(self) -> float:
        """Share of the people on this path who converted."""
        return self.converted / self.people if self.people else 0.0


def paths_to_goal(
    conn: Connection, events: Sequence[str], goal: str, *, steps: int = 3, top: int = 15
) -> list[PathStat]:
    """The most common last ``steps`` distinct steps before the goal (before now for people who never reached it)."""
    # Fetch more rows than steps, so runs of the same event can collapse into one step.
    return [
        PathStat(path, n, c) for path, n, c in q.path_counts(conn, events, goal, steps=steps, window=steps * 4, top=top)
    ]


def _collapse(names: list[str]) -> tuple[str, ...]:
    """Runs of the same event count as one step: view, view, view, cart -> view, cart."""
    out: list[str] = []
    for name in names:
        if not out or out[-1] != name:
            out.append(name)
    return tuple(out)
