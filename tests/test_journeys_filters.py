"""One event's properties against property filters: the operators of the segment language."""

from __future__ import annotations

import pytest

from tailormail.journeys.filters import matches
from tailormail.segments import rules as r

PROPS = {"category": "shoes", "revenue": 59.5, "tags": ["sale", "new"], "coupon": "", "items": {"count": 3}}

CASES = [
    # (path, op, value, expected)
    (("category",), "equals", "shoes", True),
    (("category",), "equals", "Shoes", False),
    (("category",), "not_equals", "hats", True),
    (("missing",), "not_equals", "hats", True),
    (("category",), "in", ("hats", "shoes"), True),
    (("category",), "not_in", ("hats", "shoes"), False),
    (("category",), "contains", "hoe", True),
    (("tags",), "contains", "sale", True),
    (("tags",), "contains", "old", False),
    (("category",), "starts_with", "sh", True),
    (("revenue",), "gt", 50, True),
    (("revenue",), "lte", 59.5, True),
    (("revenue",), "lt", 10, False),
    (("revenue",), "between", (50, 60), True),
    (("revenue",), "equals", 59.5, True),
    (("items", "count"), "gte", 3, True),
    (("coupon",), "is_empty", True, True),
    (("coupon",), "exists", True, False),
    (("category",), "exists", True, True),
    (("missing",), "exists", False, True),
    (("category",), "gt", 5, False),
]


@pytest.mark.parametrize(("path", "op", "value", "expected"), CASES)
def test_operator(path: tuple[str, ...], op: str, value: object, expected: bool) -> None:
    assert matches([r.Compare(path, op, value)], PROPS) is expected


def test_all_filters_must_hold() -> None:
    both = [r.Compare(("category",), "equals", "shoes"), r.Compare(("revenue",), "gt", 100)]
    assert matches(both, PROPS) is False and matches([], PROPS) is True
