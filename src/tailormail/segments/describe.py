"""A rule tree as sentences a person can read (the compiler's other output)."""

from __future__ import annotations

from typing import Any

from tailormail.clock import from_ms
from tailormail.segments import rules as r

_OPS = {
    "equals": "is {v}",
    "not_equals": "is not {v}",
    "in": "is one of {v}",
    "not_in": "is none of {v}",
    "contains": "contains {v}",
    "starts_with": "starts with {v}",
    "gt": "is more than {v}",
    "gte": "is at least {v}",
    "lt": "is less than {v}",
    "lte": "is at most {v}",
    "between": "is between {v}",
    "within_last_days": "is within the last {v} days",
    "more_than_days_ago": "is more than {v} days ago",
    "anniversary_within_days": "has its anniversary in the next {v} days (the person's timezone)",
    "birthday_within_days": "is a birthday in the next {v} days (the person's timezone)",
}


def duration(ms: int) -> str:
    """``604800000`` -> ``7 days``."""
    for unit, size in (("day", r.DAY_MS), ("hour", 3_600_000), ("minute", 60_000)):
        if ms % size == 0 and ms >= size:
            n = ms // size
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return f"{ms / 1000:g} seconds"


def value(v: Any) -> str:
    """A compared value as people write it."""
    if isinstance(v, tuple):
        return " and ".join(value(x) for x in v) if len(v) == 2 else ", ".join(value(x) for x in v)
    if isinstance(v, bool):
        return "true" if v else "false"
    return repr(v) if isinstance(v, str) else str(v)


def compare(c: r.Compare, subject: str) -> str:
    """One comparison: ``plan is 'pro'``."""
    name = f"{subject} {'.'.join(c.path)}"
    if c.op == "exists":
        return f"{name} {'is set' if c.value else 'is not set'}"
    if c.op == "is_empty":
        return f"{name} {'is empty' if c.value else 'is not empty'}"
    return f"{name} {_OPS[c.op].format(v=value(c.value))}"


def window(w: r.Window) -> str:
    """When the events must have happened."""
    parts = []
    if w.start_ago is not None and w.end_ago:
        parts.append(f"between {duration(w.start_ago)} and {duration(w.end_ago)} ago")
    elif w.start_ago is not None:
        parts.append(f"in the last {duration(w.start_ago)}")
    elif w.end_ago:
        parts.append(f"more than {duration(w.end_ago)} ago")
    if w.after is not None:
        parts.append(f"on or after {from_ms(w.after).date().isoformat()}")
    if w.before is not None:
        parts.append(f"before {from_ms(w.before).date().isoformat()}")
    return " ".join(parts)


def _moment(m: r.Moment) -> str:
    return f"{duration(m.ago)} ago" if m.ago is not None else from_ms(m.at or 0).date().isoformat()


def event(e: r.Event) -> str:
    """``performed purchase at least 3 times in the last 7 days``."""
    times = {"at_least": "at least", "at_most": "at most", "exactly": "exactly"}[e.count_op]
    text = f"performed {e.event!r}"
    if not (e.count_op == "at_least" and e.count <= 1):
        text += f" {times} {e.count} time{'s' if e.count != 1 else ''}"
    if e.where:
        text += " with " + " and ".join(compare(c, "property") for c in e.where)
    span = window(e.window)
    if span:
        text += " " + span
    for label, moment in (
        ("first time before", e.first_before),
        ("first time after", e.first_after),
        ("last time before", e.last_before),
        ("last time after", e.last_after),
    ):
        if moment is not None:
            text += f", the {label} {_moment(moment)}"
    if e.aggregate is not None:
        a = e.aggregate
        what = "the number of them" if a.function == "count" else f"the {a.function} of {a.property}"
        text += f", where {what} {_OPS[a.op].format(v=value(a.value))}"
    if e.not_followed_by is not None:
        f = e.not_followed_by
        text += f", with no {f.event!r} after it"
        if f.where:
            text += " (" + " and ".join(compare(c, "property") for c in f.where) + ")"
        if f.within is not None:
            text += f" within {duration(f.within)}"
    return text


def sentence(node: r.Condition) -> str:
    """The condition at the root of ``node`` alone (children are separate lines)."""
    if isinstance(node, r.All):
        return "all of these hold:"
    if isinstance(node, r.AnyOf):
        return "any of these holds:"
    if isinstance(node, r.Not):
        return "this does not hold:"
    if isinstance(node, r.SegmentRef):
        return f"is in segment {node.name!r}:"
    if isinstance(node, r.Trait):
        return compare(node.compare, "trait")
    if isinstance(node, r.ProfileTime):
        return f"{node.field.replace('_', ' ')} {_OPS[node.op].format(v=node.value)}"
    return event(node)


def children(node: r.Condition) -> tuple[r.Condition, ...]:
    """The sub-conditions shown under a node."""
    if isinstance(node, r.All | r.AnyOf):
        return node.children
    if isinstance(node, r.Not):
        return (node.child,)
    if isinstance(node, r.SegmentRef) and node.rule is not None:
        return (node.rule,)
    return ()


def describe(node: r.Condition, depth: int = 0) -> list[str]:
    """The whole rule as indented lines."""
    lines = ["  " * depth + sentence(node)]
    for child in children(node):
        lines.extend(describe(child, depth + 1))
    return lines


def summary(node: r.Condition) -> str:
    """The rule in one line (for tables)."""
    if isinstance(node, r.All | r.AnyOf):
        joiner = " and " if isinstance(node, r.All) else " or "
        return "(" + joiner.join(summary(c) for c in node.children) + ")"
    if isinstance(node, r.Not):
        return "not " + summary(node.child)
    if isinstance(node, r.SegmentRef):
        return f"in segment {node.name!r}"
    return sentence(node)
