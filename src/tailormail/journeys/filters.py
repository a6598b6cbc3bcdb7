"""Property filters matched against one event's properties in Python.

Journey entries, goals and wait_for steps ask "does THIS event match", which
is a question about one payload, not about a person's history; the segment
compiler answers the latter in SQL.  The operators mean what they mean there:
case-sensitive text, numbers compared as numbers when the rule's value is a
number, ``contains`` a substring or a list element.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tailormail.segments import rules as r

MISSING = object()
"""What ``lookup`` returns for a path that is not there (None is a value)."""


def lookup(data: Any, path: Sequence[str]) -> Any:
    """The value at a dotted path in nested dicts, or a missing marker."""
    for part in path:
        if not isinstance(data, dict) or part not in data:
            return MISSING
        data = data[part]
    return data


def matches(where: Sequence[r.Compare], properties: dict[str, Any]) -> bool:
    """Whether every filter holds for these properties."""
    return all(_holds(c, lookup(properties, c.path)) for c in where)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _holds(c: r.Compare, value: Any) -> bool:
    present = value is not MISSING and value is not None and value != ""
    if c.op == "exists":
        return present == bool(c.value)
    if c.op == "is_empty":
        return (not present) == bool(c.value)
    if value is MISSING or value is None:
        return c.op in ("not_equals", "not_in")
    if c.op in ("equals", "not_equals"):
        same = _equal(value, c.value)
        return same if c.op == "equals" else not same
    if c.op in ("in", "not_in"):
        inside = any(_equal(value, v) for v in c.value)
        return inside if c.op == "in" else not inside
    if c.op == "contains":
        return c.value in value if isinstance(value, list) else str(c.value) in str(value)
    if c.op == "starts_with":
        return str(value).startswith(str(c.value))
    return _ordered(c, value)


def _equal(value: Any, wanted: Any) -> bool:
    """Equality as the segment SQL does it: by number when the rule gives a number."""
    if isinstance(wanted, bool) or isinstance(value, bool):
        return value is wanted
    if isinstance(wanted, int | float):
        return _number(value) == float(wanted)
    return str(value) == str(wanted)


def _ordered(c: r.Compare, value: Any) -> bool:
    v = _number(value)
    if v is None:
        return False
    if c.op == "between":
        lo, hi = (_number(x) for x in c.value)
        return lo is not None and hi is not None and lo <= v <= hi
    bound = _number(c.value)
    if bound is None:
        return False
    return {"gt": v > bound, "gte": v >= bound, "lt": v < bound, "lte": v <= bound}[c.op]
