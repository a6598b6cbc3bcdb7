"""The dependency index: which events can change a rule now, and what else a rule reads."""

from __future__ import annotations

from typing import Any

import pytest

from tailormail.segments.depends import dependencies
from tailormail.segments.parse import parse_rule
from tailormail.segments.yamlsource import from_json

HOUR = 3_600_000
DAY = 24 * HOUR
NOW = 1_800_000_000_000
"""2027-01-15."""
EVENTS = {"product_view": "product_view", "add_to_cart": "add_to_cart", "purchase": "purchase"}
CART = {
    "event": "add_to_cart",
    "window": {"from": "7 days", "to": "24 hours"},
    "not_followed_by": {"event": "purchase"},
}


def rule(value: dict[str, Any]) -> Any:
    return parse_rule(from_json({"rule": value}, "test"), ("rule",), EVENTS)


COUNTS_NOW = [
    # (description, rule, event, how long ago it happened, counts now)
    (
        "a purchase just now, purchased in 7 days",
        {"event": "purchase", "window": {"last": "7 days"}},
        "purchase",
        0,
        True,
    ),
    ("a purchase 8 days ago (late)", {"event": "purchase", "window": {"last": "7 days"}}, "purchase", 8 * DAY, False),
    ("a purchase stamped in the future", {"event": "purchase", "window": {"last": "7 days"}}, "purchase", -HOUR, False),
    ("another event", {"event": "purchase", "window": {"last": "7 days"}}, "product_view", 0, False),
    ("a cart just now counts only in 24 hours", CART, "add_to_cart", 0, False),
    ("a cart 25 hours ago (late) counts now", CART, "add_to_cart", 25 * HOUR, True),
    ("a cart 8 days ago never counts", CART, "add_to_cart", 8 * DAY, False),
    ("a purchase just now ends the sequence", CART, "purchase", 0, True),
    ("a purchase before every counted cart cannot", CART, "purchase", 8 * DAY, False),
    ("no window: any past event", {"event": "purchase"}, "purchase", 400 * DAY, True),
    ("inside a not", {"not": {"event": "purchase", "window": {"last": "30 days"}}}, "purchase", DAY, True),
    (
        "absolute window, inside it",
        {"event": "purchase", "window": {"after": "2027-01-01", "before": "2027-02-01"}},
        "purchase",
        DAY,
        True,
    ),
    (
        "absolute window, before its start",
        {"event": "purchase", "window": {"after": "2027-02-01", "before": "2027-03-01"}},
        "purchase",
        DAY,
        False,
    ),
]


@pytest.mark.parametrize(
    ("description", "value", "event", "ago", "expected"), COUNTS_NOW, ids=[c[0] for c in COUNTS_NOW]
)
def test_which_events_can_change_a_rule_now(description: str, value: Any, event: str, ago: int, expected: bool) -> None:
    assert dependencies(rule(value)).event_counts_now(event, NOW - ago, NOW) is expected, description


def test_traits_profile_columns_and_references_are_indexed() -> None:
    deps = dependencies(
        rule(
            {
                "all": [
                    {"trait": "plan", "equals": "pro"},
                    {"trait": "birthday", "birthday_within_days": 7},
                    {"profile": "first_seen", "within_last_days": 30},
                    {"event": "product_view", "at_least": 3, "window": {"last": "7 days"}},
                ]
            }
        )
    )
    assert deps.traits == {("plan",), ("birthday",), ("timezone",)}
    assert deps.profile_columns == {"first_seen"}
    assert set(deps.events) == {"product_view"}
    assert deps.segments == frozenset()
