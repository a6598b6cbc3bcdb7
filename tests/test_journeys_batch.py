"""Runs stepped together in one transaction decide as they would one at a time."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, select

from tailormail.clock import ManualClock
from tailormail.journeys import engine as e
from tailormail.journeys import model as m
from tailormail.journeys.runner import JourneyRunner
from tailormail.runtime import Runtime, journey_effects
from tailormail.store import journeys as q
from tailormail.store.schema_deliver import outbox
from test_journeys_runner import CART, RecordingEffects, load, pid, tick, track

NOW_TWICE = """
entry: {event: signed_up}
steps:
  - {id: hello, send: welcome}
"""


@dataclass
class BatchRecordingEffects(RecordingEffects):
    """Records each render batch the runner hands over (one per send node)."""

    batches: list[tuple[str, str, list[int]]] = field(default_factory=list)

    def send_many(
        self, conn: Connection, journey: m.Journey, items: list[tuple[dict[str, Any], e.SendEmail]], now_ms: int
    ) -> None:
        self.batches.append((journey.name, items[0][1].node, sorted(run["profile_id"] for run, _ in items)))
        for run, action in items:
            self.send(conn, journey, run, action, now_ms)


def test_timers_due_together_send_one_batch_per_node_and_branch_per_person(
    runtime: Runtime, clock: ManualClock
) -> None:
    effects = BatchRecordingEffects()
    runner = JourneyRunner(
        {"cart": load("cart", CART)}, effects, policy=e.SendPolicy(quiet_start="00:00", quiet_end="00:00")
    )
    runtime.ingestor.hooks.append(runner.on_events)
    users = ["ann", "bob", "cat", "dan"]
    for user in users:
        track(runtime, user, "add_to_cart")
    clock.advance(timedelta(hours=1, seconds=1))
    tick(runtime, runner)  # the workspace's own cart journey fires its timers too: not counted here
    ids = sorted(pid(runtime, u) for u in users)
    assert effects.batches == [("cart", "reminder", ids)]
    # Cat buys: the goal ends her run.  Bob's purchase is stored without the hook, so his run
    # goes on and the branch (no purchase in the last day) sends him to the exit.
    runtime.ingestor.hooks.remove(runner.on_events)
    track(runtime, "bob", "purchase", revenue=5)  # stored without the hook: the run goes on, the branch sees it
    runtime.ingestor.hooks.append(runner.on_events)
    track(runtime, "cat", "purchase", revenue=5)  # the goal
    clock.advance(timedelta(hours=23))
    tick(runtime, runner)
    assert effects.batches[1:] == [("cart", "recommend", sorted(pid(runtime, u) for u in ("ann", "dan")))]
    with runtime.store.read() as conn:
        bob = q.runs_of(conn, "cart", pid(runtime, "bob"))
        cat = q.runs_of(conn, "cart", pid(runtime, "cat"))
    assert [(r["status"], r["finish_reason"]) for r in bob] == [("done", "completed")]  # by the else: exit
    assert [(r["status"], r["finish_reason"]) for r in cat] == [("done", "goal")]


def test_the_frequency_cap_counts_an_email_decided_earlier_in_the_same_batch(
    runtime: Runtime, clock: ManualClock
) -> None:
    journeys = {"a": load("a", NOW_TWICE), "b": load("b", NOW_TWICE)}
    policy = e.SendPolicy(cap_count=1, quiet_start="00:00", quiet_end="00:00")
    runner = JourneyRunner(journeys, journey_effects(runtime.settings), policy=policy)
    runtime.ingestor.hooks.append(runner.on_events)
    now = clock.now().isoformat()
    runtime.ingestor.ingest_raw(
        [
            {"type": "identify", "userId": u, "traits": {"email": f"{u}@example.com"}, "timestamp": now}
            for u in ("ann", "bob")
        ]
        + [
            {"type": "track", "userId": u, "event": "signed_up", "timestamp": now, "messageId": f"s-{u}"}
            for u in ("ann", "bob")
        ]
    )
    with runtime.store.read() as conn:
        queued = conn.execute(select(outbox.c.journey, outbox.c.recipient).order_by(outbox.c.id)).all()
        skipped = [r["detail"] for r in q.log_of(conn, range(1, 10)) if r["action"] == "skipped"]
    assert sorted(queued) == [("a", "ann@example.com"), ("a", "bob@example.com")]
    assert skipped == [{"reason": "frequency cap"}] * 2
