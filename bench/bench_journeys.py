"""Journeys: trigger-to-outbox latency through the real ingest path, and timers processed per second.

Latency: one ``add_to_cart`` event at a time for a random existing customer of
the simulated shop (bench.fixtures) through ``Ingestor.ingest_raw`` with every
hook of the workspace (catalog, journeys, real-time segments, sync), where a
journey sends ``cart_reminder`` at once.  The journey step renders the email
and writes it to the outbox in the ingest transaction, so the moment the call
returns is the moment the outbox row is committed: we time the call.
Baseline in the same run: the same ingest of an event no journey listens to.
Target: p99 < 100 ms at 1,000,000 profiles.

Ingest hook: the CPU the workspace's preset journeys add to ingest, per event:
a stream of existing customers' events (the segments benchmark's mix: 58 %
``product_view``, 30 % ``add_to_cart``, 10 % ``purchase``, 2 % ``identify``)
in batches of 1,000, each batch stored and then handed to the journeys hook in
one transaction; the store's own CPU per event beside it.

Timers: K runs parked on a one-hour wait; the clock moves past it and the
worker's ``fire_due_timers`` wakes them in batches of 500, each batch its own
transaction, (a) into a send step (render + outbox) and (b) into an exit.
Baseline in the same run: hand-written SQL that only claims the same number of
due timer rows and marks them fired.

    BENCH_JOURNEYS_CUSTOMERS=20000 python -m bench journeys     # default 1,000,000 (builds once, slow)

The benchmark writes to the cached fixture and deletes its journey runs,
timers, log and outbox rows at the end (the ingested events stay, as in the
segments benchmark).
"""

from __future__ import annotations

import dataclasses
import os
import random
import time
import uuid
from datetime import timedelta

from bench.bench_segments import message as stream_message  # the same real-time mix of events
from bench.fixtures import FIXTURE_END, shop_database, sqlite_url
from bench.machine import percentile
from tailormail.clock import ManualClock, to_ms
from tailormail.content.recommend.model import wait_for_training
from tailormail.ingest.messages import parse_message
from tailormail.ingest.pipeline import Ingestor
from tailormail.journeys.definitions import send_policy
from tailormail.journeys.parse import parse_journey
from tailormail.journeys.runner import JourneyRunner
from tailormail.journeys.service import forget_runners, install_runner, runner_for
from tailormail.runtime import Runtime, journey_effects, open_runtime
from tailormail.segments.definitions import event_settings
from tailormail.segments.yamlsource import load_yaml

JOURNEYS = {
    "bench_now": "entry: {event: add_to_cart}\nreentry: never\nsteps:\n  - {id: remind, send: cart_reminder}\n",
    "bench_wait_send": (
        "entry: {event: bench_never}\nsteps:\n  - {id: wait, wait: 1 hour}\n  - {id: remind, send: cart_reminder}\n"
    ),
    "bench_wait_exit": (
        "entry: {event: bench_never}\nsteps:\n  - {id: wait, wait: 1 hour}\n  - {id: done, exit: true}\n"
    ),
}
NOON = FIXTURE_END + timedelta(hours=12)
"""Outside quiet hours, so sends are decided at once."""


def runner_for_bench(rt: Runtime) -> JourneyRunner:
    """The bench journeys as the workspace's runner (the ingest hook picks it up)."""
    names = event_settings(rt.settings)
    journeys = {n: parse_journey(load_yaml(text, f"{n}.yaml"), n, names) for n, text in JOURNEYS.items()}
    # Quiet hours off: the shop's customers live in many timezones, and a person inside their quiet
    # hours gets a timer instead of an outbox row, which is not the path being timed.
    policy = dataclasses.replace(send_policy(rt.settings), quiet_start="00:00", quiet_end="00:00")
    runner = JourneyRunner(journeys, journey_effects(rt.settings), policy=policy, timezone=rt.settings.timezone)
    install_runner(rt.settings, runner)
    return runner


def latency(rt: Runtime, clock: ManualClock, users: list[str], event: str, n: int, seed: int) -> dict[str, float]:
    """Per-call wall time of ingesting one event (ms), and CPU-seconds per call."""
    rng = random.Random(seed)
    run = uuid.uuid4().hex[:8]
    chosen = rng.sample(users, n)  # distinct people: each starts a run (re-entry is never)
    walls: list[float] = []
    cpu = time.process_time()
    for i, user in enumerate(chosen):
        clock.advance(timedelta(milliseconds=50))
        message = {
            "type": "track", "userId": user, "event": event, "messageId": f"bj-{run}-{i}",
            "timestamp": clock.now().isoformat(),
            "properties": {"product_id": "p1", "name": "Trail Shoe", "price": 89.0, "quantity": 1},
        }  # fmt: skip
        t0 = time.perf_counter()
        rt.ingestor.ingest_raw([message])
        walls.append((time.perf_counter() - t0) * 1000)
    return {
        "p50": percentile(walls, 50),
        "p99": percentile(walls, 99),
        "cpu_ms": (time.process_time() - cpu) * 1000 / n,
    }


