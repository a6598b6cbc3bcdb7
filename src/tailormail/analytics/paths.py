"""Paths: the event sequences people take before converting, and how often each converts."""

from __future__ import annotations

from collections import Counter, defaultdict
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
    rows = q.steps_before_goal(conn, events, goal, steps * 4)
    by_person: dict[int, list[tuple[int, str]]] = defaultdict(list)
    reached: dict[int, bool] = {}
    for profile_id, back, name, done in rows:
        by_person[profile_id].append((back, name))
        reached[profile_id] = done
    people: Counter[tuple[str, ...]] = Counter()
    converted: Counter[tuple[str, ...]] = Counter()
    for profile_id, items in by_person.items():
        path: tuple[str, ...] = _collapse([name for _, name in sorted(items, reverse=True)])[-steps:]
        people[path] += 1
        converted[path] += reached[profile_id]
    return [PathStat(path, n, converted[path]) for path, n in people.most_common(top)]


def _collapse(names: list[str]) -> tuple[str, ...]:
    """Runs of the same event count as one step: view, view, view, cart -> view, cart."""
    out: list[str] = []
    for name in names:
        if not out or out[-1] != name:
            out.append(name)
    return tuple(out)
