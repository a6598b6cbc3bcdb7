"""Sync throughput: an HTTP pull of 100,000 records and Redis Streams consumption, each beside a baseline.

pull:  a loopback CRM serves 100,000 customers in pages of 1,000; tailormail pulls
       them into a fresh SQLite store.  Baseline: fetching and decoding the same
       pages with httpx, storing nothing.  Target: >= 20,000 records/s.
redis: 100,000 Segment track messages in a stream; tailormail's consumer group
       ingests them.  Baseline: XREADGROUP + XACK of the same entries, storing
       nothing.  Target: >= 10,000 events/s.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import httpx

from tailormail.runtime import Runtime, open_runtime
from tailormail.workspace import init_workspace

RECORDS = int(os.environ.get("BENCH_SYNC_RECORDS", "100000"))
PAGE = 1000
REDIS_URL = "redis://127.0.0.1:6379/14"


def _pages() -> list[bytes]:
    pages = []
    for start in range(0, RECORDS, PAGE):
        rows = [
            {
                "id": f"c{i}",
                "email": f"c{i}@example.com",
                "name": f"Customer {i}",
                "plan": "pro" if i % 3 else "free",
                "updated_at": f"2026-02-{1 + i % 28:02d}T10:00:00Z",
            }
            for i in range(start, min(start + PAGE, RECORDS))
        ]
        pages.append(json.dumps({"data": rows}).encode())
    return [*pages, json.dumps({"data": []}).encode()]


@contextmanager
def crm() -> Iterator[str]:
    pages = _pages()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            page = int(parse_qs(urlparse(self.path).query).get("page", ["1"])[0])
            body = pages[min(page, len(pages)) - 1]
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def workspace(config: str = "") -> Iterator[Runtime]:
    root = Path(tempfile.mkdtemp(prefix="bench_sync_"))
    os.environ.pop("TAILORMAIL_DATABASE_URL", None)
    init_workspace(root / "ws")
    path = root / "ws" / "tailormail.toml"
    path.write_text(path.read_text() + config)
    rt = open_runtime(root / "ws")
    try:
        yield rt
    finally:
        rt.close()
        shutil.rmtree(root)


def bench_pull() -> None:
    from tailormail.sync import tasks

    with crm() as base:
        start, cpu = time.perf_counter(), time.process_time()
        with httpx.Client() as client:
            n = 0
            for page in range(1, RECORDS // PAGE + 2):
                n += len(client.get(f"{base}/customers", params={"page": page}).json()["data"])
        baseline, baseline_cpu = time.perf_counter() - start, time.process_time() - cpu
        config = f"""
[sync]
allow_private = true

[[sync.sources]]
name = "customers"
url = "{base}/customers"
records = "data"
pagination = {{ type = "page", param = "page", size_param = "per_page", size = {PAGE} }}
[sync.sources.mapping]
key = "id"
user_id = "id"
updated = "updated_at"
traits = {{ email = "email", name = "name", plan = "plan" }}
"""
        with workspace(config) as rt:
            start, cpu = time.perf_counter(), time.process_time()
            run = tasks.run_now(rt, "customers")
            took, took_cpu = time.perf_counter() - start, time.process_time() - cpu
    ceiling = ingest_ceiling()
    assert n == RECORDS and run["written"] == RECORDS, run
    print(f"pull {RECORDS:,} records in pages of {PAGE:,} (SQLite store)")
    print(f"  baseline (fetch + decode, no store): {baseline:.2f} s = {RECORDS / baseline:,.0f} records/s")
    print(f"    CPU of this process (client and the loopback CRM thread): {baseline_cpu:.2f} s")
    print(
        f"  tailormail pull into the store:      {took:.2f} s = {RECORDS / took:,.0f} records/s "
        f"(target >= 20,000; {took / baseline:.1f}x the baseline's time)"
    )
    print(f"    CPU of this process: {took_cpu:.2f} s = {RECORDS / took_cpu:,.0f} records per CPU-second")
    print(f"  bound: the shared ingest path alone (pre-parsed, pages of {PAGE:,}): {ceiling:,.0f} records/s")
    print(f"  load average (1 min): {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


def ingest_ceiling() -> float:
    """Records/s of the shared ingest path alone: what any source into the store is bounded by."""
    from tailormail.ingest.messages import parse_message

    messages = [
        parse_message(
            {
                "type": "identify",
                "userId": f"c{i}",
                "messageId": f"m{i}",
                "traits": {"email": f"c{i}@example.com", "name": f"Customer {i}", "plan": "pro"},
            },
            received_ms=0,
        )
        for i in range(RECORDS)
    ]
    with workspace() as rt:
        start = time.perf_counter()
        for i in range(0, RECORDS, PAGE):
            rt.ingestor.ingest(messages[i : i + PAGE])
        return RECORDS / (time.perf_counter() - start)


def bench_redis() -> None:
    try:
        import redis

        client = redis.Redis.from_url(REDIS_URL)
        client.ping()
    except Exception as exc:
        print(f"redis: skipped ({exc})")
        return
    from tailormail.ingest.streams import RedisStreamConsumer, Until

    stream = f"bench-{uuid.uuid4().hex[:8]}"
    try:
        pipe = client.pipeline(transaction=False)
        for i in range(RECORDS):
            body = {
                "type": "track",
                "event": "purchase",
                "userId": f"u{i % 20000}",
                "messageId": f"m{i}",
                "properties": {"total": i % 100, "sku": f"s{i % 500}"},
                "timestamp": "2026-02-10T10:00:00Z",
            }
            pipe.xadd(stream, {"data": json.dumps(body)})
            if i % 5000 == 4999:
                pipe.execute()
        pipe.execute()
        client.xgroup_create(stream, "baseline", id="0")
        start, cpu = time.perf_counter(), time.process_time()
        seen = 0
        while reply := client.xreadgroup("baseline", "b", {stream: ">"}, count=500):
            ids = [entry_id for entry_id, _ in reply[0][1]]
            client.xack(stream, "baseline", *ids)
            seen += len(ids)
        baseline, baseline_cpu = time.perf_counter() - start, time.process_time() - cpu
        with workspace() as rt:
            consumer = RedisStreamConsumer(rt.ingestor, client, stream, group="tm", batch=1000)
            start, cpu = time.perf_counter(), time.process_time()
            result = consumer.run(Until(idle=True))
            took, took_cpu = time.perf_counter() - start, time.process_time() - cpu
        assert seen == RECORDS and result.stored == RECORDS, result
        print(f"redis streams: {RECORDS:,} Segment track messages (SQLite store)")
        print(f"  baseline (XREADGROUP + XACK, no store): {baseline:.2f} s = {RECORDS / baseline:,.0f} events/s")
        print(
            f"  tailormail consumer into the store:     {took:.2f} s = {RECORDS / took:,.0f} events/s "
            f"(target >= 10,000; {took / baseline:.1f}x the baseline's time)"
        )
        print(
            f"  CPU of this process: baseline {baseline_cpu:.2f} s, tailormail {took_cpu:.2f} s"
            f" = {RECORDS / took_cpu:,.0f} events per CPU-second"
        )
        print(f"  load average (1 min): {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    finally:
        client.delete(stream)
        client.close()


def main(parts: tuple[str, ...] = ("pull", "redis")) -> None:
    if "pull" in parts:
        bench_pull()
    if "redis" in parts:
        bench_redis()


if __name__ == "__main__":
    main(tuple(sys.argv[1:]) or ("pull", "redis"))
