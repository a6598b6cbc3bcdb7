"""The journey runner on a real database with a manual clock: triggers, timers, goals."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, event, func, select

from tailormail.clock import ManualClock, to_ms
from tailormail.journeys import engine as e
from tailormail.journeys import model as m
from tailormail.journeys.parse import parse_journey
from tailormail.journeys.runner import EventIndex, JourneyRunner
from tailormail.journeys.service import fire_timers_while_due
from tailormail.runtime import Runtime
from tailormail.segments.yamlsource import load_yaml
from tailormail.store import journeys as q
from tailormail.store import profiles as profile_q
from tailormail.store.schema_journeys import journey_timers

EVENTS = {"add_to_cart": "add_to_cart", "purchase": "purchase"}

CART = """
entry: {event: $add_to_cart}
goal: $purchase
steps:
  - {id: wait_1h, wait: 1 hour}
  - {id: reminder, send: cart_reminder}
  - {id: wait_23h, wait: 23 hours}
  - id: check
    branch:
      if: {not: {event: $purchase, window: {last: 1 day}}}
      then: recommend
      else: exit
  - {id: recommend, send: recommendations}
"""

WATCH = """
entry: {event: signed_up}
steps:
  - {id: watch, wait_for: {event: $purchase, where: {revenue: {gt: 10}}, within: 2 days, then: thanks, else: nudge}}
  - {id: thanks, send: thanks, next: exit}
  - {id: nudge, update_profile: {nudged: true}}