def hook_cost(rt: Runtime, clock: ManualClock, users: list[str], total: int, seed: int) -> dict[str, float]:
    """CPU-µs per event of storing a batch and of the preset journeys' hook on it, batches of 1,000."""
    forget_runners()
    runner = runner_for(rt.settings, lambda: journey_effects(rt.settings))  # the workspace's preset journeys
    store_only = Ingestor(rt.store, clock, [])
    rng = random.Random(seed)
    run = uuid.uuid4().hex[:8]
    store_cpu = hook_cpu = 0.0
    events = 0
    for start in range(0, total, 1000):
        clock.advance(timedelta(seconds=1))
        now_ms = to_ms(clock.now())
        raws = [stream_message(rng, rng.choice(users), f"bh-{run}-{start + i}") for i in range(1000)]
        messages = [parse_message(raw, index=i, received_ms=now_ms) for i, raw in enumerate(raws)]
        with rt.store.begin() as conn:
            c0 = time.process_time()
            stored = store_only.ingest_in(conn, messages, now_ms).events
            c1 = time.process_time()
            runner.on_events(conn, stored, now_ms)
            c2 = time.process_time()
        store_cpu, hook_cpu, events = store_cpu + c1 - c0, hook_cpu + c2 - c1, events + len(stored)
    forget_runners()
    return {"events": events, "store_us": store_cpu / events * 1e6, "hook_us": hook_cpu / events * 1e6}


def park(rt: Runtime, runner: JourneyRunner, journey: str, profile_ids: list[int], now_ms: int) -> None:
    """Start a run per person, each parked on its one-hour wait."""
    for start in range(0, len(profile_ids), 1000):
        with rt.store.begin() as conn:
            trigger = {"products": [{"name": "Trail Shoe"}]}
            runner.enter_many(conn, runner.journeys[journey], profile_ids[start : start + 1000], trigger, now_ms)


def fire_all(rt: Runtime, runner: JourneyRunner, now_ms: int) -> tuple[int, float, float]:
    """Fire every due timer in batches of 500; return (fired, wall s, CPU s)."""
    fired, t0, c0 = 0, time.perf_counter(), time.process_time()
    while True:
        with rt.store.begin() as conn:
            n = runner.fire_due_timers(conn, now_ms, limit=500)
        fired += n
        if n == 0:
            return fired, time.perf_counter() - t0, time.process_time() - c0


def hand_written_claims(rt: Runtime, profile_ids: list[int], due_ms: int, now_ms: int) -> float:
    """Baseline: insert the same number of due timers, then claim and mark them fired in batches of 500."""
    with rt.store.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO journey_timers (run_id, profile_id, due_at, resume, kind) VALUES (?, ?, ?, NULL, 'wake')",
            [(-1, pid, due_ms) for pid in profile_ids],
        )
    t0 = time.perf_counter()
    while True:
        with rt.store.begin() as conn:
            ids = [
                r[0]
                for r in conn.exec_driver_sql(
                    "SELECT id FROM journey_timers WHERE fired_at IS NULL AND due_at <= ?"
                    " ORDER BY due_at, id LIMIT 500",
                    (now_ms,),
                )
            ]
            if not ids:
                return time.perf_counter() - t0
            conn.exec_driver_sql(
                f"UPDATE journey_timers SET fired_at = ? WHERE id IN ({','.join('?' * len(ids))})", (now_ms, *ids)
            )


def clean_up(rt: Runtime, marks: dict[str, int]) -> None:
    """Delete what the benchmark added to the fixture (beyond the ids it started with)."""
    with rt.store.begin() as conn:
        for table, mark in marks.items():
            key = "outbox_id" if table == "outbox_bodies" else "id"
            conn.exec_driver_sql(f"DELETE FROM {table} WHERE {key} > ?", (mark,))


