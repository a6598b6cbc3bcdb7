"""HTTP ingestion: POST /v1/batch with 100-message batches from a separate process.

Baseline in the same run: plain sqlite3 executemany of the same rows into the
same events table (what the database alone can take).  Target: >= 10,000 events/s.

The server is `tailormail serve` on a fresh workspace with its preset journeys
and segments.  BENCH_HTTP_SEGMENTS=on (default): segments are refreshed before
the load starts, so the real-time segments hook works on every batch, and the
worker runs beside the API as it does by default.  =off: no refresh and
``--no-with-worker``, so the segments hook has nothing active to update.

BENCH_HTTP_DATABASE_URL=postgresql://...: the server stores into a new,
empty schema of that PostgreSQL database (dropped afterwards) instead of the
workspace's SQLite file; the baseline stays SQLite's.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text

from bench.machine import best_of, percentile
from tailormail.clock import to_ms
from tailormail.runtime import open_runtime
from tailormail.store import keys
from tailormail.workspace import init_workspace

BATCHES = 400
BATCH_SIZE = 100
CLIENT_THREADS = 4


def raw_baseline(rows: int) -> float:
    """Events/s of plain sqlite3 executemany into a fresh copy of our events table."""
    sys.path.insert(0, str(Path(__file__).parent))
    from http_client import batch

    messages = [m for b in range(rows // BATCH_SIZE) for m in batch(b * BATCH_SIZE, BATCH_SIZE)["batch"]]  # type: ignore[union-attr]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "ws"
        init_workspace(root)
        open_runtime(root).close()  # create the schema
        db = sqlite3.connect(root / "tailormail.db", isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        params = [
            (m["messageId"], i % 5000 + 1, "track", m["event"], json.dumps(m["properties"]), None, 0, 0)
            for i, m in enumerate(messages)
        ]

        def insert() -> None:
            db.execute("DELETE FROM events")
            db.execute("BEGIN")
            for start in range(0, len(params), BATCH_SIZE):  # one transaction per batch, as the API commits
                db.executemany(
                    "INSERT INTO events (message_id, profile_id, type, event, properties, revenue, ts, received_at)"
                    " VALUES (?,?,?,?,?,?,?,?)",
                    params[start : start + BATCH_SIZE],
                )
                db.execute("COMMIT")
                db.execute("BEGIN")
            db.execute("COMMIT")

        seconds = best_of(3, insert)
        db.close()
    return len(params) / seconds


def server_cpu_seconds() -> float | None:
    """CPU seconds used so far by our `tailormail serve` child (Linux /proc; None elsewhere)."""
    try:
        children = " ".join(
            Path(f"/proc/self/task/{tid}/children").read_text() for tid in os.listdir("/proc/self/task")
        ).split()
        for pid in children:
            if b"serve" in Path(f"/proc/{pid}/cmdline").read_bytes():
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime
    except OSError:
        return None
    return None


@contextmanager
def database(url: str | None) -> Iterator[str | None]:
    """None (the workspace's SQLite file), or the URL of a new empty schema in ``url``'s PostgreSQL, dropped after."""
    if not url:
        yield None
        return
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    schema = "bench_" + uuid.uuid4().hex[:12]  # our own name: no outside text reaches the SQL
    with engine.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"
    finally:
        with engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


def main() -> None:
    segments = os.environ.get("BENCH_HTTP_SEGMENTS", "on") != "off"
    with tempfile.TemporaryDirectory() as tmp, database(os.environ.get("BENCH_HTTP_DATABASE_URL")) as url:
        root = Path(tmp) / "ws"
        init_workspace(root)
        rt = open_runtime(root, database_url=url)
        with rt.store.begin() as conn:
            _, key = keys.create_key(conn, "write", "bench", to_ms(rt.clock.now()))
        if segments:
            from tailormail.segments.realtime import Catalog, sync_definitions

            sync_definitions(rt.store, Catalog(rt.settings), to_ms(rt.clock.now()))
        rt.close()
        sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))
        from live import served

        env = {k: v for k, v in os.environ.items() if k != "TAILORMAIL_DATABASE_URL"}
        if url:
            env["TAILORMAIL_DATABASE_URL"] = url
        args = () if segments else ("--no-with-worker",)
        with served(root, env=env, ready_within=120.0, args=args) as base:  # a busy machine starts slowly
            cpu_before = server_cpu_seconds()
            out = subprocess.run(
                [
                    sys.executable,
                    str(Path(__file__).parent / "http_client.py"),
                    base,
                    key,
                    str(BATCHES),
                    str(BATCH_SIZE),
                    str(CLIENT_THREADS),
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            cpu_after = server_cpu_seconds()
        load = os.getloadavg()[0]
        result = json.loads(out.stdout)
    events = BATCHES * BATCH_SIZE
    rate = events / result["seconds"]
    lat = result["latencies"]
    baseline = raw_baseline(events)
    print(f"HTTP /v1/batch: {events} events in {BATCHES} batches of {BATCH_SIZE}, {CLIENT_THREADS} client threads")
    print(f"  segments hook: {'on (segments refreshed, worker running)' if segments else 'off (no worker)'}")
    print(f"  store: {'PostgreSQL, a new empty schema' if os.environ.get('BENCH_HTTP_DATABASE_URL') else 'SQLite'}")
    print(f"  tailormail over HTTP: {rate:,.0f} events/s  (target >= 10,000)")
    if cpu_before is not None and cpu_after is not None:
        cpu = cpu_after - cpu_before
        print(f"  server CPU: {cpu:.2f} s for {events:,} events = {events / cpu:,.0f} events per CPU-second")
    print(f"  latency per batch: p50 {percentile(lat, 50) * 1000:.1f} ms, p99 {percentile(lat, 99) * 1000:.1f} ms")
    print(f"  failures: {len(result['failures'])}")
    print(f"  baseline sqlite3 executemany, same rows, 100 per transaction: {baseline:,.0f} events/s")
    print(f"  ratio tailormail/baseline: {rate / baseline:.3f}")
    print(f"  load average (1 min) at the end of the load: {load:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
