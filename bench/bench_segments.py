"""Segments: full refresh beside hand-written SQL, and real time through the ingest path.

Batch: on the simulated shop (bench.fixtures), the compiled queries of the
three presets (cart_abandoners, active_buyers, engaged_browsers) plus the RFM
trait update, beside hand-written SQL for the same four on the same database
in the same run.  Target: at most 1.2x the hand-written time on SQLite.

Real time: a stream of events for existing customers (views, carts,
purchases, a few identify calls) through the workspace's real ingest path
(``Ingestor`` with every hook: catalog, journeys, segments, sync) with every
preset segment active, beside the same ingest with no hooks and beside a
hand-written floor (``bench.ingest_floor``: the four statements every stored
event needs, through the driver on the store's connection, no hooks): the
baseline measured in the same run that the batch half has in its
hand-written SQL.  Throughput in
back-to-back batches of 1,000; latency in an open loop (events arrive at a
steady rate, each call takes what has arrived) from an event's arrival to the
commit of its batch.  The membership change commits in the same transaction
as its event, so commit -> membership change is 0; arrival -> commit is the
stricter figure we report, with the segments hook's own share per batch.
Targets: >= 20,000 events/s; p99 < 20 ms.  After the stream the stored
members of every active segment are asserted equal to the batch query's.
The same stream also goes through group commit from 8 callers at once (the
HTTP API's path under load: transactions grow to what has queued), and one
more batch of 1,000 is mapped to the pages it writes, by table and index
(``bench.page_map``): a count that does not move with the VM's speed.  Beside
it, what writing those pages to the log would take at 20,000 events/s, given
the frame-sized write pairs this VM makes a second just then: a floor for the
committing thread, set by the pages a batch dirties and the VM's system calls.  The
share of the database the OS held in memory at the start is printed too.

    python -m bench.bench_segments                      # 1,000,000 customers (builds once, ~10 min)
    BENCH_SEGMENTS_CUSTOMERS=50000 python -m bench.bench_segments
    BENCH_SEGMENTS_ONLY=realtime BENCH_SEGMENTS_EVENTS=20000 ...   # one half; events per stream run
    BENCH_SEGMENTS_IDS=sequential ...                   # message ids in order, as up to session 8 (else UUIDs)

A fixture of up to 2 GiB is copied to a scratch folder first, so every run starts from the same shop
(used in place, a cached fixture grew with every run: the stream and the membership changes stay).
"""

from __future__ import annotations

import os
import random
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench.fixtures import FIXTURE_END, shop_database, sqlite_url
from bench.ingest_floor import floor_rows, run_floor
from bench.machine import (
    describe,
    frame_write_pairs_per_second,
    log_write_share,
    os_cached_share,
    percentile,
    thread_read_calls,
)
from bench.page_map import pages_written_by
from tailormail.clock import ManualClock, from_ms, to_ms
from tailormail.config import DATABASE_FILE
from tailormail.ingest.group import GroupCommit
from tailormail.ingest.pipeline import Ingestor
from tailormail.runtime import Runtime, open_runtime
from tailormail.segments.definitions import load_segments
from tailormail.segments.evaluate import matching_profiles
from tailormail.segments.realtime import Catalog, active_segments, apply_due_rechecks
from tailormail.segments.service import SegmentService
from tailormail.store import segments as q
from tailormail.store.dialect import BULK_CACHE_KIB
from tailormail.store.engine import sqlite_file

DAY = 86_400_000
PRESETS = ("cart_abandoners", "active_buyers", "engaged_browsers")

