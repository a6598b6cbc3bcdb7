"""The pure journey step: table-driven cases on a parsed journey and plain facts."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from tailormail.clock import to_ms
from tailormail.journeys import engine as e
from tailormail.journeys.parse import parse_journey
from tailormail.segments import rules as r
from tailormail.segments.yamlsource import load_yaml

EVENTS = {"add_to_cart": "add_to_cart", "purchase": "purchase", "product_view": "product_view"}
NOON = to_ms(datetime(2026, 3, 2, 12, 0, tzinfo=UTC))
HOUR = 3_600_000

CART = """
kind: marketing
entry: {event: $add_to_cart}
goal: $purchase
steps:
  - {id: wait_1h, wait: 1 hour}
  - {id: reminder, send: cart_reminder}
  - {id: wait_23h, wait: 23 hours}
  - id: still_no_purchase
    branch:
      if: {not: {event: $purchase, window: {last: 1 day}}}
      then: recommend
      else: exit
  - {id: recommend, send: {template: recommendations, subject_variants: ["A", "B"]}}
"""


@dataclass
class PlainFacts:
    """Answers a step's questions from fixed values (the runner answers from the store)."""

    rule_holds: bool = True
    tz: str = "UTC"
    sent_recently: int = 0
    is_suppressed: bool = False
    traits: dict[tuple[str, ...], Any] = field(default_factory=dict)

    def holds(self, rule: r.Condition) -> bool:
        return self.rule_holds

    def timezone(self) -> str:
        return self.tz

    def trait(self, path: tuple[str, ...]) -> Any:
        return self.traits.get(path)

    def marketing_sent_since(self, since_ms: int) -> int:
        return self.sent_recently

    def suppressed(self) -> bool:
        return self.is_suppressed


def journey(text: str = CART):  # type: ignore[no-untyped-def]
    return parse_journey(load_yaml(text, "journeys/test.yaml"), "test", EVENTS)


def kinds(step: e.Step) -> list[str]:
    return [type(a).__name__ for a in step.actions]


CASES = [
    # (description, start node, facts, now, expected action kinds, parked at)
    ("entry waits an hour", "wait_1h", PlainFacts(), NOON, ["Sleep"], "wait_1h"),
    (
        "after the hour it sends, then waits 23 hours",
        "reminder",
        PlainFacts(),
        NOON,
        ["Passed", "SendEmail", "Sleep"],
        "wait_23h",
    ),
    (
        "still no purchase: recommendations, then the end",
        "still_no_purchase",
        PlainFacts(rule_holds=True),
        NOON,
        ["Passed", "Passed", "SendEmail", "Finished"],
        None,
    ),
    (
        "bought meanwhile: the run ends without a send",
        "still_no_purchase",
        PlainFacts(rule_holds=False),
        NOON,
        ["Passed", "Finished"],
        None,
    ),
    (
        "quiet hours in the person's timezone defer the send",
        "reminder",
        PlainFacts(tz="Asia/Tokyo"),
        NOON,
        ["Sleep"],
        "reminder",
    ),
    (
        "frequency cap skips the send and goes on",
        "reminder",
        PlainFacts(sent_recently=3),
        NOON,
        ["Passed", "Skipped", "Sleep"],
        "wait_23h",
    ),
    (
        "suppressed people get nothing",
        "reminder",
        PlainFacts(is_suppressed=True),
        NOON,
        ["Passed", "Skipped", "Sleep"],
        "wait_23h",
    ),
]


@pytest.mark.parametrize(("desc", "start", "facts", "now", "expected", "parked"), CASES, ids=[c[0] for c in CASES])
def test_step(desc: str, start: str, facts: PlainFacts, now: int, expected: list[str], parked: str | None) -> None:
    result = e.step(journey(), 7, 42, start, now, facts, e.SendPolicy())
    assert kinds(result) == expected
    assert result.position == parked and result.finished == (parked is None)


def test_waits_sleep_until_the_right_moment() -> None:
    first = e.step(journey(), 1, 1, "wait_1h", NOON, PlainFacts(), e.SendPolicy())
    sleep = first.actions[0]
    assert isinstance(sleep, e.Sleep) and sleep.due_ms == NOON + HOUR and sleep.resume == "reminder"