"""


@dataclass
class RecordingEffects:
    """Stands in for content + outbox (built in their own packages) and records sends."""

    sent: list[tuple[str, int, str]] = field(default_factory=list)

    def send(self, conn: Connection, journey: m.Journey, run: dict[str, Any], action: e.SendEmail, now_ms: int) -> None:
        self.sent.append((journey.name, run["profile_id"], action.template))

    def webhook(
        self, conn: Connection, journey: m.Journey, run: dict[str, Any], action: e.CallWebhook, now_ms: int
    ) -> None:
        raise AssertionError("no webhooks in these journeys")


def load(name: str, text: str) -> m.Journey:
    return parse_journey(load_yaml(text, f"journeys/{name}.yaml"), name, EVENTS)


@pytest.fixture
def setup(runtime: Runtime) -> tuple[JourneyRunner, RecordingEffects]:
    effects = RecordingEffects()
    runner = JourneyRunner({"cart": load("cart", CART), "watch": load("watch", WATCH)}, effects)
    runtime.ingestor.hooks.append(runner.on_events)
    return runner, effects


SEQUENCE = iter(range(10**9))


def track(runtime: Runtime, user: str, event: str, **props: Any) -> None:
    now = runtime.clock.now().isoformat()
    mid = f"{user}-{event}-{next(SEQUENCE)}"
    runtime.ingestor.ingest_raw(
        [{"type": "track", "userId": user, "event": event, "timestamp": now, "messageId": mid, "properties": props}]
    )


def tick(runtime: Runtime, runner: JourneyRunner) -> int:
    with runtime.store.begin() as conn:
        return runner.fire_due_timers(conn, to_ms(runtime.clock.now()))


def advance(runtime: Runtime, clock: ManualClock, runner: JourneyRunner, **delta: float) -> None:
    clock.advance(timedelta(**delta))
    tick(runtime, runner)


def test_cart_abandonment_sends_after_an_hour_and_a_purchase_ends_the_run(
    runtime: Runtime, clock: ManualClock, setup: tuple[JourneyRunner, RecordingEffects]
) -> None:
    runner, effects = setup
    track(runtime, "ann", "add_to_cart", product_id="p1")
    track(runtime, "bob", "add_to_cart", product_id="p2")
    advance(runtime, clock, runner, minutes=30)
    track(runtime, "bob", "purchase", revenue=20)  # the goal: Bob's run ends
    advance(runtime, clock, runner, minutes=29)
    assert effects.sent == []
    advance(runtime, clock, runner, minutes=1)
    assert effects.sent == [("cart", pid(runtime, "ann"), "cart_reminder")]
    advance(runtime, clock, runner, hours=23)
    assert effects.sent[-1] == ("cart", pid(runtime, "ann"), "recommendations")
    with runtime.store.read() as conn:
        counts = q.node_counts(conn, "cart")
        totals = q.run_totals(conn, "cart")
    assert counts["reminder"] == (0, 1) and counts["recommend"] == (0, 1)
    assert totals == {"completed": 1, "goal": 1}


def test_a_person_enters_once_when_reentry_is_never(
    runtime: Runtime, clock: ManualClock, setup: tuple[JourneyRunner, RecordingEffects]
) -> None:
    runner, effects = setup
    track(runtime, "ann", "add_to_cart")
    advance(runtime, clock, runner, minutes=10)
    track(runtime, "ann", "add_to_cart")  # still running: no second run
    advance(runtime, clock, runner, hours=30)
    track(runtime, "ann", "add_to_cart")  # still running (waiting 23 hours): no second run
    advance(runtime, clock, runner, hours=40)  # past quiet hours (21:00-08:00 UTC), so the last send goes
    track(runtime, "ann", "add_to_cart")  # finished, but re-entry is never
    advance(runtime, clock, runner, hours=30)
    assert [s[2] for s in effects.sent] == ["cart_reminder", "recommendations"]


def test_wait_for_resumes_on_a_matching_event_or_times_out(
    runtime: Runtime, clock: ManualClock, setup: tuple[JourneyRunner, RecordingEffects]
) -> None:
    runner, effects = setup
    track(runtime, "cat", "signed_up")
    track(runtime, "dan", "signed_up")
    advance(runtime, clock, runner, hours=5)
    track(runtime, "cat", "purchase", revenue=5)  # filtered out: revenue must be > 10
    track(runtime, "cat", "purchase", revenue=50)
    assert effects.sent == [("watch", pid(runtime, "cat"), "thanks")]
    advance(runtime, clock, runner, hours=43)
    with runtime.store.read() as conn:
        dan = profile_q.traits_of(conn, [pid(runtime, "dan")])[pid(runtime, "dan")]
        cat = profile_q.traits_of(conn, [pid(runtime, "cat")])[pid(runtime, "cat")]
    assert dan == {"nudged": True} and cat == {}
    assert len(effects.sent) == 1


def test_a_paused_journey_holds_its_timers_until_resumed(
    runtime: Runtime, clock: ManualClock, setup: tuple[JourneyRunner, RecordingEffects]
) -> None:
    runner, effects = setup
    track(runtime, "eve", "add_to_cart")
    with runtime.store.begin() as conn:
        q.set_paused(conn, "cart", True, to_ms(clock.now()))
    advance(runtime, clock, runner, hours=2)
    assert effects.sent == []
    with runtime.store.begin() as conn:
        q.set_paused(conn, "cart", False, to_ms(clock.now()))
    tick(runtime, runner)
    assert effects.sent == [("cart", pid(runtime, "eve"), "cart_reminder")]


def pid(runtime: Runtime, user: str) -> int:
    with runtime.store.read() as conn:
        profile = profile_q.get_profile(conn, user_id=user)
    assert profile is not None
    return int(profile["id"])


def test_one_batch_decides_as_the_same_events_in_separate_batches_would(
    runtime: Runtime, clock: ManualClock, setup: tuple[JourneyRunner, RecordingEffects]
) -> None:
    """The hook reads a batch's runs once and writes at the end: later events of a person still see earlier ones."""
    runner, effects = setup
    now = clock.now().isoformat()
    calls = [
        ("ann", "add_to_cart", {}),
        ("ann", "purchase", {"revenue": 20}),  # the goal, in the same batch as the entry
        ("bob", "add_to_cart", {}),
        ("bob", "add_to_cart", {}),  # already running: no second run
        ("cat", "signed_up", {}),
        ("cat", "purchase", {"revenue": 50}),  # the awaited event resumes the run just started
    ]
    runtime.ingestor.ingest_raw(
        [
            {"type": "track", "userId": u, "event": ev, "timestamp": now, "messageId": f"batch-{i}", "properties": p}
            for i, (u, ev, p) in enumerate(calls)
        ]
    )
    assert effects.sent == [("watch", pid(runtime, "cat"), "thanks")]
    with runtime.store.read() as conn:
        ann = q.runs_of(conn, "cart", pid(runtime, "ann"))
        bob = q.runs_of(conn, "cart", pid(runtime, "bob"))
        log = [row["action"] for row in q.log_of(conn, [ann[0]["id"]])]
        pending = q.next_timer_due(conn, only_runs=[ann[0]["id"]])
    assert [(r["status"], r["finish_reason"]) for r in ann] == [("done", "goal")]
    assert pending is None  # the goal cancelled the wake-up the entry had scheduled
    assert log == ["entered", "finished"]
    assert [r["status"] for r in bob] == ["waiting"]
    advance(runtime, clock, runner, hours=1)
    assert effects.sent[1:] == [("cart", pid(runtime, "bob"), "cart_reminder")]


WATCH_EDITED = WATCH.replace("event: $purchase", "event: checkout_done")


def test_a_run_parked_before_its_journey_was_edited_resumes_on_the_event_it_waits_for(
    runtime: Runtime, setup: tuple[JourneyRunner, RecordingEffects]
) -> None:
    """The runner skips events no journey names, but a name a stored run still waits for counts too."""
    runner, effects = setup
    track(runtime, "cat", "signed_up")  # parked at `watch`, waiting for purchase
    edited = JourneyRunner({"watch": load("watch", WATCH_EDITED)}, effects)  # the file now waits for checkout_done
    runtime.ingestor.hooks[runtime.ingestor.hooks.index(runner.on_events)] = edited.on_events
    track(runtime, "cat", "purchase", revenue=50)
    assert effects.sent == [("watch", pid(runtime, "cat"), "thanks")]


