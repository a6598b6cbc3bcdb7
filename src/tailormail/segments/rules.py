"""The rule tree: the conditions a segment is made of, as plain frozen dataclasses.

A rule is data.  ``tailormail.segments.parse`` builds it from YAML or JSON
(validating every field), the store compiles it to SQL, and
``tailormail.segments.describe`` turns it into a sentence.  Times inside the
tree are durations or absolute instants in milliseconds; nothing here reads a
clock: evaluation always takes ``now_ms``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

VALUE_OPS = ("equals", "not_equals", "in", "not_in", "contains", "starts_with", "gt", "gte", "lt", "lte", "between")
"""Comparisons of a trait or an event property with given values."""

PRESENCE_OPS = ("exists", "is_empty")
"""Whether a value is there at all (true/false)."""

DATE_OPS = ("within_last_days", "more_than_days_ago", "anniversary_within_days", "birthday_within_days")
"""Comparisons of a date (ISO text or epoch milliseconds) with ``now``."""

TRAIT_OPS = VALUE_OPS + PRESENCE_OPS + DATE_OPS
PROFILE_FIELDS = ("first_seen", "last_seen")
"""Profile columns usable in ``profile:`` conditions (with the date operators)."""

AGGREGATES = ("count", "sum", "avg", "min", "max")
COMPARISONS = ("equals", "gt", "gte", "lt", "lte", "between")

DAY_MS = 86_400_000


@dataclass(frozen=True)
class Compare:
    """``op`` applied to a value found at ``path`` (a trait or an event property)."""

    path: tuple[str, ...]
    op: str
    value: Any


@dataclass(frozen=True)
class Trait:
    """A condition on a person's traits (dotted paths reach into JSON)."""

    compare: Compare


@dataclass(frozen=True)
class ProfileTime:
    """A date condition on a profile column: ``first_seen`` or ``last_seen``."""

    field: str
    op: str
    value: Any


@dataclass(frozen=True)
class Window:
    """Which events count, by time.

    Relative bounds are durations before ``now``: an event counts when
    ``now - start_ago < ts <= now - end_ago``.  Absolute bounds are instants:
    ``after <= ts < before``.  Events after ``now`` never count.
    """

    start_ago: int | None = None
    end_ago: int = 0
    after: int | None = None
    before: int | None = None


@dataclass(frozen=True)
class Moment:
    """A bound for first/last performed: an instant, or a duration before now."""

    at: int | None = None
    ago: int | None = None


@dataclass(frozen=True)
class FollowedBy:
    """The sequence shape: no ``event`` (matching ``where``) after the first one, within ``within``."""

    event: str
    where: tuple[Compare, ...] = ()
    within: int | None = None


@dataclass(frozen=True)
class Aggregate:
    """``function`` of an event property over the window, compared with a value."""

    function: str
    property: str | None
    op: str
    value: Any


@dataclass(frozen=True)
class Event:
    """A condition on what a person did.

    ``count_op``/``count``: at_least, at_most or exactly N matching events.
    ``first``/``last``: when the first or latest matching event happened
    (``before`` and ``after`` bounds).  ``not_followed_by``: only events with
    no later event of another kind count (performed A, not B after it).
    """

    event: str
    where: tuple[Compare, ...] = ()
    window: Window = Window()
    count_op: str = "at_least"
    count: int = 1
    first_before: Moment | None = None
    first_after: Moment | None = None
    last_before: Moment | None = None
    last_after: Moment | None = None
    aggregate: Aggregate | None = None
    not_followed_by: FollowedBy | None = None


@dataclass(frozen=True)
class All:
    """Every child holds."""

    children: tuple[Condition, ...]


@dataclass(frozen=True)
class AnyOf:
    """At least one child holds."""

    children: tuple[Condition, ...]


@dataclass(frozen=True)
class Not:
    """The child does not hold."""

    child: Condition


@dataclass(frozen=True)
class SegmentRef:
    """Membership of another segment (its rule is inlined when compiled)."""

    name: str
    rule: Condition | None = None


Condition = Trait | ProfileTime | Event | All | AnyOf | Not | SegmentRef
"""Any node of a rule tree."""


def walk(rule: Condition) -> list[Condition]:
    """Every node of a rule tree, parents before children (references followed)."""
    out: list[Condition] = [rule]
    if isinstance(rule, All | AnyOf):
        for child in rule.children:
            out.extend(walk(child))
    elif isinstance(rule, Not):
        out.extend(walk(rule.child))
    elif isinstance(rule, SegmentRef) and rule.rule is not None:
        out.extend(walk(rule.rule))
    return out


def event_names(rule: Condition) -> set[str]:
    """Every event name a rule looks at (sequence events included)."""
    names: set[str] = set()
    for node in walk(rule):
        if isinstance(node, Event):
            names.add(node.event)
            if node.not_followed_by:
                names.add(node.not_followed_by.event)
    return names


def uses_traits(rule: Condition) -> bool:
    """Whether any condition reads traits or profile columns."""
    return any(isinstance(node, Trait | ProfileTime) for node in walk(rule))