HAND_WRITTEN = {
    "active_buyers": (
        "SELECT DISTINCT profile_id FROM events WHERE event = 'purchase' AND ts > :now - 7 * 86400000 AND ts <= :now"
    ),
    "cart_abandoners": (
        "SELECT DISTINCT a.profile_id FROM events a WHERE a.event = 'add_to_cart'"
        " AND a.ts > :now - 7 * 86400000 AND a.ts <= :now - 86400000"
        " AND NOT EXISTS (SELECT 1 FROM events b WHERE b.profile_id = a.profile_id AND b.event = 'purchase'"
        " AND b.ts > a.ts AND b.ts <= :now)"
    ),
    "engaged_browsers": (
        "SELECT profile_id FROM events WHERE event = 'product_view' AND ts > :now - 7 * 86400000 AND ts <= :now"
        " GROUP BY profile_id HAVING count(*) >= 3"
        " EXCEPT SELECT profile_id FROM events WHERE event = 'purchase' AND ts > :now - 30 * 86400000 AND ts <= :now"
    ),
}
HAND_WRITTEN_RFM = """
UPDATE profiles SET traits = json_set(traits, '$.rfm', json_object(
    'r', t.r, 'f', t.f, 'm', t.m, 'score', t.r + t.f + t.m, 'code', t.r || t.f || t.m,
    'frequency', t.n, 'monetary', t.money, 'last_purchase', t.last_ts))
FROM (SELECT profile_id, n, money, last_ts,
        5 - CAST((1 - cume_dist() OVER (ORDER BY last_ts)) * 5 + 1e-9 AS INTEGER) AS r,
        5 - CAST((1 - cume_dist() OVER (ORDER BY n)) * 5 + 1e-9 AS INTEGER) AS f,
        5 - CAST((1 - cume_dist() OVER (ORDER BY money)) * 5 + 1e-9 AS INTEGER) AS m
      FROM (SELECT profile_id, max(ts) AS last_ts, count(*) AS n, coalesce(sum(revenue), 0.0) AS money
            FROM events WHERE event = 'purchase' AND ts <= :now GROUP BY profile_id)) AS t
WHERE profiles.id = t.profile_id
"""


def batch(rt: Runtime, now: int) -> dict[str, Any]:
    """Each preset's compiled query and RFM beside the hand-written SQL; best of 5 (RFM: 3) each.

    Times are the least wall-clock seconds of the repeats; ``*_cpu`` the least CPU-seconds,
    fairer on a shared machine.
    """
    segments = load_segments(rt.settings)
    ours: dict[str, float] = {}
    theirs: dict[str, float] = {}
    ours_cpu: dict[str, float] = {}
    theirs_cpu: dict[str, float] = {}
    sizes: dict[str, int] = {}
    with rt.store.read() as conn:
        for name in PRESETS:
            rule = segments[name].rule
            found = matching_profiles(conn, rule, now_ms=now)
            hand = {int(r[0]) for r in conn.exec_driver_sql(_positional(HAND_WRITTEN[name]), (now,) * _n(name))}
            assert found == hand, f"{name}: compiled and hand-written disagree ({len(found)} != {len(hand)})"
            sizes[name] = len(found)
            ours[name], ours_cpu[name] = _best_of(5, lambda rule=rule: matching_profiles(conn, rule, now_ms=now))
            sql = _positional(HAND_WRITTEN[name])
            theirs[name], theirs_cpu[name] = _best_of(
                5, lambda sql=sql, name=name: conn.exec_driver_sql(sql, (now,) * _n(name)).all()
            )
    ours["rfm"], ours_cpu["rfm"] = _best_of(
        3, lambda: _in_rollback(rt, lambda conn: q.write_rfm_traits(conn, "purchase", now))
    )
    theirs["rfm"], theirs_cpu["rfm"] = _best_of(
        3, lambda: _in_rollback(rt, lambda conn: conn.exec_driver_sql(HAND_WRITTEN_RFM.replace(":now", "?"), (now,)))
    )
    return {"ours": ours, "hand": theirs, "ours_cpu": ours_cpu, "hand_cpu": theirs_cpu, "sizes": sizes}


def _best_of(repeat: int, fn: Any) -> tuple[float, float]:
    """The least wall-clock and the least CPU time of ``repeat`` runs of ``fn`` (seconds)."""
    walls, cpus = [], []
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return min(walls), min(cpus)


def _positional(sql: str) -> str:
    return sql.replace(":now", "?")


def _n(name: str) -> int:
    return HAND_WRITTEN[name].count(":now")


def _in_rollback(rt: Runtime, fn: Any) -> None:
    with rt.store.engine.connect() as conn:
        tx = conn.begin()
        fn(conn)
        tx.rollback()


def full_refresh(rt: Runtime, now: int) -> float:
    """The whole `segments refresh` of every preset (RFM, diff written, rechecks scheduled)."""
    start = time.perf_counter()
    SegmentService(rt.store, rt.settings).refresh(None, now)
    return time.perf_counter() - start


REAL_TIME_KINDS = ["product_view"] * 58 + ["add_to_cart"] * 30 + ["purchase"] * 10 + ["identify"] * 2
"""The stream's mix: mostly views, some carts, a tenth purchases, a few identify calls that change a trait."""


