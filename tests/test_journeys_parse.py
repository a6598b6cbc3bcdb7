"""Journey validation: errors name the file, the line and the step, and suggest fixes."""

from __future__ import annotations

import pytest

from tailormail.errors import ValidationError
from tailormail.journeys import model as m
from tailormail.journeys.parse import parse_journey
from tailormail.segments.yamlsource import load_yaml

EVENTS = {"add_to_cart": "add_to_cart", "purchase": "purchase"}


def parse(text: str) -> m.Journey:
    return parse_journey(load_yaml(text, "journeys/x.yaml"), "x", EVENTS)


def test_a_valid_journey_builds_the_graph() -> None:
    j = parse("""
entry: {event: $add_to_cart, where: {category: shoes}}
goal: $purchase
reentry: 7 days
steps:
  - wait: 1 hour
  - send: cart_reminder
""")
    assert isinstance(j.entry, m.EventEntry) and j.entry.event == "add_to_cart" and len(j.entry.where) == 1
    assert j.goal == "purchase" and j.reentry_ms == 7 * 86_400_000
    assert j.start == "step_1" and j.successors("step_1") == ["step_2"] and j.successors("step_2") == []


ERRORS = [
    # (description, yaml, expected line, text in message, text in hint)
    (
        "unknown step kind suggests the closest",
        "entry: {event: x}\nsteps:\n  - {sned: a}\n",
        3,
        "unknown step kind 'sned'",
        "send",
    ),
    ("unknown target step", "entry: {event: x}\nsteps:\n  - {id: a, send: t, next: b}\n", 3, "unknown step 'b'", "a"),
    ("missing steps", "entry: {event: x}\n", None, "needs `steps`", "example"),
    ("bad duration", "entry: {event: x}\nsteps:\n  - wait: soon\n", 3, "duration", None),
    ("bad local time", "entry: {event: x}\nsteps:\n  - wait: {until_local_time: '9am'}\n", 3, "local time", None),
    ("unknown entry", "entry: {evnt: x}\nsteps:\n  - send: t\n", 1, "unknown entry 'evnt'", "event"),
    (
        "duplicate ids",
        "entry: {event: x}\nsteps:\n  - {id: a, send: t}\n  - {id: a, send: u}\n",
        None,
        "two steps are named 'a'",
        None,
    ),
    (
        "loop without a wait",
        "entry: {event: x}\nsteps:\n  - {id: a, send: t}\n  - {id: b, send: u, next: a}\n",
        3,
        "loop with no wait",
        "add a wait",
    ),
    (
        "bad rule in a branch",
        "entry: {event: x}\nsteps:\n  - branch: {if: {trait: plan, equls: gold}}\n",
        3,
        "unknown",
        "equals",
    ),
    (
        "negative split weight",
        "entry: {event: x}\nsteps:\n  - split: {arms: [{name: A, weight: -1}]}\n",
        3,
        "weight must be a positive number",
        None,
    ),
]


@pytest.mark.parametrize(("desc", "text", "line", "message", "hint"), ERRORS, ids=[c[0] for c in ERRORS])
def test_errors_say_where_and_what_to_do(
    desc: str, text: str, line: int | None, message: str, hint: str | None
) -> None:
    with pytest.raises(ValidationError) as caught:
        parse(text)
    error = caught.value
    assert error.source == "journeys/x.yaml"
    assert message in error.message
    if line is not None:
        assert error.line == line
    if hint is not None:
        assert error.hint and hint in error.hint


def test_init_writes_preset_journeys_that_all_validate(workspace) -> None:  # type: ignore[no-untyped-def]
    from tailormail.journeys.definitions import load_journeys

    journeys = load_journeys(workspace)
    assert set(journeys) == {"cart_abandonment", "welcome_series", "birthday", "post_purchase_cross_sell", "win_back"}
    cart = journeys["cart_abandonment"]
    assert isinstance(cart.entry, m.EventEntry) and cart.goal == "purchase"
    wait = cart.nodes["wait_1h"]
    assert isinstance(wait, m.Wait) and wait.duration_ms == 3_600_000
    assert isinstance(journeys["birthday"].entry, m.DateEntry)
    split = journeys["win_back"].nodes["offer_test"]
    assert isinstance(split, m.Split) and split.holdout == 10
