"""Segments: full refresh beside hand-written SQL, and real time through the ingest path.

Batch: on the simulated shop (bench.fixtures), the compiled queries of the
three presets (cart_abandoners, active_buyers, engaged_browsers) plus the RFM
trait update, beside hand-written SQL for the same four on the same database
in the same run.  Target: at most 1.2x the hand-written time on SQLite.

Real time: batches of events for existing customers through the ingest path
with every preset active, beside the same ingest with no hooks.  Targets:
>= 20,000 events/s; p99 < 20 ms from commit to membership change (the change
commits in the same transaction as the event, so we report the whole ingest
call's p99: receipt to commit, membership included).

    python -m bench.bench_segments                      # 1,000,000 customers (builds once, ~10 min)
    BENCH_SEGMENTS_CUSTOMERS=50000 python -m bench.bench_segments
    BENCH_SEGMENTS_REALTIME=0 python -m bench.bench_segments   # batch and full refresh only

Both the full refresh (memberships, ``segment_*`` events, traits.rfm) and the
real-time part (its events, fresh message ids each run) write into the cached
fixture; BENCH_SEGMENTS_REALTIME=0 skips the latter.
"""

from __future__ import annotations

import os
import random
import time
import uuid
from datetime import timedelta
from typing import Any

from bench.fixtures import FIXTURE_END, shop_database, sqlite_url
from bench.machine import describe, percentile
from tailormail.clock import ManualClock, to_ms
from tailormail.config import DATABASE_FILE
from tailormail.ingest.pipeline import Ingestor
from tailormail.runtime import Runtime, open_runtime
from tailormail.segments.definitions import load_segments
from tailormail.segments.evaluate import matching_profiles
from tailormail.segments.service import SegmentService
from tailormail.store import segments as q

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


def real_time(
    rt: Runtime, clock: ManualClock, users: list[str], hooks: bool, batches: int, size: int
) -> dict[str, float]:
    """Events/s and per-call latency through Ingestor.ingest_raw, with or without the segment hook."""
    ingestor = rt.ingestor if hooks else Ingestor(rt.store, clock, [])
    rng = random.Random(11 if hooks else 12)
    run = uuid.uuid4().hex[:8]  # fresh message ids: a rerun must not be all duplicates
    kinds = ["product_view"] * 6 + ["add_to_cart"] * 3 + ["purchase"]
    latencies: list[float] = []
    started = time.perf_counter()
    for b in range(batches):
        clock.advance(timedelta(seconds=1))
        messages = [
            {"type": "track", "userId": rng.choice(users), "event": rng.choice(kinds),
             "messageId": f"rt-{run}-{b}-{i}", "properties": {"revenue": 20.0}}
            for i in range(size)
        ]  # fmt: skip
        t0 = time.perf_counter()
        ingestor.ingest_raw(messages)
        latencies.append((time.perf_counter() - t0) * 1000)
    elapsed = time.perf_counter() - started
    return {
        "events_per_s": batches * size / elapsed,
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
    }


def main() -> None:
    customers = int(os.environ.get("BENCH_SEGMENTS_CUSTOMERS", "1000000"))
    with_real_time = os.environ.get("BENCH_SEGMENTS_REALTIME", "1") != "0"
    print(describe())
    workspace = shop_database(customers)
    now = to_ms(FIXTURE_END)
    clock = ManualClock(FIXTURE_END)
    rt = open_runtime(workspace, database_url=sqlite_url(workspace), clock=clock)
    try:
        with rt.store.read() as conn:
            events = conn.exec_driver_sql("SELECT count(*) FROM events").scalar_one()
            users = [u for (u,) in conn.exec_driver_sql("SELECT user_id FROM profiles WHERE user_id IS NOT NULL")]
        size_mb = (workspace / DATABASE_FILE).stat().st_size / 2**20
        print(f"shop: {customers:,} customers, {events:,} events (SQLite, {size_mb:,.0f} MiB)")
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
        print(f"  load average after the batch part: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        wall, cpu = time.perf_counter(), time.process_time()
        full_refresh(rt, now)
        print(f"  full refresh of every preset (RFM, diffs, rechecks): {time.perf_counter() - wall:.2f} s "
              f"({time.process_time() - cpu:.2f} CPU-s)")  # fmt: skip
        if not with_real_time:
            return
        plain = real_time(rt, clock, users, hooks=False, batches=60, size=500)
        with_hooks = real_time(rt, clock, users, hooks=True, batches=60, size=500)
        for label, r in (("ingest, no hooks", plain), ("ingest + segments", with_hooks)):
            print(f"  {label:18} {r['events_per_s']:9,.0f} events/s  batch of 500: p50 {r['p50_ms']:.1f} ms, "
                  f"p99 {r['p99_ms']:.1f} ms")  # fmt: skip
        small = real_time(rt, clock, users, hooks=True, batches=200, size=10)
        print(f"  {'+ segments, 10/call':18} {small['events_per_s']:9,.0f} events/s  p50 {small['p50_ms']:.1f} ms, "
              f"p99 {small['p99_ms']:.1f} ms (receipt to commit, membership included; target p99 < 20 ms)")  # fmt: skip
        print(
            f"  real time keeps {with_hooks['events_per_s'] / plain['events_per_s']:.0%} of plain ingest's rate "
            "(target >= 20,000 events/s)"
        )
    finally:
        rt.close()


if __name__ == "__main__":
    main()