def test_events_no_journey_reacts_to_read_no_journey_tables(
    runtime: Runtime, setup: tuple[JourneyRunner, RecordingEffects]
) -> None:
    runner, _ = setup
    track(runtime, "ann", "add_to_cart")  # the runner has read what stored runs wait for
    statements: list[str] = []

    def record(conn: Any, cursor: Any, sql: str, *_: Any) -> None:
        statements.append(sql)

    runtime.ingestor.hooks = [runner.on_events]
    event.listen(runtime.store.engine, "before_cursor_execute", record)
    try:
        track(runtime, "ann", "product_view")
    finally:
        event.remove(runtime.store.engine, "before_cursor_execute", record)
    assert statements and not [s for s in statements if "journey_" in s]
    track(runtime, "ann", "purchase")  # the goal still ends the run
    with runtime.store.read() as conn:
        assert [r["finish_reason"] for r in q.runs_of(conn, "cart", pid(runtime, "ann"))] == ["goal"]


@pytest.mark.parametrize(
    ("journeys", "names"),
    [
        ({"cart": CART}, {"add_to_cart", "purchase"}),  # entry and goal
        ({"watch": WATCH}, {"signed_up", "purchase"}),  # entry and the wait_for's event
        ({"watch": WATCH_EDITED, "cart": CART}, {"signed_up", "checkout_done", "add_to_cart", "purchase"}),
        ({}, set()),
    ],
)
def test_the_event_index_names_every_event_that_starts_ends_or_resumes_a_run(
    journeys: dict[str, str], names: set[str]
) -> None:
    index = EventIndex.of([load(name, text) for name, text in journeys.items()])
    assert index.names() == names


def test_an_entry_after_a_goal_in_the_same_batch_still_sees_the_last_entry(
    runtime: Runtime, setup: tuple[JourneyRunner, RecordingEffects]
) -> None:
    """The batch reads last entries only for people without a running run; one that ends in the batch is read then."""
    track(runtime, "ann", "add_to_cart")  # a cart run, still going at the next batch
    now = runtime.clock.now().isoformat()
    calls = [("ann", "purchase"), ("ann", "add_to_cart"), ("bob", "add_to_cart")]
    runtime.ingestor.ingest_raw(
        [
            {"type": "track", "userId": u, "event": ev, "timestamp": now, "messageId": f"again-{i}"}
            for i, (u, ev) in enumerate(calls)
        ]
    )
    with runtime.store.read() as conn:
        ann = q.runs_of(conn, "cart", pid(runtime, "ann"))
        bob = q.runs_of(conn, "cart", pid(runtime, "bob"))
    assert [r["finish_reason"] for r in ann] == ["goal"]  # re-entry is never: the second cart starts nothing
    assert len(bob) == 1


@pytest.mark.parametrize(
    ("budget_s", "one_round", "why"),
    [
        (60.0, True, "a round wakes batch after batch while timers are due"),
        (0.0, False, "a spent budget ends the round after its batch of 500; the next round goes on"),
    ],
)
def test_a_worker_round_wakes_every_due_timer_within_its_budget(
    runtime: Runtime,
    clock: ManualClock,
    setup: tuple[JourneyRunner, RecordingEffects],
    budget_s: float,
    one_round: bool,
    why: str,
) -> None:
    runner, effects = setup
    now = clock.now().isoformat()
    carts = [
        {"type": "track", "userId": f"u{i}", "event": "add_to_cart", "timestamp": now, "messageId": f"cart-{i}"}
        for i in range(1100)
    ]
    runtime.ingestor.ingest_raw(carts)  # the workspace's own cart journey parks these people too
    clock.advance(timedelta(hours=1, seconds=1))
    now_ms = to_ms(clock.now())
    due = (
        select(func.count())
        .select_from(journey_timers)
        .where(journey_timers.c.fired_at.is_(None), journey_timers.c.due_at <= now_ms)
    )
    with runtime.store.read() as conn:
        waiting = conn.execute(due).scalar_one()
    assert waiting >= 1100
    ticks = iter(range(10**6))  # the budget's clock moves one second per reading: no sleeps
    rounds = []
    while not rounds or rounds[-1]:
        rounds.append(
            fire_timers_while_due(runtime.store, runner, now_ms, budget_s=budget_s, clock=lambda: next(ticks))
        )
    with runtime.store.read() as conn:
        assert conn.execute(due).scalar_one() == 0, why
    assert sum(rounds) == waiting, why
    expected = [waiting] if one_round else [min(500, waiting - k) for k in range(0, waiting, 500)]
    assert rounds[:-1] == expected, why
    assert sorted(pid for _, pid, _ in effects.sent) == sorted({pid for _, pid, _ in effects.sent}), "each once"
    assert len(effects.sent) == 1100, why
