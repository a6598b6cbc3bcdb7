"""What a rule reads: the dependency index real time uses to skip work.

From a compiled rule tree we know which events can change its value *now*
(by name and by how old they are), which traits and profile columns it reads
and which segments it refers to.  An event outside every window of its name
cannot change the rule at this moment; it may only make it change later,
which the scheduled rechecks handle (an ``add_to_cart`` stamped now counts for
``cart_abandoners`` only 24 hours on).  Everything here over-approximates:
evaluating a segment that did not need it changes nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

from tailormail.segments import rules as r


@dataclass(frozen=True)
class Span:
    """The event times that count at ``now``: ``now - start_ago < ts <= now - end_ago``, ``after <= ts < before``."""

    start_ago: int | None = None
    end_ago: int = 0
    after: int | None = None
    before: int | None = None

    def bounds(self, now_ms: int) -> tuple[float, float]:
        """(lo, hi): an event at ``ts`` is inside this span at ``now_ms`` when ``lo < ts <= hi``."""
        lo: float = -math.inf if self.start_ago is None else now_ms - self.start_ago
        hi: float = now_ms - self.end_ago
        if self.after is not None:
            lo = max(lo, self.after - 1)  # times are whole milliseconds
        if self.before is not None:
            hi = min(hi, self.before - 1)
        return lo, hi

    def counts(self, ts: int, now_ms: int) -> bool:
        """Whether an event at ``ts`` is inside this span at ``now_ms``."""
        lo, hi = self.bounds(now_ms)
        return lo < ts <= hi


@dataclass(frozen=True, eq=False)
class Dependencies:
    """The inputs of one rule: event spans by name, trait paths, profile columns, referenced segments."""

    events: dict[str, tuple[Span, ...]]
    traits: frozenset[tuple[str, ...]]
    profile_columns: frozenset[str]
    segments: frozenset[str]

    def event_counts_now(self, name: str | None, ts: int, now_ms: int) -> bool:
        """Whether an event ``name`` at ``ts`` can change the rule's value at ``now_ms``."""
        spans = self.events.get(name or "")
        return spans is not None and any(span.counts(ts, now_ms) for span in spans)


@lru_cache(maxsize=256)
def dependencies(rule: r.Condition) -> Dependencies:
    """The dependency index of a rule (built once per rule)."""
    spans: dict[str, set[Span]] = {}
    traits: set[tuple[str, ...]] = set()
    columns: set[str] = set()
    refs: set[str] = set()
    for node in r.walk(rule):
        if isinstance(node, r.Event):
            window = node.window
            spans.setdefault(node.event, set()).add(Span(window.start_ago, window.end_ago, window.after, window.before))
            if node.not_followed_by is not None:
                # A later event undoes the sequence: any one after the earliest counted event, up to now.
                follow = Span(window.start_ago, 0, window.after, None)
                spans.setdefault(node.not_followed_by.event, set()).add(follow)
        elif isinstance(node, r.Trait):
            traits.add(node.compare.path)
            if node.compare.op in ("anniversary_within_days", "birthday_within_days"):
                traits.add(("timezone",))  # the person's local calendar decides the day
        elif isinstance(node, r.ProfileTime):
            columns.add(node.field)
        elif isinstance(node, r.SegmentRef):
            refs.add(node.name)
    return Dependencies(
        {name: tuple(sorted(values, key=repr)) for name, values in spans.items()},
        frozenset(traits),
        frozenset(columns),
        frozenset(refs),
    )
