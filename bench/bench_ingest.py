"""Bulk ingestion: tailormail's bulk path beside plain sqlite3 executemany of the same rows.

Both sides write the same simulated-shop events (product_view, add_to_cart,
purchase with order lines) into the same events table (same indexes, same
unique messageId, same 64 MiB page cache) on a fresh SQLite file.  The baseline gets its rows
ready-made (JSON already encoded, profile ids known); tailormail starts from
validated messages and does identity resolution, dedupe, JSON encoding and
first/last-seen itself.  Target: >= 150,000 events/s and >= 1/3 of the baseline.
"""

from __future__ import annotations

import json
import random
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tailormail.ingest.bulk import bulk_ingest
from tailormail.ingest.messages import Message
from tailormail.store import Store
from tailormail.store.dialect import BULK_CACHE_KIB

EVENTS = 400_000
CUSTOMERS = 20_000
NOW_MS = 1_772_452_800_000  # 2026-03-02T12:00:00Z
CATEGORIES = ("shoes", "shirts", "bags", "hats", "socks", "jackets")


def shop_events(n: int, customers: int, seed: int = 7) -> list[Message]:
    """Sessions of views, some carts, fewer purchases, over 90 days."""
    rng = random.Random(seed)
    out: list[Message] = []
    start = NOW_MS - 90 * 86_400_000
    while len(out) < n:
        user = f"user-{rng.randrange(customers):07d}"
        ts = start + rng.randrange(90 * 86_400_000)
        for step in range(rng.randint(1, 8)):
            product = rng.randrange(2_000)
            price = round(5 + (product % 200) * 0.75, 2)
            props: dict[str, Any] = {
                "product_id": f"p{product:05d}",
                "category": CATEGORIES[product % len(CATEGORIES)],
                "price": price,
            }
            out.append(_message(len(out), user, "product_view", ts + step * 40_000, props))
            if rng.random() < 0.25:
                out.append(
                    _message(len(out), user, "add_to_cart", ts + step * 40_000 + 9_000, {**props, "quantity": 1})
                )
                if rng.random() < 0.3:
                    order = {"order_id": f"o{len(out)}", "revenue": price, "currency": "USD", "products": [props]}
                    out.append(_message(len(out), user, "purchase", ts + step * 40_000 + 60_000, order))
    return out[:n]


def _message(i: int, user: str, event: str, ts: int, props: dict[str, Any]) -> Message:
    return Message(
        type="track",
        message_id=f"m{i:09d}",
        user_id=user,
        anonymous_id=None,
        timestamp=ts,
        event=event,
        properties=props,
    )


def fresh_store(folder: Path, name: str) -> Store:
    store = Store(f"sqlite:///{folder / name}")
    store.migrate()
    return store


def run_tailormail(folder: Path, messages: list[Message]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of tailormail's bulk path."""
    store = fresh_store(folder, "tailormail.db")
    start, cpu = time.perf_counter(), time.process_time()
    result = bulk_ingest(store, messages, now_ms=NOW_MS)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    assert result.stored == len(messages), result
    store.close()
    return elapsed, cpu


def run_baseline(folder: Path, messages: list[Message]) -> tuple[float, float]:
    """Plain sqlite3: one executemany of prepared tuples in one transaction; (wall s, CPU s)."""
    store = fresh_store(folder, "baseline.db")
    store.close()
    users = sorted({m.user_id for m in messages if m.user_id})
    profile_of = {u: i + 1 for i, u in enumerate(users)}
    rows = [
        (
            m.message_id,
            profile_of[m.user_id or ""],
            None,
            m.type,
            m.event,
            json.dumps(m.properties),
            None,
            m.revenue,
            m.timestamp,
            NOW_MS,
        )
        for m in messages
    ]
    db = sqlite3.connect(folder / "baseline.db", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute(f"PRAGMA cache_size=-{BULK_CACHE_KIB}")  # the same page cache tailormail's bulk path uses
    start, cpu = time.perf_counter(), time.process_time()
    db.execute("BEGIN")
    db.executemany(
        "INSERT INTO events (message_id, profile_id, anonymous_id, type, event, properties, context, revenue, ts,"
        " received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    db.execute("COMMIT")
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    db.close()
    return elapsed, cpu


def main(events: int = EVENTS) -> dict[str, float]:
    messages = shop_events(events, CUSTOMERS)
    folder = Path(tempfile.mkdtemp(prefix="bench_ingest_"))
    try:
        baseline, baseline_cpu = run_baseline(folder, messages)
        ours, ours_cpu = run_tailormail(folder, messages)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    figures = {
        "events": float(events),
        "baseline_events_per_s": events / baseline,
        "tailormail_events_per_s": events / ours,
        "ratio": baseline / ours,
        "baseline_events_per_cpu_s": events / baseline_cpu,
        "tailormail_events_per_cpu_s": events / ours_cpu,
        "cpu_ratio": baseline_cpu / ours_cpu,
    }
    print(f"events: {events:,} ({CUSTOMERS:,} customers)")
    print("                           wall clock                 per CPU-second of this process")
    for name, key, wall, cpu in (
        ("plain sqlite3 executemany", "baseline", baseline, baseline_cpu),
        ("tailormail bulk_ingest", "tailormail", ours, ours_cpu),
    ):
        print(
            f"{name:<26} {figures[key + '_events_per_s']:>9,.0f} events/s ({wall:.2f} s)"
            f"   {figures[key + '_events_per_cpu_s']:>9,.0f} events/CPU-s ({cpu:.2f} s)"
        )
    print(f"ratio tailormail/baseline: {figures['ratio']:.2f} wall, {figures['cpu_ratio']:.2f} CPU")
    print("target: ratio >= 0.33 and >= 150,000 events/s")
    return figures


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else EVENTS)