def main() -> None:
    customers = int(os.environ.get("BENCH_JOURNEYS_CUSTOMERS", "1000000"))
    samples = int(os.environ.get("BENCH_JOURNEYS_SAMPLES", "300"))
    parked = int(os.environ.get("BENCH_JOURNEYS_TIMERS", "5000"))
    hook_events = int(os.environ.get("BENCH_JOURNEYS_HOOK_EVENTS", "10000"))
    workspace = shop_database(customers)
    clock = ManualClock(NOON)
    forget_runners()
    rt = open_runtime(workspace, database_url=sqlite_url(workspace), clock=clock)
    tables = ("journey_runs", "journey_timers", "journey_log", "outbox", "outbox_bodies", "render_failures")
    with rt.store.read() as conn:
        marks = {
            t: int(conn.exec_driver_sql(f"SELECT coalesce(max({'outbox_id' if t == 'outbox_bodies' else 'id'}), 0) FROM {t}").scalar_one())  # noqa: E501
            for t in tables
        }  # fmt: skip
        users = [u for (u,) in conn.exec_driver_sql("SELECT user_id FROM profiles WHERE user_id IS NOT NULL")]
        ids = [i for (i,) in conn.exec_driver_sql("SELECT id FROM profiles")]
        events = conn.exec_driver_sql("SELECT count(*) FROM events").scalar_one()
    print(f"shop: {customers:,} customers, {len(ids):,} profiles, {events:,} events (SQLite); load {os.getloadavg()}")
    try:
        cost = min(
            (hook_cost(rt, clock, users, hook_events, seed) for seed in (11, 12, 13)), key=lambda c: c["hook_us"]
        )
        print(f"  ingest hook of the preset journeys ({cost['events']:,.0f} events in batches of 1,000, best of 3):")
        print(f"    store {cost['store_us']:,.0f} CPU-us/event, journeys hook {cost['hook_us']:,.0f} CPU-us/event "
              f"({cost['hook_us'] / cost['store_us']:.0%} of the store's)")  # fmt: skip
        clean_up(rt, {t: marks[t] for t in tables if t.startswith("journey_")})  # their timers must not fire below
        runner = runner_for_bench(rt)
        latency(rt, clock, users, "add_to_cart", 20, 1)  # warm: template compile, caches
        # A large shop's first recommendation model trains in the background (sends meanwhile carry none):
        # the timed sends must be the ones with recommendations.
        wait_for_training()
        base = latency(rt, clock, users, "bench_nothing_listens", samples, 2)
        ours = latency(rt, clock, users, "add_to_cart", samples, 3)
        with rt.store.read() as conn:
            queued = conn.exec_driver_sql("SELECT count(*) FROM outbox WHERE id > ?", (marks["outbox"],)).scalar_one()
        print(f"  trigger -> outbox ({samples} events, one per call; {queued} emails queued):")
        print(f"    ingest, no journey listens:  p50 {base['p50']:6.1f} ms  p99 {base['p99']:6.1f} ms  "
              f"{base['cpu_ms']:.1f} CPU-ms/event")  # fmt: skip
        print(f"    ingest + journey send:       p50 {ours['p50']:6.1f} ms  p99 {ours['p99']:6.1f} ms  "
              f"{ours['cpu_ms']:.1f} CPU-ms/event  (target p99 < 100 ms)")  # fmt: skip
        print(f"    ratio of p99s: {ours['p99'] / base['p99']:.2f}x the plain ingest")
        rng = random.Random(5)
        parked = min(parked, len(ids) // 3)  # three groups of different people (a small shop has fewer)
        people = rng.sample(ids, 3 * parked)
        now_ms = to_ms(clock.now())
        later = now_ms + 3_600_001
        results = {}
        for k, journey in enumerate(("bench_wait_send", "bench_wait_exit")):
            park(rt, runner, journey, people[k * parked : (k + 1) * parked], now_ms)
            results[journey] = fire_all(rt, runner, later)
        hand = hand_written_claims(rt, people[2 * parked : 3 * parked], now_ms + 3_600_000, later)
        print(f"  timers ({parked:,} due, batches of 500):")
        print(f"    hand-written claim + mark fired: {parked / hand:9,.0f} timers/s")
        for journey, (fired, wall, cpu) in results.items():
            label = "wake -> send (render, outbox)" if journey == "bench_wait_send" else "wake -> exit"
            print(f"    {label:31}  {fired / wall:9,.0f} timers/s  ({fired:,} fired in {wall:.2f} s, {cpu:.2f} CPU-s; "
                  f"{(fired / wall) / (parked / hand):.2%} of the hand-written rate)")  # fmt: skip
        print(f"  load average after: {os.getloadavg()}")
    finally:
        forget_runners()
        clean_up(rt, marks)
        rt.close()


if __name__ == "__main__":
    main()
