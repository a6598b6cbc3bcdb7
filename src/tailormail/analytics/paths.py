"""Paths: the event sequences people take before converting, and how often each converts."""

from __future__ import annotations

from collections import Counter
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
    # Read more events than steps, so runs of the same event can collapse into one step.
    people: Counter[tuple[str, ...]] = Counter()
    converted: Counter[tuple[str, ...]] = Counter()
    for sequence, done, n in q.last_events_before_goal(conn, events, goal, window=steps * 4):
        path = _collapse(list(sequence))[-steps:]
        people[path] += n
        converted[path] += n if done else 0
    ranked = sorted(people.items(), key=lambda item: (-item[1], item[0]))[:top]
    return [PathStat(path, n, converted[path]) for path, n in ranked]


def _collapse(names: list[str]) -> tuple[str, ...]:
    """Runs of the same event count as one step: view, view, view, cart -> view, cart."""
    out: list[str] = []
    for name in names:
        if not out or out[-1] != name:
            out.append(name)
    return tuple(out)