@dataclass
class Stream:
    """What one run of the event stream measured."""

    events: int = 0
    batches: int = 0
    wall: float = 0.0
    cpu: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    hook_ms: list[float] = field(default_factory=list)
    hook_cpu: float = 0.0
    batch_sizes: list[int] = field(default_factory=list)
    read_calls: int | None = None
    """Read calls of the thread running the stream (ingest, and the rechecks it applies): SQLite cache misses."""

    @property
    def rate(self) -> float:
        """Events committed per second of wall clock."""
        return self.events / self.wall if self.wall else 0.0


class TimedHook:
    """Wraps the segments hook to measure its share of each transaction (wall and CPU)."""

    def __init__(self, hook: Any) -> None:
        self.hook = hook
        self.wall_ms: list[float] = []
        self.cpu = 0.0

    def __call__(self, conn: Any, stored: Any, now_ms: int) -> None:
        t0, c0 = time.perf_counter(), time.process_time()
        self.hook(conn, stored, now_ms)
        self.wall_ms.append((time.perf_counter() - t0) * 1000)
        self.cpu += time.process_time() - c0


def with_timed_hooks(rt: Runtime, clock: ManualClock) -> tuple[Ingestor, dict[str, TimedHook]]:
    """The workspace's real ingest path (every hook, in order) with each hook timed, by name."""
    timed: dict[str, TimedHook] = {}
    for hook in rt.ingestor.hooks:
        name = getattr(hook, "__name__", type(hook).__name__)
        timed[name if name not in timed else f"{name}#{len(timed)}"] = TimedHook(hook)
    assert "segments_hook" in timed, "the segments hook is not wired into the ingest path"
    return Ingestor(rt.store, clock, list(timed.values())), timed


def message(rng: random.Random, user: str, mid: str) -> dict[str, Any]:
    """One stream message for an existing customer."""
    kind = rng.choice(REAL_TIME_KINDS)
    if kind == "identify":
        return {"type": "identify", "userId": user, "messageId": mid, "traits": {"plan": rng.choice(["pro", "free"])}}
    props: dict[str, Any] = {"product_id": f"p{rng.randrange(500)}", "price": 20.0}
    if kind == "purchase":
        props["revenue"] = round(rng.uniform(10, 200), 2)
    return {"type": "track", "userId": user, "event": kind, "messageId": mid, "properties": props}


def stream_messages(seed: int, users: list[str], total: int) -> list[dict[str, Any]]:
    """``total`` stream messages from people drawn anew (``people_and_kinds``), each with a fresh message id.

    Segment's libraries send a random UUID as each message id, and so does
    this stream: each new id lands on a random page of the message-id index,
    as a real stream's would.  Up to session 8 the ids were sequential
    (``BENCH_SEGMENTS_IDS=sequential``), which wrote a few pages of that index
    a batch instead of one an event.  Either way fresh: a rerun must not be
    all duplicates.
    """
    rng = people_and_kinds(seed)
    if message_ids() == "sequential":
        run = uuid.uuid4().hex[:8]
        return [message(rng, rng.choice(users), f"rt-{run}-{i}") for i in range(total)]
    return [message(rng, rng.choice(users), str(uuid.uuid4())) for _ in range(total)]


def message_ids() -> str:
    """How this run makes message ids: ``random`` (the default) or ``sequential``."""
    return os.environ.get("BENCH_SEGMENTS_IDS", "random")


def people_and_kinds(seed: int) -> random.Random:
    """The random source that picks a stream's people and event kinds: the run's seed, new for every run.

    A fixture over 2 GiB is used in place, and a fixed seed picked the same
    people in every run: their carts of the run before were still inside the
    cart journey's 7 days before reentry, so later runs started almost no
    journey runs (one batch's page map: 1 page of the runs index instead of
    about 360).  Each run draws as many people from the same shop either way.
    """
    return random.Random(f"{seed}-{uuid.uuid4()}")


