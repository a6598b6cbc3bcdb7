"""The load generator for bench_http: posts batches from its own process, prints JSON."""

from __future__ import annotations

import base64
import json
import sys
import threading
import time

import httpx


def batch(start: int, size: int) -> dict[str, object]:
    return {
        "batch": [
            {
                "type": "track",
                "messageId": f"http-{i}",
                "userId": f"user-{i % 5000}",
                "event": ("product_view", "add_to_cart", "purchase")[i % 3],
                "timestamp": "2026-03-01T10:00:00Z",
                "properties": {"product_id": f"p{i % 400}", "price": 19.99, "category": "shoes"},
            }
            for i in range(start, start + size)
        ]
    }


def main() -> None:
    base, key, batches, size, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    auth = {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}
    bodies = [json.dumps(batch(b * size, size)).encode() for b in range(batches)]
    latencies: list[float] = []
    failures: list[int] = []
    lock = threading.Lock()
    cursor = iter(range(batches))

    def work() -> None:
        with httpx.Client(base_url=base, headers={**auth, "Content-Type": "application/json"}) as client:
            while True:
                with lock:
                    index = next(cursor, None)
                if index is None:
                    return
                start = time.perf_counter()
                response = client.post("/v1/batch", content=bodies[index])
                elapsed = time.perf_counter() - start
                with lock:
                    latencies.append(elapsed)
                    if response.status_code != 200:
                        failures.append(response.status_code)

    started = time.perf_counter()
    workers = [threading.Thread(target=work) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    total = time.perf_counter() - started
    print(json.dumps({"seconds": total, "latencies": latencies, "failures": failures}))


if __name__ == "__main__":
    main()
