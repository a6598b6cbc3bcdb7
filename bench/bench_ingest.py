"""Bulk ingestion: tailormail's bulk path beside plain sqlite3 executemany of the same rows.

Both sides write the same events of ``tailormail.simulate`` (identify, then
product_view, add_to_cart, checkout_started, purchase with order lines, per
customer) into the same events table (same indexes, same unique messageId,
same 64 MiB page cache) on a fresh SQLite file.  The baseline gets its rows
ready-made (JSON already encoded, profile ids known); tailormail starts from
validated messages and does identity resolution, dedupe, JSON encoding and
first/last-seen itself.  Target: >= 150,000 events/s and >= 1/3 of the baseline.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from tailormail.clock import to_ms
from tailormail.ingest.bulk import bulk_ingest
from tailormail.ingest.messages import Message
from tailormail.ingest.pipeline import event_values
from tailormail.simulate import Shop, ShopSpec
from tailormail.store import Store
from tailormail.store.dialect import BULK_CACHE_KIB

CUSTOMERS = 18_000  # about 22 messages each: some 400,000 events
END = datetime(2026, 3, 2, tzinfo=UTC)
NOW_MS = to_ms(END)


def shop_messages(customers: int = CUSTOMERS) -> list[Message]:
    """The simulated shop's messages (identify, then views, carts, checkouts, purchases per customer)."""
    return list(Shop(ShopSpec.ending(END, customers=customers, days=90, seed=7)).messages())


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
    rows = []
    for m in messages:
        row = event_values(m, profile_of[m.user_id or ""], NOW_MS)
        rows.append((*row[:5], json.dumps(row[5]), None if row[6] is None else json.dumps(row[6]), *row[7:]))
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


def main(customers: int = CUSTOMERS) -> dict[str, float]:
    messages = shop_messages(customers)
    events = len(messages)
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
    print(f"events: {events:,} (simulated shop, {customers:,} customers, 90 days)")
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
    main(int(sys.argv[1]) if len(sys.argv) > 1 else CUSTOMERS)