def stream(
    rt: Runtime,
    ingestor: Ingestor,
    clock: ManualClock,
    users: list[str],
    *,
    rate: float | None,
    total: int,
    max_batch: int,
    seed: int,
) -> Stream:
    """Feed ``total`` events through ``ingestor`` and time each one from arrival to the commit of its batch.

    ``rate``: events arrive at this steady rate (open loop) and each call takes
    everything that has arrived, up to ``max_batch``; None: back-to-back
    batches of ``max_batch`` (throughput).  The clock follows the wall clock so
    windows move as they would; the worker's rechecks run every half second in
    the same thread (as `serve` runs them), their time counted.
    """
    catalog = Catalog(rt.settings)
    base = clock.now()
    made = stream_messages(seed, users, total)  # the client's work, not ours: made before the clock starts
    sent = 0
    with timed(rt) as (out, started):
        next_recheck = started + 0.5
        while sent < total:
            now = time.perf_counter()
            if rate is None:
                arrived = min(total, sent + max_batch)
            else:
                arrived = min(total, int((now - started) * rate))
                if arrived <= sent:  # nothing waiting: sleep until the next arrival
                    time.sleep(max(0.0, started + (sent + 1) / rate - now))
                    continue
            take = min(arrived - sent, max_batch)
            clock.set(base + timedelta(seconds=now - started))
            ingestor.ingest_raw(made[sent : sent + take])
            done = time.perf_counter()
            for i in range(sent, sent + take):
                arrival = started + i / rate if rate is not None else now
                out.latencies_ms.append((done - arrival) * 1000)
            out.batch_sizes.append(take)
            sent += take
            if done >= next_recheck:
                apply_due_rechecks(rt.store, catalog, to_ms(clock.now()))
                next_recheck = done + 0.5
    out.events, out.batches = sent, len(out.batch_sizes)
    clock.set(base + timedelta(seconds=out.wall))
    return out


@contextmanager
def timed(rt: Runtime) -> Iterator[tuple[Stream, float]]:
    """Time a block as a stream's work: (its ``Stream``, the perf counter it started at).

    The log of what ran before is folded in first (not this block's work), and
    the log the block wrote is folded in before the clock stops (its work).
    Wall, CPU and the calling thread's read calls are filled in when the block
    ends; the read calls are taken before the closing checkpoint, which reads
    the log on this thread.
    """
    out = Stream()
    fold_log(rt)
    started, cpu0, reads0 = time.perf_counter(), time.process_time(), thread_read_calls()
    yield out, started
    reads = thread_read_calls()
    out.read_calls = None if reads is None or reads0 is None else reads - reads0
    fold_log(rt)
    out.wall = time.perf_counter() - started
    out.cpu = time.process_time() - cpu0


def fold_log(rt: Runtime) -> None:
    """Fold the write-ahead log into the database now (a checkpoint), where the workspace has a checkpointer."""
    if rt.store.checkpointer is not None:
        rt.store.checkpointer.checkpoint()


BATCH = 1000
"""Events per back-to-back batch: the throughput streams' and the page map's."""

TARGET_RATE = 20_000.0
"""Events a second #3 asks real time (every hook) to sustain."""

GROUP_PRODUCERS = 8
GROUP_BATCH = 500
"""The API's path under load: this many callers at once, each sending batches of this many events."""


