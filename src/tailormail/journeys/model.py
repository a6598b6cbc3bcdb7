"""A journey as data: entry, settings and a graph of nodes, all frozen dataclasses.

``journeys.parse`` builds these from YAML (validated, with lines);
``journeys.engine`` decides what a run does next from them; nothing here
reads a clock or a database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tailormail.segments import rules as r

# --- entries ---------------------------------------------------------------------


@dataclass(frozen=True)
class EventEntry:
    """Enter when the person performs ``event`` (matching the property filters)."""

    event: str
    where: tuple[r.Compare, ...] = ()


@dataclass(frozen=True)
class SegmentEntry:
    """Enter when the person enters (or leaves) a segment."""

    segment: str
    on: str = "entered"


@dataclass(frozen=True)
class DateEntry:
    """Enter on the yearly recurrence of a date trait (birthday, signup anniversary), at a local time."""

    trait: tuple[str, ...]
    at_local: str = "09:00"


@dataclass(frozen=True)
class InactivityEntry:
    """Enter after ``days`` without any event from the person."""

    days: int


@dataclass(frozen=True)
class BroadcastEntry:
    """Enter every member of a segment at one scheduled moment."""

    segment: str
    at_ms: int


Entry = EventEntry | SegmentEntry | DateEntry | InactivityEntry | BroadcastEntry

# --- nodes -------------------------------------------------------------------------


@dataclass(frozen=True)
class Send:
    """Send a template; subject variants are split deterministically per person."""

    template: str
    next: str | None
    subject_variants: tuple[str, ...] = ()


@dataclass(frozen=True)
class Wait:
    """Wait a duration, until a local time of day, or until a date trait."""

    next: str | None
    duration_ms: int | None = None
    until_local: str | None = None
    until_trait: tuple[str, ...] | None = None


@dataclass(frozen=True)
class WaitFor:
    """Wait for an event up to a timeout; go to ``then`` if it comes, ``otherwise`` if not."""

    event: str
    where: tuple[r.Compare, ...]
    timeout_ms: int
    then: str | None
    otherwise: str | None


@dataclass(frozen=True)
class Branch:
    """Go to ``then`` if the rule holds for the person now, else ``otherwise``."""

    rule: r.Condition
    then: str | None
    otherwise: str | None


@dataclass(frozen=True)
class Arm:
    """One arm of a split."""

    name: str
    weight: float
    next: str | None


@dataclass(frozen=True)
class Split:
    """Weighted random A/B/n assignment, deterministic per person; a holdout gets nothing."""

    arms: tuple[Arm, ...]
    holdout: float = 0.0


@dataclass(frozen=True)
class UpdateProfile:
    """Set traits on the person."""

    traits: dict[str, Any]
    next: str | None


@dataclass(frozen=True)
class Webhook:
    """POST the person and the run to a URL (HMAC-signed by the outbound client)."""

    url: str
    next: str | None


@dataclass(frozen=True)
class Exit:
    """End the run."""


Node = Send | Wait | WaitFor | Branch | Split | UpdateProfile | Webhook | Exit


@dataclass(frozen=True)
class Journey:
    """A validated journey definition."""

    name: str
    description: str
    entry: Entry
    nodes: dict[str, Node]
    start: str
    kind: str = "marketing"
    goal: str | None = None
    goal_where: tuple[r.Compare, ...] = ()
    reentry_ms: int | None = None
    """None: a person enters at most once; else after this long since their last entry."""
    source: str = ""
    lines: dict[str, int] = field(default_factory=dict, compare=False)
    """The line each node was written on, for messages and `journeys show`."""

    def successors(self, node_id: str) -> list[str]:
        """The nodes a node can lead to, in order."""
        return successors(self.nodes[node_id])


def successors(node: Node) -> list[str]:
    """The node ids a node can lead to, in order (the end of the run is left out)."""
    if isinstance(node, WaitFor | Branch):
        targets = [node.then, node.otherwise]
    elif isinstance(node, Split):
        targets = [a.next for a in node.arms]
    elif isinstance(node, Exit):
        targets = []
    else:
        targets = [node.next]
    return [t for t in targets if t is not None]