def test_quiet_hours_end_at_eight_local() -> None:
    # Noon UTC is 21:00 in Tokyo: quiet until 08:00 Tokyo = 23:00 UTC.
    result = e.step(journey(), 1, 1, "reminder", NOON, PlainFacts(tz="Asia/Tokyo"), e.SendPolicy())
    sleep = result.actions[0]
    assert isinstance(sleep, e.Sleep) and sleep.due_ms == NOON + 11 * HOUR and sleep.resume == "reminder"


def test_transactional_mail_ignores_cap_and_quiet_hours() -> None:
    text = CART.replace("kind: marketing", "kind: transactional")
    result = e.step(journey(text), 1, 1, "reminder", NOON, PlainFacts(tz="Asia/Tokyo", sent_recently=9), e.SendPolicy())
    assert kinds(result) == ["Passed", "SendEmail", "Sleep"]


def test_idempotency_keys_name_journey_run_node_and_attempt() -> None:
    result = e.step(journey(), 7, 42, "reminder", NOON, PlainFacts(), e.SendPolicy(), attempt=2)
    send = next(a for a in result.actions if isinstance(a, e.SendEmail))
    assert send.key == "test:7:reminder:2"
    again = e.step(journey(), 7, 42, "reminder", NOON, PlainFacts(), e.SendPolicy(), attempt=2)
    assert again.actions == result.actions


SPLIT = """
entry: {event: $add_to_cart}
steps:
  - id: ab
    split:
      arms: [{name: A, weight: 45, next: a}, {name: B, weight: 45, next: b}]
      holdout: 10
  - {id: a, send: static, next: exit}
  - {id: b, send: dynamic, next: exit}
"""


def test_split_is_deterministic_per_person_and_follows_the_weights() -> None:
    j = journey(SPLIT)
    arms: Counter[str] = Counter()
    for pid in range(20_000):
        first = e.step(j, pid, pid, "ab", NOON, PlainFacts(), e.SendPolicy())
        again = e.step(j, pid + 99, pid, "ab", NOON, PlainFacts(), e.SendPolicy())
        assigned = next(a for a in first.actions if isinstance(a, e.Assigned)).arm
        assert assigned == next(a for a in again.actions if isinstance(a, e.Assigned)).arm
        arms[assigned] += 1
        sends = [a for a in first.actions if isinstance(a, e.SendEmail)]
        assert (assigned == "holdout") == (sends == [])
    assert arms["A"] / 20_000 == pytest.approx(0.45, abs=0.015)
    assert arms["holdout"] / 20_000 == pytest.approx(0.10, abs=0.01)


def test_wait_until_local_time_and_until_a_date_trait() -> None:
    text = """
entry: {event: $add_to_cart}
steps:
  - {id: morning, wait: {until_local_time: "09:00"}}
  - {id: renewal, wait: {until_trait: renews_at}}
  - {id: mail, send: renewal}
"""
    j = journey(text)
    ny = PlainFacts(tz="America/New_York", traits={("renews_at",): "2026-03-10T09:00:00+00:00"})
    morning = e.step(j, 1, 1, "morning", NOON, ny, e.SendPolicy()).actions[0]
    # Noon UTC = 07:00 in New York: 09:00 local is two hours later.
    assert isinstance(morning, e.Sleep) and morning.due_ms == NOON + 2 * HOUR
    renewal = e.step(j, 1, 1, "renewal", NOON, ny, e.SendPolicy()).actions[0]
    assert isinstance(renewal, e.Sleep) and renewal.due_ms == to_ms(datetime(2026, 3, 10, 9, tzinfo=UTC))
    past = PlainFacts(traits={("renews_at",): "2020-01-01"})
    assert kinds(e.step(j, 1, 1, "renewal", NOON, past, e.SendPolicy())) == [
        "Passed",
        "Passed",
        "SendEmail",
        "Finished",
    ]


def test_wait_for_parks_with_both_outcomes() -> None:
    text = """
entry: {event: $add_to_cart}
steps:
  - {id: watch, wait_for: {event: $purchase, within: 2 days, then: thanks, else: nudge}}
  - {id: thanks, send: thanks, next: exit}
  - {id: nudge, send: nudge}
"""
    await_event = e.step(journey(text), 1, 1, "watch", NOON, PlainFacts(), e.SendPolicy()).actions[0]
    assert isinstance(await_event, e.AwaitEvent)
    assert (await_event.event, await_event.on_event, await_event.on_timeout) == ("purchase", "thanks", "nudge")
    assert await_event.timeout_ms == NOON + 48 * HOUR