def through_group_commit(
    rt: Runtime, ingestor: Ingestor, clock: ManualClock, users: list[str], *, total: int, seed: int
) -> Stream:
    """``total`` events through ``GroupCommit`` (what the HTTP API ingests with) from concurrent callers.

    Each caller validates its batch in its own thread, as a request handler
    does, and callers arriving while a transaction is under way share the next
    one (up to ``GROUP_MAX_EVENTS``); ``batch_sizes`` holds the size of every
    transaction.  The clock stays put: callers run at once, windows barely move.
    """
    made = stream_messages(seed, users, total)
    batches = iter([made[i : i + GROUP_BATCH] for i in range(0, total, GROUP_BATCH)])
    taking = threading.Lock()
    counted = CountingIngestor(rt.store, clock, ingestor.hooks)
    group = GroupCommit(counted)

    def caller() -> None:
        while True:
            with taking:
                batch = next(batches, None)
            if batch is None:
                return
            group.ingest_raw(batch)

    with timed(rt) as (out, _):
        threads = [threading.Thread(target=caller) for _ in range(GROUP_PRODUCERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    out.events, out.batches, out.batch_sizes = total, len(counted.sizes), counted.sizes
    return out


class CountingIngestor(Ingestor):
    """The same ingest, keeping the size of every transaction it stores."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sizes: list[int] = []

    def ingest(self, messages: Any, *, now_ms: int | None = None) -> Any:
        """Store one transaction's messages, counting them."""
        self.sizes.append(len(messages))
        return super().ingest(messages, now_ms=now_ms)


def check_real_time_agrees(rt: Runtime, clock: ManualClock) -> int:
    """After a stream: every active preset's stored members equal the batch query's (asserted); returns members."""
    now = to_ms(clock.now())
    catalog = Catalog(rt.settings)
    apply_due_rechecks(rt.store, catalog, now)
    total = 0
    with rt.store.read() as conn:
        for segment in active_segments(conn, catalog.segments()):
            batch = matching_profiles(conn, segment.rule, now_ms=now, settings=rt.settings)
            stored = q.current_members(conn, segment.name)
            assert batch == stored, f"{segment.name}: real time {len(stored)} members, batch {len(batch)}"
            total += len(stored)
    return total


def real_time(rt: Runtime, clock: ManualClock, users: list[str]) -> dict[str, Any]:
    """Plain ingest vs the real ingest path (every hook, every preset active): throughput, then latency.

    The same measures with the segments hook as the only hook show what
    segments cost on their own (journeys' hook is timed beside it).
    """
    total = int(os.environ.get("BENCH_SEGMENTS_EVENTS", "20000"))
    plain = Ingestor(rt.store, clock, [])
    full, hooks = with_timed_hooks(rt, clock)
    timed = hooks["segments_hook"]
    alone = Ingestor(rt.store, clock, [timed])
    out: dict[str, Any] = {}
    out["plain"] = stream(rt, plain, clock, users, rate=None, total=total, max_batch=BATCH, seed=1)
    out["floor"] = floor_stream(rt, clock, users, total)
    # Without hooks memberships fell behind: a full refresh makes every preset current (and active) again.
    out["refresh_s"] = full_refresh(rt, to_ms(clock.now()))
    out["full"] = stream(rt, full, clock, users, rate=None, total=total, max_batch=BATCH, seed=2)
    out["full_hook"] = (list(timed.wall_ms), timed.cpu)
    out["hooks_cpu"] = {name: hook.cpu for name, hook in hooks.items()}
    out["alone"] = stream(rt, alone, clock, users, rate=None, total=total, max_batch=BATCH, seed=4)
    out["group"] = through_group_commit(rt, full, clock, users, total=total, seed=6)
    # Latency at the target rate, then at rates this machine sustains (80 % of the throughputs above).
    runs = (
        ("at_target", full, TARGET_RATE),
        ("sustained", full, 0.8 * out["full"].rate),
        ("alone_sustained", alone, 0.8 * out["alone"].rate),
    )
    for label, ingestor, rate in runs:
        timed.wall_ms.clear()
        timed.cpu = 0.0
        # Five seconds of arrivals (at most ``total``): a run of a quarter second at the target
        # was mostly its own start and its closing checkpoint, and read as a lower committed rate.
        n = min(total, max(2000, int(rate * 5)))
        out[label] = stream(rt, ingestor, clock, users, rate=rate, total=n, max_batch=2000, seed=3)
        out[label + "_rate"] = rate
        out[label + "_hook"] = (list(timed.wall_ms), timed.cpu)
    out["members"] = check_real_time_agrees(rt, clock)
    out["pages"] = one_batch_pages(rt, full, clock, users)
    out["write_pairs"] = frame_write_pairs_per_second()  # now, beside the page map: the VM's speed drifts
    return out


def floor_stream(rt: Runtime, clock: ManualClock, users: list[str], total: int) -> Stream:
    """The hand-written floor (``bench.ingest_floor``) on a stream like the others, in batches of ``BATCH``.

    It runs before the full refresh: like the stream without hooks, it leaves
    memberships behind, and the refresh brings them up to date.
    """
    rows = floor_rows(stream_messages(7, users, total))
    with timed(rt) as (out, _):  # like the streams, its log is folded in before its clock stops
        out.events = run_floor(rt.store, rows, batch=BATCH, now_ms=to_ms(clock.now()))
    return out


def one_batch_pages(rt: Runtime, ingestor: Ingestor, clock: ManualClock, users: list[str]) -> Any:
    """The pages one back-to-back batch of 1,000 stream events dirties, by table or index."""
    made = stream_messages(5, users, BATCH)
    database = sqlite_file(rt.store.engine)
    assert database is not None, "the page map reads a SQLite file's log"
    clock.set(clock.now() + timedelta(seconds=0.05))
    return pages_written_by(Path(database), lambda: ingestor.ingest_raw(made))


def print_real_time(r: dict[str, Any]) -> None:
    """The real-time figures, ready for BENCHMARKS.md."""
    plain, full = r["plain"], r["full"]
    hook_ms, hook_cpu = r["full_hook"]
    print(f"  full refresh of every preset (RFM, diffs written, rechecks scheduled): {r['refresh_s']:.2f} s")
    print("  real time: the real ingest path (Ingestor with every hook: catalog, journeys, segments, sync;")
    print("  every preset active) beside the same ingest with no hooks, same database, same run;")
    print(f"  message ids: {message_ids()} (random: UUIDs, as Segment's libraries send)")
    for label, s in (("ingest, no hooks", plain), ("ingest, all hooks", full), ("ingest + segments only", r["alone"])):
        print(f"  {label:22} {s.rate:9,.0f} events/s wall, {s.events / s.cpu:9,.0f} per CPU-second "
              f"(batches of {BATCH:,}; {s.events:,} events)")  # fmt: skip
    print(f"  ratio all hooks / no hooks: {full.rate / plain.rate:.2f} wall, {(plain.cpu / full.cpu):.2f} CPU")
    floor = r["floor"]
    print(f"  hand-written floor (bench.ingest_floor: profiles by user id, dedup, insert, last seen; the store's "
          f"connection, no hooks): {floor.rate:,.0f} events/s wall, {floor.events / floor.cpu:,.0f} per CPU-second; "
          f"no hooks {plain.rate / floor.rate:.2f}x of it, all hooks {full.rate / floor.rate:.2f}x; "
          f"the target is {TARGET_RATE / floor.rate:.2f}x the floor")  # fmt: skip
    if full.read_calls is not None and plain.read_calls is not None:
        print(f"  pages read from the OS per batch of 1,000 (SQLite cache misses of the ingesting thread, "
              f"{BULK_CACHE_KIB // 1024} MiB cache): no hooks {plain.read_calls / plain.batches:,.0f}, "
              f"all hooks {full.read_calls / full.batches:,.0f}")  # fmt: skip
    group = r["group"]
    sizes = group.batch_sizes
    print(f"  all hooks through group commit (the API's ingest path; {GROUP_PRODUCERS} callers at once, batches of "
          f"{GROUP_BATCH}): {group.rate:,.0f} events/s wall, {group.events / group.cpu:,.0f} per CPU-second; "
          f"{len(sizes)} transactions of {min(sizes):,}-{max(sizes):,} events")  # fmt: skip
    per_event = hook_cpu / full.events * 1e6
    print(f"  segments hook alone: {per_event:,.0f} CPU-us per event = {full.events / hook_cpu:,.0f} events per "
          f"CPU-second; per batch of 1,000: p50 {percentile(hook_ms, 50):.1f} ms, "
          f"p99 {percentile(hook_ms, 99):.1f} ms")  # fmt: skip
    print("  every hook, CPU-us per event: " + ", ".join(
        f"{name} {cpu / full.events * 1e6:,.0f}" for name, cpu in r["hooks_cpu"].items()))  # fmt: skip
    for label in ("at_target", "sustained", "alone_sustained"):
        s, rate = r[label], r[label + "_rate"]
        hook_ms, _ = r[label + "_hook"]
        print("  segments hook only:" if label == "alone_sustained" else "  all hooks:", end="")
        print(f"  offered {rate:8,.0f} events/s: committed {s.rate:8,.0f}/s; arrival -> commit (membership "
              f"included) p50 {percentile(s.latencies_ms, 50):,.1f} ms, p99 {percentile(s.latencies_ms, 99):,.1f} ms;"
              f" batch p50 {percentile([float(b) for b in s.batch_sizes], 50):,.0f} events; segments hook per batch "
              f"p50 {percentile(hook_ms, 50):.1f} ms, p99 {percentile(hook_ms, 99):.1f} ms")  # fmt: skip
    print("  commit -> membership change: 0 ms (the change commits in the same transaction as its event);")
    print(f"  after the stream, stored members equal the batch query for every active segment ({r['members']:,})")
    pages = r["pages"]
    print(f"  pages one batch of 1,000 events (all hooks) writes: {sum(pages.values()):,}; by table or index: "
          + ", ".join(f"{name} {n:,}" for name, n in pages.most_common()))  # fmt: skip
    written, pairs = sum(pages.values()), r["write_pairs"]
    share = log_write_share(written, BATCH, TARGET_RATE, pairs)
    print(f"  at {TARGET_RATE:,.0f} events/s that is {written * TARGET_RATE / BATCH:,.0f} log frames a second, each "
          f"written with two calls on the committing thread; this VM made {pairs:,.0f} such pairs a second just "
          f"now: the log writes alone would take {share:.0%} of that thread")  # fmt: skip


def print_batch(rt: Runtime, now: int) -> None:
    """The batch figures: each compiled preset query and RFM beside hand-written SQL (wall and CPU)."""
    result = batch(rt, now)
    for name in (*PRESETS, "rfm"):
        o, h = result["ours"][name], result["hand"][name]
        oc, hc = result["ours_cpu"][name], result["hand_cpu"][name]
        size = result["sizes"].get(name, "")
        print(f"  {name:18} ours {o * 1000:8.1f} ms  hand-written {h * 1000:8.1f} ms  ratio {o / h:4.2f}  "
              f"(CPU {oc * 1000:8.1f} / {hc * 1000:8.1f} ms, {oc / max(hc, 1e-9):4.2f})  {size}")  # fmt: skip
    total_o, total_h = sum(result["ours"].values()), sum(result["hand"].values())
    cpu_o, cpu_h = sum(result["ours_cpu"].values()), sum(result["hand_cpu"].values())
    print(f"  {'all four':18} tailormail {total_o * 1000:8.1f} ms  hand-written {total_h * 1000:8.1f} ms  "
          f"ratio {total_o / total_h:4.2f} (CPU {cpu_o / cpu_h:4.2f}; target <= 1.2)")  # fmt: skip


def _size_mb(workspace: Path) -> float:
    return (workspace / DATABASE_FILE).stat().st_size / 2**20


COPY_LIMIT_BYTES = 2 * 2**30
"""Fixtures up to this size are benchmarked on a scratch copy, so every run starts from the same shop."""


def main() -> None:
    customers = int(os.environ.get("BENCH_SEGMENTS_CUSTOMERS", "1000000"))
    only = os.environ.get("BENCH_SEGMENTS_ONLY", "")  # "batch" or "realtime": one half
    cpu_start = time.process_time()
    print(describe())
    fixture = shop_database(customers)
    with tempfile.TemporaryDirectory(dir=fixture.parent) as scratch:
        run(fixture, Path(scratch), customers, only, cpu_start)


def run(fixture: Path, scratch: Path, customers: int, only: str, cpu_start: float) -> None:
    """Both halves (or ``only`` one) on the fixture, or on a copy of it in ``scratch`` when it is small enough.

    Real time writes its stream (and both halves their membership changes) into
    the database, so a cached fixture used in place grows from run to run and
    later runs measure a larger shop.
    """
    workspace = fixture
    if (fixture / DATABASE_FILE).stat().st_size <= COPY_LIMIT_BYTES:
        workspace = scratch / fixture.name
        shutil.copytree(fixture, workspace)
    else:
        limit = COPY_LIMIT_BYTES // 2**30
        print(f"  (the fixture is over {limit} GiB: used in place, and it keeps what this run writes)")
    now = to_ms(FIXTURE_END)
    clock = ManualClock(FIXTURE_END)
    rt = open_runtime(workspace, database_url=sqlite_url(workspace), clock=clock)
    try:
        with rt.store.read() as conn:
            events = conn.exec_driver_sql("SELECT count(*) FROM events").scalar_one()
            users = [u for (u,) in conn.exec_driver_sql("SELECT user_id FROM profiles WHERE user_id IS NOT NULL")]
        print(f"shop: {customers:,} customers, {events:,} events (SQLite, {_size_mb(workspace):,.0f} MB)")
        cached = os_cached_share(str(workspace / DATABASE_FILE))
        if cached is not None:  # the rest is read from disk: large runs are slower when this is low
            print(f"database held in the OS page cache at the start: {cached:.0%}")
        print(f"load average at the start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        if only in ("", "batch"):
            print_batch(rt, now)
        if only in ("", "realtime"):
            with rt.store.read() as conn:
                latest = conn.exec_driver_sql("SELECT max(ts) FROM events").scalar_one()
            clock.set(max(FIXTURE_END, from_ms(int(latest) + 1000)))  # after earlier runs' stream events
            print_real_time(real_time(rt, clock, users))
        print(f"  load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; "
              f"CPU-seconds of this process: {time.process_time() - cpu_start:.1f}")  # fmt: skip
    finally:
        rt.close()


if __name__ == "__main__":
    main()
